"""
Small PUTs committed on the reactor, with the kernel running their fsyncs
(L{gateway.backends.reactorcommits}, L{gateway.backends.aiosync}): what is done where, and what
happens when a step would wait or fails.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher

from gateway.backends import BackendRegistry, aiosync, reactorcommits
from gateway.backends.aiosync import KernelSyncs, NotSubmitted
from gateway.backends.local import LocalBackend
from gateway.backends.localindex import ObjectIndex, row_for
from gateway.backends.locallock import lock_path
from gateway.model import Connection, ObjectInfo
from tests.backends.support import get, leftover_temporary_files, metadata_for, put
from tests.backends.test_local import make


@pytest.fixture
def backend(tmp_path: Path, kernel_syncs: KernelSyncs) -> LocalBackend:
    return make(tmp_path, kernel_syncs=kernel_syncs)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "bucket"


def commit_thread_batches(monkeypatch: pytest.MonkeyPatch, backend: LocalBackend) -> List[str]:
    """
    The keys that C{backend} commits on its commit thread from now on.
    """
    keys: List[str] = []
    real = backend.install_many

    def recording(pending):  # type: ignore[no-untyped-def]
        assert threading.current_thread() is not threading.main_thread()
        keys.extend(job.key for job in pending)
        return real(pending)

    monkeypatch.setattr(backend, "install_many", recording)
    return keys


def submissions(monkeypatch: pytest.MonkeyPatch, syncs: KernelSyncs) -> List[List[str]]:
    """
    What each call of C{syncs.fsync_all} from now on asks to fsync: a temporary file as
    "file", or the path of a folder or the index log.
    """
    seen: List[List[str]] = []
    real = syncs.fsync_all

    def recording(fds: Sequence[int]) -> "Deferred[List[Optional[BaseException]]]":
        paths = [os.readlink(f"/proc/self/fd/{fd}") for fd in fds]
        seen.append(["file" if "/.s3gateway/tmp/" in path else path for path in paths])
        return real(fds)

    monkeypatch.setattr(syncs, "fsync_all", recording)
    return seen


def sleep(seconds: float) -> "Deferred[None]":
    return deferLater(reactor, seconds, lambda: None)


@pytest_twisted.ensureDeferred
async def test_kernel_fsyncs_fire_once_done(kernel_syncs: KernelSyncs, tmp_path: Path) -> None:
    fds = []
    for n in range(3):
        fd = os.open(tmp_path / f"f{n}", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"x" * 4096)
        fds.append(fd)
    try:
        syncing = kernel_syncs.fsync_all(fds)
        assert kernel_syncs.in_flight == 3
        errors = await syncing
    finally:
        for fd in fds:
            os.close(fd)
    assert errors == [None] * 3
    assert kernel_syncs.in_flight == 0


@pytest_twisted.ensureDeferred
async def test_fsyncs_the_kernel_refuses_are_not_submitted(
    kernel_syncs: KernelSyncs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A descriptor that cannot be fsynced (a pipe) and those past the capacity fail at once with
    L{NotSubmitted}; the ones before them are submitted.
    """
    monkeypatch.setattr(aiosync, "CAPACITY", 3)
    file_fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    read_end, write_end = os.pipe()
    try:
        errors = await kernel_syncs.fsync_all([file_fd, read_end])
        assert errors[0] is None and isinstance(errors[1], NotSubmitted)
        errors = await kernel_syncs.fsync_all([read_end])
        assert len(errors) == 1 and isinstance(errors[0], NotSubmitted)
        errors = await kernel_syncs.fsync_all([file_fd] * 5)
        assert errors[:3] == [None] * 3
        assert [type(error) for error in errors[3:]] == [NotSubmitted, NotSubmitted]
    finally:
        for fd in (file_fd, read_end, write_end):
            os.close(fd)


@pytest_twisted.ensureDeferred
async def test_puts_of_one_turn_commit_together_on_the_reactor(
    backend: LocalBackend, root: Path, kernel_syncs: KernelSyncs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The PUTs whose bodies end in one turn of the reactor make one batch: their files' fsyncs
    are submitted together, then those of their folder and the index log, once. No thread.
    A PUT that makes a folder goes to the commit thread, which fsyncs the folder's parent.
    """
    on_thread = commit_thread_batches(monkeypatch, backend)
    await put(backend, "a/first", b"1")
    assert on_thread == ["a/first"]
    submitted = submissions(monkeypatch, kernel_syncs)
    writers = [await backend.start_write(f"a/{n}") for n in range(3)]
    for n, writer in enumerate(writers):
        writer.write(b"body %d" % n)
    infos = await DeferredList(
        [writer.commit(metadata_for(b"body %d" % n, content_type="text/x-n"))
         for n, writer in enumerate(writers)],
        fireOnOneErrback=True,
    )
    assert on_thread == ["a/first"]
    index_log = os.path.realpath(str(Path(backend.index._path))) + "-wal"
    assert submitted == [["file"] * 3, [os.path.realpath(root / "a"), index_log]]
    for n, (_, info) in enumerate(infos):
        assert info.size == len(b"body %d" % n)
        assert await get(backend, f"a/{n}") == b"body %d" % n
        stat = await backend.stat(f"a/{n}")
        assert stat.content_type == "text/x-n" and stat.etag == info.etag
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_a_put_waits_on_the_reactor_while_another_process_writes_the_index(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    While another writer (another worker process) holds the index, the PUT tries again a
    little later, without blocking the reactor, and commits once it is free.
    """
    await put(backend, "k", b"old")
    on_thread = commit_thread_batches(monkeypatch, backend)
    other = sqlite3.connect(backend.index._path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        committing = put(backend, "k", b"new", content_type="text/new")
        done = Deferred.fromCoroutine(committing)
        await sleep(0.05)  # the reactor turns meanwhile
        assert not done.called
        assert (tmp_path / "bucket" / "k").read_bytes() == b"old"
    finally:
        other.execute("COMMIT")
        other.close()
    await done
    assert on_thread == []
    assert (await backend.stat("k")).content_type == "text/new"
    assert await get(backend, "k") == b"new"


@pytest_twisted.ensureDeferred
async def test_a_put_goes_to_the_commit_thread_when_the_index_stays_busy(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put(backend, "k", b"old")
    monkeypatch.setattr(reactorcommits, "INDEX_TRIES", 3)
    on_thread = commit_thread_batches(monkeypatch, backend)
    other = sqlite3.connect(backend.index._path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        done = Deferred.fromCoroutine(put(backend, "k", b"new"))
        await sleep(0.05)
        assert on_thread == ["k"]  # waiting there for the index, off the reactor
        assert not done.called
    finally:
        other.execute("COMMIT")
        other.close()
    await done
    assert await get(backend, "k") == b"new"


@pytest_twisted.ensureDeferred
async def test_a_put_whose_key_is_locked_goes_to_the_commit_thread(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The key's lock held by another writer: the reactor does not wait for it; the commit thread
    does, with the file as it was.
    """
    await put(backend, "k", b"old")
    on_thread = commit_thread_batches(monkeypatch, backend)
    lock = os.open(lock_path(os.path.realpath(root), "k"), os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        done = Deferred.fromCoroutine(put(backend, "k", b"new"))
        await sleep(0.05)
        assert on_thread == ["k"] and not done.called
        assert len(leftover_temporary_files(root)) == 1
    finally:
        os.close(lock)
    await done
    assert await get(backend, "k") == b"new"
    assert leftover_temporary_files(root) == []


def failing(error: int, calls: Sequence[int]) -> Any:
    """
    A replacement of C{fsync_all} whose calls numbered in C{calls} (from 0) fail with
    C{error} (or L{NotSubmitted} if 0), and the others do not fsync at all.
    """
    count = [0]

    def fsync_all(fds: Sequence[int]) -> "Deferred[List[Optional[BaseException]]]":
        number, count[0] = count[0], count[0] + 1
        if number not in calls:
            return succeed([None] * len(fds))
        reason = NotSubmitted("refused") if error == 0 else OSError(error, os.strerror(error))
        return succeed([reason] * len(fds))

    return fsync_all


@pytest_twisted.ensureDeferred
async def test_a_failed_file_fsync_fails_the_put_and_changes_nothing(
    backend: LocalBackend, root: Path, kernel_syncs: KernelSyncs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await put(backend, "k", b"old", content_type="text/old")
    monkeypatch.setattr(kernel_syncs, "fsync_all", failing(errno.EIO, [0]))
    with pytest.raises(OSError):
        await put(backend, "k", b"new")
    assert await get(backend, "k") == b"old"
    assert (await backend.stat("k")).content_type == "text/old"
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_a_failed_folder_fsync_fails_the_put(
    backend: LocalBackend, kernel_syncs: KernelSyncs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The rename is not known to be durable: the PUT is not acknowledged (S3 then answers an
    error, and the client may retry).
    """
    await put(backend, "k", b"old")
    monkeypatch.setattr(kernel_syncs, "fsync_all", failing(errno.EIO, [1]))
    with pytest.raises(OSError):
        await put(backend, "k", b"new")


@pytest_twisted.ensureDeferred
async def test_fsyncs_the_kernel_does_not_take_are_done_in_threads(
    backend: LocalBackend, root: Path, kernel_syncs: KernelSyncs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await put(backend, "a/k", b"old")
    on_thread = commit_thread_batches(monkeypatch, backend)
    monkeypatch.setattr(kernel_syncs, "fsync_all", failing(0, [0, 1, 2, 3]))
    await put(backend, "a/k", b"new")
    assert on_thread == ["a/k"]  # the file's fsync, with the rest of its commit
    assert await get(backend, "a/k") == b"new"
    assert leftover_temporary_files(root) == []


def test_a_remembered_row_does_not_replace_a_writers_row(tmp_path: Path) -> None:
    """
    A reader in another process that took a just-renamed file for one put there by other
    means, and read it for its MD5, does not replace the row its writer committed meanwhile:
    that row has the object's metadata. A row for another version of the file is replaced.
    """
    index = ObjectIndex(str(tmp_path / "index.sqlite3"))
    path = tmp_path / "k"
    path.write_bytes(b"body")
    st = os.stat(path)

    def info(content_type: str, etag: str) -> ObjectInfo:
        return ObjectInfo(
            key="k", size=st.st_size, etag=etag, last_modified=st.st_mtime_ns / 1e9,
            content_type=content_type,
        )

    index.put(row_for(info("text/writer", "writer"), st.st_mtime_ns))
    index.remember([(info("binary/octet-stream", "read"), str(path), st)])
    assert index.get("k").content_type == "text/writer"  # type: ignore[union-attr]
    stale = row_for(info("text/old", "old"), st.st_mtime_ns - 1)
    index.put(stale)
    index.remember([(info("binary/octet-stream", "read"), str(path), st)])
    assert index.get("k").etag == "read"  # type: ignore[union-attr]
    index.close()


@pytest_twisted.ensureDeferred
async def test_a_lone_put_goes_to_the_commit_thread(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    As the gateway runs: a PUT while no other commits goes to the commit thread (fewer
    wake-ups for one PUT); PUTs that end together commit on the reactor.
    """
    (root / "a").mkdir()  # not a PUT that makes its folder
    monkeypatch.setattr(reactorcommits, "LONE_PUTS_ON_THREAD", True)
    on_thread = commit_thread_batches(monkeypatch, backend)
    await put(backend, "a/lone", b"1")
    assert on_thread == ["a/lone"]
    writers = [await backend.start_write(f"a/{n}") for n in range(2)]
    for writer in writers:
        writer.write(b"x")
    await DeferredList(
        [writer.commit(metadata_for(b"x")) for writer in writers], fireOnOneErrback=True
    )
    assert on_thread == ["a/lone"]
    assert await get(backend, "a/1") == b"x"


def registry_buckets(tmp_path: Path, count: int) -> Tuple[BackendRegistry, List[LocalBackend]]:
    """
    A registry on the global reactor, and C{count} local buckets it made.
    """
    registry = BackendRegistry(str(tmp_path / "data"), reactor)
    buckets = []
    for number in range(count):
        folder = tmp_path / f"bucket{number}"
        folder.mkdir()
        connection = Connection(
            user="u", bucket=f"b{number}", backend="local", settings={"path": str(folder)}
        )
        buckets.append(registry.backend_for(connection))
    return registry, buckets  # type: ignore[return-value]


@pytest_twisted.ensureDeferred
async def test_local_buckets_share_the_process_kernel_syncs(tmp_path: Path) -> None:
    registry, (first, second) = registry_buckets(tmp_path, 2)
    syncs = registry.kernel_syncs()
    if syncs is None:
        pytest.skip("no native AIO here")
    try:
        assert first._reactor_commits._syncs is second._reactor_commits._syncs is syncs  # type: ignore[union-attr]
        await put(first, "k", b"body")
        assert await get(first, "k") == b"body"
    finally:
        syncs.close()


@pytest_twisted.ensureDeferred
async def test_without_native_aio_small_puts_commit_on_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Where the system has no native AIO, the gateway says so once, and commits small PUTs on the
    commit thread.
    """
    monkeypatch.setattr(aiosync, "_syscall", lambda: None)
    said: List[str] = []

    def observer(event: Dict[str, Any]) -> None:
        said.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    try:
        registry, (backend,) = registry_buckets(tmp_path, 1)
    finally:
        globalLogPublisher.removeObserver(observer)
    assert registry.kernel_syncs() is None
    assert [line for line in said if "No native AIO" in line] == [
        "No native AIO here: small PUTs commit on a thread per filesystem"
    ]
    assert backend._reactor_commits is None  # type: ignore[attr-defined]
    on_thread = commit_thread_batches(monkeypatch, backend)
    await put(backend, "k", b"body")
    assert on_thread == ["k"] and await get(backend, "k") == b"body"
