"""
The commit of a batch of small PUTs on the local backend, each step done for all of them before
the next (run by the commit thread of their filesystem, L{gateway.backends.batches}).

Step by step: start writeback of every file, so that their writes reach the disk together, then
fsync each (they find their data written or on its way; on a journaled filesystem the first
fsync's journal commit also carries the others), put each in place under its key's lock, then
fsync every directory renamed into and the bucket's index log once for the lot. On this
machine's disk (ext4 without a journal) 32 new 4 KiB files took 107 us and 60 us of CPU each so,
against 233 us and 253 us with one thread per fsync.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

from attrs import define
from twisted.python.failure import Failure

from gateway.backends import localfs
from gateway.backends.batches import Outcome, outcome_of
from gateway.backends.localsync import start_writeback
from gateway.model import ObjectInfo, WriteCondition, WriteMetadata

if TYPE_CHECKING:
    from gateway.backends.local import LocalBackend


class FoldersToMake(Exception):
    """
    A commit that was not to make folders (L{LocalBackend.put_in_place}) found its key's
    folder missing: nothing was done, and the commit thread, which may, takes it.
    """


@define
class PendingInstall:
    """
    A finished body waiting for L{install_many}: the key, the temporary file and what to record
    (a multipart upload's part count and sizes too, when it is one joined).
    """

    key: str
    fd: int
    temp: str
    metadata: WriteMetadata
    condition: Optional[WriteCondition]
    parts_count: Optional[int] = None
    part_sizes: Sequence[int] = ()


def settle(fd: int) -> os.stat_result:
    """
    fsync a temporary file and close it (closed in any case); its final C{fstat}.
    """
    try:
        os.fsync(fd)
        return os.fstat(fd)
    finally:
        os.close(fd)


def install_many(
    backend: "LocalBackend", pending: Sequence[PendingInstall]
) -> List[Outcome[ObjectInfo]]:
    """
    Make the temporary files of C{pending} their objects, each step done for all of them before
    the next. The temporary files are gone afterwards, whether this worked or not. One PUT's
    failure fails only that PUT, or those that shared the failed directory or index-log fsync.
    """
    for job in pending:
        start_writeback(job.fd, 0, 0)
    settled = [_settled(job) for job in pending]
    placed: List[Outcome[Tuple[ObjectInfo, str]]] = []
    for job, st in zip(pending, settled):
        if isinstance(st, Failure):
            placed.append(st)
            continue
        placed.append(outcome_of(
            backend.put_in_place, job.key, job.temp, st, job.metadata, job.condition,
            job.parts_count, job.part_sizes,
        ))
    synced: Dict[str, Optional[Failure]] = {}
    for outcome in placed:
        if not isinstance(outcome, Failure) and outcome[1] not in synced:
            synced[outcome[1]] = _failure_of(backend.syncs.sync, outcome[1])
    logged = _failure_of(backend.index.sync) if synced else None
    return [
        outcome if isinstance(outcome, Failure)
        else synced[outcome[1]] or logged or outcome[0]
        for outcome in placed
    ]


def _settled(job: PendingInstall) -> Outcome[os.stat_result]:
    """
    L{settle} of a pending install's file, which is removed if that fails.
    """
    outcome = outcome_of(settle, job.fd)
    if isinstance(outcome, Failure):
        localfs.remove_file(job.temp)
    return outcome


def _failure_of(function: Callable[..., object], *args: object) -> Optional[Failure]:
    """
    Call C{function}; the failure it raised, or C{None}.
    """
    outcome = outcome_of(function, *args)
    return outcome if isinstance(outcome, Failure) else None
