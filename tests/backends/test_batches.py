"""
L{gateway.backends.batches}: items that wait while a batch runs go together into the next one,
each gets its own outcome, and the thread goes away when idle.
"""

from __future__ import annotations

import threading
import time
from typing import List, Sequence

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList
from twisted.python.failure import Failure

from gateway.backends import batches
from gateway.backends.batches import BatchThread, BatchThreads, Outcome, outcome_of


def _reactor():  # type: ignore[no-untyped-def]
    from twisted.internet import reactor

    return reactor


def threads_named(name: str) -> List[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


@pytest_twisted.ensureDeferred
async def test_items_waiting_go_together() -> None:
    thread: BatchThread[int, str] = BatchThread(_reactor(), "test-batches-together")
    calls: List[List[int]] = []
    running = threading.Event()
    release = threading.Event()

    def double(items: Sequence[int]) -> List[Outcome[str]]:
        calls.append(list(items))
        running.set()
        release.wait(10)
        return [str(item * 2) for item in items]

    first = thread.submit(double, 1)
    assert running.wait(10)
    # Submitted while the first batch runs: all of them make the second batch, in order.
    later = [thread.submit(double, item) for item in (2, 3, 4)]
    release.set()
    assert await first == "2"
    assert [await done for done in later] == ["4", "6", "8"]
    assert calls == [[1], [2, 3, 4]]


@pytest_twisted.ensureDeferred
async def test_each_item_its_own_outcome() -> None:
    thread: BatchThread[int, int] = BatchThread(_reactor(), "test-batches-outcomes")

    def inverse(items: Sequence[int]) -> List[Outcome[float]]:
        return [outcome_of(lambda: 1 / item) for item in items]

    results = await DeferredList(
        [thread.submit(inverse, item) for item in (1, 0, 4)], consumeErrors=True
    )
    assert results[0] == (True, 1.0) and results[2] == (True, 0.25)
    ok, failure = results[1]
    assert not ok and failure.check(ZeroDivisionError)


@pytest_twisted.ensureDeferred
async def test_a_batch_that_raises_fails_its_items_only() -> None:
    thread: BatchThread[int, int] = BatchThread(_reactor(), "test-batches-raise")
    gate = threading.Event()

    def broken(items: Sequence[int]) -> List[Outcome[int]]:
        gate.wait(10)
        raise ValueError("broken")

    def wrong_count(items: Sequence[int]) -> List[Outcome[int]]:
        return []

    def fine(items: Sequence[int]) -> List[Outcome[int]]:
        return list(items)

    submitted = [
        thread.submit(broken, 1),
        thread.submit(broken, 2),
        thread.submit(fine, 3),
        thread.submit(wrong_count, 4),
    ]
    gate.set()
    results = await DeferredList(submitted, consumeErrors=True)
    assert [ok for ok, _ in results] == [False, False, True, False]
    assert results[0][1].check(ValueError) and results[1][1].check(ValueError)
    assert results[2][1] == 3
    assert results[3][1].check(RuntimeError)


@pytest_twisted.ensureDeferred
async def test_thread_ends_when_idle_and_comes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches, "IDLE_SECONDS", 0.05)
    name = "test-batches-idle"
    thread: BatchThread[int, int] = BatchThread(_reactor(), name)
    assert threads_named(name) == []

    def same(items: Sequence[int]) -> List[Outcome[int]]:
        return list(items)

    assert await thread.submit(same, 1) == 1
    deadline = time.monotonic() + 10
    while threads_named(name) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threads_named(name) == []
    assert await thread.submit(same, 2) == 2


def test_outcome_of() -> None:
    assert outcome_of(int, "7") == 7
    failed = outcome_of(int, "x")
    assert isinstance(failed, Failure) and failed.check(ValueError)


@pytest_twisted.ensureDeferred
async def test_one_thread_per_key_and_none_waits_for_another() -> None:
    threads: BatchThreads[int, int] = BatchThreads(_reactor(), "test-batches-keyed")
    assert threads.thread("disk-a") is threads.thread("disk-a")
    assert threads.thread("disk-a") is not threads.thread("disk-b")
    hung = threading.Event()
    names: List[str] = []

    def stuck(items: Sequence[int]) -> List[Outcome[int]]:
        hung.wait(10)
        return list(items)

    def quick(items: Sequence[int]) -> List[Outcome[int]]:
        names.append(threading.current_thread().name)
        return list(items)

    blocked = threads.thread("disk-a").submit(stuck, 1)
    # A hung filesystem's commits do not hold up another's.
    assert await threads.thread("disk-b").submit(quick, 2) == 2
    assert not blocked.called and names == ["test-batches-keyed-disk-b"]
    hung.set()
    assert await blocked == 1
