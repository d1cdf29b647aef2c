"""
The local-directory backend: the contract, and what only a filesystem has (paths that must not
escape the root, temporary files, files put there by other means, the metadata index, lazy walks).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sqlite3
import stat
from pathlib import Path
from typing import List, Optional

import pytest
import pytest_twisted

from gateway.backends import localwalk
from gateway.backends.aiosync import KernelSyncs
from gateway.backends.linkfree import LinkFreeOpener
from gateway.backends.local import LocalBackend
from gateway.interfaces import (
    BackendError,
    BackendUnavailable,
    InvalidObjectKey,
    NoSuchObject,
    NoSuchUpload,
    ObjectKeyTooLong,
)
from gateway.model import WriteMetadata
from tests.backends.contract import BackendContract, get, metadata_for, names, put, refused
from tests.backends.contract_copy import ServerSideCopyContract
from tests.backends.support import leftover_temporary_files


def _reactor():  # type: ignore[no-untyped-def]
    from twisted.internet import reactor

    return reactor


def make(  # type: ignore[no-untyped-def]
    tmp_path, read_only: bool = False, kernel_syncs: Optional[KernelSyncs] = None
) -> LocalBackend:
    root = tmp_path / "bucket"
    root.mkdir(exist_ok=True)
    return LocalBackend(
        str(root), str(tmp_path / "index" / "bucket.sqlite3"), _reactor(), read_only=read_only,
        kernel_syncs=kernel_syncs,
    )


class TestLocalContract(BackendContract, ServerSideCopyContract):
    @pytest.fixture(params=["commit thread", "kernel fsyncs"])
    def backend(self, request, tmp_path) -> LocalBackend:  # type: ignore[no-untyped-def]
        """
        Small PUTs committed both ways: on the commit thread, and on the reactor with the
        kernel's fsyncs (L{gateway.backends.reactorcommits}), which is how the gateway runs.
        """
        if request.param == "commit thread":
            return make(tmp_path)
        return make(tmp_path, kernel_syncs=request.getfixturevalue("kernel_syncs"))

    @pytest.fixture
    def read_only_backend(self, tmp_path) -> LocalBackend:  # type: ignore[no-untyped-def]
        return make(tmp_path, read_only=True)


@pytest.fixture
def backend(tmp_path) -> LocalBackend:  # type: ignore[no-untyped-def]
    return make(tmp_path)


@pytest.fixture
def root(tmp_path) -> Path:  # type: ignore[no-untyped-def]
    return tmp_path / "bucket"


def hand_overs(monkeypatch: pytest.MonkeyPatch, backend: LocalBackend) -> List[str]:
    """
    The names of the functions C{backend} hands to its thread pool from now on.
    """
    calls: List[str] = []
    real_run = backend._run

    def counting_run(function, *args):  # type: ignore[no-untyped-def]
        calls.append(function.__name__)
        return real_run(function, *args)

    monkeypatch.setattr(backend, "_run", counting_run)
    return calls


def index_queries(monkeypatch: pytest.MonkeyPatch, backend: LocalBackend) -> List[int]:
    """
    How many keys each index lookup of C{backend} asks for, from now on.
    """
    queries: List[int] = []
    real = backend.index.get_many

    def counting(keys):  # type: ignore[no-untyped-def]
        keys = list(keys)
        queries.append(len(keys))
        return real(keys)

    monkeypatch.setattr(backend.index, "get_many", counting)
    return queries


def tree(root: Path) -> List[str]:
    """
    Every file and directory under C{root}, relative, sorted.
    """
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# Keys that must never become paths.

ESCAPING_KEYS = [
    "../x",
    "a/../../x",
    "a/..",
    "./x",
    "a/./b",
    "/x",
    "/etc/passwd",
    "a//b",
    "a\\..\\x",
    "a\x00b",
    ".s3gateway/tmp/x",
    ".s3gateway/",
    "/",
    "",
]


@pytest.mark.parametrize("key", ESCAPING_KEYS)
@pytest_twisted.ensureDeferred
async def test_escaping_keys_refused(backend: LocalBackend, root: Path, key: str) -> None:
    await refused(backend.start_write(key), InvalidObjectKey)
    await refused(backend.stat(key), InvalidObjectKey)
    await refused(backend.open(key), InvalidObjectKey)
    await refused(backend.delete(key), InvalidObjectKey)
    await refused(backend.complete_upload("u", key, [], WriteMetadata(etag="e")), InvalidObjectKey)
    assert not (root.parent / "x").exists()


@pytest_twisted.ensureDeferred
async def test_long_names_refused(backend: LocalBackend) -> None:
    await refused(backend.start_write("a" * 256), ObjectKeyTooLong)
    await refused(backend.start_write("dir/" + "\u00e9" * 128), ObjectKeyTooLong)
    await refused(backend.start_write("/".join(["abcdefghi"] * 103)), ObjectKeyTooLong)
    await put(backend, "a" * 255, b"ok")
    await put(backend, "/".join(["abcdefghi"] * 102) + "/x", b"ok")


@pytest.fixture(params=["openat2", "no openat2"])
def either_opener(  # type: ignore[no-untyped-def]
    request, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> LocalBackend:
    """
    A backend that opens files with C{openat2} where this system has it, and one that takes
    the long way as on a kernel without it (L{gateway.backends.linkfree}).
    """
    if request.param == "no openat2":
        without = classmethod(lambda cls, flags: cls(flags, None))
        monkeypatch.setattr(LinkFreeOpener, "here", without)
    return make(tmp_path)


@pytest_twisted.ensureDeferred
async def test_symlink_out_of_root_refused(
    either_opener: LocalBackend,
    tmp_path: Path,
    root: Path,
) -> None:
    backend = either_opener
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (root / "link").symlink_to(outside)
    (root / "leak").symlink_to(outside / "secret")
    await refused(backend.stat("link/secret"), InvalidObjectKey)
    await refused(backend.open("link/secret"), InvalidObjectKey)
    await refused(backend.open("leak"), InvalidObjectKey)
    await refused(backend.start_write("link/new"), InvalidObjectKey)
    await refused(backend.start_write("link/deeper/new"), InvalidObjectKey)
    await refused(backend.delete("link/secret"), InvalidObjectKey)
    assert await names(backend, "link/") == ([], [])
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    # Neither link is listed: only regular files and directories are.
    assert await names(backend) == ([], [])


@pytest_twisted.ensureDeferred
async def test_symlink_inside_root_served(either_opener: LocalBackend, root: Path) -> None:
    backend = either_opener
    await put(backend, "real/file", b"data")
    (root / "alias").symlink_to(root / "real" / "file")
    (root / "folder-alias").symlink_to(root / "real")
    assert await get(backend, "alias") == b"data"
    assert await get(backend, "folder-alias/file") == b"data"
    await refused(backend.open("folder-alias/missing"), NoSuchObject)
    await refused(backend.open("real/file/below"), NoSuchObject)
    assert await names(backend) == (["real/file"], [])


@pytest_twisted.ensureDeferred
async def test_clashes(backend: LocalBackend) -> None:
    await put(backend, "a", b"file")
    error = await refused(backend.start_write("a/b"), InvalidObjectKey)
    assert "'a' is an object" in str(error)
    await refused(backend.start_write("a/"), InvalidObjectKey)
    await put(backend, "d/e", b"file")
    error = await refused(backend.start_write("d"), InvalidObjectKey)
    assert "'d/' is a folder" in str(error)
    # A clash that appears while the body is being written is caught at commit.
    writer = await backend.start_write("x/y")
    writer.write(b"late")
    await put(backend, "x", b"first")
    await refused(writer.commit(metadata_for(b"late")), InvalidObjectKey)
    assert await get(backend, "x") == b"first"
    writer = await backend.start_write("p/q/r")
    writer.write(b"late")
    await put(backend, "p", b"first")
    error = await refused(writer.commit(metadata_for(b"late")), InvalidObjectKey)
    assert "'p' is an object" in str(error)
    assert await names(backend) == (["a", "d/e", "p", "x"], [])


# Temporary files.


@pytest_twisted.ensureDeferred
async def test_temporary_file_lifecycle(backend: LocalBackend, root: Path) -> None:
    writer = await backend.start_write("k")
    writer.write(b"abc")
    temps = leftover_temporary_files(root)
    assert len(temps) == 1 and open(temps[0], "rb").read() == b"abc"
    assert not (root / "k").exists()
    assert await names(backend, delimiter="/") == ([], [])
    await writer.abort()
    assert leftover_temporary_files(root) == []
    await put(backend, "k", b"done")
    assert leftover_temporary_files(root) == []
    assert (root / "k").read_bytes() == b"done"


@pytest_twisted.ensureDeferred
async def test_crash_leftovers_not_listed(backend: LocalBackend, root: Path) -> None:
    await put(backend, "k", b"x")
    # What a crash mid-upload leaves: a temporary file and a part.
    (root / ".s3gateway" / "tmp" / "0123abcd").write_bytes(b"partial")
    (root / ".s3gateway" / "uploads" / "u1").mkdir(parents=True)
    (root / ".s3gateway" / "uploads" / "u1" / "1").write_bytes(b"part")
    assert await names(backend) == (["k"], [])
    assert await names(backend, delimiter="/") == (["k"], [])
    assert await names(backend, ".s3") == ([], [])
    assert await names(backend, ".s3gateway/") == ([], [])


@pytest_twisted.ensureDeferred
async def test_failed_commit_removes_temporary(backend: LocalBackend, root: Path) -> None:
    writer = await backend.start_write("folder/")
    writer.write(b"body")
    await refused(writer.commit(metadata_for(b"body")), InvalidObjectKey)
    writer = await backend.start_write("q/r")
    writer.write(b"z")
    await put(backend, "q", b"clash")
    await refused(writer.commit(metadata_for(b"z")), InvalidObjectKey)
    await writer.abort()
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_modes(backend: LocalBackend, root: Path) -> None:
    old = os.umask(0o022)
    try:
        await put(backend, "dir/sub/file", b"x")
        await put(backend, "marker/", b"")
    finally:
        os.umask(old)
    assert stat.S_IMODE((root / "dir" / "sub" / "file").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "dir" / "sub").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "dir").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "marker").stat().st_mode) == 0o755


# Files put there by other means, and the index.



@pytest_twisted.ensureDeferred
async def test_foreign_file_md5(backend: LocalBackend, root: Path, hashing: List[str]) -> None:
    (root / "docs").mkdir()
    (root / "docs" / "notes.txt").write_bytes(b"hello")
    page = await backend.list_objects("", None, "", 10)
    (info,) = page.objects
    assert info.key == "docs/notes.txt" and info.size == 5
    assert info.etag == hashlib.md5(b"hello").hexdigest()
    assert info.content_type == "text/plain"
    assert await backend.stat("docs/notes.txt") == info
    assert await get(backend, "docs/notes.txt") == b"hello"
    await backend.list_objects("", None, "", 10)
    assert len(hashing) == 1
    # Remembered across instances: it is in the index.
    other = make(root.parent)
    assert (await other.stat("docs/notes.txt")).etag == info.etag
    assert len(hashing) == 1
    # A change of size, or of mtime only, makes it compute again.
    (root / "docs" / "notes.txt").write_bytes(b"hello, world")
    assert (await backend.stat("docs/notes.txt")).etag == hashlib.md5(b"hello, world").hexdigest()
    assert len(hashing) == 2
    (root / "docs" / "notes.txt").write_bytes(b"HELLO, WORLD")
    os.utime(root / "docs" / "notes.txt", ns=(1, 10**18))
    info = await backend.stat("docs/notes.txt")
    assert info.etag == hashlib.md5(b"HELLO, WORLD").hexdigest()
    assert info.last_modified == 1e9
    assert len(hashing) == 3


@pytest_twisted.ensureDeferred
async def test_unknown_content_type(backend: LocalBackend, root: Path) -> None:
    (root / "blob").write_bytes(b"\x00")
    assert (await backend.stat("blob")).content_type == "binary/octet-stream"


@pytest_twisted.ensureDeferred
async def test_put_file_changed_by_other_means(
    backend: LocalBackend,
    root: Path,
    hashing: List[str],
) -> None:
    await put(backend, "k.json", b"{}", content_type="application/x-mine", metadata={"a": "b"})
    assert (await backend.stat("k.json")).content_type == "application/x-mine"
    assert hashing == []
    (root / "k.json").write_bytes(b'{"changed": 1}')
    info = await backend.stat("k.json")
    assert info.etag == hashlib.md5(b'{"changed": 1}').hexdigest()
    assert info.content_type == "application/json" and dict(info.metadata) == {}


@pytest_twisted.ensureDeferred
async def test_metadata_survives_restart(
    backend: LocalBackend,
    root: Path,
    hashing: List[str],
) -> None:
    info = await put(
        backend,
        "a/b",
        b"body",
        content_type="image/x-test",
        metadata={"k": "v"},
        headers={"cache-control": "no-cache"},
    )
    await backend.close()
    other = make(root.parent)
    assert await other.stat("a/b") == info
    page = await other.list_objects("", None, "", 10)
    assert page.objects == (info,)
    assert hashing == []


@pytest_twisted.ensureDeferred
async def test_listing_rows_fetched_per_directory(  # type: ignore[no-untyped-def]
    backend: LocalBackend,
    root: Path,
    monkeypatch,
) -> None:
    for i in range(30):
        await put(backend, f"d/{i:02}", b"x")
    queries = index_queries(monkeypatch, backend)
    page = await backend.list_objects("d/", "/", "", 100)
    assert len(page.objects) == 30
    assert queries == [31]  # the 30 files and the folder's own marker, in one query


@pytest_twisted.ensureDeferred
async def test_listing_rows_fetched_for_the_page(  # type: ignore[no-untyped-def]
    backend: LocalBackend,
    monkeypatch,
) -> None:
    """
    The walk of a large folder asks the index for the rows of the entries the page takes (and
    the one more that proves it truncated), not for a whole batch. (A small folder is read whole,
    to be kept: tests/backends/test_localfolders.py; this one counts as large.)
    """
    for i in range(30):
        await put(backend, f"d/{i:02}", b"x")
    monkeypatch.setattr(localwalk, "SMALL_DIRECTORY", 0)
    queries = index_queries(monkeypatch, backend)
    page = await backend.list_objects("d/", None, "", 10)
    assert [o.key for o in page.objects] == [f"d/{i:02}" for i in range(10)]
    assert page.is_truncated
    assert queries == [12]  # 10 files, the 11th, and the folder's own marker


# Where a listing runs.


@pytest_twisted.ensureDeferred
async def test_small_folder_listed_at_once(backend: LocalBackend) -> None:
    """
    A listing that reads one small directory runs on the reactor thread: its result is there
    when C{list_objects} returns.
    """
    for i in range(5):
        await put(backend, f"d/{i}", b"x")
    await put(backend, "d/sub/deep", b"x")
    listing = backend.list_objects("d/", "/", "", 100)
    assert listing.called
    page = await listing
    assert [o.key for o in page.objects] == [f"d/{i}" for i in range(5)]
    assert page.common_prefixes == ("d/sub/",)
    # Without the delimiter, the walk would go down into d/sub: not at once.
    flat = backend.list_objects("d/", None, "", 100)
    assert not flat.called
    page = await flat
    assert [o.key for o in page.objects] == [f"d/{i}" for i in range(5)] + ["d/sub/deep"]
    # A folder without subfolders is read alone, delimiter or not.
    assert backend.list_objects("d/sub/", None, "", 100).called


@pytest_twisted.ensureDeferred
async def test_large_folder_listed_in_thread(  # type: ignore[no-untyped-def]
    backend: LocalBackend,
    root: Path,
) -> None:
    """
    A directory larger than L{localwalk.SMALL_DIRECTORY} is listed in a thread.
    """
    await put(backend, "d/first", b"x")
    names_ = [f"{i:03d}-" + "n" * 100 for i in range(120)]
    for name in names_:
        await put(backend, f"d/{name}", b"x")
    assert os.stat(root / "d").st_size > localwalk.SMALL_DIRECTORY
    listing = backend.list_objects("d/", "/", "", 1000)
    assert not listing.called
    page = await listing
    assert [o.key for o in page.objects] == [f"d/{n}" for n in names_] + ["d/first"]


@pytest_twisted.ensureDeferred
async def test_listing_that_must_hash_goes_to_thread(
    backend: LocalBackend,
    root: Path,
    hashing: List[str],
) -> None:
    """
    A file put there by other means, whose ETag means reading it, is never read on the reactor
    thread: the listing starts again in a thread. Once its MD5 is remembered, the folder is
    listed at once again.
    """
    await put(backend, "d/a", b"x")
    (root / "d" / "b").write_bytes(b"hello")
    listing = backend.list_objects("d/", "/", "", 100)
    assert not listing.called
    page = await listing
    assert [(o.key, o.etag) for o in page.objects] == [
        ("d/a", hashlib.md5(b"x").hexdigest()),
        ("d/b", hashlib.md5(b"hello").hexdigest()),
    ]
    assert len(hashing) == 1
    again = backend.list_objects("d/", "/", "", 100)
    assert again.called
    assert (await again) == page


@pytest_twisted.ensureDeferred
async def test_listing_at_once_errors(backend: LocalBackend, root: Path) -> None:
    """
    A listing run at once fails as one in a thread does: the bucket's directory missing is
    L{BackendUnavailable}.
    """
    await put(backend, "a", b"x")
    shutil.rmtree(root)
    await refused(backend.list_objects("", "/", "", 10), BackendUnavailable)


@pytest_twisted.ensureDeferred
async def test_unlistable_names(backend: LocalBackend, root: Path) -> None:
    (root / "back\\slash").write_bytes(b"")
    os.mkdir(os.path.join(os.fsencode(root), b"bad\xff"))
    (root / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(root / "fifo")
    (root / "good").write_bytes(b"")
    assert await names(backend) == (["good"], [])
    assert await names(backend, delimiter="/") == (["good"], [])
    await refused(backend.stat("fifo"), NoSuchObject)
    await refused(backend.open("fifo"), NoSuchObject)


# Walking.


@pytest.fixture
def scans(monkeypatch) -> List[str]:  # type: ignore[no-untyped-def]
    """
    The directories the backend reads (by path, also those it reads through a descriptor).
    """
    scanned: List[str] = []
    real = os.scandir

    def counting(path):  # type: ignore[no-untyped-def]
        if isinstance(path, int):
            scanned.append(os.readlink(f"/proc/self/fd/{path}"))
        else:
            scanned.append(str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    return scanned


async def make_tree(backend: LocalBackend) -> None:
    for top in ("a", "m", "z"):
        for sub in ("1", "2"):
            await put(backend, f"{top}/{sub}/deep/file", b"x")
    await put(backend, "top", b"x")


@pytest_twisted.ensureDeferred
async def test_delimiter_listing_reads_one_directory(
    backend: LocalBackend,
    root: Path,
    scans: List[str],
) -> None:
    await make_tree(backend)
    del scans[:]
    assert await names(backend, delimiter="/") == (["top"], ["a/", "m/", "z/"])
    assert scans == [str(root)]
    del scans[:]
    assert await names(backend, "m/", "/") == ([], ["m/1/", "m/2/"])
    assert scans == [str(root / "m")]
    del scans[:]
    assert await names(backend, "m/1", "/") == ([], ["m/1/"])
    assert scans == [str(root / "m")]


@pytest_twisted.ensureDeferred
async def test_listing_stops_early(backend: LocalBackend, root: Path, scans: List[str]) -> None:
    await make_tree(backend)
    del scans[:]
    page = await backend.list_objects("", None, "", 1)
    assert [o.key for o in page.objects] == ["a/1/deep/file"] and page.is_truncated
    # The first file, then the next directory on the way to the second.
    walked = ["", "a", "a/1", "a/1/deep", "a/2", "a/2/deep"]
    assert scans == [str(root / p) if p else str(root) for p in walked]


@pytest_twisted.ensureDeferred
async def test_start_after_skips_subtrees(
    backend: LocalBackend,
    root: Path,
    scans: List[str],
) -> None:
    await make_tree(backend)
    del scans[:]
    page = await backend.list_objects("", None, "m/2/deep/file", 10)
    assert [o.key for o in page.objects] == ["top", "z/1/deep/file", "z/2/deep/file"]
    assert str(root / "a") not in scans and str(root / "m" / "1") not in scans
    assert str(root / "m" / "2" / "deep") in scans


@pytest_twisted.ensureDeferred
async def test_directories_are_common_prefixes(backend: LocalBackend, root: Path) -> None:
    (root / "empty").mkdir()
    (root / "full").mkdir()
    (root / "full" / "f").write_bytes(b"x")
    assert await names(backend, delimiter="/") == ([], ["empty/", "full/"])
    # Without a delimiter an empty directory has no keys, and is no marker either.
    assert await names(backend) == (["full/f"], [])
    await refused(backend.stat("empty/"), NoSuchObject)


@pytest_twisted.ensureDeferred
async def test_sort_order_of_directories(backend: LocalBackend, root: Path) -> None:
    """
    A directory sorts as its name and '/': after 'a-b' and 'a.b', before 'a0'.
    """
    for key in ["a/x", "a-b", "a.b", "a0", "a\u00e9"]:
        await put(backend, key, b"")
    assert await names(backend) == (["a-b", "a.b", "a/x", "a0", "a\u00e9"], [])
    assert await names(backend, delimiter="/") == (["a-b", "a.b", "a0", "a\u00e9"], ["a/"])


@pytest_twisted.ensureDeferred
async def test_other_delimiter(backend: LocalBackend) -> None:
    for key in ["x-1/a", "x-1/b", "x-2", "y"]:
        await put(backend, key, b"")
    assert await names(backend, delimiter="-") == (["y"], ["x-"])
    assert await names(backend, "x-1/", "-") == (["x-1/a", "x-1/b"], [])


# Deleting.


@pytest_twisted.ensureDeferred
async def test_delete_prunes_empty_folders(backend: LocalBackend, root: Path) -> None:
    await put(backend, "keep/", b"")
    await put(backend, "keep/a/b/c", b"x")
    await put(backend, "other/d", b"x")
    await backend.delete("keep/a/b/c")
    assert tree(root / "keep") == []
    assert (root / "keep").is_dir()
    await backend.delete("other/d")
    assert not (root / "other").exists()
    assert root.is_dir()


@pytest_twisted.ensureDeferred
async def test_delete_marker_of_full_folder(backend: LocalBackend, root: Path) -> None:
    await put(backend, "f/", b"")
    await put(backend, "f/x", b"x")
    await backend.delete("f/")
    assert (root / "f" / "x").read_bytes() == b"x"
    assert await names(backend) == (["f/x"], [])
    await backend.delete("f/x")
    assert not (root / "f").exists()


@pytest_twisted.ensureDeferred
async def test_delete_folder_key_of_plain_directory(backend: LocalBackend, root: Path) -> None:
    await put(backend, "d/x", b"x")
    await backend.delete("d")
    assert (root / "d" / "x").exists()


# Multipart.


@pytest.mark.parametrize("upload_id", ["../x", "a/b", "", "a b", ".", "x\n"])
@pytest_twisted.ensureDeferred
async def test_bad_upload_ids(backend: LocalBackend, upload_id: str) -> None:
    await refused(backend.start_part_write(upload_id, 1), NoSuchUpload)
    completed = backend.complete_upload(upload_id, "k", [(1, 1)], WriteMetadata(etag="e"))
    await refused(completed, NoSuchUpload)
    await backend.abort_upload(upload_id)


@pytest_twisted.ensureDeferred
async def test_bad_part_numbers(backend: LocalBackend) -> None:
    await refused(backend.start_part_write("u", 0), BackendError)
    await refused(backend.start_part_write("u", 10001), BackendError)


async def write_part(backend: LocalBackend, upload_id: str, number: int, body: bytes) -> None:
    writer = await backend.start_part_write(upload_id, number)
    writer.write(body)
    await writer.commit(metadata_for(body))


@pytest_twisted.ensureDeferred
async def test_part_files(backend: LocalBackend, root: Path) -> None:
    await write_part(backend, "up_1", 1, b"one")
    await write_part(backend, "up_1", 7, b"seven")
    uploads = root / ".s3gateway" / "uploads"
    assert tree(uploads) == ["up_1", "up_1/1", "up_1/7"]
    await backend.complete_upload("up_1", "joined", [(1, 3)], WriteMetadata(etag="e-1"))
    assert tree(uploads) == []
    assert leftover_temporary_files(root) == []
    await write_part(backend, "up_2", 1, b"one")
    await backend.abort_upload("up_2")
    assert tree(uploads) == []


@pytest_twisted.ensureDeferred
async def test_part_temporary_file_removed_only_when_not_renamed(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.backends import localfs

    removed: List[str] = []
    real_remove = localfs.remove_file

    def recording(path: str) -> None:
        removed.append(path)
        real_remove(path)

    monkeypatch.setattr(localfs, "remove_file", recording)
    await write_part(backend, "up", 1, b"one")
    assert removed == []  # the rename took the temporary name: nothing left to remove

    def refused_rename(source: str, target: str) -> None:
        raise PermissionError(errno.EACCES, "refused", target)

    monkeypatch.setattr(os, "replace", refused_rename)
    with pytest.raises(PermissionError):
        await write_part(backend, "up", 2, b"two")
    assert [os.path.dirname(os.path.dirname(path)) for path in removed] == [
        str(root / ".s3gateway" / "tmp")
    ]
    assert leftover_temporary_files(root) == []
    assert tree(root / ".s3gateway" / "uploads") == ["up", "up/1"]


@pytest.mark.parametrize("broken", [["copy_file_range"], ["copy_file_range", "sendfile"]])
@pytest_twisted.ensureDeferred
async def test_copy_fallbacks(  # type: ignore[no-untyped-def]
    backend: LocalBackend,
    monkeypatch,
    broken: List[str],
) -> None:
    def unsupported(*args):  # type: ignore[no-untyped-def]
        raise OSError(errno.EXDEV, "cross-device")

    for name in broken:
        monkeypatch.setattr(os, name, unsupported)
    one, two = os.urandom(3_000_000), os.urandom(12345)
    await write_part(backend, "u", 1, one)
    await write_part(backend, "u", 2, two)
    parts = [(1, len(one)), (2, len(two))]
    info = await backend.complete_upload("u", "k", parts, WriteMetadata(etag="x-2"))
    assert info.size == len(one) + len(two)
    assert await get(backend, "k") == one + two


# The root.


@pytest_twisted.ensureDeferred
async def test_missing_root(tmp_path: Path) -> None:
    backend = LocalBackend(str(tmp_path / "gone"), str(tmp_path / "i.sqlite3"), _reactor())
    await refused(backend.stat("k"), BackendUnavailable)
    await refused(backend.list_objects("", None, "", 10), BackendUnavailable)
    await refused(backend.start_write("k"), BackendUnavailable)


@pytest_twisted.ensureDeferred
async def test_root_gone_after_reads(backend: LocalBackend, root: Path) -> None:
    """
    Reads of a root whose path has no link skip its C{stat}; once it is gone, a read still
    fails as L{BackendUnavailable}, not as a missing key. A folder marker too.
    """
    await put(backend, "k", b"x")
    await put(backend, "d/", b"")
    assert await get(backend, "k") == b"x"
    shutil.rmtree(root)
    await refused(backend.open("k"), BackendUnavailable)
    await refused(backend.open("d/"), BackendUnavailable)


@pytest_twisted.ensureDeferred
async def test_root_replaced_by_a_link(backend: LocalBackend, root: Path, tmp_path: Path) -> None:
    """
    A root's path that becomes a link after reads leads where the link does from the next read.
    """
    await put(backend, "k", b"old")
    assert await get(backend, "k") == b"old"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "k").write_bytes(b"new")
    root.rename(tmp_path / "moved")
    root.symlink_to(elsewhere)
    assert await get(backend, "k") == b"new"
    (elsewhere / "k").unlink()
    await refused(backend.open("k"), NoSuchObject)


@pytest_twisted.ensureDeferred
async def test_index_file(backend: LocalBackend, tmp_path: Path) -> None:
    await put(backend, "k", b"x")
    index = tmp_path / "index" / "bucket.sqlite3"
    assert index.exists()
    db = sqlite3.connect(str(index))
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = db.execute("SELECT key, size, etag, parts_count FROM objects").fetchall()
    assert rows == [("k", 1, hashlib.md5(b"x").hexdigest(), None)]


@pytest_twisted.ensureDeferred
async def test_known_objects_are_read_on_the_calling_thread(
    backend: LocalBackend, root: Path, hashing: List[str], monkeypatch
) -> None:
    """
    stat and open of an object whose ETag is known answer without a thread; a file put there by
    other means, whose MD5 must be computed, goes to a thread (hashing would block the reactor).
    """
    await put(backend, "known.txt", b"known")
    calls = hand_overs(monkeypatch, backend)
    stat_result = backend.stat("known.txt")
    assert stat_result.called  # fired synchronously: no thread involved
    assert (await stat_result).etag == hashlib.md5(b"known").hexdigest()
    assert await get(backend, "known.txt") == b"known"
    assert calls == []
    (root / "foreign.txt").write_bytes(b"foreign")
    assert (await backend.stat("foreign.txt")).etag == hashlib.md5(b"foreign").hexdigest()
    assert calls == ["stat_now"] and len(hashing) == 1


def test_local_buckets_share_the_process_caches(tmp_path: Path) -> None:
    """
    Every local bucket a registry makes uses the process's one watcher of kept folders and one
    cache of large folders' names, so that one limit bounds what all buckets keep.
    """
    from twisted.internet import reactor

    from gateway.backends import BackendRegistry
    from gateway.model import Connection

    registry = BackendRegistry(str(tmp_path / "data"), reactor)
    backends = []
    for bucket in ("one", "two"):
        (tmp_path / bucket).mkdir()
        backends.append(registry.backend_for(Connection(
            user="u", bucket=bucket, backend="local", settings={"path": str(tmp_path / bucket)},
        )))
    first, second = (backend.index for backend in backends)
    assert first.large_folders is second.large_folders is registry.large_folder_names()
    for index in (first, second):
        index.close()
    syncs = registry.kernel_syncs()
    if syncs is not None:
        syncs.close()
