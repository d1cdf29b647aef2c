"""
Conditional writes: ``If-None-Match: *`` (create only if absent) and ``If-Match: "etag"`` (replace
only if unchanged) on PutObject, CompleteMultipartUpload and CopyObject, as S3 documents them
("Conditional writes"). The backend checks the condition and commits in one atomic step; the
protocol also checks early, against a stat, so that a doomed upload is refused before its body is
sent (``Expect: 100-continue``).
"""

from __future__ import annotations

from typing import Optional

from gateway.interfaces import IBackend, NoSuchObject
from gateway.model import WriteCondition
from gateway.s3.context import OperationContext
from gateway.s3.errors import S3Error


def precondition_failed(condition: str) -> S3Error:
    return S3Error(
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        Condition=condition,
    )


def write_condition(context: OperationContext) -> Optional[WriteCondition]:
    """
    The condition a write request carries, or C{None}.

    :raise S3Error: NotImplemented for forms S3 does not offer on writes (an ETag list in
        If-None-Match, If-Modified-Since, ...).
    """
    if_none_match = context.header("if-none-match")
    if_match = context.header("if-match")
    for name in ("if-modified-since", "if-unmodified-since"):
        if context.header(name) is not None:
            raise S3Error(
                "NotImplemented",
                "A header you provided implies functionality that is not implemented",
                Header=name,
            )
    if if_none_match is None and if_match is None:
        return None
    if if_none_match is not None and if_none_match.strip() != "*":
        raise S3Error(
            "NotImplemented",
            "A header you provided implies functionality that is not implemented",
            Header="If-None-Match",
        )
    etag = if_match.strip().removeprefix("W/").strip('"') if if_match is not None else None
    return WriteCondition(if_none_match=if_none_match is not None, if_match=etag)


async def check_early(backend: IBackend, key: str, condition: Optional[WriteCondition]) -> None:
    """
    Refuse a write whose condition already fails, before its body is read. The backend checks
    again, atomically, at commit.
    """
    if condition is None:
        return
    try:
        info = await backend.stat(key)
    except NoSuchObject:
        if condition.if_match is not None:
            # S3 answers a conditional write on a missing key with 404 NoSuchKey.
            raise S3Error("NoSuchKey", "The specified key does not exist.", Key=key)
        return
    if condition.if_none_match:
        raise precondition_failed("If-None-Match")
    if condition.if_match is not None and info.etag != condition.if_match:
        raise precondition_failed("If-Match")
