"""
Tests of :mod:`gateway.backends.localwalk` on folders larger than one batch, where entries are
drawn from a heap rather than sorted: every page of every walk is the page that S3's order of
the same keys gives (L{gateway.listing.paginate} over the sorted keys), whatever the marker.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import pytest

from gateway.backends import localfolders, localwalk
from gateway.backends.localindex import IndexRow, ObjectIndex
from gateway.backends.localnames import NameCache, SortedNames
from gateway.listing import paginate
from gateway.model import ObjectInfo

#: Names that sort differently as a directory (``a/``) and as a file: ``a-b`` and ``a.b`` sort
#: before ``a/``, ``a0`` after it.
TRICKY_FILES = ["a-b", "a.b", "a0", "a\u00e9", "b\x01", "c&<d>"]


def make_tree(root: Path, big: int) -> List[str]:
    """
    Files and folders under C{root}; the keys a listing must show, in S3 order.
    """
    keys = ["top"]
    for i in range(big):
        keys.append(f"big/{i:04d}")
    keys += [f"big/{name}" for name in TRICKY_FILES]
    keys += ["big/a/x", "big/a/y/z", "big/sub/1", "big/sub/2"]
    for key in keys:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(key.encode("utf-8"))
    # Not listed: a name no key can have, and the reserved folder.
    (root / "big" / "back\\slash").write_bytes(b"")
    (root / ".s3gateway").mkdir()
    (root / ".s3gateway" / "f").write_bytes(b"")
    return sorted(keys)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Tuple[Path, ObjectIndex, List[str]]:  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("walk")
    root = base / "bucket"
    root.mkdir()
    keys = make_tree(root, 1200)
    index = ObjectIndex(str(base / "index.sqlite3"))
    yield root, index, keys
    index.close()


def all_pages(
    entries_after: Callable[[str], Iterator[ObjectInfo]],
    prefix: str, delimiter: Optional[str], start_after: str, size: int,
) -> Tuple[List[str], List[str]]:
    """
    The keys and common prefixes of every page, from the page after C{start_after} on;
    C{entries_after(marker)} gives the entries a page is cut from.
    """
    keys: List[str] = []
    prefixes: List[str] = []
    marker = start_after
    while True:
        page = paginate(entries_after(marker), prefix, delimiter, marker, size)
        keys += [info.key for info in page.objects]
        prefixes += list(page.common_prefixes)
        if not page.is_truncated:
            return keys, prefixes
        assert page.next_marker is not None
        marker = page.next_marker


def walk_pages(
    root: Path, index: ObjectIndex, prefix: str, delimiter: Optional[str], start_after: str, size: int
) -> Tuple[List[str], List[str]]:
    return all_pages(
        lambda marker: localwalk.walk(index, str(root), prefix, delimiter == "/", marker),
        prefix, delimiter, start_after, size,
    )


def expected_pages(
    all_keys: List[str], prefix: str, delimiter: Optional[str], start_after: str, size: int
) -> Tuple[List[str], List[str]]:
    infos = [ObjectInfo(key=k, size=0, etag="", last_modified=0) for k in all_keys]
    return all_pages(lambda marker: iter(infos), prefix, delimiter, start_after, size)


#: Listings (prefix, delimiter) and markers, every page of which is checked.
LISTINGS = [("", None), ("", "/"), ("big/", None), ("big/", "/"), ("big/a", "/"), ("big/0", None)]
MARKERS = ["", "big/0599", "big/0599x", "big/a", "big/a-", "big/a/", "big/a/x", "big/a/y/", "big/b"]


@pytest.mark.parametrize("prefix, delimiter", LISTINGS)
@pytest.mark.parametrize("start_after", MARKERS)
@pytest.mark.parametrize("size", [1000, 333])
def test_pages_in_s3_order(tree, prefix, delimiter, start_after, size) -> None:  # type: ignore[no-untyped-def]
    root, index, keys = tree
    index.large_folders = NameCache(max_bytes=0)  # nothing kept: every page reads the folder
    assert walk_pages(root, index, prefix, delimiter, start_after, size) == expected_pages(
        keys, prefix, delimiter, start_after, size
    )


@pytest.mark.parametrize("prefix, delimiter", LISTINGS)
@pytest.mark.parametrize("start_after", MARKERS)
def test_pages_from_kept_names_in_s3_order(  # type: ignore[no-untyped-def]
    tree, monkeypatch, prefix, delimiter, start_after
) -> None:
    """
    The same pages when the large folder's names are kept from the first page that continues
    a walk into it (the folder taken as settled), and every later page starts from them.
    """
    monkeypatch.setattr(localfolders, "SETTLED", -1.0)
    root, index, keys = tree
    index.large_folders = NameCache()
    assert walk_pages(root, index, prefix, delimiter, start_after, 333) == expected_pages(
        keys, prefix, delimiter, start_after, 333
    )
    if prefix in ("big/", "big/0") or (prefix, delimiter) == ("", None):
        assert len(index.large_folders) == 1  # listings of over a page of the large folder


def test_kept_names_follow_the_folder(  # type: ignore[no-untyped-def]
    tmp_path: Path, monkeypatch
) -> None:
    """
    Pages after the first that continued a walk into a large folder do not read it again while
    it is unchanged; a file added (which changes the folder's times) is listed by the next page.
    """
    monkeypatch.setattr(localfolders, "SETTLED", -1.0)
    big = tmp_path / "big"
    big.mkdir()
    for i in range(600):
        (big / f"{i:04d}").write_bytes(b"")
    index = ObjectIndex(str(tmp_path / "index.sqlite3"))
    try:
        def page(marker: str) -> List[str]:
            entries = localwalk.walk(index, str(tmp_path), "big/", True, marker, 101)
            return [info.key for info in paginate(entries, "big/", "/", marker, 100).objects]

        assert page("big/0099")[0] == "big/0100"
        assert len(index.large_folders) == 1

        def unread(*args: object) -> None:
            raise AssertionError("the folder was read again")

        monkeypatch.setattr(localwalk, "_entries_in_order", unread)
        monkeypatch.setattr(localwalk, "_sorted_names", unread)
        assert page("big/0199") == [f"big/{i:04d}" for i in range(200, 300)]
        (big / "0250x").write_bytes(b"")
        os.utime(big, ns=(1, 1))
        monkeypatch.undo()
        monkeypatch.setattr(localfolders, "SETTLED", -1.0)
        assert "big/0250x" in page("big/0199")
    finally:
        index.close()


def test_name_cache_keeps_the_most_recently_used() -> None:
    """
    Kept names are handed out only for the identity they were read with, and the least
    recently used go first past the limit; names over the limit alone are never kept.
    """
    def names(identity: int, count: int) -> SortedNames:
        return SortedNames((identity, 0, 0, 0, 0), [f"{i:06d}" for i in range(count)])

    one = names(1, 1000)
    cache = NameCache(max_bytes=3 * one.weight)
    for number in (1, 2, 3):
        cache.put((f"/d{number}", ""), names(number, 1000))
    assert cache.get(("/d1", ""), (1, 0, 0, 0, 0)) is not None  # now the most recently used
    cache.put(("/d4", ""), names(4, 1000))
    assert cache.get(("/d2", ""), (2, 0, 0, 0, 0)) is None
    assert all(cache.get((f"/d{n}", ""), (n, 0, 0, 0, 0)) is not None for n in (1, 3, 4))
    assert cache.get(("/d1", "other/"), (1, 0, 0, 0, 0)) is None  # another key prefix
    assert cache.get(("/d1", ""), (9, 0, 0, 0, 0)) is None  # changed since: dropped
    assert len(cache) == 2
    cache.put(("/huge", ""), names(5, 10000))
    assert cache.get(("/huge", ""), (5, 0, 0, 0, 0)) is None and cache.weight <= 3 * one.weight
    assert one[0] == "000000" and one[999] == "000999" and len(one) == 1000


def test_listed_values(tree) -> None:  # type: ignore[no-untyped-def]
    root, index, keys = tree
    page = paginate(localwalk.walk(index, str(root), "big/", False, ""), "big/", None, "", 1000)
    for info in page.objects:
        assert info.size == len(info.key.encode("utf-8"))
        assert info.last_modified == os.stat(root / info.key).st_mtime_ns / 1e9


@pytest.mark.parametrize(
    "row",
    [
        IndexRow(key="k", size=3, mtime_ns=1_500_000_000_123_456_789, etag="e"),
        IndexRow(key="k", size=3, mtime_ns=1, etag="e-2", content_type="text/x", parts_count=2),
        IndexRow(key="k", size=3, mtime_ns=1, etag="e", metadata=json.dumps({"a": "b"})),
        IndexRow(key="k", size=3, mtime_ns=1, etag="e", headers=json.dumps({"cache-control": "x"})),
        IndexRow(key="k", size=3, mtime_ns=1, etag="e", tags=json.dumps({"t": "v"})),
        IndexRow(key="k", size=3, mtime_ns=1, etag="e-2", parts_count=2, part_sizes="[1, 2]"),
    ],
)
def test_row_info(row: IndexRow) -> None:
    """
    L{IndexRow.info} skips parsing the JSON columns that hold nothing: its info is the one
    that parsing every column gives.
    """
    assert row.info() == ObjectInfo(
        key=row.key,
        size=row.size,
        etag=row.etag,
        last_modified=row.mtime_ns / 1e9,
        content_type=row.content_type,
        metadata=json.loads(row.metadata),
        headers=json.loads(row.headers),
        parts_count=row.parts_count,
        tags=json.loads(row.tags),
        part_sizes=json.loads(row.part_sizes),
    )


def test_reads_little(tmp_path: Path) -> None:
    """
    A walk reads little when it reads one small directory: with the delimiter whatever its
    subdirectories, without it only if it has none; a prefix no directory holds reads nothing.
    """
    (tmp_path / "leaf").mkdir()
    (tmp_path / "leaf" / "f").write_bytes(b"")
    (tmp_path / "branch" / "sub").mkdir(parents=True)
    big = tmp_path / "big"
    big.mkdir()
    for i in range(200):
        (big / (f"{i:03d}" + "x" * 100)).write_bytes(b"")
    assert os.stat(big).st_size > localwalk.SMALL_DIRECTORY
    root = str(tmp_path)
    assert localwalk.reads_little(root, "leaf/", False)
    assert localwalk.reads_little(root, "leaf/f", True)
    assert localwalk.reads_little(root, "branch/", True)
    assert not localwalk.reads_little(root, "branch/", False)
    assert not localwalk.reads_little(root, "big/", True)
    assert not localwalk.reads_little(root, "big/0", False)
    assert localwalk.reads_little(root, "missing/", False)
    assert localwalk.reads_little(root, "leaf/f/", False)  # a file, not a directory
    assert localwalk.reads_little(root, "../", False)  # no key can start so


def test_walked_subdirectory_turned_link(tmp_path: Path) -> None:
    """
    A subdirectory found by the walk is read only if it still is a directory: one replaced by a
    symbolic link in the meantime is not followed.
    """
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret").write_bytes(b"s")
    (tmp_path / "d").symlink_to(tmp_path / "elsewhere")
    index = ObjectIndex(str(tmp_path / "index.sqlite3"))
    try:
        entries = localwalk._walk_directory(
            index, str(tmp_path / "d"), "d/", "", False, "", 100, True, subdirectory=True
        )
        assert list(entries) == []
    finally:
        index.close()
