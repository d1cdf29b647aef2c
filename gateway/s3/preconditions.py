"""
Conditional reads: If-Match, If-None-Match, If-Modified-Since and If-Unmodified-Since on GET and
HEAD, with the precedence S3 documents (GetObject, "Conditional requests", after RFC 9110
section 13.2.2): If-Match wins over If-Unmodified-Since, If-None-Match over If-Modified-Since, and a
failed If-Match or If-Unmodified-Since (412) over everything else. The aws cli sends If-Match on
every ranged part of a large download, so that a changed object is noticed.
"""

from __future__ import annotations

from typing import Callable, Optional

from twisted.web.http import stringToDatetime

from gateway.model import ObjectInfo
from gateway.s3.errors import S3Error

NOT_MODIFIED = 304


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    candidates = (c.strip() for c in header.split(","))
    return any(c.removeprefix("W/").strip('"') == etag for c in candidates)


def _date(header: Optional[str]) -> Optional[int]:
    if not header:
        return None
    try:
        return stringToDatetime(header.encode("latin-1"))
    except (ValueError, UnicodeError, IndexError):
        # An unparseable date is ignored, as RFC 9110 section 13.1.3 requires.
        return None


def check_read_preconditions(
    header: Callable[[str], Optional[str]], info: ObjectInfo
) -> Optional[int]:
    """
    Evaluate a read's conditions against the object.

    :param header: looks a request header up by lower-case name.
    :return: 304 when the client's copy is current, C{None} to serve the object.
    :raise S3Error: PreconditionFailed (412).
    """
    modified = int(info.last_modified)
    if_match = header("if-match")
    if if_match is not None:
        if not _etag_matches(if_match, info.etag):
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                Condition="If-Match",
            )
    else:
        since = _date(header("if-unmodified-since"))
        if since is not None and modified > since:
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                Condition="If-Unmodified-Since",
            )
    if_none_match = header("if-none-match")
    if if_none_match is not None:
        if _etag_matches(if_none_match, info.etag):
            return NOT_MODIFIED
    else:
        since = _date(header("if-modified-since"))
        if since is not None and modified <= since:
            return NOT_MODIFIED
    return None
