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
from gateway.s3.hashing import BackgroundDigests


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


@pytest_twisted.ensureDeferred
async def test_backlog_pauses_and_resumes_the_producer(monkeypatch) -> None:
    """
    Past the high-water mark the producer is paused; once the thread catches up it resumes.
    """
    gate = threading.Event()
    digests = BodyDigests({}, "UNSIGNED-PAYLOAD")
    real_update = digests.update

    def slow_update(data: bytes) -> None:
        gate.wait(10)
        real_update(data)

    monkeypatch.setattr(digests, "update", slow_update)
    monkeypatch.setattr(hashing, "HIGH_WATER", 300_000)
    monkeypatch.setattr(hashing, "LOW_WATER", 100_000)
    producer = RecordingProducer()
    background = BackgroundDigests(digests, reactor)
    background.attach(producer)
    for _ in range(4):
        background.update(b"x" * 100_000)
    assert producer.events == ["pause"]
    gate.set()
    finished = background.finish()
    await finished
    assert producer.events == ["pause", "resume"]
    assert digests.md5_hex == hashlib.md5(b"x" * 400_000).hexdigest()
