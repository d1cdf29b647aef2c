"""
Kept listings of small folders (L{gateway.backends.localfolders}): used again only while the
directory, the folder's index rows and, every few seconds, its files are as they were.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import List, Optional

import pytest
import pytest_twisted

from gateway.backends import localfolders, localindex, localwalk
from gateway.backends.local import LocalBackend
from gateway.backends.localfolders import Folder, FolderCache
from gateway.backends.localindex import row_for
from gateway.model import ObjectInfo
from tests.backends.contract import put
from tests.backends.test_local import make


@pytest.fixture(autouse=True)
def settled_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Keep folders however recently they changed (the tests make them just before), except where
    a test says otherwise.
    """
    monkeypatch.setattr(localfolders, "SETTLED", 0.0)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """
    The directories read whole (not served from the cache) from now on.
    """
    read: List[str] = []
    real = localwalk._folder

    def counting(index, fd, directory, *args):  # type: ignore[no-untyped-def]
        kept = index.folders._folders.get(directory)
        result = real(index, fd, directory, *args)
        if index.folders._folders.get(directory) is not kept or kept is None:
            read.append(directory)
        return result

    monkeypatch.setattr(localwalk, "_folder", counting)
    return read


async def keys(backend: LocalBackend, prefix: str = "d/") -> List[str]:
    page = await backend.list_objects(prefix, "/", "", 1000)
    return [o.key for o in page.objects] + list(page.common_prefixes)


@pytest_twisted.ensureDeferred
async def test_kept_and_reused(tmp_path: Path, builds: List[str]) -> None:
    backend = make(tmp_path)
    infos = [await put(backend, f"d/{i}", b"x" * i, metadata={"n": "1"} if i == 2 else {})
             for i in range(4)]
    (tmp_path / "bucket" / "d" / "sub").mkdir()
    first = await backend.list_objects("d/", "/", "", 1000)
    second = await backend.list_objects("d/", "/", "", 1000)
    assert first == second
    assert list(second.objects) == [await backend.stat(f"d/{i}") for i in range(4)] == infos
    assert second.common_prefixes == ("d/sub/",)
    assert len(builds) == 1
    # The pages of a kept folder are those of the walk.
    page = await backend.list_objects("d/", "/", "d/1", 2)
    assert [o.key for o in page.objects] == ["d/2", "d/3"] and page.is_truncated
    assert [o.key for o in (await backend.list_objects("d/", None, "", 1000)).objects] == [
        "d/0", "d/1", "d/2", "d/3"
    ]
    assert len(builds) == 2  # d/sub, walked without delimiter


@pytest_twisted.ensureDeferred
async def test_put_and_delete_seen_at_once(tmp_path: Path, builds: List[str]) -> None:
    backend = make(tmp_path)
    await put(backend, "d/a", b"1")
    assert await keys(backend) == ["d/a"]
    await put(backend, "d/b", b"2")
    assert await keys(backend) == ["d/a", "d/b"]
    await put(backend, "d/b", b"22")
    assert [o.size for o in (await backend.list_objects("d/", "/", "", 9)).objects] == [1, 2]
    await backend.delete("d/a")
    assert await keys(backend) == ["d/b"]
    await backend.update_metadata("d/b", (await backend.stat("d/b")) and _meta({"k": "v"}))
    (listed,) = (await backend.list_objects("d/", "/", "", 9)).objects
    assert dict(listed.metadata) == {"k": "v"}
    await backend.copy_object("d/b", "d/c", _meta({}))
    assert await keys(backend) == ["d/b", "d/c"]


def _meta(metadata):  # type: ignore[no-untyped-def]
    from gateway.model import WriteMetadata

    return WriteMetadata(etag="", metadata=metadata)


@pytest_twisted.ensureDeferred
async def test_writes_of_another_process_seen_at_once(tmp_path: Path) -> None:
    """
    Two backends on one root and index (two worker processes): what one writes, the other lists
    at once, even where the directory's times would not tell (the same clock tick).
    """
    one, two = make(tmp_path), make(tmp_path)
    await put(one, "d/a", b"1")
    await put(one, "d/b", b"1")
    assert await keys(two) == ["d/a", "d/b"]
    await put(one, "d/c", b"1")
    assert await keys(two) == ["d/a", "d/b", "d/c"]
    await one.delete("d/a")
    assert await keys(two) == ["d/b", "d/c"]
    # A rewrite that keeps size and mtime: only the row tells.
    directory = tmp_path / "bucket" / "d"
    before = os.stat(directory)
    await put(two, "d/b", b"2")
    os.utime(directory, ns=(before.st_atime_ns, before.st_mtime_ns))
    (info,) = [o for o in (await one.list_objects("d/", "/", "", 9)).objects if o.key == "d/b"]
    assert info == await two.stat("d/b")


@pytest_twisted.ensureDeferred
async def test_foreign_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Files made or removed by other means show at once; a file rewritten in place shows within
    L{localfolders.RECHECK} seconds.
    """
    backend = make(tmp_path)
    await put(backend, "d/a", b"1")
    directory = tmp_path / "bucket" / "d"
    assert await keys(backend) == ["d/a"]
    time.sleep(0.05)  # past the filesystem's clock tick
    (directory / "new").write_bytes(b"foreign")
    assert await _keys_hashing(backend) == ["d/a", "d/new"]
    time.sleep(0.05)
    (directory / "new").unlink()
    assert await keys(backend) == ["d/a"]
    # Rewritten in place: the directory does not change.
    monkeypatch.setattr(localfolders, "RECHECK", 3600.0)
    assert await keys(backend) == ["d/a"]
    with open(directory / "a", "r+b") as f:
        f.write(b"22")
    (stale,) = (await backend.list_objects("d/", "/", "", 9)).objects
    assert stale.size == 1
    monkeypatch.setattr(localfolders, "RECHECK", 0.0)
    (fresh,) = (await _page_hashing(backend)).objects
    assert fresh.size == 2 and fresh == await backend.stat("d/a")


@pytest_twisted.ensureDeferred
async def test_first_listing_of_foreign_files_kept(
    tmp_path: Path, builds: List[str], hashing: List[str]
) -> None:
    """
    A folder of files put there by other means is kept from its first listing, the one that
    reads them for their ETags: the second is served from the cache, nothing read again.
    """
    directory = tmp_path / "bucket" / "d"
    directory.mkdir(parents=True)
    for i in range(5):
        (directory / f"f{i}").write_bytes(b"foreign %d" % i)
    hashed = hashing
    backend = make(tmp_path)
    first = await backend.list_objects("d/", "/", "", 1000)
    assert [o.etag for o in first.objects] == [
        hashlib.md5(b"foreign %d" % i).hexdigest() for i in range(5)
    ]
    assert len(hashed) == 5 and len(builds) == 1 and len(backend.index.folders) == 1
    assert await backend.list_objects("d/", "/", "", 1000) == first
    assert len(hashed) == 5 and len(builds) == 1
    # A file added since: read, and seen.
    time.sleep(0.05)  # past the filesystem's clock tick
    (directory / "f5").write_bytes(b"late")
    assert [o.key for o in (await backend.list_objects("d/", "/", "", 1000)).objects] == [
        f"d/f{i}" for i in range(6)
    ]
    assert len(hashed) == 6 and len(builds) == 2


@pytest_twisted.ensureDeferred
async def test_first_listing_not_kept_if_another_writer_came_between(
    tmp_path: Path, builds: List[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A row of the folder written by someone else (another worker's tagging, which changes no
    file) while the first listing reads the files: that listing is not kept, as it may not
    show the other write.
    """
    directory = tmp_path / "bucket" / "d"
    directory.mkdir(parents=True)
    for i in range(3):
        (directory / f"f{i}").write_bytes(b"foreign %d" % i)
    other = make(tmp_path)  # another process's index of the same bucket
    real = localindex.md5_of_file

    def racing(path: str, dir_fd: Optional[int] = None) -> str:
        if path == "f1":
            st = os.stat(directory / "f2")
            info = ObjectInfo("d/f2", st.st_size, "0" * 32, st.st_mtime_ns / 1e9)
            other.index.put(row_for(info, st.st_mtime_ns))
        return real(path, dir_fd)

    monkeypatch.setattr(localindex, "md5_of_file", racing)
    backend = make(tmp_path)
    assert len((await backend.list_objects("d/", "/", "", 1000)).objects) == 3
    assert len(backend.index.folders) == 0
    monkeypatch.setattr(localindex, "md5_of_file", real)
    await backend.list_objects("d/", "/", "", 1000)
    assert len(builds) == 2 and len(backend.index.folders) == 1


async def _page_hashing(backend: LocalBackend):  # type: ignore[no-untyped-def]
    return await backend.list_objects("d/", "/", "", 9)


async def _keys_hashing(backend: LocalBackend) -> List[str]:
    return [o.key for o in (await _page_hashing(backend)).objects]


@pytest_twisted.ensureDeferred
async def test_unsettled_directory_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A directory changed less than L{localfolders.SETTLED} ago is read each time: a second change
    in the same clock tick would not change its times.
    """
    monkeypatch.setattr(localfolders, "SETTLED", 3600.0)
    backend = make(tmp_path)
    await put(backend, "d/a", b"1")
    assert await keys(backend) == ["d/a"]
    assert len(backend.index.folders) == 0


@pytest_twisted.ensureDeferred
async def test_large_folder_not_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localfolders, "MAX_ENTRIES", 3)
    backend = make(tmp_path)
    for i in range(4):
        await put(backend, f"d/{i}", b"x")
    assert await keys(backend) == [f"d/{i}" for i in range(4)]
    assert len(backend.index.folders) == 0


def _folder(count: int) -> Folder:
    files = [(ObjectInfo(f"d/{i}", i, "0" * 32, 1.0), 10**9) for i in range(count)]
    return Folder((0, 0, 0, 0, 0), 0, [f"{i}" for i in range(count)], files, None)


def test_cache_bounded() -> None:
    one = _folder(100)
    cache = FolderCache(max_bytes=one.weight * 3)
    for name in "abcd":
        cache.put(name, _folder(100))
    assert len(cache) == 3 and cache.get("a", one.identity, 0) is None
    assert cache.get("b", one.identity, 0) is not None
    cache.put("e", _folder(100))  # "c" is now the least recently used
    assert cache.get("c", one.identity, 0) is None and cache.get("b", one.identity, 0)
    # A changed directory or folder version drops it.
    assert cache.get("b", (0, 0, 0, 1, 0), 0) is None and len(cache) == 2
    assert cache.get("d", one.identity, 1) is None and len(cache) == 1


def test_compact() -> None:
    """
    A folder of a hundred plain keys weighs some fifty bytes a key, and gives back its infos.
    """
    folder = _folder(100)
    assert folder.weight < 100 * 60
    entries = folder.entries("d/")
    assert [info for _, _, info in entries] == [
        ObjectInfo(f"d/{i}", i, "0" * 32, 1.0) for i in range(100)
    ]
    other = Folder((0,) * 5, 0, ["a", "b/"], [(ObjectInfo("d/a", 1, "x-2", 2.0, "t"), 2 * 10**9)],
                   None)
    assert other.entries("d/") == [("d/a", False, ObjectInfo("d/a", 1, "x-2", 2.0, "t")),
                                   ("d/b/", True, None)]
