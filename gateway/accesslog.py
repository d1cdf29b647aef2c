"""
One access-log event per request, through twisted.logger.

Events carry their fields as structured data, so the same event is a readable line in twistd's
log and a complete JSON object when a JSON observer is attached (``--json-log``). The secret key
and the signature are never part of an event: only the access key id.
"""

from __future__ import annotations

from typing import IO, Protocol, cast

from attrs import frozen

from twisted.logger import (
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    LogLevel,
    Logger,
    PredicateResult,
    jsonFileLogObserver,
)

ACCESS_NAMESPACE = "s3gateway.access"

_log = Logger(namespace=ACCESS_NAMESPACE)

#: The event's format: the line is made here, by one f-string. twisted.logger's formatter
#: parses its format string field by field on every event; with a dozen fields that was a tenth
#: of a small request's time (bench/RESULTS.md). The fields stay in the event for JSON observers.
_FORMAT = "{access_line}"


@frozen
class AccessRecord:
    """
    What the access log says of one finished (or abandoned) request: one value for every
    writer of it (L{log_access}, L{gateway.accessfile.AccessLogFile}).

    :ivar duration: seconds from the request's headers to its end.
    :ivar disconnected: whether the client went away before the answer was complete.
    """

    method: str
    operation: str
    bucket: str
    key: str
    status: int
    bytes_sent: int
    bytes_received: int
    duration: float
    access_key_id: str
    disconnected: bool

    def line(self) -> str:
        """
        The request as one line of text (without a time stamp), on one line whatever the key
        holds.
        """
        key_part = ("/" + _printable(self.key)) if self.key else ""
        note = " (client disconnected)" if self.disconnected else ""
        return (
            f"{self.method} /{self.bucket}{key_part} {self.status} {self.bytes_sent}B out "
            f"{self.bytes_received}B in {self.duration * 1000.0:.1f}ms "
            f"key={self.access_key_id} op={self.operation}{note}"
        )


def log_access(record: AccessRecord) -> None:
    """
    Emit the access-log event of one request.
    """
    _log.info(
        _FORMAT,
        access_line=record.line(),
        method=record.method,
        operation=record.operation,
        bucket=record.bucket,
        key=record.key,
        status=record.status,
        bytes_sent=record.bytes_sent,
        bytes_received=record.bytes_received,
        duration_ms=record.duration * 1000.0,
        access_key_id=record.access_key_id,
        disconnected=record.disconnected,
    )


def _printable(text: str) -> str:
    # A key may hold line breaks and other control characters: escaped in the text line, so
    # that no key can forge a log line; the event's key field keeps it as it is.
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


class TextOutput(Protocol):
    """
    What a JSON observer writes to: a text file, or L{gateway.followedfile.FollowedTextFile}.
    """

    def write(self, text: str) -> int: ...

    def flush(self) -> None: ...


def json_observer(output: TextOutput) -> ILogObserver:
    """
    An observer writing every event of level info and above as one JSON object per line.
    """

    def at_least_info(event: dict) -> PredicateResult:  # type: ignore[type-arg]
        if event.get("log_level", LogLevel.info) >= LogLevel.info:
            return PredicateResult.yes
        return PredicateResult.no

    # A function is a predicate to Twisted (it is only called), though it declares no interface.
    predicate = cast(ILogFilterPredicate, at_least_info)
    # Twisted types the file as IO, though it only writes and flushes.
    observer = jsonFileLogObserver(cast(IO[str], output), recordSeparator="")
    return FilteringLogObserver(observer, [predicate])
