"""
A small object replaced by a write is kept as a spare file, and a later upload writes into it
and exchanges it with the object it replaces (L{gateway.backends.localspare}), unless someone
may still read it.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import List

import pytest
import pytest_twisted

from gateway.backends import localretire, localspare
from gateway.backends.local import LocalBackend
from gateway.backends.localspare import SpareFiles, spare_folder
from tests.backends.support import get, leftover_temporary_files, put
from tests.backends.test_local import backend, root  # noqa: F401 (fixtures)


def spares(root: Path) -> List[Path]:
    """
    The spare files under C{root}, in every process's folder.
    """
    folder = Path(spare_folder(str(root)))
    if not folder.exists():
        return []
    return sorted(p for own in folder.iterdir() for p in own.iterdir())


async def replaced(backend: LocalBackend, root: Path, key: str, old: bytes) -> int:
    """
    Put C{old} under C{key}, then replace it: the inode of C{old}, now a spare file.
    """
    await put(backend, key, old)
    inode = os.stat(root / key).st_ino
    await put(backend, key, b"the new version of " + key.encode())
    return inode


@pytest_twisted.ensureDeferred
async def test_replaced_small_object_becomes_a_spare_file(
    backend: LocalBackend, root: Path
) -> None:
    old = await replaced(backend, root, "k", b"the old version")
    (spare,) = spares(root)
    found = os.stat(spare)
    assert (found.st_ino, found.st_nlink) == (old, 1)
    assert spare.read_bytes() == b"the old version"
    assert len(backend.spares) == 1
    assert await get(backend, "k") == b"the new version of k"


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("body", [b"short", b"exactly fifteen", b"longer than the old version was"])
async def test_upload_writes_into_a_spare_file(
    backend: LocalBackend, root: Path, body: bytes
) -> None:
    """
    The next upload takes the spare file's inode, and the object holds its body and nothing of
    the old content, whether the body is shorter, as long or longer.
    """
    old = await replaced(backend, root, "k", b"the old version")
    info = await put(backend, "other", body)
    assert os.stat(root / "other").st_ino == old
    assert await get(backend, "other") == body
    assert (root / "other").read_bytes() == body
    assert info.size == len(body)
    assert spares(root) == [] and len(backend.spares) == 0
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_empty_upload_into_a_spare_file(backend: LocalBackend, root: Path) -> None:
    old = await replaced(backend, root, "k", b"the old version")
    await put(backend, "empty", b"")
    assert os.stat(root / "empty").st_ino == old
    assert (root / "empty").read_bytes() == b""


@pytest_twisted.ensureDeferred
async def test_spare_file_still_read_is_not_written(backend: LocalBackend, root: Path) -> None:
    """
    A reader that opened the old object before it was replaced keeps reading the old bytes: the
    upload that takes that spare file finds it open, removes it and makes a new file.
    """
    await put(backend, "k", b"the old version")
    reader = os.open(root / "k", os.O_RDONLY)
    try:
        old = os.fstat(reader).st_ino
        await put(backend, "k", b"the new version")
        assert [os.stat(p).st_ino for p in spares(root)] == [old]
        await put(backend, "other", b"a body that must not land in the old file")
        assert os.stat(root / "other").st_ino != old
        assert os.pread(reader, 100, 0) == b"the old version"
        assert spares(root) == [] and len(backend.spares) == 0
        assert backend.spares.enabled
    finally:
        os.close(reader)
    assert await get(backend, "other") == b"a body that must not land in the old file"
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_spare_file_with_another_name_is_not_written(
    backend: LocalBackend, root: Path, tmp_path: Path
) -> None:
    await replaced(backend, root, "k", b"the old version")
    (spare,) = spares(root)
    os.link(spare, tmp_path / "elsewhere")
    await put(backend, "other", b"the body")
    assert (tmp_path / "elsewhere").read_bytes() == b"the old version"
    assert await get(backend, "other") == b"the body"
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_spare_file_swept_away_is_skipped(backend: LocalBackend, root: Path) -> None:
    await replaced(backend, root, "k", b"the old version")
    (spare,) = spares(root)
    os.unlink(spare)
    await put(backend, "other", b"the body")
    assert await get(backend, "other") == b"the body"
    assert len(backend.spares) == 0


@pytest_twisted.ensureDeferred
async def test_large_or_linked_object_is_not_kept(
    backend: LocalBackend, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Only a plain file with one name, of at most L{localspare.SPARE_SIZE} bytes, is kept.
    """
    monkeypatch.setattr(localspare, "SPARE_SIZE", 100)
    await replaced(backend, root, "exactly", b"x" * 100)
    assert len(spares(root)) == 1
    await put(backend, "taker", b"takes the spare")
    assert spares(root) == []
    await replaced(backend, root, "large", b"x" * 101)
    await put(backend, "linked", b"linked")
    os.link(root / "linked", tmp_path / "other name")
    await put(backend, "linked", b"replaced")
    assert spares(root) == []
    assert (tmp_path / "other name").read_bytes() == b"linked"
    assert await get(backend, "large") == b"the new version of large"


def test_at_most_spare_count_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localspare, "SPARE_COUNT", 2)
    files = SpareFiles()
    for n in range(3):
        path = tmp_path / str(n)
        path.write_bytes(b"x")
        name = files.keep(str(tmp_path), str(path), os.stat(path))
        if n < 2:
            assert name is not None
            files.add(name)
        else:
            assert name is None
    assert len(files) == 2


@pytest_twisted.ensureDeferred
async def test_without_leases_no_spare_is_written_or_kept(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Where the kernel grants no lease, nothing tells whether a spare file is still read: none is
    written, and the process stops keeping them.
    """
    old = await replaced(backend, root, "k", b"the old version")

    def refused(fd: int, command: int, argument: int = 0) -> int:
        raise OSError(errno.EINVAL, "no leases here")

    monkeypatch.setattr(localspare.fcntl, "fcntl", refused)
    await put(backend, "other", b"the body")
    assert os.stat(root / "other").st_ino != old
    assert not backend.spares.enabled
    await put(backend, "other", b"again")
    assert spares(root) == [] and len(backend.spares) == 0
    assert await get(backend, "other") == b"again"


@pytest_twisted.ensureDeferred
async def test_failed_cut_fails_the_upload(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    If the old content past the body cannot be cut off, the upload fails and stores nothing.
    """
    await replaced(backend, root, "k", b"the old version, long")
    await put(backend, "other", b"before")

    def failing(fd: int, size: int) -> None:
        raise OSError(errno.EIO, "cannot cut")

    await replaced(backend, root, "k2", b"another old version, long")
    monkeypatch.setattr(os, "ftruncate", failing)
    with pytest.raises(OSError):
        await put(backend, "other", b"short")
    monkeypatch.undo()
    assert await get(backend, "other") == b"before"
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_aborted_upload_into_a_spare_file(backend: LocalBackend, root: Path) -> None:
    await replaced(backend, root, "k", b"the old version")
    writer = await backend.start_write("other")
    writer.write(b"part of a body")
    await writer.abort()
    assert not (root / "other").exists()
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_next_upload_swaps_places_with_the_old_object(
    backend: LocalBackend, root: Path
) -> None:
    """
    An upload written into a spare file is exchanged with the object it replaces: the object
    takes the spare file's inode, and the old object takes the spare file's name.
    """
    first = await replaced(backend, root, "k", b"version 1")
    second = os.stat(root / "k").st_ino
    (spare,) = spares(root)
    await put(backend, "k", b"version 3")
    assert os.stat(root / "k").st_ino == first
    assert await get(backend, "k") == b"version 3"
    assert spares(root) == [spare]
    assert os.stat(spare).st_ino == second
    assert spare.read_bytes() == b"the new version of k"
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_without_exchange_the_upload_is_renamed(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await replaced(backend, root, "k", b"version 1")

    def refused(first: str, second: str) -> None:
        raise OSError(errno.EINVAL, "no exchange here")

    monkeypatch.setattr(localspare, "exchange", refused)
    await put(backend, "k", b"version 3")
    assert not backend.spares.exchanging
    assert os.stat(root / "k").st_ino == first
    assert await get(backend, "k") == b"version 3"
    # The replaced object was kept by a link instead.
    assert len(spares(root)) == 1


def test_swap_puts_back_a_folder(tmp_path: Path) -> None:
    """
    A folder made at the key after its check is not taken away: the exchange is undone, and
    the write fails as a rename would have.
    """
    files = SpareFiles()
    in_the_way = tmp_path / "key"
    in_the_way.mkdir()
    (in_the_way / "inside").write_bytes(b"x")
    written = tmp_path / "written"
    written.write_bytes(b"the upload")
    with pytest.raises(IsADirectoryError):
        files.swap(str(written), str(in_the_way))
    assert (in_the_way / "inside").read_bytes() == b"x"
    assert written.read_bytes() == b"the upload"


@pytest_twisted.ensureDeferred
async def test_sweep_removes_only_the_folders_of_ended_processes(
    backend: LocalBackend, root: Path
) -> None:
    await replaced(backend, root, "k", b"the old version")
    (live,) = spares(root)
    parent = Path(spare_folder(str(root)))
    ended = parent / "0123456789abcdef"
    ended.mkdir()
    (ended / "left").write_bytes(b"x")
    (parent / "stray").write_bytes(b"x")
    making = parent / ".making-0123"
    making.mkdir()
    old_making = parent / ".making-4567"
    old_making.mkdir()
    long_ago = time.time() - 2 * localspare.YOUNG_FOLDER_SECONDS
    os.utime(old_making, (long_ago, long_ago))
    localretire.sweep_now(str(root), str(root / ".s3gateway" / "tmp"))
    assert sorted(p.name for p in parent.iterdir()) == sorted([live.parent.name, making.name])
    assert spares(root) == [live]
    await put(backend, "other", b"the body")
    assert await get(backend, "other") == b"the body"


@pytest_twisted.ensureDeferred
async def test_close_removes_the_process_folder(backend: LocalBackend, root: Path) -> None:
    await replaced(backend, root, "k", b"the old version")
    assert spares(root) != []
    await backend.close()
    assert list(Path(spare_folder(str(root))).iterdir()) == []
    assert len(backend.spares) == 0


def test_not_enabled_keeps_nothing(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"x")
    files = SpareFiles(enabled=False)
    assert files.keep(str(tmp_path), str(path), os.stat(path)) is None
    assert files.take() is None


@pytest_twisted.ensureDeferred
async def test_registry_close_closes_local_backends(tmp_path: Path) -> None:
    """
    A stopping process closes its backends (L{BackendRegistry.close}): a local bucket's spare
    folder goes; a backend with nothing to close is passed over.
    """
    from twisted.internet import reactor

    from gateway.backends import BackendRegistry
    from gateway.model import Connection

    registry = BackendRegistry(str(tmp_path / "data"), reactor)
    (tmp_path / "bucket").mkdir()
    local = registry.backend_for(Connection(
        user="u", bucket="b", backend="local", settings={"path": str(tmp_path / "bucket")},
    ))
    registry.backend_for(Connection(user="u", bucket="m", backend="memory", settings={}))
    assert isinstance(local, LocalBackend)
    await replaced(local, tmp_path / "bucket", "k", b"the old version")
    assert spares(tmp_path / "bucket") != []
    await registry.close()
    assert list(Path(spare_folder(str(tmp_path / "bucket"))).iterdir()) == []
    assert len(local.spares) == 0
    syncs = registry.kernel_syncs()
    if syncs is not None:
        syncs.close()
