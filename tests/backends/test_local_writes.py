"""
What only the local backend has to show about conditional writes, copies and stored metadata:
the per-key lock holds across threads and processes, old index files gain the new columns,
files put there by other means take part, and copies go through the kernel and read once.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList
from twisted.internet.task import deferLater
from twisted.python.threadpool import ThreadPool

from gateway.backends.local import LocalBackend
from gateway.backends.locallock import LOCK_FILES, lock_path
from gateway.interfaces import PreconditionNotMet
from gateway.model import ByteRange, WriteMetadata
from tests.backends.contract_writes import CREATE, conditional_put, if_match, write_parts
from tests.backends.support import get, leftover_temporary_files, metadata_for, put, refused
from tests.backends.test_local import _reactor, backend, make, root, tree  # noqa: F401 (fixtures)

#: The repository, for the child processes' imports.
REPOSITORY = str(Path(__file__).resolve().parents[2])


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()




def slow_checks(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch, delay: float) -> None:
    """
    Make every condition check of C{backend} take C{delay} more seconds, so that a writer that
    did not hold the lock between the check and the rename would surely be overtaken.
    """
    real = backend.check

    def slow(*args: object) -> None:
        real(*args)  # type: ignore[arg-type]
        time.sleep(delay)

    monkeypatch.setattr(backend, "check", slow)


# Racing writers.


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    """
    A thread per racing writer, so that all of them run at once.
    """
    threads = ThreadPool(minthreads=16, maxthreads=16, name="race")
    threads.start()
    yield threads
    threads.stop()


@pytest_twisted.ensureDeferred
async def test_racing_threads_one_winner(
    tmp_path: Path, root: Path, pool: ThreadPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    root.mkdir()
    backend = LocalBackend(str(root), str(tmp_path / "i.sqlite3"), _reactor(), threadpool=pool)
    slow_checks(backend, monkeypatch, 0.02)
    bodies = [f"body of writer {i}\n".encode() * (1000 + i) for i in range(16)]
    writers = []
    for body in bodies:
        writer = await backend.start_write("race/key")
        writer.write(body)
        writers.append(writer)
    commits = [w.commit(metadata_for(b), CREATE) for w, b in zip(writers, bodies)]
    results = await DeferredList(commits, consumeErrors=True)
    winners = [body for (ok, _), body in zip(results, bodies) if ok]
    assert len(winners) == 1
    assert all(r.check(PreconditionNotMet) for ok, r in results if not ok)
    assert await get(backend, "race/key") == winners[0]
    assert (await backend.stat("race/key")).etag == md5(winners[0])
    assert leftover_temporary_files(root) == []


HOLDER = """
import os, sys
from gateway.backends.locallock import locked
root, key = sys.argv[1:]
with locked(root, key):
    print("held", flush=True)
    sys.stdin.readline()
    # Another process's replacement of the key, made while it holds the key's lock.
    temp = os.path.join(root, "other-process-temp")
    with open(temp, "wb") as f:
        f.write(b"theirs")
    os.replace(temp, os.path.join(root, key))
"""


def child_environment() -> dict:  # type: ignore[type-arg]
    return dict(os.environ, PYTHONPATH=REPOSITORY)


@pytest_twisted.ensureDeferred
async def test_lock_honoured_across_processes(backend: LocalBackend, root: Path) -> None:
    real_root = os.path.realpath(root)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, real_root, "k"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_environment(),
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline() == b"held\n"
        writer = await backend.start_write("k")
        writer.write(b"mine")
        committed = writer.commit(metadata_for(b"mine"), CREATE)
        await deferLater(_reactor(), 0.5, lambda: None)
        # Waiting for the other process's lock: nothing checked or written yet.
        assert not committed.called and not (root / "k").exists()
        holder.stdin.write(b"go\n")
        holder.stdin.flush()
        # The check happens once the lock is ours, so it sees the other process's object.
        await refused(committed, PreconditionNotMet)
    finally:
        holder.stdin.close()  # type: ignore[union-attr]
        assert holder.wait(10) == 0
    assert (root / "k").read_bytes() == b"theirs"
    assert leftover_temporary_files(root) == []


RACER = """
import hashlib, os, sys, time
from gateway.backends.local import LocalBackend
from gateway.interfaces import PreconditionNotMet
from gateway.model import WriteCondition, WriteMetadata
root, index, key, body, start = sys.argv[1:]
backend = LocalBackend(root, index, None)
backend.retirements.sweep = lambda *args: None  # no reactor here to run the sweep's thread
check = backend.check
def slow_check(*args):
    check(*args)
    time.sleep(0.2)
backend.check = slow_check
fd, temp = backend.temp_file(backend.real_root())
os.write(fd, body.encode())
metadata = WriteMetadata(etag=hashlib.md5(body.encode()).hexdigest())
time.sleep(max(0.0, float(start) - time.time()))
try:
    backend.install(key, fd, temp, metadata, WriteCondition(if_none_match=True))
    print("won")
except PreconditionNotMet:
    print("lost")
"""


@pytest_twisted.ensureDeferred
async def test_racing_processes_one_winner(backend: LocalBackend, root: Path, tmp_path: Path) -> None:
    index = str(tmp_path / "index" / "bucket.sqlite3")
    start = str(time.time() + 3)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(root), index, "k", f"process {i}", start],
            stdout=subprocess.PIPE,
            env=child_environment(),
        )
        for i in range(4)
    ]
    outcomes = [racer.communicate(timeout=30)[0].decode().strip() for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    winner = f"process {outcomes.index('won')}".encode()
    assert await get(backend, "k") == winner
    assert (await backend.stat("k")).etag == md5(winner)


def test_lock_files_bounded(root: Path) -> None:
    paths = {lock_path(str(root), f"key {i}") for i in range(5000)}
    assert len(paths) == LOCK_FILES
    assert {os.path.dirname(p) for p in paths} == {str(root / ".s3gateway" / "locks")}
    assert lock_path(str(root), "a") == lock_path(str(root), "a")


@pytest_twisted.ensureDeferred
async def test_lock_file_made_once(backend: LocalBackend, root: Path) -> None:
    await put(backend, "k", b"1")
    await put(backend, "k", b"2")
    await backend.delete("k")
    locks = root / ".s3gateway" / "locks"
    assert [str(p) for p in locks.iterdir()] == [lock_path(os.path.realpath(root), "k")]


# Failed conditions clean up.


@pytest_twisted.ensureDeferred
async def test_failed_condition_cleans_up(backend: LocalBackend, root: Path) -> None:
    await put(backend, "k", b"x")
    await refused(conditional_put(backend, "k", b"y", CREATE), PreconditionNotMet)
    assert leftover_temporary_files(root) == []
    await write_parts(backend, "up", b"part")
    done = backend.complete_upload("up", "k", [(1, 4)], WriteMetadata(etag="e-1"), CREATE)
    await refused(done, PreconditionNotMet)
    assert tree(root / ".s3gateway" / "uploads") == ["up", "up/1"]
    assert leftover_temporary_files(root) == []
    assert await get(backend, "k") == b"x"


# Files put there by other means.


@pytest_twisted.ensureDeferred
async def test_conditions_on_foreign_files(backend: LocalBackend, root: Path) -> None:
    (root / "f").write_bytes(b"foreign")
    stale = if_match(md5(b"something else"))
    await refused(conditional_put(backend, "f", b"new", stale), PreconditionNotMet)
    await refused(conditional_put(backend, "f", b"new", CREATE), PreconditionNotMet)
    await conditional_put(backend, "f", b"new", if_match(md5(b"foreign")))
    assert (root / "f").read_bytes() == b"new"
    (root / "d").mkdir()
    # A directory is no object: If-None-Match holds for its marker key.
    await conditional_put(backend, "d/", b"", CREATE)


@pytest_twisted.ensureDeferred
async def test_update_metadata_of_foreign_file(
    backend: LocalBackend, root: Path, tmp_path: Path
) -> None:
    path = root / "notes.txt"
    path.write_bytes(b"foreign")
    os.utime(path, ns=(10**18, 10**18))
    assert backend.index.get("notes.txt") is None
    new = WriteMetadata(etag="", content_type="text/x-notes", metadata={"a": "b"}, tags={"t": "v"})
    info = await backend.update_metadata("notes.txt", new)
    assert (info.etag, info.size, info.content_type) == (md5(b"foreign"), 7, "text/x-notes")
    assert dict(info.tags) == {"t": "v"}
    # S3 makes the last-modified time now; the file's mtime says so, and the row matches it.
    assert info.last_modified > time.time() - 60
    assert path.stat().st_mtime_ns / 1e9 == info.last_modified
    assert path.read_bytes() == b"foreign"
    row = backend.index.get("notes.txt")
    assert row is not None and json.loads(row.metadata) == {"a": "b"}
    await backend.close()
    other = make(tmp_path)
    assert await other.stat("notes.txt") == info


# The index's migration.

OLD_SCHEMA = """
CREATE TABLE objects (
    key TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    etag TEXT NOT NULL,
    content_type TEXT NOT NULL,
    metadata TEXT NOT NULL,
    headers TEXT NOT NULL,
    parts_count INTEGER
)
"""


@pytest_twisted.ensureDeferred
async def test_old_index_gains_columns(tmp_path: Path, root: Path) -> None:
    root.mkdir()
    (root / "k").write_bytes(b"old")
    mtime_ns = (root / "k").stat().st_mtime_ns
    index = tmp_path / "index" / "bucket.sqlite3"
    index.parent.mkdir()
    db = sqlite3.connect(str(index))
    db.execute(OLD_SCHEMA)
    db.execute(
        "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ("k", 3, mtime_ns, "etag-of-old-2", "text/x-old", '{"m": "1"}', "{}", 2),
    )
    db.commit()
    db.close()
    backend = make(tmp_path)
    info = await backend.stat("k")
    assert (info.etag, info.content_type, dict(info.metadata)) == (
        "etag-of-old-2",
        "text/x-old",
        {"m": "1"},
    )
    assert (info.parts_count, dict(info.tags), info.part_sizes) == (2, {}, ())
    await put(backend, "new", b"x", tags={"a": "b"})
    await backend.close()
    db = sqlite3.connect(str(index))
    columns = [row[1] for row in db.execute("PRAGMA table_info(objects)")]
    db.close()
    assert columns[-2:] == ["tags", "part_sizes"] and len(columns) == 10
    # Opened again, nothing is added twice.
    other = make(tmp_path)
    assert dict((await other.stat("new")).tags) == {"a": "b"}
    assert (await other.stat("k")).etag == "etag-of-old-2"


# Copies.


@pytest.mark.parametrize("broken", [[], ["copy_file_range"], ["copy_file_range", "sendfile"]])
@pytest_twisted.ensureDeferred
async def test_copy_object_ways(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch, broken: List[str]
) -> None:
    body = os.urandom(3_000_000)
    await put(backend, "src", body)
    calls: List[str] = []
    for name in ("copy_file_range", "sendfile"):
        real = getattr(os, name)

        def wrapped(*args, _name=name, _real=real):  # type: ignore[no-untyped-def]
            calls.append(_name)
            if _name in broken:
                raise OSError(errno.EXDEV, "cross-device")
            return _real(*args)

        monkeypatch.setattr(os, name, wrapped)
    info = await backend.copy_object("src", "dst", metadata_for(body))
    assert info.size == len(body) and info.etag == md5(body)
    assert await get(backend, "dst") == body
    assert calls and calls[0] == "copy_file_range"
    if not broken:
        assert set(calls) == {"copy_file_range"}


@pytest_twisted.ensureDeferred
async def test_copy_part_reads_source_once(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = os.urandom(2_000_000)
    await put(backend, "src", body)
    source_inode = (root / "src").stat().st_ino
    read: List[int] = []
    real = os.read

    def counting(fd: int, count: int) -> bytes:
        data = real(fd, count)
        if os.fstat(fd).st_ino == source_inode:
            read.append(len(data))
        return data

    monkeypatch.setattr(os, "read", counting)
    info = await backend.copy_part("src", ByteRange(10, 1_500_009), "up", 3)
    assert (info.size, info.etag) == (1_500_000, md5(body[10:1_500_010]))
    assert sum(read) == 1_500_000
    part = root / ".s3gateway" / "uploads" / "up" / "3"
    assert part.read_bytes() == body[10:1_500_010]
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_copy_onto_itself_keeps_one_file(backend: LocalBackend, root: Path) -> None:
    await put(backend, "dir/k", b"body", metadata={"v": "1"})
    await backend.copy_object("dir/k", "dir/k", metadata_for(b"body", tags={"t": "1"}))
    assert tree(root / "dir") == ["k"]
    assert (root / "dir" / "k").read_bytes() == b"body"
    assert dict((await backend.stat("dir/k")).tags) == {"t": "1"}
    assert leftover_temporary_files(root) == []
