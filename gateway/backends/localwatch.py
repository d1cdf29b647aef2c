"""
Change notices for the directories of kept folders (Linux inotify), so that a kept listing can be
trusted without a C{stat} of each of its files.

A folder's directory times show files created, removed or renamed in it, but not a file rewritten
in place by another program; without notices, a kept folder must C{stat} every file again
(L{gateway.backends.localfolders}), which was a fifth of a folder walk's time. With a watch on the
directory, the kernel queues an event as part of the very write, truncate, C{utime} or rename
that changes a file; L{FolderWatcher.drain}, called before a kept folder is used, reads the queue
without waiting, so a change made before a listing began is always seen by it.

Each watch is one-shot (the kernel removes it after its first event): the folder is dropped and
watched again when it is next kept, so the queue holds at most two events a folder. A queue that
overflowed anyway drops every folder.

Only where inotify sees every change: on Linux, on filesystems whose every write goes through
this kernel (ext2/3/4, XFS, Btrfs, tmpfs, F2FS, ZFS). On NFS, SMB or FUSE another machine's
writes raise no event, so there (and when the kernel's watch limit is reached) folders are
checked by C{stat} as before. Writes through a shared memory map raise no event either; such a
change shows once the file's size or the directory changes.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
import weakref
from typing import Callable, Dict, List, Optional, Tuple

from attrs import frozen

from gateway.libc import libc_function

#: The events that may change what a listing of the directory shows.
_IN_MODIFY = 0x2
_IN_ATTRIB = 0x4
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_ONLYDIR = 0x1000000
_IN_ONESHOT = 0x80000000
WATCH_MASK = (
    _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE
    | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR | _IN_ONESHOT
)

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC

#: statfs magic numbers of filesystems where every change goes through the local kernel.
LOCAL_FILESYSTEMS = frozenset({
    0xEF53,  # ext2, ext3, ext4
    0x58465342,  # XFS
    0x9123683E,  # Btrfs
    0x01021994,  # tmpfs
    0xF2F52010,  # F2FS
    0x2FC12FC1,  # ZFS
})

_EVENT = struct.Struct("iIII")


@frozen
class _Libc:
    """
    The C library's inotify calls and C{statfs}.
    """

    inotify_init1: Callable[..., int]
    inotify_add_watch: Callable[..., int]
    inotify_rm_watch: Callable[..., int]
    statfs: Callable[..., int]


def _libc() -> Optional[_Libc]:
    """
    The calls, or C{None} where the C library lacks any (not Linux).
    """
    functions = (
        libc_function("inotify_init1", ctypes.c_int),
        libc_function("inotify_add_watch", ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32),
        libc_function("inotify_rm_watch", ctypes.c_int, ctypes.c_int),
        libc_function("statfs", ctypes.c_char_p, ctypes.c_void_p),
    )
    if any(function is None for function in functions):
        return None
    return _Libc(*functions)  # type: ignore[arg-type]


class FolderWatcher:
    """
    One inotify instance for the process (the kernel allows a user only a few), shared by the
    kept folders of every bucket; safe to use from any thread.

    :ivar available: whether watches can be made here at all.
    """

    def __init__(self) -> None:
        self._libc = _libc()
        self._fd = -1
        if self._libc is not None:
            fd = self._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                # A registry dropped without closing its watcher (tests make many) must not
                # keep one of the user's few inotify instances.
                self._closer = weakref.finalize(self, os.close, fd)
        self.available = self._fd >= 0
        # Reentrant: L{while_armed}'s action may unwatch folders it pushes out.
        self._lock = threading.RLock()
        #: Armed watches: descriptor -> (path, called with the path on its event).
        self._watches: Dict[int, Tuple[str, Callable[[str], None]]] = {}
        self._by_path: Dict[str, int] = {}
        self._local: Dict[int, bool] = {}

    def watch(self, path: str, on_change: Callable[[str], None]) -> Optional[int]:
        """
        Arm a one-shot watch on the directory C{path}: C{on_change(path)} is called by a later
        L{drain} once anything in it changes. Arm it before reading the directory, so that a
        change made during the read is seen.

        :return: the watch (for L{while_armed}), or C{None} if the directory cannot be watched
            (not here, not a local filesystem, or the watch limit reached).
        """
        if not self.available or not self._on_local_filesystem(path):
            return None
        encoded = os.fsencode(path)
        with self._lock:
            wd = self._libc.inotify_add_watch(self._fd, encoded, WATCH_MASK)  # type: ignore[union-attr]
            if wd < 0:
                return None
            self._watches[wd] = (path, on_change)
            self._by_path[path] = wd
        return wd

    def while_armed(self, path: str, wd: int, action: Callable[[], None]) -> bool:
        """
        Call C{action} if the watch C{wd} of C{path} has seen no change yet, with no L{drain}
        running meanwhile: what C{action} keeps cannot miss the event that would drop it.

        :return: whether C{action} was called.
        """
        with self._lock:
            self.drain()
            if self._by_path.get(path) != wd or wd not in self._watches:
                return False
            action()
            return True

    def unwatch(self, path: str) -> None:
        """
        Remove C{path}'s watch, if armed (its folder is no longer kept).
        """
        with self._lock:
            wd = self._by_path.pop(path, None)
            if wd is None:
                return
            self._watches.pop(wd, None)
            self._libc.inotify_rm_watch(self._fd, wd)  # type: ignore[union-attr]

    def drain(self) -> None:
        """
        Read every event queued so far, without waiting, and call the watches' callbacks.
        """
        if not self.available:
            return
        with self._lock:
            # The callbacks run under the lock: another thread's drain must not find the queue
            # empty while a folder this one read an event for is still kept.
            fired: List[Tuple[str, Callable[[str], None]]] = []
            while True:
                try:
                    data = os.read(self._fd, 65536)
                except BlockingIOError:
                    break
                except InterruptedError:
                    continue
                offset = 0
                while offset + _EVENT.size <= len(data):
                    wd, mask, _, length = _EVENT.unpack_from(data, offset)
                    offset += _EVENT.size + length
                    if mask & _IN_Q_OVERFLOW:
                        # Events were lost: every watched folder may have changed.
                        fired.extend(self._watches.values())
                        self._watches.clear()
                        self._by_path.clear()
                        continue
                    watched = self._watches.pop(wd, None)
                    if watched is not None:
                        if self._by_path.get(watched[0]) == wd:
                            del self._by_path[watched[0]]
                        fired.append(watched)
            for path, on_change in fired:
                on_change(path)

    def _on_local_filesystem(self, path: str) -> bool:
        try:
            device = os.stat(path).st_dev
        except OSError:
            return False
        known = self._local.get(device)
        if known is None:
            buffer = ctypes.create_string_buffer(256)
            if self._libc.statfs(os.fsencode(path), buffer) != 0:  # type: ignore[union-attr]
                return False
            kind = ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF
            known = self._local[device] = kind in LOCAL_FILESYSTEMS
        return known

    def close(self) -> None:
        if self._fd >= 0:
            self._closer()
            self._fd = -1
            self.available = False
