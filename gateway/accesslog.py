"""
One access-log event per request, through twisted.logger.

Events carry their fields as structured data, so the same event is a readable line in twistd's
log and a complete JSON object when a JSON observer is attached (``--json-log``). The secret key
and the signature are never part of an event: only the access key id.
"""

from __future__ import annotations

from typing import IO

from twisted.logger import (
    FilteringLogObserver,
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


def log_access(
    method: str,
    operation: str,
    bucket: str,
    key: str,
    status: int,
    bytes_sent: int,
    bytes_received: int,
    duration: float,
    access_key_id: str,
    disconnected: bool,
) -> None:
    """
    Emit the access-log event of one finished (or abandoned) request.
    """
    duration_ms = duration * 1000.0
    line = access_line(method, operation, bucket, key, status, bytes_sent, bytes_received,
                       duration_ms, access_key_id, disconnected)
    _log.info(
        _FORMAT,
        access_line=line,
        method=method,
        operation=operation,
        bucket=bucket,
        key=key,
        status=status,
        bytes_sent=bytes_sent,
        bytes_received=bytes_received,
        duration_ms=duration_ms,
        access_key_id=access_key_id,
        disconnected=disconnected,
    )


def access_line(
    method: str,
    operation: str,
    bucket: str,
    key: str,
    status: int,
    bytes_sent: int,
    bytes_received: int,
    duration_ms: float,
    access_key_id: str,
    disconnected: bool,
) -> str:
    """
    The text of one request's access-log line (without a time stamp), on one line whatever the
    key holds.
    """
    key_part = ("/" + _printable(key)) if key else ""
    note = " (client disconnected)" if disconnected else ""
    return (
        f"{method} /{bucket}{key_part} {status} {bytes_sent}B out {bytes_received}B in "
        f"{duration_ms:.1f}ms key={access_key_id} op={operation}{note}"
    )


def _printable(text: str) -> str:
    # A key may hold line breaks and other control characters: escaped in the text line, so
    # that no key can forge a log line; the event's key field keeps it as it is.
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


def json_observer(output: IO[str]) -> ILogObserver:
    """
    An observer writing every event of level info and above as one JSON object per line.
    """

    def at_least_info(event: dict) -> PredicateResult:  # type: ignore[type-arg]
        if event.get("log_level", LogLevel.info) >= LogLevel.info:
            return PredicateResult.yes
        return PredicateResult.no

    return FilteringLogObserver(jsonFileLogObserver(output, recordSeparator=""), [at_least_info])
