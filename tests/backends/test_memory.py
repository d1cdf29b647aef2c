"""
The memory backend: the contract, and its test hooks for backpressure.
"""

from __future__ import annotations

from typing import List

import pytest
import pytest_twisted
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from zope.interface import implementer

from gateway.backends.memory import MemoryBackend
from gateway.model import WriteMetadata
from tests.backends.contract import BackendContract, Consumer, get, put
from tests.backends.contract_copy import ServerSideCopyContract


class TestMemoryContract(BackendContract, ServerSideCopyContract):
    @pytest.fixture
    def backend(self) -> MemoryBackend:
        return MemoryBackend()

    @pytest.fixture
    def read_only_backend(self, backend: MemoryBackend) -> MemoryBackend:
        view = MemoryBackend(read_only=True)
        view.objects = backend.objects
        view.uploads = backend.uploads
        return view


@implementer(IPushProducer)
class Producer:
    def __init__(self) -> None:
        self.calls: List[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


@pytest_twisted.ensureDeferred
async def test_pause_every_manual() -> None:
    backend = MemoryBackend(pause_every=2)
    writer = await backend.start_write("k")
    producer = Producer()
    writer.registerProducer(producer, True)
    writer.write(b"a")
    assert producer.calls == []
    writer.write(b"b")
    assert producer.calls == ["pause"] and backend.pauses == 1
    writer.write(b"c")
    writer.write(b"d")
    # Already paused: not paused twice.
    assert producer.calls == ["pause"]
    backend.resume_writers()
    assert producer.calls == ["pause", "resume"]
    backend.resume_writers()
    assert producer.calls == ["pause", "resume"]
    writer.write(b"e")
    writer.write(b"f")
    assert producer.calls == ["pause", "resume", "pause"] and backend.pauses == 2
    writer.unregisterProducer()
    await writer.commit(WriteMetadata(etag="x"))
    assert await get(backend, "k") == b"abcdef"


@pytest_twisted.ensureDeferred
async def test_pause_every_with_clock() -> None:
    clock = Clock()
    backend = MemoryBackend(pause_every=1, clock=clock)
    writer = await backend.start_write("k")
    producer = Producer()
    writer.registerProducer(producer, True)
    writer.write(b"a")
    assert producer.calls == ["pause"]
    clock.advance(0)
    assert producer.calls == ["pause", "resume"]


@pytest_twisted.ensureDeferred
async def test_clock_gives_times() -> None:
    clock = Clock()
    clock.advance(1234.5)
    backend = MemoryBackend(clock=clock)
    info = await put(backend, "k", b"x")
    assert info.last_modified == 1234.5


@pytest_twisted.ensureDeferred
async def test_small_blocks() -> None:
    backend = MemoryBackend(block_size=10)
    await put(backend, "k", b"x" * 95)
    reader = await backend.open("k")
    consumer = Consumer()
    await reader.deliver(consumer, None)
    assert [len(c) for c in consumer.chunks] == [10] * 9 + [5]
