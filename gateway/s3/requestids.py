"""
The ids of requests: the ``x-amz-request-id`` of each answer, and of its access log line.

An id only has to tell one request from another in the logs of every process of a gateway:
sixteen upper-case hex digits, as S3's, made of a random prefix drawn once per L{RequestIds}
and a counter. Drawing sixteen random digits per request took a system call each time
(C{os.urandom}), a little of every small GET's time.
"""

from __future__ import annotations

import itertools
import os


class RequestIds:
    """
    Makes request ids: unique among the 2**32 that one instance makes, and across processes
    unless two of them draw the same 32-bit prefix.
    """

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex().upper()
        self._count = itertools.count()

    def next(self) -> str:
        """
        A new id.
        """
        return "%s%08X" % (self._prefix, next(self._count) & 0xFFFFFFFF)
