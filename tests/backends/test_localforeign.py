"""
The first listing of files put there by other means (L{gateway.backends.localforeign}): each
file's ETag is the MD5 of its bytes, read once, its row written with the others of its batch in
one transaction, and nothing is remembered of a file that changed or went while it was read.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import pytest_twisted

from gateway.backends import localindex, localwalk
from gateway.backends.local import LocalBackend
from tests.backends.test_local import make


@pytest.fixture(params=["small folder", "large folder"])
def backend(  # type: ignore[no-untyped-def]
    request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> LocalBackend:
    """
    A backend whose folders are listed as small ones (whole, L{localwalk._folder}) or as large
    ones (page by page, in batches).
    """
    if request.param == "large folder":
        monkeypatch.setattr(localwalk, "SMALL_DIRECTORY", 0)
    return make(tmp_path)


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """
    The names of the files read for their MD5, in order.
    """
    read: List[str] = []
    real = localindex.md5_of_file

    def counting(path: str, dir_fd: Optional[int] = None) -> str:
        read.append(os.path.basename(path))
        return real(path, dir_fd)

    monkeypatch.setattr(localindex, "md5_of_file", counting)
    return read


def _fill(folder: Path, count: int) -> Dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    bodies = {f"f{i:03d}.txt": f"body {i}\n".encode() * (i + 1) for i in range(count)}
    for name, body in bodies.items():
        (folder / name).write_bytes(body)
    return bodies


def _commits(backend: LocalBackend) -> List[str]:
    """
    The first word of each write statement the index runs from now on (and of those its
    triggers run).
    """
    seen: List[str] = []

    def trace(statement: str) -> None:
        if statement.split()[0] in ("BEGIN", "COMMIT", "INSERT"):
            seen.append(statement.split()[0])

    backend.index._connect().set_trace_callback(trace)
    return seen


@pytest_twisted.ensureDeferred
async def test_first_listing(backend: LocalBackend, tmp_path: Path, hashed: List[str]) -> None:
    """
    Several files read at once get each the MD5 of its own bytes, and their rows are written in
    one transaction; the next listing reads none of them.
    """
    bodies = _fill(tmp_path / "bucket" / "d", 30)
    commits = _commits(backend)
    page = await backend.list_objects("d/", "/", "", 1000)
    assert [o.key for o in page.objects] == ["d/" + name for name in sorted(bodies)]
    for info in page.objects:
        body = bodies[info.key[2:]]
        assert info.etag == hashlib.md5(body).hexdigest() and info.size == len(body)
        assert info.content_type == "text/plain"
    assert sorted(hashed) == sorted(bodies)
    # One transaction: every INSERT between its BEGIN and COMMIT.
    assert commits[0] == "BEGIN" and commits[-1] == "COMMIT"
    assert commits.count("BEGIN") == 1 and commits.count("COMMIT") == 1
    rows = backend.index.get_many(o.key for o in page.objects)
    assert {key: row.etag for key, row in rows.items()} == {o.key: o.etag for o in page.objects}
    again = await backend.list_objects("d/", "/", "", 1000)
    assert again.objects == page.objects and len(hashed) == len(bodies)
    # Without delimiter and in pages, the same.
    keys = []
    marker = ""
    while True:
        page = await backend.list_objects("", None, marker, 7)
        keys += [o.key for o in page.objects]
        if not page.is_truncated:
            break
        marker = page.objects[-1].key
    assert keys == ["d/" + name for name in sorted(bodies)] and len(hashed) == len(bodies)


@pytest_twisted.ensureDeferred
async def test_changed_between_listings(
    backend: LocalBackend, tmp_path: Path, hashed: List[str]
) -> None:
    folder = tmp_path / "bucket" / "d"
    _fill(folder, 5)
    await backend.list_objects("d/", "/", "", 1000)
    (folder / "f002.txt").write_bytes(b"changed, longer than before")
    os.utime(folder / "f003.txt", ns=(1, 2 * 10**18))
    (folder / "f003.txt").write_bytes(b"same size!")
    os.utime(folder / "f003.txt", ns=(1, 10**18))
    del hashed[:]
    page = await backend.list_objects("d/", "/", "", 1000)
    assert sorted(hashed) == ["f002.txt", "f003.txt"]
    etags = {o.key: o.etag for o in page.objects}
    assert etags["d/f002.txt"] == hashlib.md5(b"changed, longer than before").hexdigest()
    assert etags["d/f003.txt"] == hashlib.md5(b"same size!").hexdigest()
    assert backend.index.get("d/f003.txt").etag == etags["d/f003.txt"]  # type: ignore[union-attr]


@pytest_twisted.ensureDeferred
async def test_changed_while_read(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A file that changes while it is read is listed as read, but nothing is remembered of it:
    the next listing reads it again.
    """
    folder = tmp_path / "bucket" / "d"
    _fill(folder, 3)
    real = localindex.md5_of_file

    def racing(path: str, dir_fd: Optional[int] = None) -> str:
        etag = real(path, dir_fd)
        if path.endswith("f001.txt"):
            (folder / "f001.txt").write_bytes(b"rewritten while read, longer")
        return etag

    monkeypatch.setattr(localindex, "md5_of_file", racing)
    page = await backend.list_objects("d/", "/", "", 1000)
    assert len(page.objects) == 3
    assert backend.index.get("d/f001.txt") is None
    assert backend.index.get("d/f000.txt") is not None
    monkeypatch.setattr(localindex, "md5_of_file", real)
    page = await backend.list_objects("d/", "/", "", 1000)
    assert page.objects[1].etag == hashlib.md5(b"rewritten while read, longer").hexdigest()


@pytest_twisted.ensureDeferred
async def test_directory_replaced_while_read(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Files are read by name in the directory as opened: if another directory takes its place
    meanwhile, no row is written, as the rows would describe files no longer at those keys.
    """
    folder = tmp_path / "bucket" / "d"
    _fill(folder, 3)
    real = localindex.md5_of_file

    def replacing(path: str, dir_fd: Optional[int] = None) -> str:
        etag = real(path, dir_fd)
        if not (tmp_path / "old").exists():
            folder.rename(tmp_path / "old")
            _fill(folder, 3)
        return etag

    monkeypatch.setattr(localindex, "md5_of_file", replacing)
    page = await backend.list_objects("d/", "/", "", 1000)
    assert len(page.objects) == 3
    assert backend.index.get_many(o.key for o in page.objects) == {}


@pytest_twisted.ensureDeferred
async def test_gone_while_read(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A file removed after the directory was read is left out, as before; the others are
    listed and remembered.
    """
    folder = tmp_path / "bucket" / "d"
    _fill(folder, 4)
    real = localindex.md5_of_file

    def removing(path: str, dir_fd: Optional[int] = None) -> str:
        if path.endswith("f002.txt"):
            (folder / "f002.txt").unlink()
        return real(path, dir_fd)

    monkeypatch.setattr(localindex, "md5_of_file", removing)
    page = await backend.list_objects("d/", "/", "", 1000)
    assert [o.key for o in page.objects] == ["d/f000.txt", "d/f001.txt", "d/f003.txt"]
    assert sorted(backend.index.get_many(o.key for o in page.objects)) == [
        "d/f000.txt", "d/f001.txt", "d/f003.txt",
    ]


@pytest_twisted.ensureDeferred
async def test_replaced_by_a_link_while_read(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A file replaced by a symbolic link (to a file outside the bucket) after the directory was
    read is not followed: it is left out, as a file gone, and the outside file is never read.
    """
    folder = tmp_path / "bucket" / "d"
    _fill(folder, 3)
    outside = tmp_path / "secret"
    outside.write_bytes(b"not yours")
    real = localindex.md5_of_file

    def swapping(path: str, dir_fd: Optional[int] = None) -> str:
        if path.endswith("f001.txt"):
            (folder / "f001.txt").unlink()
            (folder / "f001.txt").symlink_to(outside)
        return real(path, dir_fd)

    monkeypatch.setattr(localindex, "md5_of_file", swapping)
    page = await backend.list_objects("d/", "/", "", 1000)
    assert [o.key for o in page.objects] == ["d/f000.txt", "d/f002.txt"]
    assert "d/f001.txt" not in backend.index.get_many(["d/f001.txt"])


@pytest_twisted.ensureDeferred
async def test_unreadable(
    backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A file that cannot be read fails the listing, as before, with the error reading it.
    """
    _fill(tmp_path / "bucket" / "d", 3)
    real = localindex.md5_of_file

    def refusing(path: str, dir_fd: Optional[int] = None) -> str:
        if path.endswith("f001.txt"):
            raise PermissionError(13, "Permission denied", path)
        return real(path, dir_fd)

    monkeypatch.setattr(localindex, "md5_of_file", refusing)
    with pytest.raises(PermissionError):
        await backend.list_objects("d/", "/", "", 1000)


def test_md5_of_file(tmp_path: Path) -> None:
    """
    Small and large files, and empty ones, by path or by name in an open directory.
    """
    bodies = {"empty": b"", "small": b"x" * 7, "large": os.urandom(3 * 1024 * 1024 + 5)}
    for name, body in bodies.items():
        (tmp_path / name).write_bytes(body)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name, body in bodies.items():
            assert localindex.md5_of_file(str(tmp_path / name)) == hashlib.md5(body).hexdigest()
            assert localindex.md5_of_file(name, fd) == hashlib.md5(body).hexdigest()
    finally:
        os.close(fd)
