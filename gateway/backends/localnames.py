"""
The names of large folders of a local bucket, kept in order between the pages of a listing.

A listing of a folder of a hundred thousand keys comes a thousand keys a page. Each page used to
read the whole directory again and put the entries after the marker in order: about 120 ms a
page on the benchmark machine, 12 s for the walk, most of it spent before the page's first key.
Now a page that continues a walk into a large folder keeps the folder's listable names in order
(L{SortedNames}), and the next pages start from them by bisection, as long as:

- the directory is the same one, unchanged: its device, inode, size, mtime and ctime, checked
  with one C{fstat} per page (any entry created, removed or renamed in it, by any program,
  changes its mtime and ctime);
- its last change was at least L{localfolders.SETTLED} before it was read
  (L{localfolders.settled}): a change in the same tick of a coarse clock as an earlier one
  would leave its times as they were.

Only the names and whether each is a folder are kept. A page still takes each file's C{stat} and
index row, so a file rewritten in place, or a row changed by another gateway process, shows at
once as before. The cache (L{NameCache}) holds at most L{MAX_BYTES} of names, least recently
used dropped first; a folder too large for it is read at every page, as before.
"""

from __future__ import annotations

import os
import sys
import threading
from array import array
from bisect import bisect_left
from collections import OrderedDict
from typing import Iterator, List, Optional, Tuple

from gateway.backends.localfolders import Identity
from gateway.listing import after_marker

#: The most the cache holds, in bytes of names and offsets.
MAX_BYTES = 16 << 20


class SortedNames:
    """
    The listable entries of one directory in S3 order, as of one reading: each a name, with a
    ``/`` after it for a folder.

    Kept as one string and an array of offsets, about a name's length and eight bytes an entry,
    where a list of strings would take some sixty bytes more each.
    """

    __slots__ = ("identity", "_text", "_ends", "weight")

    def __init__(self, identity: Identity, names: List[str]) -> None:
        self.identity = identity
        self._text = "".join(names)
        ends = array("q")
        end = 0
        for name in names:
            end += len(name)
            ends.append(end)
        self._ends = ends
        self.weight = sys.getsizeof(self._text) + ends.itemsize * len(ends) + 200

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, place: int) -> str:
        ends = self._ends
        return self._text[ends[place - 1] if place else 0 : ends[place]]

    def entries(
        self, fd: int, key_prefix: str, name_filter: str, after: str, rollup: bool,
        start_after: str,
    ) -> "Iterator[Tuple[str, NamedEntry, bool]]":
        """
        What L{gateway.backends.localwalk} takes of a directory open as C{fd}: its entries as
        (sort key, entry, is folder), in order, that start with C{name_filter} and that the page
        after the marker C{start_after} may show (C{after}: the marker's part within the
        folder).

        Entries before the first that can be shown are skipped by bisection: a file at or before
        C{after} cannot be, nor can a folder unless the marker lies inside it (its name then
        being the marker's first segment).
        """
        head, slash, _ = after.partition("/")
        place = bisect_left(self, max(head + slash if slash else after, name_filter))
        for place in range(place, len(self)):
            name = self[place]
            if not name.startswith(name_filter):
                return
            sort_key = key_prefix + name
            is_folder = name[-1] == "/"
            if after_marker(sort_key, is_folder, rollup, start_after):
                yield sort_key, NamedEntry(name[:-1] if is_folder else name, fd), is_folder


class NamedEntry:
    """
    An entry of a directory open as C{fd}, known by name: what the walk asks of an
    C{os.DirEntry}, its name and its C{lstat}.
    """

    __slots__ = ("name", "_fd")

    def __init__(self, name: str, fd: int) -> None:
        self.name = name
        self._fd = fd

    def stat(self, follow_symlinks: bool = True) -> os.stat_result:
        return os.stat(self.name, dir_fd=self._fd, follow_symlinks=follow_symlinks)


class NameCache:
    """
    Kept L{SortedNames} by directory path and key prefix (two buckets may share a directory
    under different prefixes, and which names are listable depends on it). One per process, for
    every local bucket (L{gateway.backends.BackendRegistry.large_folder_names}), so that
    L{MAX_BYTES} bounds them all. Used from pool threads (large folders are listed there) and
    the reactor thread alike.
    """

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._kept: "OrderedDict[Tuple[str, str], SortedNames]" = OrderedDict()
        self._lock = threading.Lock()
        self._max_bytes = max_bytes
        self.weight = 0

    def get(self, folder: Tuple[str, str], identity: Identity) -> Optional[SortedNames]:
        """
        The names kept for C{folder} (directory path, key prefix), if the directory is
        unchanged since they were read.
        """
        with self._lock:
            names = self._kept.get(folder)
            if names is None:
                return None
            if names.identity == identity:
                self._kept.move_to_end(folder)
                return names
            self._remove(folder)
        return None

    def put(self, folder: Tuple[str, str], names: SortedNames) -> None:
        """
        Keep C{names}, dropping the least recently used past the limit (C{names} itself too
        when it alone is over it).
        """
        with self._lock:
            self._remove(folder)
            if names.weight > self._max_bytes:
                return
            self._kept[folder] = names
            self.weight += names.weight
            while self.weight > self._max_bytes:
                _, old = self._kept.popitem(last=False)
                self.weight -= old.weight

    def _remove(self, folder: Tuple[str, str]) -> None:
        old = self._kept.pop(folder, None)
        if old is not None:
            self.weight -= old.weight

    def __len__(self) -> int:
        return len(self._kept)
