"""
Watched folders (L{gateway.backends.localwatch}): a kept folder whose directory is watched needs
no C{stat} of its files, and any change in it, by any program, drops it before the next listing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import pytest
import pytest_twisted

from gateway.backends import localfolders, localwatch
from gateway.backends.local import LocalBackend
from gateway.backends.localfolders import Folder, FolderCache
from gateway.backends.localwatch import FolderWatcher
from gateway.model import ObjectInfo
from tests.backends.contract import put

@pytest.fixture
def watcher() -> FolderWatcher:
    made = FolderWatcher()
    if not made.available:
        pytest.skip("no inotify on this system")
    yield made
    made.close()


@pytest.fixture(autouse=True)
def settled_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localfolders, "SETTLED", 0.0)
    # Never re-checked by time: only the watch can tell a rewrite in place.
    monkeypatch.setattr(localfolders, "RECHECK", 3600.0)


def test_one_event_per_watch(tmp_path: Path, watcher: FolderWatcher) -> None:
    changed: List[str] = []
    (tmp_path / "a").write_bytes(b"1")
    assert watcher.watch(str(tmp_path), changed.append) is not None
    watcher.drain()
    assert changed == []
    with open(tmp_path / "a", "r+b") as f:
        f.write(b"2")
    os.utime(tmp_path / "a", ns=(0, 0))
    watcher.drain()
    assert changed == [str(tmp_path)]
    # One-shot: the watch is gone after its first event.
    (tmp_path / "b").write_bytes(b"1")
    watcher.drain()
    assert changed == [str(tmp_path)]


def test_unwatched_directory_calls_nothing(tmp_path: Path, watcher: FolderWatcher) -> None:
    changed: List[str] = []
    watcher.watch(str(tmp_path), changed.append)
    watcher.unwatch(str(tmp_path))
    (tmp_path / "a").write_bytes(b"1")
    watcher.drain()
    assert changed == []


def test_instance_closed_when_dropped() -> None:
    import gc

    watcher = FolderWatcher()
    if not watcher.available:
        pytest.skip("no inotify on this system")
    fd = watcher._fd
    assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
    del watcher
    gc.collect()
    target = None
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        pass
    assert target != "anon_inode:inotify"


def test_only_local_filesystems(tmp_path: Path, watcher: FolderWatcher,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localwatch, "LOCAL_FILESYSTEMS", frozenset())
    assert FolderWatcher().watch(str(tmp_path), print) is None


def test_kept_only_if_unchanged_since_the_watch(tmp_path: Path, watcher: FolderWatcher) -> None:
    """
    A folder read under a watch is not kept if the directory changed after the watch was armed
    (the listing read may have seen it half done), even if another thread drained the event.
    """
    cache = FolderCache(watcher=watcher)
    files = [(ObjectInfo("d/a", 1, "0" * 32, 1.0), 10**9)]
    watch = cache.watch(str(tmp_path))
    (tmp_path / "new").write_bytes(b"1")
    watcher.drain()  # another thread's drain
    cache.put(str(tmp_path), Folder((0,) * 5, 0, ["a"], files, None), watch)
    assert len(cache) == 0
    watch = cache.watch(str(tmp_path))
    cache.put(str(tmp_path), Folder((0,) * 5, 0, ["a"], files, None), watch)
    assert len(cache) == 1
    assert cache.get(str(tmp_path), (0,) * 5, 0).watched  # type: ignore[union-attr]
    (tmp_path / "a").write_bytes(b"2")
    assert cache.get(str(tmp_path), (0,) * 5, 0) is None


def _backend(tmp_path: Path, watcher: FolderWatcher) -> LocalBackend:
    from twisted.internet import reactor

    root = tmp_path / "bucket"
    root.mkdir(exist_ok=True)
    return LocalBackend(str(root), str(tmp_path / "index.sqlite3"), reactor, watcher=watcher)


@pytest_twisted.ensureDeferred
async def test_rewrite_in_place_seen_at_once(tmp_path: Path, watcher: FolderWatcher,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _backend(tmp_path, watcher)
    await put(backend, "d/a", b"1")
    await put(backend, "d/b", b"1")
    first = await backend.list_objects("d/", "/", "", 9)
    directory = str(tmp_path / "bucket" / "d")
    assert backend.index.folders.get(directory, _identity(directory), _version(backend)).watched
    stats: List[str] = []
    real_stat = os.stat

    def counting(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("dir_fd") is not None:  # a file of a folder, as Folder.fresh checks it
            stats.append(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(localfolders.os, "stat", counting)
    assert await backend.list_objects("d/", "/", "", 9) == first
    assert stats == []  # served without a stat of its files
    localfolders.RECHECK = 0.0
    assert await backend.list_objects("d/", "/", "", 9) == first
    assert len(stats) == 0, "a watched folder is never checked by stat"
    localfolders.RECHECK = 3600.0
    with open(tmp_path / "bucket" / "d" / "a", "r+b") as f:
        f.write(b"22")
    listed = (await backend.list_objects("d/", "/", "", 9)).objects
    assert [(o.key, o.size) for o in listed] == [("d/a", 2), ("d/b", 1)]
    assert listed[0] == await backend.stat("d/a")
    backend.index.close()


def _identity(directory: str) -> tuple:
    st = os.stat(directory)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _version(backend: LocalBackend) -> int:
    return backend.index.folder_version("d/")
