"""
The local backend's listing walk: a directory tree read lazily, in S3 order.

Each directory is read once, its entries put in the order S3 sorts keys (UTF-8 byte order, a
directory sorting as its name and ``/``) lazily, as the page takes them, and its index rows
fetched in one query per few hundred entries. A file whose index row still matches its size and
mtime is listed from the row alone (L{listed_info}).
With the ``/`` delimiter a subdirectory is yielded as a L{Subtree} instead of being read, so a
delimiter listing reads only the directory it lists. The walk starts at the deepest directory the
prefix names, and never reads a subtree that sorts entirely before the marker.
"""

from __future__ import annotations

import heapq
import os
from itertools import islice
from operator import itemgetter
from typing import Iterable, Iterator, List, Tuple, TypeVar

from gateway.backends.localindex import IndexRow, ObjectIndex
from gateway.backends.localkeys import MAX_KEY_BYTES, RESERVED, is_listable_name, resolve_inside
from gateway.interfaces import InvalidObjectKey
from gateway.listing import Entry, Subtree, sorts_before
from gateway.model import ObjectInfo

#: Entries of one directory whose index rows are fetched in one query.
BATCH = 500

T = TypeVar("T")


def walk(
    index: ObjectIndex, root: str, prefix: str, rollup: bool, start_after: str
) -> Iterator[Entry]:
    """
    The entries under C{root} that may match C{prefix}, in S3 order. Blocks: run it in a thread.

    :param root: the bucket's resolved directory.
    :param rollup: whether the listing's delimiter is ``/``.
    """
    head, slash, name_filter = prefix.rpartition("/")
    segments = head.split("/") if slash else []
    if any(not is_listable_name(s) for s in segments) or segments[:1] == [RESERVED]:
        return
    directory = os.path.join(root, *segments)
    try:
        resolve_inside(root, directory)
    except InvalidObjectKey:
        return
    yield from _walk_directory(index, directory, head + slash, name_filter, rollup, start_after)


def _walk_directory(
    index: ObjectIndex,
    directory: str,
    key_prefix: str,
    name_filter: str,
    rollup: bool,
    start_after: str,
) -> Iterator[Entry]:
    """
    The directory's own folder marker, then its entries whose names start with C{name_filter};
    subdirectories as L{Subtree}s when C{rollup}, else walked.
    """
    marker = key_prefix if key_prefix and not name_filter and key_prefix > start_after else None
    items = _entries_in_order(directory, key_prefix, name_filter, rollup, start_after)
    if items is None:
        return
    first = True
    while True:
        batch = list(islice(items, BATCH))
        if not batch and not first:
            return
        wanted = [key for key, _, is_dir in batch if not is_dir]
        if marker is not None and first:
            wanted.append(marker)
        rows = index.get_many(wanted)
        if marker is not None and first and marker in rows:
            yield rows[marker].info()
        first = False
        for key, entry, is_dir in batch:
            if is_dir and rollup:
                yield Subtree(key)
            elif is_dir:
                yield from _walk_directory(index, entry.path, key, "", False, start_after)
            else:
                try:
                    st = entry.stat(follow_symlinks=False)
                    row = rows.get(key)
                    if row is not None and row.matches(st.st_size, st.st_mtime_ns):
                        yield listed_info(row)
                    else:
                        yield index.file_info(key, entry.path, st, row)
                except FileNotFoundError:
                    continue  # removed since the directory was read


def listed_info(row: IndexRow) -> ObjectInfo:
    """
    C{row.info()}, without parsing the JSON columns of a row that has none of them filled in,
    as most rows have not: four C{json.loads} per key were a third of a listing's time.
    """
    if row.metadata == "{}" and row.headers == "{}" and row.tags == "{}" and (
        row.part_sizes == "[]"
    ):
        return ObjectInfo(
            key=row.key,
            size=row.size,
            etag=row.etag,
            last_modified=row.mtime_ns / 1e9,
            content_type=row.content_type,
            parts_count=row.parts_count,
        )
    return row.info()


def _entries_in_order(
    directory: str, key_prefix: str, name_filter: str, rollup: bool, start_after: str
) -> "Iterator[Tuple[str, os.DirEntry[str], bool]] | None":
    """
    The listable entries of a directory after the marker, as (sort key, entry, is directory),
    in order; C{None} if the directory cannot be read.

    A page of a large folder needs its first thousand entries only: the entries are put in order
    lazily, and the names checked as they come out (L{_in_order}).
    """
    # Whatever an entry, its sort key (its key, or its key and "/") is after the marker only if
    # its key is, or if the marker lies inside the folder the key names: a page deep into a
    # large folder drops the entries before it here, comparing names with the rest of the
    # marker, before anything else is done with them.
    if start_after.startswith(key_prefix):
        after = start_after[len(key_prefix) :]
    elif start_after < key_prefix:
        after = ""
    else:
        return iter(())  # the whole folder sorts before the marker
    candidates = []
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                name = entry.name
                if name <= after and not after.startswith(name):
                    continue
                if not name.startswith(name_filter):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    candidates.append((key_prefix + name + "/", True, entry))
                else:
                    candidates.append((key_prefix + name, False, entry))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return _in_order(candidates, not key_prefix, rollup, start_after)


def _in_order(
    candidates: "List[Tuple[str, bool, os.DirEntry[str]]]",
    top: bool,
    rollup: bool,
    start_after: str,
) -> "Iterator[Tuple[str, os.DirEntry[str], bool]]":
    """
    The listable ones of C{candidates} (sort key, is directory, entry), in order of sort key:
    sorted when few, else drawn from a heap, which costs little more than reading the folder
    for the first page of a hundred thousand entries, where sorting them all cost more than the
    page itself. Sort keys are distinct (one per name), so tuples never compare past them.

    :param top: whether the entries are the root's, where L{RESERVED} is not listed.
    """
    if len(candidates) <= BATCH:
        candidates.sort(key=itemgetter(0))
        ordered: Iterable[Tuple[str, bool, "os.DirEntry[str]"]] = candidates
    else:
        heapq.heapify(candidates)
        ordered = _drain(candidates)
    for sort_key, is_dir, entry in ordered:
        name = entry.name
        if not is_listable_name(name) or (top and name == RESERVED):
            continue
        if is_dir:
            # A rolled-up folder at or before the marker was listed already; a walked one is
            # skipped only if all of it sorts before the marker.
            skip = sort_key <= start_after if rollup else sorts_before(sort_key, start_after)
            if not skip and _short_enough(sort_key):
                yield sort_key, entry, True
        elif entry.is_file(follow_symlinks=False):
            if sort_key > start_after and _short_enough(sort_key):
                yield sort_key, entry, False


def _drain(heap: List[T]) -> Iterator[T]:
    """
    The items of C{heap}, smallest first, taken off it one by one.
    """
    while heap:
        yield heapq.heappop(heap)


def _short_enough(key: str) -> bool:
    """
    Whether C{key} is within S3's limit (a character is at most four UTF-8 bytes, so most keys
    need no encoding to tell).
    """
    return len(key) <= MAX_KEY_BYTES // 4 or len(key.encode("utf-8")) <= MAX_KEY_BYTES
