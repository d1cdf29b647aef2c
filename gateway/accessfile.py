"""
The access log as a file of its own, written directly by every serving process.

By default each request's access-log event goes through twisted.logger into twistd's log
(L{gateway.accesslog}). With workers, that log belongs to the supervisor, so every event was
written as JSON by a worker, read back, parsed and formatted by the supervisor: on a busy
gateway of small requests the supervisor spent about a third of a core on it, taken from the
workers (bench/RESULTS.md). With ``access_log = PATH`` every process appends its own lines to
PATH instead, as nginx's workers do.

Lines from several processes do not mix: the file is opened with C{O_APPEND} and every C{write}
is of whole lines. Rotation needs no signal: once a second the writer checks that PATH still
names the file it has open, and opens PATH anew when it does not
(L{gateway.followedfile.FollowedPath}).

Given a reactor, lines are gathered and written together, at most L{FLUSH_SECONDS} after the
first of them or once L{BUFFER_BYTES} have gathered, as nginx's ``access_log ... buffer= flush=``
does: a C{write} per request was a twentieth of a worker's time on small GETs (py-spy, 4 KiB
GETs at c=64). Stopping the process writes what is gathered (L{AccessLogFile.close}); a crash
loses at most the last L{FLUSH_SECONDS}.
"""

from __future__ import annotations

import os
import time
from typing import Callable, List, Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from gateway.accesslog import AccessRecord
from gateway.followedfile import FollowedPath

_log = Logger(namespace="s3gateway.access")

#: Created readable by the service's group (adm, for log readers), never by others.
FILE_MODE = 0o640

#: The longest a gathered line waits for its write.
FLUSH_SECONDS = 1.0

#: Gathered lines are written at once when they reach this size (well under what one C{write}
#: to a local file appends whole).
BUFFER_BYTES = 32 * 1024


class AccessLogFile:
    """
    Appends one line per request to a file; called, like L{gateway.accesslog.log_access}, with
    each request's L{AccessRecord}.

    A line is C{2026-11-25T18:11:01.123Z [PID] GET /bucket/key 200 ...}: the time (UTC) the
    request ended, the process, then the same text as the access-log event.

    :ivar path: the file's name.
    :param reactor: schedules the writes of gathered lines; without it each line is written at
        once.
    """

    def __init__(
        self, path: str, clock: Callable[[], float] = time.time,
        reactor: Optional[IReactorTime] = None,
    ) -> None:
        self.path = path
        self._clock = clock
        self._reactor = reactor
        self._gathered: List[bytes] = []
        self._gathered_bytes = 0
        self._flush_call: Optional[IDelayedCall] = None
        self._second = -1
        self._stamp = ""
        self._tag = f"[{os.getpid()}]"
        self._failing = False
        self._file = FollowedPath(path, FILE_MODE)

    def __call__(self, record: AccessRecord) -> None:
        if self._file.fd is None:
            return
        now = self._clock()
        second = int(now)
        try:
            if second != self._second:
                self._second = second
                self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
                self._file.follow()
        except OSError as error:
            self._report(error)
        millis = int((now - second) * 1000)
        line = f"{self._stamp}.{millis:03d}Z {self._tag} {record.line()}\n".encode()
        if self._reactor is None:
            self._write(line)
            return
        self._gathered.append(line)
        self._gathered_bytes += len(line)
        if self._gathered_bytes >= BUFFER_BYTES:
            self.flush()
        elif self._flush_call is None:
            self._flush_call = self._reactor.callLater(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """
        Write the gathered lines now.
        """
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        if self._gathered:
            lines, self._gathered, self._gathered_bytes = self._gathered, [], 0
            self._write(b"".join(lines))

    def _write(self, lines: bytes) -> None:
        if self._file.fd is None:
            return
        try:
            os.write(self._file.fd, lines)
            self._failing = False
        except OSError as error:
            self._report(error)

    def _report(self, error: OSError) -> None:
        # A full disk must not fail requests; say so once per spell of failures, in twistd's
        # log, and keep trying.
        if not self._failing:
            self._failing = True
            _log.error("cannot write the access log {path}: {error}", path=self.path,
                       error=str(error))

    def close(self) -> None:
        """
        Write the gathered lines and close the file; later requests are not logged.
        """
        self.flush()
        self._file.close()
