"""
The cheap path of a local PUT: checks before the body on the calling thread, one hand-over to a
thread for the commit, shared directory fsyncs, links found without ``realpath``, and early
writeback of large bodies.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import List, Tuple

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList

from gateway.backends import localfs, localkeys, localretire
from gateway.backends.local import BATCHED_PUT_SIZE, LocalBackend
from gateway.backends.localcommits import PendingInstall
from gateway.backends.localkeys import resolve_inside
from gateway.backends.localsync import SharedSyncs, start_writeback
from gateway.interfaces import InvalidObjectKey
from tests.backends.support import get, leftover_temporary_files, metadata_for, names, put
from tests.backends.test_local import (  # noqa: F401 (backend and root are fixtures)
    _reactor,
    backend,
    hand_overs,
    make,
    root,
)


def batches(
    monkeypatch: pytest.MonkeyPatch, backend: LocalBackend
) -> List[Tuple[str, List[str]]]:
    """
    The batches of PUTs C{backend} commits from now on: the thread's name and the keys.
    """
    seen: List[Tuple[str, List[str]]] = []
    real = backend.install_many

    def recording(pending):  # type: ignore[no-untyped-def]
        seen.append((threading.current_thread().name, [job.key for job in pending]))
        return real(pending)

    monkeypatch.setattr(backend, "install_many", recording)
    return seen


@pytest_twisted.ensureDeferred
async def test_put_is_one_hand_over(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = hand_overs(monkeypatch, backend)
    committed = batches(monkeypatch, backend)
    started = backend.start_write("a/b/c")
    assert started.called  # checked and made on the calling thread
    writer = await started
    writer.write(b"body")
    info = await writer.commit(metadata_for(b"body"))
    # Not the thread pool: the commits' own thread.
    committer = f"s3gateway-commits-{os.stat(root).st_dev}"  # the filesystem's commit thread
    assert calls == [] and committed == [(committer, ["a/b/c"])]
    assert info.size == 4 and (root / "a" / "b" / "c").read_bytes() == b"body"
    # An empty body has no temporary file before the commit: the commit makes it.
    writer = await backend.start_write("empty")
    assert leftover_temporary_files(root) == []
    await writer.commit(metadata_for(b""))
    assert calls == [] and committed[-1] == (committer, ["empty"])
    assert await get(backend, "empty") == b""
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_clash_refused_before_the_body(backend: LocalBackend) -> None:
    await put(backend, "file", b"x")
    started = backend.start_write("file/under")
    assert started.called
    with pytest.raises(InvalidObjectKey):
        await started


@pytest_twisted.ensureDeferred
async def test_large_declared_body_refused_before_it(backend: LocalBackend) -> None:
    """
    A body declared as large as a batched PUT or larger is refused before it is sent, as one
    of unknown length.
    """
    await put(backend, "file", b"x")
    started = backend.start_write("file/under", BATCHED_PUT_SIZE)
    assert started.called
    with pytest.raises(InvalidObjectKey):
        await started


@pytest_twisted.ensureDeferred
async def test_small_declared_body_checked_at_commit(
    backend: LocalBackend, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A small declared body's key is not looked up in the filesystem before the body: the commit
    refuses what the check before it would have, and stores nothing. Its syntax is still
    checked at once.
    """
    await put(backend, "file", b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    looked_up: List[str] = []
    real_check = localfs.check_key

    def check_key(root, segments, folder, key, folders=None):  # type: ignore[no-untyped-def]
        looked_up.append(key)
        return real_check(root, segments, folder, key, folders)

    monkeypatch.setattr(localfs, "check_key", check_key)
    for key, message in [("file/under", "'file' is an object"), ("link/k", "leads outside")]:
        started = backend.start_write(key, 4)
        assert started.called
        writer = await started
        assert looked_up == []
        writer.write(b"late")
        with pytest.raises(InvalidObjectKey, match=message):
            await writer.commit(metadata_for(b"late"))
        assert looked_up == [key]
        looked_up.clear()
    assert list(outside.iterdir()) == []
    assert leftover_temporary_files(root) == []
    assert await get(backend, "file") == b"x"
    assert await names(backend) == (["file"], [])
    with pytest.raises(InvalidObjectKey):
        await backend.start_write(".s3gateway/k", 4)
    # The same key with a body that has room: stored, after the same one check.
    writer = await backend.start_write("room/k", 4)
    writer.write(b"body")
    await writer.commit(metadata_for(b"body"))
    assert looked_up == ["room/k"] and await get(backend, "room/k") == b"body"


@pytest_twisted.ensureDeferred
async def test_link_made_during_the_body_refused_at_commit(
    backend: LocalBackend, root: Path, tmp_path: Path
) -> None:
    """
    The commit checks again, under the key's lock, that no link leads to the key's folder: a
    folder swapped for a link to outside the bucket while the body arrived stores nothing
    outside.
    """
    await put(backend, "f/old", b"x")
    writer = await backend.start_write("f/k")
    writer.write(b"late")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.rename(root / "f", tmp_path / "moved")
    (root / "f").symlink_to(outside)
    with pytest.raises(InvalidObjectKey):
        await writer.commit(metadata_for(b"late"))
    assert list(outside.iterdir()) == []
    assert leftover_temporary_files(root) == []


def test_directory_syncs_shared() -> None:
    """
    Commits that ask while an fsync runs share the next one; each returns only after an fsync
    that began after it asked.
    """
    began = threading.Event()
    release = threading.Event()
    calls: List[int] = []
    asked: List[int] = []

    def fsync(path: str) -> None:
        calls.append(len(asked))
        if len(calls) == 1:
            began.set()
            release.wait(10)

    syncs = SharedSyncs(fsync)

    def commit() -> None:
        asked.append(1)
        syncs.sync("/d")

    first = threading.Thread(target=commit)
    first.start()
    assert began.wait(10)
    others = [threading.Thread(target=commit) for _ in range(8)]
    for thread in others:
        thread.start()
    while len(asked) < 9:
        threading.Event().wait(0.01)
    release.set()
    for thread in [first] + others:
        thread.join(10)
    # The first fsync saw one request; the second began after all nine were made.
    assert calls == [1, 9]


def test_directory_sync_failure_not_shared() -> None:
    results: List[str] = []
    fail = [True]

    def fsync(path: str) -> None:
        if fail[0]:
            fail[0] = False
            raise OSError(5, "I/O error")
        results.append(path)

    syncs = SharedSyncs(fsync)
    with pytest.raises(OSError):
        syncs.sync("/d")
    syncs.sync("/d")
    assert results == ["/d"]
    # Nothing is remembered of a directory nobody waits on.
    assert syncs._targets == {}


def test_resolve_inside_without_realpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "r"
    (root / "a" / "b").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    (root / "a" / "link").symlink_to(tmp_path / "out")
    (root / "a" / "inner").symlink_to(root / "a" / "b")
    real = os.path.realpath
    resolved: List[str] = []

    def counting(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        resolved.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(localkeys.os.path, "realpath", counting)
    base = str(root)
    assert resolve_inside(base, f"{base}/a/b/new/deeper") == f"{base}/a/b/new/deeper"
    assert resolve_inside(base, f"{base}/a/b") == f"{base}/a/b"
    assert resolved == []
    assert resolve_inside(base, f"{base}/a/inner/x") == f"{base}/a/b/x"
    with pytest.raises(InvalidObjectKey):
        resolve_inside(base, f"{base}/a/link/x")
    assert resolved == [f"{base}/a/inner/x", f"{base}/a/link/x"]


@pytest_twisted.ensureDeferred
async def test_root_resolved_again_when_it_changes(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (tmp_path / "bucket").symlink_to(first)
    backend = LocalBackend(str(tmp_path / "bucket"), str(tmp_path / "i.sqlite3"), _reactor())
    await put(backend, "k", b"one")
    assert (first / "k").read_bytes() == b"one"
    (tmp_path / "bucket").unlink()
    (tmp_path / "bucket").symlink_to(second)
    await put(backend, "k", b"two")
    assert (second / "k").read_bytes() == b"two"
    assert (first / "k").read_bytes() == b"one"


@pytest_twisted.ensureDeferred
async def test_writeback_started_every_step(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hints: List[tuple] = []  # type: ignore[type-arg]
    dropped: List[tuple] = []  # type: ignore[type-arg]
    monkeypatch.setattr(localfs, "WRITEBACK_STEP", 10)
    monkeypatch.setattr(localfs, "start_writeback", lambda fd, offset, n: hints.append((offset, n)))
    calls = hand_overs(monkeypatch, backend)

    def dropping(fd: int, offset: int, length: int) -> None:
        # A duplicate of the writer's descriptor, on the same file.
        assert os.fstat(fd).st_ino == os.fstat(writer._fd).st_ino  # type: ignore[attr-defined]
        dropped.append((offset, length))
        os.close(fd)
        done.set()

    done = threading.Event()
    monkeypatch.setattr(localfs, "drop_written", dropping)
    writer = await backend.start_write("big")
    for _ in range(5):
        writer.write(b"x" * 6)
    # Each stretch is dropped from the page cache once the next one is handed to writeback.
    assert done.wait(10)
    assert calls == ["dropping"] and dropped == [(0, 12)]
    await writer.commit(metadata_for(b"x" * 30))
    assert hints == [(0, 12), (12, 12)]
    assert await get(backend, "big") == b"x" * 30


@pytest_twisted.ensureDeferred
async def test_blocks_reserved_ahead_and_the_rest_given_back(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = 1 << 20
    monkeypatch.setattr(localfs, "WRITEBACK_STEP", step)
    reserved: List[tuple] = []  # type: ignore[type-arg]
    real_reserve = localfs.reserve

    def recording(fd: int, offset: int, length: int) -> bool:
        done = real_reserve(fd, offset, length)
        reserved.append((offset, length, done))
        return done

    monkeypatch.setattr(localfs, "reserve", recording)
    calls = hand_overs(monkeypatch, backend)
    writer = await backend.start_write("big")
    body = b"r" * (step // 2)
    for _ in range(5):
        writer.write(body)
    if not all(done for _, _, done in reserved):
        pytest.skip("this filesystem cannot allocate ahead")
    # Once past the first step: up to two steps past what was written, asked once, since the
    # next step still had one in hand.
    assert [(offset, length) for offset, length, _ in reserved] == [(step, 2 * step)]
    held = os.fstat(writer._fd)  # type: ignore[attr-defined]
    assert held.st_size == 5 * len(body) and held.st_blocks * 512 >= 3 * step
    info = await writer.commit(metadata_for(body * 5))
    assert "release_reserved" in calls
    stored = os.stat(backend.real_root() + "/big")
    assert info.size == stored.st_size == 5 * len(body)
    assert stored.st_blocks * 512 < 3 * step  # what lay past the end was given back
    assert await get(backend, "big") == body * 5


@pytest_twisted.ensureDeferred
async def test_a_filesystem_that_cannot_reserve_is_asked_once(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(localfs, "WRITEBACK_STEP", 10)
    asked: List[int] = []
    monkeypatch.setattr(localfs, "reserve", lambda fd, offset, n: asked.append(offset) or False)
    calls = hand_overs(monkeypatch, backend)
    writer = await backend.start_write("big")
    for _ in range(10):
        writer.write(b"z" * 6)
    await writer.commit(metadata_for(b"z" * 60))
    assert asked == [12] and "release_reserved" not in calls
    assert await get(backend, "big") == b"z" * 60


def test_reserve_and_release_on_a_real_file(tmp_path: Path) -> None:
    from gateway.backends.localsync import release_reserved, reserve

    with open(tmp_path / "f", "wb") as f:
        f.write(b"q" * 1000)
        f.flush()
        if not reserve(f.fileno(), 1000, 1 << 20):
            pytest.skip("this filesystem cannot allocate ahead")
        assert os.fstat(f.fileno()).st_size == 1000  # the size is kept
        assert os.fstat(f.fileno()).st_blocks * 512 >= 1 << 20
        release_reserved(f.fileno(), 1000)
        assert os.fstat(f.fileno()).st_blocks * 512 < 1 << 20
    assert (tmp_path / "f").read_bytes() == b"q" * 1000


def test_drop_written_on_a_real_file(tmp_path: Path) -> None:
    from gateway.backends.localsync import drop_written

    with open(tmp_path / "f", "wb") as f:
        f.write(b"z" * 200000)
        f.flush()
        duplicate = os.dup(f.fileno())
        drop_written(duplicate, 0, 200000)
        with pytest.raises(OSError):
            os.fstat(duplicate)  # closed
    assert (tmp_path / "f").read_bytes() == b"z" * 200000


def test_start_writeback_on_a_real_file(tmp_path: Path) -> None:
    with open(tmp_path / "f", "wb") as f:
        f.write(b"y" * 100000)
        f.flush()
        start_writeback(f.fileno(), 0, 100000)
    assert (tmp_path / "f").read_bytes() == b"y" * 100000


@pytest_twisted.ensureDeferred
async def test_rows_are_synced_before_the_answer(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The index's log is fsynced after each committed row and before the writer's commit answers,
    for a PUT, a folder marker and a metadata update alike.
    """
    import sqlite3

    from gateway.backends import localindex

    synced: List[str] = []
    index_path = backend.index._path

    def recording_fsync(path: str) -> None:
        # The row being made durable is committed already: another connection sees it.
        with sqlite3.connect(index_path) as other:
            synced.append(
                path + ":" + ",".join(k for (k,) in other.execute("SELECT key FROM objects"))
            )

    monkeypatch.setattr(localindex, "fsync_file", recording_fsync)
    await put(backend, "a/b", b"body")
    assert synced == [index_path + "-wal:a/b"]
    await put(backend, "folder/", b"")
    assert synced[-1].startswith(index_path + "-wal:") and "folder/" in synced[-1]
    count = len(synced)
    await backend.update_metadata("a/b", metadata_for(b"body"))
    assert len(synced) == count + 1


def test_index_sync_without_a_log(tmp_path: Path) -> None:
    """
    With no write-ahead log on disk (checkpointed away), the database file itself is synced.
    """
    from gateway.backends.localindex import ObjectIndex

    index = ObjectIndex(str(tmp_path / "index.sqlite"))
    index.get("x")  # creates the database
    wal = tmp_path / "index.sqlite-wal"
    index.close()
    assert not wal.exists()
    index.sync()  # must not raise


@pytest_twisted.ensureDeferred
async def test_dropped_upload_removed_in_a_thread_when_large(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Freeing a large temporary file takes long enough to stall the reactor.
    monkeypatch.setattr(localretire, "RETIRE_SIZE", 8)
    calls = hand_overs(monkeypatch, backend)
    small = await backend.start_write("small")
    small.write(b"1234567")
    large = await backend.start_write("large")
    large.write(b"12345678")
    assert len(leftover_temporary_files(root)) == 2
    dropped = small.abort()
    assert dropped.called and calls == []
    await large.abort()
    assert calls == ["close_and_remove"]
    assert leftover_temporary_files(root) == []
    assert await names(backend) == ([], [])


def pending_put(
    backend: LocalBackend, key: str, body: bytes, **condition: object
) -> "PendingInstall":
    """
    A PUT of C{body} under C{key} whose body has arrived, as L{install_many} gets it.
    """
    from gateway.model import WriteCondition

    fd, temp = backend.temp_file(backend.real_root())
    os.write(fd, body)
    wanted = WriteCondition(**condition) if condition else None  # type: ignore[arg-type]
    return PendingInstall(key, fd, temp, metadata_for(body), wanted)


@pytest_twisted.ensureDeferred
async def test_a_batch_shares_its_fsyncs(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A batch of PUTs starts writeback of every file before the first fsync, and fsyncs each
    directory and the index log once; a PUT whose condition fails fails alone.
    """
    from gateway.backends import localcommits, localindex
    from gateway.interfaces import PreconditionNotMet

    await put(backend, "a/taken", b"old")
    events: List[Tuple[str, object]] = []
    real_settle = localcommits.settle
    monkeypatch.setattr(
        localcommits, "start_writeback", lambda fd, o, n: events.append(("hint", fd))
    )
    monkeypatch.setattr(
        localcommits, "settle", lambda fd: (events.append(("fsync", fd)), real_settle(fd))[1]
    )
    monkeypatch.setattr(backend, "syncs", SharedSyncs(lambda path: events.append(("dir", path))))
    monkeypatch.setattr(localindex, "fsync_file", lambda path: events.append(("log", path)))
    jobs = [
        pending_put(backend, "a/one", b"1"),
        pending_put(backend, "a/two", b"22"),
        pending_put(backend, "a/taken", b"new", if_none_match=True),
        pending_put(backend, "b/three", b"333"),
        pending_put(backend, "empty", b""),
    ]
    outcomes = backend.install_many(jobs)
    assert [getattr(o, "size", None) for o in outcomes] == [1, 2, None, 3, 0]
    assert outcomes[2].check(PreconditionNotMet)  # type: ignore[union-attr]
    kinds = [kind for kind, _ in events]
    assert kinds == ["hint"] * 5 + ["fsync"] * 5 + ["dir"] * 3 + ["log"]
    real = backend.real_root()
    assert [path for kind, path in events if kind == "dir"] == [
        os.path.join(real, "a"), os.path.join(real, "b"), real
    ]
    stored = [
        ("a/one", b"1"), ("a/two", b"22"), ("a/taken", b"old"), ("b/three", b"333"), ("empty", b"")
    ]
    for key, body in stored:
        assert await get(backend, key) == body
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_a_failed_directory_fsync_fails_its_puts_only(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.backends import localindex

    logged: List[str] = []

    def failing_in_b(path: str) -> None:
        if path.endswith("/b"):
            raise OSError(5, "I/O error")

    monkeypatch.setattr(backend, "syncs", SharedSyncs(failing_in_b))
    monkeypatch.setattr(localindex, "fsync_file", logged.append)
    outcomes = backend.install_many(
        [pending_put(backend, "a/1", b"x"), pending_put(backend, "b/2", b"y"),
         pending_put(backend, "b/3", b"z")]
    )
    assert outcomes[0].key == "a/1"  # type: ignore[union-attr]
    assert all(o.check(OSError) for o in outcomes[1:])  # type: ignore[union-attr]
    assert len(logged) == 1
    # A failed index-log fsync fails every PUT of the batch.
    monkeypatch.setattr(backend, "syncs", SharedSyncs(lambda path: None))

    def failing_log(path: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(localindex, "fsync_file", failing_log)
    outcomes = backend.install_many(
        [pending_put(backend, "c/1", b"x"), pending_put(backend, "d/2", b"y")]
    )
    assert all(o.check(OSError) for o in outcomes)  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_concurrent_puts_committed_in_batches(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    PUTs whose bodies end while a commit runs are committed together in the next batch.
    """
    committed = batches(monkeypatch, backend)
    writers = []
    for number in range(20):
        writer = await backend.start_write(f"many/{number}")
        writer.write(b"body %d" % number)
        writers.append(writer)
    results = await DeferredList([w.commit(metadata_for(b"")) for w in writers])
    assert all(ok for ok, _ in results)
    assert sorted(key for _, keys in committed for key in keys) == sorted(
        f"many/{n}" for n in range(20)
    )
    assert len(committed) < 20
    for number in range(20):
        assert await get(backend, f"many/{number}") == b"body %d" % number


@pytest_twisted.ensureDeferred
async def test_large_puts_committed_in_the_pool(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A large body's fsync is long: it is committed on a pool thread, not in a batch where small
    PUTs would wait for it.
    """
    from gateway.backends import local

    monkeypatch.setattr(local, "BATCHED_PUT_SIZE", 10)
    calls = hand_overs(monkeypatch, backend)
    committed = batches(monkeypatch, backend)
    await put(backend, "small", b"123456789")
    await put(backend, "large", b"1234567890")
    on_commit_thread = [keys for name, keys in committed if name.startswith("s3gateway-commits")]
    assert on_commit_thread == [["small"]] and calls == ["install"]
    assert await get(backend, "large") == b"1234567890"


def test_check_key_one_pass_as_both_checks(tmp_path: Path) -> None:
    """
    L{localfs.check_key} answers as L{localfs.check_clash}, and says whether every folder of
    the key is there; a link on the way takes both checks as they are.
    """
    root = tmp_path / "r"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "file").write_bytes(b"x")
    (tmp_path / "out").mkdir()
    (root / "a" / "link").symlink_to(tmp_path / "out")
    (root / "a" / "inner").symlink_to(root / "a" / "b")
    (root / "a" / "b" / "k").write_bytes(b"y")
    base = str(root)
    found, folders = localfs.check_key(base, ["a", "b", "k"], False, "a/b/k")
    assert found is not None and found.st_ino == os.stat(root / "a" / "b" / "k").st_ino
    assert folders
    assert localfs.check_key(base, ["a", "b", "new"], False, "a/b/new") == (None, True)
    assert localfs.check_key(base, ["a", "c", "new"], False, "a/c/new") == (None, False)
    for segments, folder in ((["a", "file", "x"], False), (["a", "b"], False), (["a", "file"], True)):
        with pytest.raises(InvalidObjectKey):
            localfs.check_clash(base, segments, folder, "/".join(segments))
        with pytest.raises(InvalidObjectKey):
            localfs.check_key(base, segments, folder, "/".join(segments))
    found, folders = localfs.check_key(base, ["a", "inner", "k"], False, "a/inner/k")
    assert found is not None and found.st_ino == os.stat(root / "a" / "b" / "k").st_ino
    assert not folders
    with pytest.raises(InvalidObjectKey):
        localfs.check_key(base, ["a", "link", "new"], False, "a/link/new")


def test_check_key_in_its_folder_answers_as_the_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    With a folder opener, a key three or more segments deep is checked by opening its folder
    (no C{lstat} per segment) where its folders are all there and what it names is no folder
    or link; every other layout takes the walk. Either way the answer is the walk's.
    """
    from gateway.backends.linkfree import LinkFreeOpener

    opener = LinkFreeOpener.here(os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    if not opener.available:
        pytest.skip("no openat2 here")
    root = tmp_path / "r"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "k").write_bytes(b"y")
    (root / "a" / "file").write_bytes(b"x")
    os.mkfifo(root / "a" / "b" / "fifo")
    (tmp_path / "out").mkdir()
    (root / "a" / "link").symlink_to(tmp_path / "out")
    (root / "a" / "b" / "leaflink").symlink_to(root / "a" / "b" / "k")
    (root / "a" / "inner").symlink_to(root / "a" / "b")
    base = str(root)
    layouts = [
        ["a", "b", "k"], ["a", "b", "new"], ["a", "b", "fifo"], ["a", "missing", "new"],
        ["a", "file", "x"], ["a", "b", "c"], ["a", "link", "new"], ["a", "inner", "k"],
        ["a", "b", "leaflink"], ["a", "b", "c", "d", "e"],
    ]

    def outcome(segments, folders):  # type: ignore[no-untyped-def]
        try:
            found, checked = localfs.check_key(base, segments, False, "/".join(segments), folders)
        except InvalidObjectKey as error:
            return "refused", str(error)
        return (None if found is None else (found.st_ino, found.st_mode)), checked

    for segments in layouts:
        assert outcome(segments, opener) == outcome(segments, None), segments
    # The answers above could come from the walk alone: where the folder check answers, it
    # takes no lstat at all.
    real_lstat = os.lstat

    def no_lstat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError(f"lstat {path}")

    monkeypatch.setattr(os, "lstat", no_lstat)
    for segments in (["a", "b", "k"], ["a", "b", "new"], ["a", "b", "fifo"]):
        assert outcome(segments, opener)[1] is True
    monkeypatch.setattr(os, "lstat", real_lstat)


def test_place_checked_folder_gone_meanwhile(tmp_path: Path) -> None:
    """
    With the folders checked, the first try renames at once; if a delete pruned the folder
    since, the next try makes it again.
    """
    root = tmp_path / "r"
    root.mkdir()
    source = tmp_path / "upload"
    source.write_bytes(b"x")
    tries: List[int] = []

    def rename() -> None:
        tries.append(1)
        os.rename(source, root / "gone" / "k")

    localfs.place(str(root), ["gone"], rename, checked=True)
    assert len(tries) == 2
    assert (root / "gone" / "k").read_bytes() == b"x"


@pytest_twisted.ensureDeferred
async def test_folder_removed_between_check_and_rename(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A key's folder, and the object in it, removed by other means after the commit checked them
    and before its rename: the folder is made again and the upload put in place, with nothing
    left of the old object to replace (an exchange with it would fail at every try).
    """
    await put(backend, "f/k", b"old")
    await put(backend, "f/k", b"older")  # replaces a small object: the next upload is a spare
    real_place = localfs.place

    def removing_first(root_path, segments, action, checked=False):  # type: ignore[no-untyped-def]
        (root / "f" / "k").unlink()
        (root / "f").rmdir()
        return real_place(root_path, segments, action, checked)

    monkeypatch.setattr(localfs, "place", removing_first)
    await put(backend, "f/k", b"new")
    monkeypatch.undo()
    assert (root / "f" / "k").read_bytes() == b"new"
    assert await get(backend, "f/k") == b"new"
    assert leftover_temporary_files(root) == []
