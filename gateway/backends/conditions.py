"""
S3's conditional writes, judged once for every backend.

A backend calls L{check_condition} at the moment it replaces an object, while it holds whatever
makes that replacement atomic (nothing for the single-threaded memory backend, a per-key file lock
for the local one), so that the check and the write are one step for every other writer.
"""

from __future__ import annotations

from typing import Callable, Optional

from gateway.interfaces import PreconditionNotMet
from gateway.model import WriteCondition


def check_condition(
    condition: Optional[WriteCondition], key: str, exists: bool, etag: Callable[[], str]
) -> None:
    """
    Refuse a write whose condition does not hold for what is stored under C{key} now.

    :param exists: whether an object has the key.
    :param etag: the stored object's ETag; called only when C{exists} and the condition is
        C{If-Match}, since finding it may cost a read (a file put there by other means).
    :raise PreconditionNotMet: ``If-None-Match: *`` and the key exists; ``If-Match`` and the key
        is absent or its ETag differs (``*`` matches any existing object, as in HTTP).
    """
    if condition is None:
        return
    if condition.if_none_match and exists:
        raise PreconditionNotMet(f"an object {key!r} exists (If-None-Match)")
    if condition.if_match is None:
        return
    if not exists:
        raise PreconditionNotMet(f"no object {key!r} exists (If-Match)")
    wanted = condition.if_match.strip().strip('"')
    if wanted != "*" and etag() != wanted:
        raise PreconditionNotMet(f"the ETag of {key!r} is not {wanted!r} (If-Match)")
