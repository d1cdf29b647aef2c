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

SQLite keeps the C{-shm} file while any connection to the database is open, and removes it when
the last one closes: a mark is only meaningful while the caller holds a connection open, which
it opened before opening the mark.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Optional

#: The wal-index header's size; SQLite writes a second copy after it, then the first.
HEADER_SIZE = 48

#: The one wal-index format (C{iVersion}) this reader knows; any other turns the mark off.
WAL_INDEX_VERSION = 3007000

#: C{iVersion} (a native-order u32 at 0) and C{isInit} (a byte at 12).
_VERSION_AND_INIT = struct.Struct("=I8xB")


class CommitMark:
    """
    A read-only map of a WAL database's wal-index header.

    Open one with L{open_for}, and compare the bytes of L{current} taken at two times: equal,
    and nothing was committed in between (as of the first read).
    """

    def __init__(self, header: mmap.mmap) -> None:
        self._header = header

    @classmethod
    def open_for(cls, database: str) -> Optional["CommitMark"]:
        """
        The mark of the database at path C{database}, or C{None} when it cannot be read: no
        C{-shm} file (not in WAL mode, or SQLite keeps the index in its own memory), or a
        header of another format.
        """
        try:
            fd = os.open(database + "-shm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size < 2 * HEADER_SIZE:
                return None
            header = mmap.mmap(fd, 2 * HEADER_SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        version, initialised = _VERSION_AND_INIT.unpack_from(header)
        if version != WAL_INDEX_VERSION or not initialised:
            header.close()
            return None
        return cls(header)

    def current(self) -> bytes:
        """
        The header as it is now: the copy SQLite writes last, so a change shows once the commit
        that made it is visible to new read transactions.
        """
        return self._header[:HEADER_SIZE]
