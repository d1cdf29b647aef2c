"""
The ETags of files put there by other means, found by a listing: several files at once.

A file with no index row, or whose row no longer matches its size and mtime, has the MD5 of its
bytes as ETag, computed by reading it whole and then remembered as a row. The first listing of
a tree filled by another program meets nothing but such files: reading each one and writing
its row in a transaction of its own cost a hundred microseconds a file, two thirds of it in the
commits. Here the files of one batch of a listing (a small folder, or a few hundred entries of
a large one) are read one after the other, and their rows written in one transaction
(L{ObjectIndex.remember}). That first listing of a small folder is kept as the folder's
listing (L{gateway.backends.localfolders}) when no other row of the folder was written
meanwhile, checked in the transaction that writes the rows: a file browser's second visit is
then served from the cache, where it read every file's C{stat} and row again before.

Reading them in several threads at once was tried, and was slower for small files: a small
file is read in three system calls of a few microseconds each, too short for handing the GIL
back and forth between threads to pay off.
"""

from __future__ import annotations

import errno
import os
from typing import Dict, List, Optional, Protocol, Sequence, Tuple, Union

from gateway.backends import localindex
from gateway.backends.localindex import HashingNeeded, IndexRow, ObjectIndex
from gateway.model import ObjectInfo

#: What L{infos} found of one entry: the file's info and mtime; the error met reading it;
#: C{None} for a directory or a file gone.
Found = Union[Tuple[ObjectInfo, int], OSError, None]

#: A file whose ETag is to be found by reading it: its key, name and stat.
Unread = Tuple[str, str, os.stat_result]


class Entry(Protocol):
    """
    What L{infos} asks of a directory entry: an C{os.DirEntry}, or a
    L{gateway.backends.localnames.NamedEntry}.
    """

    @property
    def name(self) -> str: ...

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result: ...


def infos(
    index: ObjectIndex,
    directory: str,
    fd: int,
    batch: Sequence[Tuple[str, Entry, bool]],
    rows: Dict[str, IndexRow],
    may_hash: bool,
    folder: Optional[Tuple[str, int]] = None,
) -> Tuple[List[Found], Optional[int]]:
    """
    What is found of each entry of C{batch} (sort key, entry, is directory) of C{directory},
    open as C{fd}, in its place; and, for a caller that means to keep the listing, the change
    count of the folder's index rows (L{ObjectIndex.folder_version}) the listing is as of.

    A file whose row no longer matches its size and mtime is read for its MD5, all those of the
    batch together (L{hash_files}); when C{may_hash} is false, L{HashingNeeded} is raised at
    the first such file, before anything is read.

    :param folder: the folder's key prefix and change count, read before the directory was,
        when the whole directory is in C{batch} and the caller means to keep its listing.
    :return: what was found, and C{folder}'s count if every file was listed from its row, none
        gone; the count after the rows of the files read were written, if all were and nothing
        else changed the folder's rows meanwhile (the first listing of files put there by other
        means is then kept as well, not only the second); else C{None}.
    """
    found: List[Found] = [None] * len(batch)
    unread: List[Unread] = []
    places: List[int] = []
    whole = True
    get = rows.get
    for position, (key, entry, is_dir) in enumerate(batch):
        if is_dir:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            whole = False
            continue  # removed since the directory was read
        row = get(key)
        if row is not None and row.size == st.st_size and row.mtime_ns == st.st_mtime_ns:
            found[position] = (row.info(), st.st_mtime_ns)
        elif not may_hash:
            raise HashingNeeded(key)
        else:
            unread.append((key, entry.name, st))
            places.append(position)
    version = folder[1] if folder is not None and whole else None
    if unread:
        hashed, version = hash_files(
            index, directory, fd, unread, folder if version is not None else None
        )
        for position, info, (_, _, st) in zip(places, hashed, unread):
            found[position] = info if isinstance(info, OSError) else (info, st.st_mtime_ns)
    return found, version


def listed(item: Found) -> "Tuple[ObjectInfo, int] | None":
    """
    What a listing shows of one entry L{infos} found: the file's info and mtime, or C{None} for
    nothing (a directory, or a file gone since the directory was read); the error met reading a
    file is raised, so that the listing fails where it failed before.
    """
    if isinstance(item, tuple):
        return item
    if item is not None and not isinstance(item, FileNotFoundError):
        raise item
    return None


def hash_files(
    index: ObjectIndex,
    directory: str,
    fd: int,
    files: Sequence[Unread],
    folder: Optional[Tuple[str, int]] = None,
) -> Tuple[List[Union[ObjectInfo, OSError]], Optional[int]]:
    """
    The infos of regular files of C{directory} (open as C{fd}) whose ETags are not known, with
    the MD5 of each as ETag, their rows written in one transaction; for a file that could not
    be read (gone, unreadable), the error reading it raised, in its place, so that the walk
    meets it where it met it before.

    Files are opened and checked by name relative to the open directory: the kernel then looks
    up one name, not every component of a path from the root, which cost as much as reading
    a small file.

    :param folder: as for L{infos}.
    :return: the infos, and with C{folder} the change count the folder's rows are at once
        these are written, if every file was read and nothing else changed the folder's rows
        since its count was read (L{ObjectIndex.remember}); else C{None}.
    """
    md5_of_file = localindex.md5_of_file  # through the module, so that tests can count it
    guess = localindex.guess_content_type
    found: List[Union[ObjectInfo, OSError]] = []
    hashed = []
    for key, name, st in files:
        try:
            etag = md5_of_file(name, fd)
        except OSError as e:
            # A link put in the file's place since the directory was read: the file is gone.
            found.append(FileNotFoundError(e.errno, e.strerror) if e.errno == errno.ELOOP else e)
            continue
        info = ObjectInfo(key, st.st_size, etag, st.st_mtime_ns / 1e9, guess(key))
        found.append(info)
        hashed.append((info, name, st))
    if len(hashed) < len(files):
        folder = None  # a file could not be read: the listing shows an error, not kept
    return found, index.remember(hashed, (directory, fd), folder)
