"""
The push producer that streams files: backpressure, stopping, re-entrancy, yielding to the
reactor, and failures.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import List, Optional

import pytest
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.task import Clock
from zope.interface import implementer
from zope.interface.verify import verifyObject

from gateway.backends.producer import (
    ConsumerStopped,
    DescriptorFile,
    FileRangeProducer,
    FileReader,
    TruncatedFile,
)
from gateway.model import ByteRange, ObjectInfo
from tests.backends.contract import Consumer

DATA = bytes(range(256)) * 40  # 10240 bytes


class TrackedFile(io.BytesIO):
    """
    A file that counts reads.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def read(self, size: Optional[int] = -1) -> bytes:
        self.reads += 1
        return super().read(size)


def result(deferred):  # type: ignore[no-untyped-def]
    results: List[object] = []
    deferred.addBoth(results.append)
    assert results, "the Deferred has not fired"
    return results[0]


def test_provides_push_producer() -> None:
    producer = FileRangeProducer(Consumer(), io.BytesIO(b""), 0)
    assert verifyObject(IPushProducer, producer)


def test_writes_all_in_blocks() -> None:
    consumer = Consumer()
    file = TrackedFile(DATA)
    done = FileRangeProducer(consumer, file, len(DATA), block_size=4096).start()
    assert result(done) is None
    assert [len(c) for c in consumer.chunks] == [4096, 4096, 2048]
    assert consumer.body == DATA and consumer.unregistered and file.closed


def test_range_from_position() -> None:
    consumer = Consumer()
    file = io.BytesIO(DATA)
    file.seek(100)
    FileRangeProducer(consumer, file, 50, block_size=16).start()
    assert consumer.body == DATA[100:150]


def test_pause_and_resume() -> None:
    consumer = Consumer(pause_on=1)
    file = TrackedFile(DATA)
    producer = FileRangeProducer(consumer, file, len(DATA), block_size=1000)
    done = producer.start()
    assert len(consumer.chunks) == 1 and file.reads == 1 and not done.called
    producer.resumeProducing()
    # Nothing pauses it any more: the rest follows.
    assert result(done) is None and consumer.body == DATA


def test_paused_writes_nothing() -> None:
    consumer = Consumer(pause_on=2)
    producer = FileRangeProducer(consumer, io.BytesIO(DATA), len(DATA), block_size=1000)
    producer.start()
    assert len(consumer.chunks) == 2
    producer.pauseProducing()
    assert len(consumer.chunks) == 2


def test_stop_closes_and_fails() -> None:
    consumer = Consumer(pause_on=1)
    file = TrackedFile(DATA)
    producer = FileRangeProducer(consumer, file, len(DATA), block_size=1000)
    done = producer.start()
    producer.stopProducing()
    failure = result(done)
    assert failure.check(ConsumerStopped)
    assert file.closed
    # A consumer that stopped us is not called again, not even to unregister.
    assert not consumer.unregistered
    producer.resumeProducing()
    producer.stopProducing()
    assert len(consumer.chunks) == 1


def test_stop_during_write() -> None:
    consumer = Consumer(stop_on=2)
    file = TrackedFile(DATA)
    done = FileRangeProducer(consumer, file, len(DATA), block_size=1000).start()
    assert result(done).check(ConsumerStopped)
    assert len(consumer.chunks) == 2 and file.reads == 2 and file.closed


@implementer(IConsumer)
class SynchronousConsumer(Consumer):
    """
    A consumer that pauses the producer on every write and resumes it before returning, as a
    transport that flushes at once would: the producer must not recurse.
    """

    depth = 0
    deepest = 0

    def write(self, data: bytes) -> None:
        self.depth += 1
        self.deepest = max(self.deepest, self.depth)
        super().write(data)
        assert self.producer is not None
        self.producer.pauseProducing()
        self.producer.resumeProducing()
        self.depth -= 1


def test_reentrant_resume_does_not_recurse() -> None:
    consumer = SynchronousConsumer()
    done = FileRangeProducer(consumer, io.BytesIO(DATA), len(DATA), block_size=100).start()
    assert result(done) is None
    assert consumer.body == DATA and consumer.deepest == 1


class StepClock(Clock):
    """
    A clock that runs only the calls due when asked, not those they schedule, as a reactor
    iteration does.
    """

    def step(self) -> None:
        due = [call for call in self.calls if call.getTime() <= self.seconds()]
        for call in due:
            self.calls.remove(call)
            call.called = 1
            call.func(*call.args, **call.kw)


def test_yields_to_reactor_with_clock() -> None:
    clock = StepClock()
    consumer = Consumer()
    producer = FileRangeProducer(
        consumer, io.BytesIO(DATA), len(DATA), clock=clock, block_size=1000, turn_size=3000
    )
    done = producer.start()
    assert len(consumer.chunks) == 3 and not done.called
    clock.step()
    assert len(consumer.chunks) == 6
    producer.pauseProducing()
    assert clock.getDelayedCalls() == []
    clock.step()
    assert len(consumer.chunks) == 6
    producer.resumeProducing()
    assert len(consumer.chunks) == 9
    clock.step()
    assert result(done) is None and consumer.body == DATA


def test_stop_cancels_pending_turn() -> None:
    clock = Clock()
    consumer = Consumer()
    producer = FileRangeProducer(
        consumer, io.BytesIO(DATA), len(DATA), clock=clock, block_size=1000, turn_size=1000
    )
    done = producer.start()
    assert len(clock.getDelayedCalls()) == 1
    producer.stopProducing()
    assert clock.getDelayedCalls() == []
    assert result(done).check(ConsumerStopped)


def test_truncated_file_fails() -> None:
    consumer = Consumer()
    done = FileRangeProducer(consumer, io.BytesIO(b"short"), 10).start()
    assert result(done).check(TruncatedFile)
    assert consumer.unregistered and consumer.body == b"short"


class BrokenFile(io.BytesIO):
    def read(self, size: Optional[int] = -1) -> bytes:
        raise OSError(5, "Input/output error")


def test_read_error_fails() -> None:
    consumer = Consumer()
    file = BrokenFile(DATA)
    done = FileRangeProducer(consumer, file, 10).start()
    assert result(done).check(OSError)
    assert consumer.unregistered and file.closed


def test_empty() -> None:
    consumer = Consumer()
    done = FileRangeProducer(consumer, io.BytesIO(b""), 0).start()
    assert result(done) is None and consumer.unregistered and consumer.chunks == []


@pytest.mark.parametrize(
    "byte_range", [None, ByteRange(0, 0), ByteRange(5, 9999), ByteRange(10239, 10239)]
)
def test_file_reader(byte_range: Optional[ByteRange]) -> None:
    info = ObjectInfo(key="k", size=len(DATA), etag="e", last_modified=0.0)
    reader = FileReader(info, io.BytesIO(DATA), block_size=777)
    consumer = Consumer()
    assert result(reader.deliver(consumer, byte_range)) is None
    expected = DATA if byte_range is None else DATA[byte_range.first : byte_range.last + 1]
    assert consumer.body == expected


def test_file_reader_writes_a_small_body_at_once() -> None:
    """
    A body of at most one block is read and written in one go, with no producer registered
    (registering one through a request, its channel and transport cost as much as the rest).
    """
    info = ObjectInfo(key="k", size=len(DATA), etag="e", last_modified=0.0)
    file = TrackedFile(DATA)
    consumer = Consumer()
    done = FileReader(info, file).deliver(consumer, ByteRange(10, 4105))
    assert result(done) is None
    assert consumer.chunks == [DATA[10:4106]] and file.reads == 1 and file.closed
    assert consumer.producer is None and not consumer.unregistered


def test_file_reader_small_body_truncated() -> None:
    info = ObjectInfo(key="k", size=10, etag="e", last_modified=0.0)
    file = io.BytesIO(b"short")
    consumer = Consumer()
    done = FileReader(info, file).deliver(consumer, None)
    assert result(done).check(TruncatedFile)
    assert consumer.body == b"short" and file.closed


def test_file_reader_small_body_read_error() -> None:
    info = ObjectInfo(key="k", size=10, etag="e", last_modified=0.0)
    file = BrokenFile(DATA)
    consumer = Consumer()
    done = FileReader(info, file).deliver(consumer, None)
    assert result(done).check(OSError)
    assert consumer.chunks == [] and file.closed


def test_file_reader_large_body_streams() -> None:
    info = ObjectInfo(key="k", size=len(DATA), etag="e", last_modified=0.0)
    consumer = Consumer()
    done = FileReader(info, io.BytesIO(DATA), block_size=4096).deliver(consumer, None)
    assert result(done) is None
    assert [len(c) for c in consumer.chunks] == [4096, 4096, 2048] and consumer.unregistered


def test_descriptor_file(tmp_path: Path) -> None:
    """
    L{DescriptorFile} reads, seeks and tells as a file object does, closes its descriptor once
    (when closed, or when dropped), and refuses use after closing.
    """
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    file = DescriptorFile(fd)
    assert file.fileno() == fd
    assert file.read(4) == b"0123"
    assert file.tell() == 4
    assert file.seek(8) == 8
    assert file.read(100) == b"89"
    assert file.read(1) == b""
    file.close()
    file.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    with pytest.raises(ValueError):
        file.read(1)
    dropped = os.open(path, os.O_RDONLY)
    DescriptorFile(dropped)
    with pytest.raises(OSError):
        os.fstat(dropped)
