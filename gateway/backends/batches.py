"""
Blocking work done in batches on one thread: the commits of finished uploads.

A small PUT's commit is a dozen system calls (fsync, rename, index row, the fsyncs of its
directory and of the index log). Run one per thread-pool thread, concurrent commits had up to ten
threads trading the GIL with the reactor at every one of those calls: 60 context switches per
PUT, and a third of the process's CPU spent in the kernel's scheduler and futex wake-ups
(``perf``, bench/RESULTS.md). Each fsync also waited for its own write to the disk.

A L{BatchThread} takes every item waiting when it wakes and hands them together to the function
they were submitted with, which can then do each shared step once: start writeback of all their
files, then fsync them (by then their data is written or on its way), and fsync each
directory and the index log once for the lot. Items that come while a batch runs wait for the
next one, which is what keeps batches large exactly when the load is.

The thread is started by the first item and ends after L{IDLE_SECONDS} without work, so a
process with no writes (or a test's backend, dropped) keeps no thread.
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Generic, Hashable, List, Sequence, Tuple, TypeVar, Union

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure

T = TypeVar("T")
R = TypeVar("R")

#: What a batch function gives for each of its items, in order: a result or a failure.
Outcome = Union[R, Failure]

#: A batch function: items in, one outcome per item out, in order.
BatchFunction = Callable[[Sequence[T]], Sequence[Outcome[R]]]

#: An item waiting: its batch function, the item, and what fires with its outcome.
_Waiting = Tuple[BatchFunction[T, R], T, "Deferred[R]"]

#: How long the thread waits for work before it ends.
IDLE_SECONDS = 1.0


class BatchThread(Generic[T, R]):
    """
    Runs submitted items in batches on a thread of its own; results come back on the reactor.

    A batch function takes a sequence of items and returns one L{Outcome} per item, in order;
    items submitted with different functions are run as separate batches. An exception raised
    by the function itself fails every item of its batch.
    """

    def __init__(self, reactor: IReactorFromThreads, name: str = "s3gateway-batches") -> None:
        self._reactor = reactor
        self._name = name
        self._condition = threading.Condition()
        self._waiting: List[_Waiting[T, R]] = []
        self._running = False

    def submit(self, batch: BatchFunction[T, R], item: T) -> "Deferred[R]":
        """
        Queue C{item} for the next call of C{batch}; fires with its outcome.
        """
        done: Deferred[R] = Deferred()
        with self._condition:
            self._waiting.append((batch, item, done))
            if self._running:
                self._condition.notify()
                return done
            self._running = True
        threading.Thread(target=self._serve, name=self._name, daemon=True).start()
        return done

    def _serve(self) -> None:
        while True:
            with self._condition:
                if not self._waiting:
                    self._condition.wait(IDLE_SECONDS)
                if not self._waiting:
                    self._running = False
                    return
                taken, self._waiting = self._waiting, []
            self._reactor.callFromThread(_deliver, list(self._run(taken)))

    def _run(self, taken: List[_Waiting[T, R]]) -> List[Tuple["Deferred[R]", Outcome[R]]]:
        groups: Dict[BatchFunction[T, R], List[Tuple[T, Deferred[R]]]] = {}
        for batch, item, done in taken:
            groups.setdefault(batch, []).append((item, done))
        delivered: List[Tuple[Deferred[R], Outcome[R]]] = []
        for batch, entries in groups.items():
            try:
                outcomes = list(batch([item for item, _ in entries]))
                if len(outcomes) != len(entries):
                    raise RuntimeError(
                        f"{batch!r} gave {len(outcomes)} outcomes for {len(entries)} items"
                    )
            except BaseException:
                failure = Failure()
                outcomes = [failure] * len(entries)
            delivered.extend((done, outcome) for (_, done), outcome in zip(entries, outcomes))
        return delivered


class BatchThreads(Generic[T, R]):
    """
    One L{BatchThread} per key, made when first asked for: the local backend keys its commit
    threads by filesystem, so that batches share what a filesystem can share (its disk queue,
    its journal commits) and a slow or hung one (a network mount, a failing disk) holds up only
    the commits made to it. Used from the reactor thread only.
    """

    def __init__(self, reactor: IReactorFromThreads, name: str) -> None:
        self._reactor = reactor
        self._name = name
        self._threads: Dict[Hashable, BatchThread[T, R]] = {}

    def thread(self, key: Hashable) -> BatchThread[T, R]:
        """
        The thread for C{key}.
        """
        found = self._threads.get(key)
        if found is None:
            found = self._threads[key] = BatchThread(self._reactor, f"{self._name}-{key}")
        return found


def _deliver(outcomes: List[Tuple["Deferred[R]", Outcome[R]]]) -> None:
    for done, outcome in outcomes:
        if isinstance(outcome, Failure):
            done.errback(outcome)
        else:
            done.callback(outcome)


def outcome_of(function: Callable[..., R], *args: object) -> Outcome[R]:
    """
    C{function(*args)}, or the failure it raised: for batch functions that go item by item.
    """
    try:
        return function(*args)
    except BaseException:
        return Failure()
