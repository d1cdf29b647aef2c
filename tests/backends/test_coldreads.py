"""
Bodies not in the page cache are read in a thread (L{gateway.backends.producer.ColdReads}): the
order of the bytes, backpressure, and a file never closed under a read still running.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, List, Set, Tuple

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from gateway.backends.producer import (
    BLOCK_SIZE,
    ColdReads,
    ConsumerStopped,
    FileRangeProducer,
    FileReader,
    TruncatedFile,
)
from gateway.model import ByteRange, ObjectInfo
from tests.backends.support import Consumer, put
from tests.backends.test_local import make

DATA = os.urandom(10_000)
BLOCK = 4096


class Threads:
    """
    Stands for the thread pool: each read waits in L{pending} until the test lets it run.
    """

    def __init__(self) -> None:
        self.pending: List[Tuple[Deferred, Callable[..., Any], tuple]] = []

    def run(self, function: Callable[..., Any], *args: Any) -> "Deferred[Any]":
        deferred: Deferred[Any] = Deferred()
        self.pending.append((deferred, function, args))
        return deferred

    def finish_next(self) -> None:
        deferred, function, args = self.pending.pop(0)
        try:
            value = function(*args)
        except Exception:
            deferred.errback(Failure())
        else:
            deferred.callback(value)


def cold_reads(threads: Threads, cold_offsets: Set[int]) -> ColdReads:
    """
    Reads whose offset is in C{cold_offsets} count as not cached.
    """
    return ColdReads(
        lambda fd, offset, length: offset not in cold_offsets,
        lambda fd, offset, length: (
            None if offset in cold_offsets else os.pread(fd, length, offset)
        ),
        threads.run,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    target = tmp_path / "object"
    target.write_bytes(DATA)
    return target


def closed_only_after_the_read(threads: Threads, file: Any, consumer: Consumer) -> None:
    """
    The descriptor stays open under the running read (closed, it could be reused by another
    open, and the read would take someone else's bytes); closed once it returns, nothing written.
    """
    assert not file.closed
    threads.finish_next()
    assert file.closed and consumer.chunks == []


def result(deferred: Deferred) -> object:
    results: List[object] = []
    deferred.addBoth(results.append)
    assert results, "the Deferred has not fired"
    return results[0]


def test_a_cold_block_is_read_in_a_thread_in_its_place(path: Path) -> None:
    threads = Threads()
    consumer = Consumer()
    file = open(path, "rb", buffering=0)
    producer = FileRangeProducer(consumer, file, len(DATA), block_size=BLOCK,
                                 cold_reads=cold_reads(threads, {BLOCK}))
    done = producer.start()
    # The first block was cached: written at once. The second waits for its thread.
    assert consumer.body == DATA[:BLOCK] and len(threads.pending) == 1 and not done.called
    producer.resumeProducing()  # a resume meanwhile reads nothing on the reactor
    assert consumer.body == DATA[:BLOCK] and len(threads.pending) == 1
    threads.finish_next()
    assert result(done) is None
    assert consumer.body == DATA and consumer.unregistered and file.closed


def test_every_block_cold(path: Path) -> None:
    threads = Threads()
    consumer = Consumer()
    file = open(path, "rb", buffering=0)
    file.seek(100)
    done = FileRangeProducer(consumer, file, 9000, block_size=BLOCK,
                             cold_reads=cold_reads(threads, {100, 100 + BLOCK, 100 + 2 * BLOCK})
                             ).start()
    for _ in range(3):
        assert not done.called
        threads.finish_next()
    assert result(done) is None and consumer.body == DATA[100:9100]
    assert [len(chunk) for chunk in consumer.chunks] == [BLOCK, BLOCK, 9000 - 2 * BLOCK]


def test_pause_holds_the_reads(path: Path) -> None:
    threads = Threads()
    consumer = Consumer(pause_on=2)
    file = open(path, "rb", buffering=0)
    producer = FileRangeProducer(consumer, file, len(DATA), block_size=BLOCK,
                                 cold_reads=cold_reads(threads, {BLOCK}))
    done = producer.start()
    threads.finish_next()  # the second block arrives, and its write pauses the producer
    assert consumer.body == DATA[: 2 * BLOCK] and threads.pending == [] and not done.called
    producer.resumeProducing()
    assert result(done) is None and consumer.body == DATA


def test_stopped_while_a_thread_reads_closes_the_file_after_it(path: Path) -> None:
    threads = Threads()
    consumer = Consumer()
    file = open(path, "rb", buffering=0)
    producer = FileRangeProducer(consumer, file, len(DATA), block_size=BLOCK,
                                 cold_reads=cold_reads(threads, {0}))
    done = producer.start()
    producer.stopProducing()
    assert result(done).check(ConsumerStopped)  # type: ignore[attr-defined]
    closed_only_after_the_read(threads, file, consumer)


def test_failed_thread_read(path: Path) -> None:
    consumer = Consumer()
    file = open(path, "rb", buffering=0)

    def failing(function: Callable[..., Any], *args: Any) -> "Deferred[Any]":
        deferred: Deferred[Any] = Deferred()
        deferred.errback(OSError(5, "Input/output error"))
        return deferred

    reads = ColdReads(
        lambda fd, offset, length: offset == 0,
        lambda fd, offset, length: os.pread(fd, length, offset),
        failing,
    )
    done = FileRangeProducer(consumer, file, len(DATA), block_size=BLOCK,
                             cold_reads=reads).start()
    assert result(done).check(OSError)  # type: ignore[attr-defined]
    assert consumer.body == DATA[:BLOCK] and consumer.unregistered and file.closed


def test_file_shrunk_before_a_thread_read(path: Path) -> None:
    threads = Threads()
    consumer = Consumer()
    file = open(path, "rb", buffering=0)
    done = FileRangeProducer(consumer, file, len(DATA), block_size=BLOCK,
                             cold_reads=cold_reads(threads, {2 * BLOCK})).start()
    os.truncate(path, 2 * BLOCK)
    threads.finish_next()
    assert result(done).check(TruncatedFile)  # type: ignore[attr-defined]
    assert file.closed


def small_reader(path: Path, threads: Threads, cold_offsets: Set[int]) -> Tuple[FileReader, Any]:
    """
    A reader of the whole file as one block (the small-body path), and its open file.
    """
    file = open(path, "rb", buffering=0)
    info = ObjectInfo(key="k", size=len(DATA), etag="e", last_modified=0.0)
    reader = FileReader(info, file, block_size=len(DATA),
                        cold_reads=cold_reads(threads, cold_offsets))
    return reader, file


def test_small_cold_body_is_read_in_a_thread(path: Path) -> None:
    threads = Threads()
    consumer = Consumer()
    reader, file = small_reader(path, threads, {10})
    done = reader.deliver(consumer, ByteRange(10, 509))
    assert consumer.chunks == [] and not done.called and not file.closed
    threads.finish_next()
    assert result(done) is None and consumer.chunks == [DATA[10:510]] and file.closed


def test_small_cached_body_is_read_at_once(path: Path) -> None:
    threads = Threads()
    consumer = Consumer()
    reader, file = small_reader(path, threads, set())
    assert result(reader.deliver(consumer, None)) is None
    assert consumer.body == DATA and threads.pending == [] and file.closed


def test_small_cold_body_cancelled_closes_after_the_read(path: Path) -> None:
    # The client went away while the thread read: nothing is written, and the file is closed
    # once the read has returned.
    threads = Threads()
    consumer = Consumer()
    reader, file = small_reader(path, threads, {0})
    done = reader.deliver(consumer, None)
    done.cancel()
    closed_only_after_the_read(threads, file, consumer)


def test_small_cold_body_of_a_shrunk_file(path: Path) -> None:
    threads = Threads()
    reader, file = small_reader(path, threads, {0})
    done = reader.deliver(Consumer(), None)
    os.truncate(path, 100)
    threads.finish_next()
    assert result(done).check(TruncatedFile)  # type: ignore[attr-defined]
    assert file.closed


def test_reads_in_a_real_thread_pool(path: Path) -> None:
    # ColdReads.read_later is os.pread on the file's descriptor, whatever the file's position.
    file = open(path, "rb", buffering=0)
    file.seek(5)
    reads = ColdReads(
        lambda fd, offset, length: False, lambda fd, offset, length: None,
        lambda f, *a: succeed(f(*a)),
    )
    assert result(reads.read_later(file, 1000, 24)) == DATA[1000:1024]
    assert file.tell() == 5
    file.close()


def _evicted(path: Path, resident: Callable[[int, int, int], bool]) -> bool:
    """
    Drop the clean pages of C{path} from the page cache; whether they went (tmpfs keeps them).
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return not resident(fd, 0, 1)
    finally:
        os.close(fd)


@pytest_twisted.ensureDeferred
async def test_local_backend_reads_evicted_objects_in_threads(tmp_path: Path) -> None:
    backend = make(tmp_path)
    if backend._cold_reads is None:
        pytest.skip("the kernel cannot tell what is cached here (no cachestat)")
    big, small = os.urandom(BLOCK_SIZE * 3 + 123), os.urandom(5000)
    await put(backend, "big", big)
    await put(backend, "small", small)
    reads: List[Tuple[int, int]] = []
    real = backend._cold_reads

    def counting(function: Callable[..., Any], *args: Any) -> "Deferred[Any]":
        reads.append(args[1:])
        return real.run(function, *args)

    backend._cold_reads = ColdReads(real.resident, real.read_cached, counting)
    for key, body in (("big", big), ("small", small)):
        if not _evicted(tmp_path / "bucket" / key, real.resident):
            pytest.skip("this filesystem keeps its pages (tmpfs?)")
        consumer = Consumer()
        await (await backend.open(key)).deliver(consumer, None)
        assert consumer.body == body
    # The small body in one read; the big one block by block (the kernel's read-ahead may
    # have brought some blocks in already), each read where the last ended.
    assert reads[-1] == (len(small), 0)
    big_reads = reads[:-1]
    assert big_reads and big_reads[0] == (BLOCK_SIZE, 0)
    assert all(offset % BLOCK_SIZE == 0 for _, offset in big_reads)
    # Cached now: read on the reactor, no thread.
    reads.clear()
    for key, body in (("big", big), ("small", small)):
        consumer = Consumer()
        await (await backend.open(key)).deliver(consumer, None)
        assert consumer.body == body
    assert reads == []
