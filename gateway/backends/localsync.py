"""
Making writes durable for less: fsyncs shared between concurrent commits, and early writeback of
large uploads.

Every PUT on the local backend ends with an fsync of the directory it renamed its file into, so
that the new name survives a power loss before the answer goes out. Concurrent PUTs into one
folder (the common case: a client uploading many keys under one prefix) need not each pay for
their own: an fsync of a directory that *starts* after a rename makes that rename durable, so one
fsync serves every commit that asked for one before it began (L{SharedSyncs}; the same
"group commit" databases use for their logs). The bucket's metadata index is made durable the
same way: its rows are written to SQLite's write-ahead log, and one fsync of the log serves every
commit that wrote a row before it began (L{gateway.backends.localindex.ObjectIndex.sync}).

A large upload's bytes sit in the page cache until the final fsync, which then writes them all
while the client waits (0.3 s per GiB here). L{start_writeback} asks the kernel to start writing
each finished stretch at once (``sync_file_range`` with ``SYNC_FILE_RANGE_WRITE``, which does not
wait), so the final fsync finds little left to do. It is only a hint: the fsync still decides.

Once written, a large upload's pages are dropped from the page cache a stretch behind
(L{drop_written}, in a thread): an upload of a gigabyte then holds about two stretches of cache,
not a gigabyte that evicts what other clients read. It also keeps a large PUT fast where fresh
memory is dear: on this virtual machine (free pages reported back to the host) the pages of a
gigabyte newly taken into the cache cost the writer about 2 s of CPU more, and uploads went from
about 600 to 330 MB/s whenever other processes had used and freed the memory; reused stretch by
stretch, they stay at about 560 (bench/RESULTS.md).

Ahead of the writes, a large upload's blocks are reserved two stretches at a time (L{reserve},
``fallocate`` keeping the file's size). Without it ext4's delayed allocation reserved and looked
up blocks page by page inside every C{write}, a fifth of the reactor thread's time in a 1 GiB PUT
(``perf``); with it the writer spent 5% less CPU per GiB, alternating PUTs of 1 GiB against the
commit before (2.70-2.74 against 2.80-2.84 CPU s/GiB, medians of eight). The blocks reserved past
the end are given back when the upload is committed (L{release_reserved}).
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from typing import Callable, Dict

from attrs import define

from gateway.libc import libc_function

#: ``SYNC_FILE_RANGE_WRITE`` from ``<linux/fs.h>``: start writeback of dirty pages, do not wait.
SYNC_FILE_RANGE_WRITE = 2

#: ``SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER``: write
#: the range out and wait until it is on disk.
SYNC_FILE_RANGE_WRITTEN = 1 | 2 | 4

#: Bytes written between two writeback hints.
WRITEBACK_STEP = 32 * 1024 * 1024

#: ``FALLOC_FL_KEEP_SIZE`` from ``<linux/falloc.h>``: allocate blocks without changing the size.
FALLOC_FL_KEEP_SIZE = 1


def fsync_directory(path: str) -> None:
    """
    Make the entries of a directory (a rename into it, say) durable.
    """
    _fsync(path, os.O_DIRECTORY)


def fsync_file(path: str) -> None:
    """
    Make the data written to a file so far durable, through any descriptor.
    """
    _fsync(path, 0)


#: What an fsync fails with where there is nothing to make durable: a filesystem that cannot
#: sync (EINVAL) or is read-only (EROFS).
NOTHING_TO_SYNC = (errno.EINVAL, errno.EROFS)


def open_to_sync(path: str, flags: int = 0) -> int:
    """
    A read-only descriptor of C{path} to fsync (C{flags}: C{os.O_DIRECTORY} for a directory).
    """
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)


def fsync_descriptor(fd: int) -> None:
    """
    fsync C{fd}, where there is something to make durable (L{NOTHING_TO_SYNC}).
    """
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in NOTHING_TO_SYNC:
            raise


def _fsync(path: str, flags: int) -> None:
    fd = open_to_sync(path, flags)
    try:
        fsync_descriptor(fd)
    finally:
        os.close(fd)


@define
class _Target:
    """
    The fsyncs of one path: tickets handed out, tickets covered, and whether one runs.
    """

    issued: int = 0
    covered: int = 0
    running: bool = False


class SharedSyncs:
    """
    fsyncs of a directory or file shared between the threads of one process.

    A caller takes a ticket after its rename; it returns once an fsync that began after the
    ticket was issued has succeeded. If none is running it runs one itself (covering every ticket
    issued so far); otherwise it waits for the running one to end, since that one may have begun
    before its rename, and then goes again. A failed fsync covers nothing: its waiters try again.

    :param fsync: makes one path durable; L{fsync_directory} by default (tests count calls).
    """

    def __init__(self, fsync: Callable[[str], None] = fsync_directory) -> None:
        self._fsync = fsync
        self._condition = threading.Condition()
        self._targets: Dict[str, _Target] = {}

    def sync(self, path: str) -> None:
        """
        Make every change to C{path} (a rename into a directory, a write to a file) done before
        this call durable; blocks.
        """
        with self._condition:
            state = self._targets.setdefault(path, _Target())
            state.issued += 1
            ticket = state.issued
            while state.covered < ticket:
                if state.running:
                    self._condition.wait()
                    continue
                self._run(path, state)
            if not state.running and state.covered == state.issued:
                # Nobody waits on it: forget it, so the map stays as small as the folders in use.
                self._targets.pop(path, None)

    def _run(self, path: str, state: _Target) -> None:
        """
        One fsync on behalf of every ticket issued so far (called and returning with the
        condition held; released meanwhile).
        """
        state.running = True
        target = state.issued
        self._condition.release()
        try:
            self._fsync(path)
        except BaseException:
            self._condition.acquire()
            state.running = False
            self._condition.notify_all()
            raise
        self._condition.acquire()
        state.running = False
        state.covered = max(state.covered, target)
        self._condition.notify_all()


_sync_file_range = libc_function(
    "sync_file_range", ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint
)

#: Not C{os.posix_fallocate}: where a filesystem cannot allocate ahead, glibc's version writes
#: zeros instead, which would double a write.
_fallocate = libc_function(
    "fallocate", ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64
)


def reserve(fd: int, offset: int, length: int) -> bool:
    """
    Ask the filesystem to allocate C{length} bytes of C{fd} from C{offset} for writes to come,
    without changing the file's size; whether it did. A hint: where it cannot (not Linux, a
    filesystem without ``fallocate``, no space left) the writes allocate as they go, and report
    a full disk themselves.
    """
    if _fallocate is None:
        return False
    return _fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length) == 0


def release_reserved(fd: int, size: int) -> None:
    """
    Give back the blocks L{reserve} allocated past the end of C{fd}'s C{size} bytes (cutting a
    file to its own size frees them). It blocks: freeing blocks may wait for the disk. A failure
    leaves them allocated and is not raised: the data is whole either way.
    """
    try:
        os.ftruncate(fd, size)
    except OSError:
        pass


def start_writeback(fd: int, offset: int, length: int) -> None:
    """
    Ask the kernel to start writing C{length} bytes of C{fd} from C{offset} to disk, without
    waiting for them. Does nothing where that cannot be asked (not Linux, or a filesystem that
    refuses): the final fsync then writes everything, as it would anyway.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def drop_written(fd: int, offset: int, length: int) -> None:
    """
    Wait until C{length} bytes of C{fd} from C{offset} are written out, then drop them from the
    page cache; blocking, and closes C{fd} (a duplicate: the writer may close its own first).
    Only a hint, like L{start_writeback}: nothing is raised where the kernel refuses.
    """
    try:
        if _sync_file_range is not None:
            _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITTEN)
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except (OSError, AttributeError):
        pass
    finally:
        os.close(fd)
