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

_FORMAT = (
    "{method} /{bucket}{key_part} {status} {bytes_sent}B out {bytes_received}B in "
    "{duration_ms:.1f}ms key={access_key_id} op={operation}{disconnected_note}"
)


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
    _log.info(
        _FORMAT,
        method=method,
        operation=operation,
        bucket=bucket,
        key=key,
        key_part=("/" + key) if key else "",
        status=status,
        bytes_sent=bytes_sent,
        bytes_received=bytes_received,
        duration_ms=duration * 1000.0,
        access_key_id=access_key_id,
        disconnected=disconnected,
        disconnected_note=" (client disconnected)" if disconnected else "",
    )


def json_observer(output: IO[str]) -> ILogObserver:
    """
    An observer writing every event of level info and above as one JSON object per line.
    """

    def at_least_info(event: dict) -> PredicateResult:  # type: ignore[type-arg]
        if event.get("log_level", LogLevel.info) >= LogLevel.info:
            return PredicateResult.yes
        return PredicateResult.no

    return FilteringLogObserver(jsonFileLogObserver(output, recordSeparator=""), [at_least_info])
