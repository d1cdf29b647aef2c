"""
The commit of small PUTs on the reactor thread, with the kernel running their fsyncs
(L{gateway.backends.aiosync}): no thread trades the GIL with the reactor while a PUT commits.

The PUTs whose bodies ended in one turn of the reactor make a batch. Their files' fsyncs are
submitted together; once they have completed, each file is renamed into place with its index row
(all the rows in one SQLite transaction), and the fsyncs of the directories renamed into and of the
index log are submitted together; once those have completed, the PUTs are answered. The steps
done on the reactor are those the backend already does there for reads (a few C{stat}s, an open, a
rename); none waits for the disk.

A PUT whose commit would wait goes to the commit thread instead (L{LocalBackend.commit_in_thread},
which does the whole commit as before): one with a condition to check, one that makes a new
folder (whose parent must be fsynced), one whose key's lock another writer holds, and fsyncs the
kernel would not take. While another writer holds the index (another worker process, a thread
of this one) the batch tries again a millisecond later, and after L{INDEX_TRIES} tries goes there
too. So does a lone PUT while no other commits (L{LONE_PUTS_ON_THREAD}).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.backends import localfs
from gateway.backends.aiosync import KernelSyncs, NotSubmitted
from gateway.backends.batches import Outcome, outcome_of
from gateway.backends.localcommits import FoldersToMake, PendingInstall
from gateway.backends.localindex import IndexBusy
from gateway.backends.locallock import KeyBusy
from gateway.backends.localsync import NOTHING_TO_SYNC, open_to_sync
from gateway.model import ObjectInfo

if TYPE_CHECKING:
    from gateway.backends.local import LocalBackend

_log = Logger()

#: How long to wait before trying the index again while another writer holds it, and how many
#: tries before the commit thread takes over (which waits for the index, off the reactor).
INDEX_RETRY_SECONDS = 0.001
INDEX_TRIES = 50

#: Whether a lone PUT, submitted while no other commits, goes to the commit thread: its one
#: hand-over each way wakes fewer threads than the kernel's two rounds of fsyncs (at c=1,
#: 860-940 PUT/s against 790), and there is no reactor work for it to contend with.
LONE_PUTS_ON_THREAD = True

#: A PUT waiting for its commit, and what fires with the outcome.
_Waiting = Tuple[PendingInstall, "Deferred[ObjectInfo]"]


class ReactorCommits:
    """
    Commits the small PUTs of one local backend on the reactor, batch by batch.

    :param thread: commits one PUT the way that may wait (the commit thread).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        syncs: KernelSyncs,
        backend: "LocalBackend",
        thread: Callable[[PendingInstall], "Deferred[ObjectInfo]"],
    ) -> None:
        self._reactor = reactor
        self._syncs = syncs
        self._backend = backend
        self._thread = thread
        self._waiting: List[_Waiting] = []
        self._scheduled = False
        #: PUTs submitted and not yet answered, whichever way they commit.
        self._committing = 0

    def submit(self, job: PendingInstall) -> "Deferred[ObjectInfo]":
        """
        Commit C{job} with the others of this turn; fires with the new object's info.
        """
        done: Deferred[ObjectInfo] = Deferred()
        self._committing += 1
        done.addBoth(self._committed)
        self._waiting.append((job, done))
        if not self._scheduled:
            self._scheduled = True
            self._reactor.callLater(0, self._start)
        return done

    def _committed(self, result: object) -> object:
        self._committing -= 1
        return result

    def _start(self) -> None:
        self._scheduled = False
        batch, self._waiting = self._waiting, []
        if LONE_PUTS_ON_THREAD and len(batch) == 1 and self._committing == 1:
            self._to_thread(*batch[0])
            return
        placing = self._syncs.fsync_all([job.fd for job, _ in batch])
        placing.addCallback(self._place, batch)
        placing.addErrback(lambda failure: _log.failure("Committing PUTs failed", failure))

    def _to_thread(self, job: PendingInstall, done: "Deferred[ObjectInfo]") -> None:
        self._thread(job).chainDeferred(done)

    def _place(self, errors: List[Optional[BaseException]], batch: List[_Waiting]) -> None:
        """
        The files are durable (or not): put each in place with its row.
        """
        ready: List[_Waiting] = []
        for error, (job, done) in zip(errors, batch):
            if error is not None:
                if isinstance(error, NotSubmitted):
                    self._to_thread(job, done)
                else:
                    localfs.close_and_remove(job.fd, job.temp)
                    done.errback(Failure(error))
            elif job.condition is None:
                ready.append((job, done))
            else:
                self._to_thread(job, done)
        self._place_ready(ready, 0)

    def _place_ready(self, ready: List[_Waiting], tries: int) -> None:
        """
        Put the durable files of C{ready} in place, with their rows in one transaction; while
        another writer holds the index, try again a little later (L{INDEX_RETRY_SECONDS}), and
        after L{INDEX_TRIES} tries leave them to the commit thread, which waits for it.
        """
        if not ready:
            return
        placed: List[Tuple[PendingInstall, Deferred[ObjectInfo], Outcome[Tuple[ObjectInfo, str]]]]
        placed = []
        try:
            with self._backend.index.writing_now():
                while ready:
                    job, done = ready.pop(0)
                    outcome = outcome_of(self._put_in_place, job)
                    if isinstance(outcome, Failure) and outcome.check(KeyBusy, FoldersToMake):
                        self._to_thread(job, done)
                    else:
                        placed.append((job, done, outcome))
        except IndexBusy:
            # Raised before the block began: nothing was done.
            if tries + 1 < INDEX_TRIES:
                self._reactor.callLater(INDEX_RETRY_SECONDS, self._place_ready, ready, tries + 1)
            else:
                for job, done in ready:
                    self._to_thread(job, done)
            return
        except BaseException:
            # The transaction failed as a whole: the files renamed have no rows (their readers
            # take them for files put there by other means), as when a row fails alone.
            failure = Failure()
            for job, done, _ in placed:
                done.errback(failure)
            for job, done in ready:
                self._to_thread(job, done)
            return
        self._sync_folders(placed)

    def _put_in_place(self, job: PendingInstall) -> Tuple[ObjectInfo, str]:
        """
        Put C{job}'s file in place, unless that would wait: raises L{KeyBusy} or
        L{FoldersToMake} having done nothing, and the commit thread takes it.
        """
        try:
            st = os.fstat(job.fd)
            found = self._backend.put_in_place(
                job.key, job.temp, st, job.metadata, None, job.parts_count, job.part_sizes,
                wait=False, make_folders=False,
            )
        except (KeyBusy, FoldersToMake):
            raise
        except BaseException:
            os.close(job.fd)
            raise
        os.close(job.fd)
        return found

    def _sync_folders(
        self,
        placed: List[Tuple[PendingInstall, "Deferred[ObjectInfo]", Outcome[Tuple[ObjectInfo, str]]]],
    ) -> None:
        """
        fsync the directories renamed into and the index log, then answer.
        """
        folders = sorted({
            outcome[1] for _, _, outcome in placed if not isinstance(outcome, Failure)
        })
        if not folders:
            _answer(placed, {}, None)
            return
        opened: List[Tuple[str, Outcome[int]]] = [
            (folder, outcome_of(open_to_sync, folder, os.O_DIRECTORY)) for folder in folders
        ]
        opened.append(("", outcome_of(self._backend.index.open_log)))
        fds = [fd for _, fd in opened if not isinstance(fd, Failure)]
        syncing = self._syncs.fsync_all(fds)
        syncing.addCallback(self._synced, opened, placed)
        syncing.addErrback(lambda failure: _log.failure("Committing PUTs failed", failure))

    def _synced(
        self,
        errors: List[Optional[BaseException]],
        opened: List[Tuple[str, Outcome[int]]],
        placed: List[Tuple[PendingInstall, "Deferred[ObjectInfo]", Outcome[Tuple[ObjectInfo, str]]]],
    ) -> "Deferred[None]":
        """
        The fsyncs of the folders and the index log have ended: those the kernel did not take
        are done in threads, then the PUTs are answered.
        """
        outcomes: List[Deferred[None]] = []
        reported = iter(errors)
        for path, fd in opened:
            if isinstance(fd, Failure):
                outcomes.append(fail(fd))
                continue
            os.close(fd)
            error = next(reported)
            if error is None or getattr(error, "errno", None) in NOTHING_TO_SYNC:
                outcomes.append(succeed(None))
            elif not isinstance(error, NotSubmitted):
                outcomes.append(fail(error))
            elif path:
                outcomes.append(self._backend.run_blocking(self._backend.syncs.sync, path))
            else:
                outcomes.append(self._backend.run_blocking(self._backend.index.sync))

        def answer(results: List[Tuple[bool, Any]]) -> None:
            failures = {
                path: (None if ok else result)
                for (path, _), (ok, result) in zip(opened, results)
            }
            log = failures.pop("")
            _answer(placed, failures, log)

        return DeferredList(outcomes, consumeErrors=True).addCallback(answer)


def _answer(
    placed: List[Tuple[PendingInstall, "Deferred[ObjectInfo]", Outcome[Tuple[ObjectInfo, str]]]],
    folders: Dict[str, Optional[Failure]],
    log: Optional[Failure],
) -> None:
    for _, done, outcome in placed:
        if isinstance(outcome, Failure):
            done.errback(outcome)
            continue
        failure = folders.get(outcome[1]) or log
        if failure is not None:
            done.errback(failure)
        else:
            done.callback(outcome[0])
