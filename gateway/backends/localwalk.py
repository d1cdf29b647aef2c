"""
The local backend's listing walk: a directory tree read lazily, in S3 order.

Each directory is read once, its entries put in the order S3 sorts keys (UTF-8 byte order, a
directory sorting as its name and ``/``) lazily, as the page takes them, and its index rows
fetched in one query per few hundred entries. A file whose index row still matches its size and
mtime is listed from the row alone.
With the ``/`` delimiter a subdirectory is yielded as a L{Subtree} instead of being read, so a
delimiter listing reads only the directory it lists. The walk starts at the deepest directory the
prefix names, and never reads a subtree that sorts entirely before the marker. A large
directory's names are kept in order between the pages of a walk through it
(L{gateway.backends.localnames}).
"""

from __future__ import annotations

import errno
import heapq
import os
import stat
import time
from itertools import islice
from operator import itemgetter
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

from gateway.backends import localfolders, localforeign
from gateway.backends.localfolders import Folder
from gateway.backends.localindex import ObjectIndex
from gateway.backends.localkeys import MAX_KEY_BYTES, RESERVED, is_listable_name, resolve_inside
from gateway.backends.localnames import NamedEntry, SortedNames
from gateway.interfaces import InvalidObjectKey
from gateway.listing import Entry, Subtree, after_marker, sorts_before
from gateway.model import ObjectInfo

#: Entries of one directory whose index rows are fetched in one query.
BATCH = 500

#: The size (C{st_size}) of a directory listed on the reactor thread (L{reads_little}): on
#: ext4, two blocks, a hundred to four hundred entries; on tmpfs or btrfs, a few hundred.
SMALL_DIRECTORY = 8192

#: What a heap holds: tuples, compared item by item.
Ordered = TypeVar("Ordered", bound=Tuple[Any, ...])


def walk(
    index: ObjectIndex,
    root: str,
    prefix: str,
    rollup: bool,
    start_after: str,
    wanted: int = BATCH,
    may_hash: bool = True,
) -> Iterator[Entry]:
    """
    The entries under C{root} that may match C{prefix}, in S3 order. Blocks.

    :param root: the bucket's resolved directory.
    :param rollup: whether the listing's delimiter is ``/``.
    :param wanted: how many entries the caller means to take, so that the last query for index
        rows fetches no more than those (a page of a thousand keys takes a thousand and one);
        more may be taken, at the cost of a query per L{BATCH}.
    :param may_hash: when false, raise L{HashingNeeded} at the first file whose ETag is not
        known, instead of reading the file.
    """
    start = _start(root, prefix)
    if start is None:
        return iter(())
    directory, key_prefix, name_filter = start
    return _walk_directory(
        index, directory, key_prefix, name_filter, rollup, start_after, wanted, may_hash
    )


def reads_little(root: str, prefix: str, rollup: bool) -> bool:
    """
    Whether a listing's walk is sure to be short, so short that running it on the reactor
    thread costs less than the hand-over to a thread and back (about half a millisecond, as
    much as listing fifty keys).

    It is when it reads one small directory: one whose size (C{st_size}, which grows with its
    entries on the usual filesystems) is at most L{SMALL_DIRECTORY}, and which, unless the
    listing rolls subdirectories up, has none (a link count of 2). A missing directory reads
    nothing, as does a file. Where a filesystem reports a link count of 1 (btrfs), listings
    without delimiter go to the thread; where it reports entries rather than bytes (ZFS), a
    folder of a few thousand counts as small, which costs the reactor a few milliseconds.
    """
    start = _start(root, prefix)
    if start is None:
        return True
    try:
        st = os.stat(start[0])
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return True
    return st.st_size <= SMALL_DIRECTORY and (rollup or st.st_nlink == 2)


def _start(root: str, prefix: str) -> "Tuple[str, str, str] | None":
    """
    Where a walk of C{prefix} starts: the directory the prefix names up to its last ``/``, the
    directory's key prefix and the name filter (the rest of the prefix); C{None} if no
    directory can hold keys with that prefix.
    """
    head, slash, name_filter = prefix.rpartition("/")
    segments = head.split("/") if slash else []
    if any(not is_listable_name(s) for s in segments) or segments[:1] == [RESERVED]:
        return None
    directory = os.path.join(root, *segments)
    try:
        resolve_inside(root, directory)
    except InvalidObjectKey:
        return None
    return directory, head + slash, name_filter


def _walk_directory(
    index: ObjectIndex,
    directory: str,
    key_prefix: str,
    name_filter: str,
    rollup: bool,
    start_after: str,
    wanted: int,
    may_hash: bool,
    subdirectory: bool = False,
) -> Iterator[Entry]:
    """
    The directory's own folder marker, then its entries whose names start with C{name_filter};
    subdirectories as L{Subtree}s when C{rollup}, else walked.

    The directory is read through a descriptor that stays open while its entries are listed:
    C{stat} of a name relative to it is cheaper than of a path from the root, which the kernel
    walks component by component (a fifth of a listing's time in folders of a hundred keys).

    :param subdirectory: whether the directory was found by the walk, as a directory: one that
        has become a symbolic link since is not followed.
    """
    after = _after(key_prefix, start_after)
    if after is None:
        return  # the whole folder sorts before the marker
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if subdirectory else 0)
    try:
        fd = os.open(directory, flags)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    except OSError as e:
        if e.errno == errno.ELOOP:
            return  # a directory replaced by a link since its parent was read
        raise
    try:
        st = os.fstat(fd)
        if st.st_size <= SMALL_DIRECTORY:
            kept = _folder(index, fd, directory, key_prefix, st, may_hash)
            if kept is not None:
                yield from _from_folder(
                    index, kept, directory, key_prefix, name_filter, rollup, start_after, wanted,
                    may_hash,
                )
                return
        items = _large_folder_entries(
            index, fd, directory, st, key_prefix, name_filter, after, rollup, start_after
        )
        if items is None:
            return
        marker = key_prefix if key_prefix and not name_filter and key_prefix > start_after else None
        first = True
        while True:
            batch = list(islice(items, min(BATCH, wanted) if wanted > 0 else BATCH))
            if not batch and not first:
                return
            wanted -= len(batch)
            keys = [key for key, _, is_dir in batch if not is_dir]
            if marker is not None and first:
                keys.append(marker)
            rows = index.get_many(keys)
            if marker is not None and first and marker in rows:
                yield rows[marker].info()
            first = False
            found, _ = localforeign.infos(index, directory, fd, batch, rows, may_hash)
            for position, (key, entry, is_dir) in enumerate(batch):
                if is_dir and rollup:
                    yield Subtree(key)
                elif is_dir:
                    path = os.path.join(directory, entry.name)
                    left = wanted + len(batch) - position
                    yield from _walk_directory(
                        index, path, key, "", False, start_after, left, may_hash, True
                    )
                else:
                    shown = localforeign.listed(found[position])
                    if shown is not None:
                        yield shown[0]
    finally:
        os.close(fd)


#: A small folder's listing: its entries (sort key, is directory, info) and its marker's info.
Listing = Tuple[Sequence[Tuple[str, bool, Optional[ObjectInfo]]], Optional[ObjectInfo]]


def _folder(
    index: ObjectIndex, fd: int, directory: str, key_prefix: str, st: os.stat_result,
    may_hash: bool,
) -> "Listing | None":
    """
    The whole listing of the small directory open as C{fd}: the kept one if it still holds
    (L{gateway.backends.localfolders}), else read and kept; C{None} if it has too many entries.
    """
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    # Read before the directory, so that a change made while it is read is a change next time.
    version = index.folder_version(key_prefix)
    folders = index.folders
    kept = folders.get(directory, identity, version)
    if kept is not None:
        if kept.fresh(fd):
            return kept.entries(key_prefix), kept.marker
        folders.drop(directory)
    watch = folders.watch(directory)
    try:
        listing = _read_folder(index, fd, directory, key_prefix, identity, version, may_hash)
        if listing is not None and listing[2] is not None:
            folders.put(directory, listing[2], watch)
            watch = None
    finally:
        if watch is not None:
            folders.drop(directory)
    return None if listing is None else listing[:2]


def _read_folder(
    index: ObjectIndex, fd: int, directory: str, key_prefix: str, identity: localfolders.Identity,
    version: int, may_hash: bool,
) -> "Tuple[Sequence[Tuple[str, bool, Optional[ObjectInfo]]], Optional[ObjectInfo], Optional[Folder]] | None":
    """
    Read the small directory open as C{fd}: its entries, its marker's info, and the L{Folder}
    to keep if it can be kept; C{None} if it has too many entries.
    """
    candidates = []
    try:
        with os.scandir(fd) as scan:
            for entry in scan:
                if entry.is_dir(follow_symlinks=False):
                    candidates.append((key_prefix + entry.name + "/", True, entry))
                elif entry.is_file(follow_symlinks=False):
                    candidates.append((key_prefix + entry.name, False, entry))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return (), None, None
    if len(candidates) > localfolders.MAX_ENTRIES:
        return None
    candidates.sort(key=itemgetter(0))
    top = not key_prefix
    listed = [c for c in candidates if _listable(c[2].name, c[0], top)]
    keys = [key for key, is_dir, _ in listed if not is_dir]
    rows = index.get_many(keys + [key_prefix] if key_prefix else keys)
    row = rows.get(key_prefix) if key_prefix else None
    marker = row.info() if row is not None else None
    batch = [(key, entry, is_dir) for key, is_dir, entry in listed]
    found, version_kept = localforeign.infos(
        index, directory, fd, batch, rows, may_hash, (key_prefix, version)
    )
    entries: List[Tuple[str, bool, Optional[ObjectInfo]]] = []
    files: List[Tuple[ObjectInfo, int]] = []
    for (key, is_dir, _), item in zip(listed, found):
        if is_dir:
            entries.append((key, True, None))
            continue
        shown = localforeign.listed(item)
        if shown is not None:
            entries.append((key, False, shown[0]))
            files.append(shown)
    kept = None
    if (
        version_kept is not None
        and localfolders.settled(identity, time.time_ns())
        and Folder.usable(files)
    ):
        names = [key[len(key_prefix) :] for key, _, _ in entries]
        kept = Folder(identity, version_kept, names, files, marker)  # type: ignore[arg-type]
    return entries, marker, kept


def _from_folder(
    index: ObjectIndex,
    listing: Listing,
    directory: str,
    key_prefix: str,
    name_filter: str,
    rollup: bool,
    start_after: str,
    wanted: int,
    may_hash: bool,
) -> Iterator[Entry]:
    """
    What L{_walk_directory} yields, from a small folder's whole listing.
    """
    entries, marker = listing
    if marker is not None and not name_filter and key_prefix > start_after:
        yield marker
    head = key_prefix + name_filter
    for key, is_dir, info in entries:
        if name_filter and not key.startswith(head):
            continue
        if info is not None:
            if key > start_after:
                yield info
                wanted -= 1
        elif rollup:
            if key > start_after:
                yield Subtree(key)
                wanted -= 1
        elif not sorts_before(key, start_after):
            path = os.path.join(directory, key[len(key_prefix) : -1])
            yield from _walk_directory(
                index, path, key, "", False, start_after, wanted, may_hash, True
            )


def _after(key_prefix: str, start_after: str) -> Optional[str]:
    """
    The part of the marker that the names of the folder C{key_prefix} are compared with, or
    C{None} if the whole folder sorts before the marker.

    Whatever an entry, its sort key (its key, or its key and "/") is after the marker only if
    its key is, or if the marker lies inside the folder the key names: a page deep into a large
    folder drops the entries before it by comparing names with the rest of the marker, before
    anything else is done with them.
    """
    if start_after.startswith(key_prefix):
        return start_after[len(key_prefix) :]
    if start_after < key_prefix:
        return ""
    return None


def _large_folder_entries(
    index: ObjectIndex, fd: int, directory: str, st: os.stat_result, key_prefix: str,
    name_filter: str, after: str, rollup: bool, start_after: str,
) -> "Iterator[Tuple[str, os.DirEntry[str] | NamedEntry, bool]] | None":
    """
    L{_entries_in_order} of a large directory open as C{fd} (C{st} its C{fstat}): from its names
    kept in order (L{gateway.backends.localnames}) while it is unchanged; else read, and its
    names kept when the page continues a walk into it (the marker lies in it), so that the
    pages after it need not read it again.
    """
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    kept = index.large_folders.get((directory, key_prefix), identity)
    if kept is None and after and localfolders.settled(identity, time.time_ns()):
        kept = _sorted_names(fd, key_prefix, identity)
        if kept is not None:
            index.large_folders.put((directory, key_prefix), kept)
    if kept is not None:
        return kept.entries(fd, key_prefix, name_filter, after, rollup, start_after)
    return _entries_in_order(fd, key_prefix, name_filter, after, rollup, start_after)


def _sorted_names(
    fd: int, key_prefix: str, identity: localfolders.Identity
) -> Optional[SortedNames]:
    """
    The listable entries (L{_listable}) of the directory open as C{fd}, its folders and regular
    files, all of them, in order; C{None} if it cannot be read.
    """
    top = not key_prefix
    names = []
    try:
        with os.scandir(fd) as scan:
            for entry in scan:
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    name += "/"
                elif not entry.is_file(follow_symlinks=False):
                    continue
                if _listable(entry.name, key_prefix + name, top):
                    names.append(name)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    names.sort()
    return SortedNames(identity, names)


def _entries_in_order(
    fd: int, key_prefix: str, name_filter: str, after: str, rollup: bool, start_after: str
) -> "Iterator[Tuple[str, os.DirEntry[str], bool]] | None":
    """
    The listable entries of the directory open as C{fd} after the marker (C{after}, from
    L{_after}), as (sort key, entry, is directory), in order; C{None} if the directory cannot
    be read.

    A page of a large folder needs its first thousand entries only: the entries are put in order
    lazily, and the names checked as they come out (L{_in_order}).
    """
    candidates = []
    try:
        with os.scandir(fd) as scan:
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
        if not is_dir and not entry.is_file(follow_symlinks=False):
            continue
        if after_marker(sort_key, is_dir, rollup, start_after) and _listable(
            entry.name, sort_key, top
        ):
            yield sort_key, entry, is_dir


def _drain(heap: List[Ordered]) -> Iterator[Ordered]:
    """
    The items of C{heap}, smallest first, taken off it one by one.
    """
    while heap:
        yield heapq.heappop(heap)


def _listable(name: str, sort_key: str, top: bool) -> bool:
    """
    Whether a listing shows the entry C{name} of a directory (C{sort_key} its key, with a ``/``
    after a folder's; C{top} whether the directory is the root, whose L{RESERVED} is not shown):
    the one rule of every way a directory is read here.
    """
    return (
        is_listable_name(name) and not (top and name == RESERVED) and _short_enough(sort_key)
    )


def _short_enough(key: str) -> bool:
    """
    Whether C{key} is within S3's limit (a character is at most four UTF-8 bytes, so most keys
    need no encoding to tell).
    """
    return len(key) <= MAX_KEY_BYTES // 4 or len(key.encode("utf-8")) <= MAX_KEY_BYTES
