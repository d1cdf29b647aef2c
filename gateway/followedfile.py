"""
Log files that follow their path through rotation.

A daemon that runs for months writes into files that logrotate renames away (its default
``create``) or removes once compressed. A file opened once and written for ever would then fill
the renamed file, or a removed one whose space is never freed, while the path stays empty.
L{FollowedPath} checks, when asked (at most once a second by its users), that its path still
names the file it has open, and opens the path anew when it does not; no signal is needed.
``copytruncate`` works too: every write appends (``O_APPEND``).
"""

from __future__ import annotations

import os
import time
from typing import Callable, Optional, Tuple

from twisted.logger import Logger

_log = Logger()


class FollowedPath:
    """
    A file opened for appending at C{path}, opened anew when C{path} names another file.

    :param mode: the permissions of the file if this creates it.
    :ivar fd: the open descriptor, or C{None} once closed.
    """

    def __init__(self, path: str, mode: int) -> None:
        self.path = path
        self._mode = mode
        self.fd: Optional[int] = None
        self._identity: Tuple[int, int] = (0, 0)
        self._open()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, self._mode)
        status = os.fstat(fd)
        if self.fd is not None:
            os.close(self.fd)
        self.fd = fd
        self._identity = (status.st_dev, status.st_ino)

    def follow(self) -> None:
        """
        Open the path anew if it no longer names the open file (renamed or removed).

        :raise OSError: the path cannot be opened; the old file stays open.
        """
        if self.fd is None:
            return
        try:
            status = os.stat(self.path)
            moved = (status.st_dev, status.st_ino) != self._identity
        except FileNotFoundError:
            moved = True
        if moved:
            self._open()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class FollowedTextFile:
    """
    A text file for a twisted.logger file observer (C{write} and C{flush}), each C{write}
    appended whole in one system call, following its path through rotation (checked at most
    once a second, at a write).

    A write that fails (a full disk) is dropped and reported once per spell of failures, in
    the log: logging must not fail the service, nor loop on itself.
    """

    def __init__(
        self, path: str, mode: int = 0o640, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._file = FollowedPath(path, mode)
        self._clock = clock
        self._checked = clock()
        self._failing = False

    @property
    def path(self) -> str:
        return self._file.path

    def write(self, text: str) -> int:
        fd = self._file.fd
        if fd is None:
            return 0
        data = text.encode("utf-8")
        try:
            now = self._clock()
            if now - self._checked >= 1.0:
                self._checked = now
                self._file.follow()
                fd = self._file.fd
                assert fd is not None
            os.write(fd, data)
        except OSError as error:
            self._report(error)
            return 0
        self._failing = False
        return len(text)

    def flush(self) -> None:
        """
        Nothing to do: every write goes to the file at once.
        """

    def _report(self, error: OSError) -> None:
        if not self._failing:
            self._failing = True
            _log.error("cannot write the log file {path}: {error}", path=self.path,
                       error=str(error))

    def close(self) -> None:
        self._file.close()
