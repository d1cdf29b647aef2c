"""
Workers' log events, relayed into the supervisor's log.

A worker writes each event as one JSON line on its standard output (L{gateway.worker}); the
supervisor turns each line back into an event and publishes it, so access-log events keep their
fields in the supervisor's ``--json-log`` and show in twistd's log like the supervisor's own. Each
relayed event gains C{worker_pid}, and its log system names the worker
(``[s3gateway.access#info worker=1234]``), so an operator can tell the workers apart.

Anything else a worker writes (standard error, a line that is not JSON: an interpreter crash) is
relayed as text, at level error for standard error.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List

from twisted.logger import LogLevel, eventFromJSON

#: The longest line kept whole; a longer one is relayed in pieces, so a runaway worker cannot make
#: the supervisor buffer without bound.
MAX_LINE = 1024 * 1024


class LineRelay:
    """
    Splits one output stream of a worker into lines and publishes each as a log event.

    :param pid: the worker's process id, added to every event.
    :param publisher: called with each event (twisted.logger's global publisher, or a list's
        C{append} in tests).
    :param json_lines: whether the stream carries JSON events (standard output) or text
        (standard error).
    """

    def __init__(self, pid: int, publisher: Callable[[Dict[str, Any]], None],
                 json_lines: bool) -> None:
        self.pid = pid
        self.publisher = publisher
        self.json_lines = json_lines
        self._pending: List[bytes] = []
        self._pending_size = 0

    def data_received(self, data: bytes) -> None:
        """
        Publish every complete line of C{data} and keep the rest for later.
        """
        *lines, rest = data.split(b"\n")
        if lines:
            lines[0] = b"".join(self._pending) + lines[0]
            self._pending, self._pending_size = [], 0
            for line in lines:
                self._publish_line(line)
        if rest:
            self._pending.append(rest)
            self._pending_size += len(rest)
            if self._pending_size > MAX_LINE:
                self.flush()

    def flush(self) -> None:
        """
        Publish what is left of an unterminated last line (the worker has exited).
        """
        if self._pending:
            line = b"".join(self._pending)
            self._pending, self._pending_size = [], 0
            self._publish_line(line)

    def _publish_line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        if not text.strip():
            return
        event = self._event_from_json(text) if self.json_lines else None
        if event is None:
            level = LogLevel.info if self.json_lines else LogLevel.error
            event = {
                "log_format": "{line}",
                "line": text,
                "log_level": level,
                "log_namespace": "s3gateway.worker",
                "log_time": time.time(),
            }
        system = event.get("log_system") or "{}#{}".format(
            event.get("log_namespace", "-"), getattr(event.get("log_level"), "name", "-")
        )
        event["log_system"] = f"{system} worker={self.pid}"
        event["worker_pid"] = self.pid
        self.publisher(event)

    @staticmethod
    def _event_from_json(text: str) -> Any:
        if not text.startswith("{"):
            return None
        try:
            event = eventFromJSON(text)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        if not isinstance(event, dict) or "log_level" not in event:
            return None
        return event
