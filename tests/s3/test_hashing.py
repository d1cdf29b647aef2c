"""
Hashing large uploads on a thread of their own (gateway.s3.hashing).
"""

from __future__ import annotations

import hashlib
import threading
from typing import List

import pytest_twisted
from twisted.internet import reactor
from zope.interface import implementer
from twisted.internet.interfaces import IPushProducer

from gateway.s3 import hashing
from gateway.s3.checksums import BodyDigests
from gateway.s3.hashing import BackgroundDigests, HashingBudget


@implementer(IPushProducer)
class RecordingProducer:
    def __init__(self) -> None:
        self.events: List[str] = []

    def pauseProducing(self) -> None:
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.events.append("stop")


@pytest_twisted.ensureDeferred
async def test_digests_match_hashing_inline() -> None:
    chunks = [bytes([i]) * (100_000 + i) for i in range(50)]
    digests = BodyDigests({"x-amz-checksum-crc32": ["AAAAAA=="]}, "UNSIGNED-PAYLOAD")
    background = BackgroundDigests(digests, reactor)
    for chunk in chunks:
        background.update(chunk)
    await background.finish()
    assert digests.md5_hex == hashlib.md5(b"".join(chunks)).hexdigest()


def held_digests(monkeypatch) -> "tuple[BodyDigests, threading.Event]":
    """
    Digests whose updates wait for the returned event: the hashing thread falls behind at will.
    """
    gate = threading.Event()
    digests = BodyDigests({}, "UNSIGNED-PAYLOAD")
    real_update = digests.update

    def slow_update(data: bytes) -> None:
        gate.wait(10)
        real_update(data)

    monkeypatch.setattr(digests, "update", slow_update)
    return digests, gate


@pytest_twisted.ensureDeferred
async def test_backlog_pauses_and_resumes_the_producer(monkeypatch) -> None:
    """
    Past its share of the budget the producer is paused; once the thread catches up it resumes.
    """
    digests, gate = held_digests(monkeypatch)
    producer = RecordingProducer()
    background = BackgroundDigests(digests, reactor, HashingBudget(total=300_000))
    background.attach(producer)
    for _ in range(3):
        background.update(b"x" * 100_000)
    assert producer.events == []
    background.update(b"x" * 100_000)
    assert producer.events == ["pause"]
    gate.set()
    finished = background.finish()
    await finished
    assert producer.events == ["pause", "resume"]
    assert digests.md5_hex == hashlib.md5(b"x" * 400_000).hexdigest()


def test_an_upload_alone_may_keep_the_high_water_mark_waiting() -> None:
    """
    Alone, an upload's share is L{hashing.HIGH_WATER}, not the whole budget: the budget is there
    for many uploads at once.
    """
    budget = HashingBudget()
    assert budget.share() == hashing.HIGH_WATER
    budget.uploads = 1
    assert budget.share() == hashing.HIGH_WATER
    budget.uploads = 64
    assert budget.share() == hashing.BACKLOG_BUDGET // 64
    assert 64 * budget.share() <= hashing.BACKLOG_BUDGET


@pytest_twisted.ensureDeferred
async def test_uploads_hashed_at_once_share_the_budget(monkeypatch) -> None:
    """
    A second upload on the same budget halves the first one's share, and the first is paused
    at a backlog it could have held alone; each upload leaves the budget once, when finished.
    """
    budget = HashingBudget(total=400_000)
    first_digests, first_gate = held_digests(monkeypatch)
    first = BackgroundDigests(first_digests, reactor, budget)
    producer = RecordingProducer()
    first.attach(producer)
    first.update(b"a" * 300_000)
    assert producer.events == []
    second_digests, second_gate = held_digests(monkeypatch)
    second = BackgroundDigests(second_digests, reactor, budget)
    assert budget.uploads == 2
    first.update(b"a" * 1)
    assert producer.events == ["pause"]
    first_gate.set()
    second_gate.set()
    await first.finish()
    await first.finish()
    assert budget.uploads == 1
    assert producer.events == ["pause", "resume"]
    await second.finish()
    assert budget.uploads == 0
    assert first_digests.md5_hex == hashlib.md5(b"a" * 300_001).hexdigest()
