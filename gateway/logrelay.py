"""
Workers' log events, relayed into the supervisor's log.

A worker writes each event as one JSON line on its standard output (L{gateway.worker}); the
supervisor turns each line back into an event and publishes it, so access-log events keep their
fields in the supervisor's ``--json-log`` and show in twistd's log like the supervisor's own. Each
relayed event gains C{worker_pid}, and its log system names the worker
(``[s3gateway.access#info worker=1234]``), so an operator can tell the workers apart.

Anything else a worker writes (standard error, a line that is not JSON: an interpreter crash) is
relayed as text, at level error for standard error.

Every request makes one access-log event, so both ends have a quick path for events whose fields
are plain strings and numbers, as access-log events are: L{event_as_json} writes them without
twisted.logger's flattening and per-object hooks, and L{LineRelay} reads them back with a plain
C{json.loads}. Through twisted.logger's C{eventAsJSON} and C{eventFromJSON} the relay cost about
30 microseconds per event on each side, a tenth of a small GET. Any other event takes
twisted.logger's way, and both ways give the supervisor the same event.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List

from twisted.logger import LogLevel, eventAsJSON, eventFromJSON

#: How twisted.logger's JSON marks a log level (C{twisted.logger._json.classInfo}).
_LEVEL_CLASS = "02E59486-F24D-46AD-8224-3ACDF2A5732A"
_CLASS_KEY = '"__class_uuid__"'

#: The types written as they are by L{event_as_json} (exact types: no subclasses).
_PLAIN = frozenset({str, int, float, bool, type(None)})

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
            if text.count(_CLASS_KEY) == 1:
                # Only the log level is an object of twisted.logger's (L{event_as_json}).
                event = json.loads(text)
                if isinstance(event, dict):
                    level = event.get("log_level")
                    if isinstance(level, dict) and level.get("__class_uuid__") == _LEVEL_CLASS:
                        event["log_level"] = getattr(LogLevel, level.get("name", ""), None)
                    else:
                        event = eventFromJSON(text)
            else:
                event = eventFromJSON(text)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        if not isinstance(event, dict) or "log_level" not in event:
            return None
        return event


def _level_name(value: object) -> str:
    """
    The name of C{value} if it is one of twisted.logger's levels, else C{""}.
    """
    name = getattr(value, "name", "")
    return name if isinstance(name, str) and getattr(LogLevel, name, None) is value else ""


def event_as_json(event: Dict[str, Any]) -> str:
    """
    C{event} as twisted.logger's C{eventAsJSON} writes it, quickly when every field is a plain
    string, number, boolean or C{None} (the log level and the logger aside).

    Such an event needs no flattening: its format fields can be formatted again from the values
    themselves. Any other event (an object, a failure, a container) goes to C{eventAsJSON}.
    """
    plain: Dict[str, Any] = {}
    for name, value in event.items():
        if type(value) in _PLAIN:
            plain[name] = value
        elif name == "log_level" and (level := _level_name(value)):
            plain[name] = {"name": level, "__class_uuid__": _LEVEL_CLASS}
        elif name == "log_logger":
            plain[name] = {"unpersistable": True}
        else:
            return eventAsJSON(event)
    return json.dumps(plain)
