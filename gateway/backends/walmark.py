"""
Whether an SQLite database in WAL mode has changed, read from its shared-memory index.

Every commit to a WAL database, by any connection in any process (of any program or version),
rewrites the header of the database's wal-index, the C{-shm} file that all its connections map
(U{https://www.sqlite.org/walformat.html}, "The WAL-Index Header"): the header holds a change
counter, the last valid frame and the log's salts, so two reads of it that are equal byte for
byte bracket a time in which nothing was committed, and a checkpoint that resets the log changes
it too. C{PRAGMA data_version} answers the same question from the same header, at 2.5 us a
statement where reading the mapped header takes well under a tenth of a microsecond; at every
small GET's index lookup, the difference decides whether a cache of rows pays
(L{gateway.backends.localindex.ObjectIndex.get}).

The header is mapped from the descriptor SQLite itself holds on the C{-shm} file, found in
C{/proc/self/fd}: this process must never open and close a descriptor of its own on that file,
since closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
included (the lock that tells other processes the wal-index is in use, without which the next
process to connect rebuilds it under the feet of this one). C{mmap.mmap} would duplicate the
descriptor and close the duplicate, so the map is made through the C library.

A mark is only meaningful while the caller holds the connection open whose descriptor it maps,
and it must be opened after that connection has read the database.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import sys
from typing import Any, Callable, Optional, Tuple

from gateway.libc import libc_function

#: The wal-index header's size; SQLite writes a second copy after it, then the first.
HEADER_SIZE = 48

#: The one wal-index format (C{iVersion}) this reader knows; any other turns the mark off.
WAL_INDEX_VERSION = 3007000

#: C{iVersion} (a native-order u32 at 0) and C{isInit} (a byte at 12).
_VERSION_AND_INIT = struct.Struct("=I8xB")

#: One page of the file is mapped: the headers are at its start.
_MAP_SIZE = mmap.PAGESIZE

_MAP_FAILED = ctypes.c_void_p(-1).value


def _libc_map_functions() -> Optional[Tuple[Callable[..., Any], Callable[..., Any]]]:
    if sys.platform != "linux":
        return None
    map_ = libc_function(
        "mmap", ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ctypes.c_long, restype=ctypes.c_void_p,
    )
    unmap = libc_function("munmap", ctypes.c_void_p, ctypes.c_size_t)
    if map_ is None or unmap is None:
        return None
    return map_, unmap


_MAP_FUNCTIONS = _libc_map_functions()


def sqlite_descriptor(path: str) -> Optional[int]:
    """
    The descriptor this process holds open on the file at C{path}, found without opening it,
    or C{None}.
    """
    try:
        wanted = os.stat(path)
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in names:
        try:
            found = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if found.st_ino == wanted.st_ino and found.st_dev == wanted.st_dev:
            return int(name)
    return None


class CommitMark:
    """
    A read-only map of a WAL database's wal-index header.

    Open one with L{open_for}, and compare the bytes of L{current} taken at two times: equal,
    and nothing was committed in between (as of the first read). The page is unmapped when the
    last reference to the mark goes, so a reader that holds one can never read an unmapped page.
    """

    def __init__(self, address: int, unmap: Callable[[Any, int], int]) -> None:
        self._address = address
        self._unmap = unmap
        self._size = _MAP_SIZE  # kept here: module globals may be gone when a late __del__ runs
        self._header = (ctypes.c_char * HEADER_SIZE).from_address(address)

    @classmethod
    def open_for(cls, database: str) -> Optional["CommitMark"]:
        """
        The mark of the database at path C{database}, whose C{-shm} file a connection of this
        process has open, or C{None} when it cannot be read: no such descriptor (not in WAL
        mode, or SQLite keeps the index in its own memory), no C{mmap} to call, or a header of
        another format.
        """
        if _MAP_FUNCTIONS is None:
            return None
        map_, unmap = _MAP_FUNCTIONS
        fd = sqlite_descriptor(database + "-shm")
        if fd is None:
            return None
        try:
            if os.fstat(fd).st_size < 2 * HEADER_SIZE:
                return None
        except OSError:
            return None
        address = map_(None, _MAP_SIZE, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address is None or address == _MAP_FAILED:
            return None
        mark = cls(address, unmap)
        version, initialised = _VERSION_AND_INIT.unpack(ctypes.string_at(address, 13))
        if version != WAL_INDEX_VERSION or not initialised:
            return None  # unmapped as the mark goes
        return mark

    def current(self) -> bytes:
        """
        The header as it is now: the copy SQLite writes last, so a change shows once the commit
        that made it is visible to new read transactions.
        """
        return self._header.raw

    def __del__(self) -> None:
        self._unmap(self._address, self._size)
