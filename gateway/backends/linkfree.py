"""
Opening an object's file in one system call when no component of its path is a symbolic link.

A key's file may only be opened once its path is known to stay inside the bucket's directory.
L{gateway.backends.localkeys.resolve_inside} makes sure with one C{lstat} per folder of the key
and a walk of the path in Python, then the file is opened: together they were a tenth of the
time a 4 KiB GET spends in the backend. Linux's C{openat2} (5.6) with C{RESOLVE_NO_SYMLINKS}
opens the path only if none of its components is a link, which makes the same promise for a
key (whose segments are never ``.`` or ``..``) in the one call that opens it. A path that does
have a link fails with C{ELOOP}, and the caller takes the long way, which follows links that
stay inside the directory as before.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Callable, Optional

from gateway.libc import new_syscall

#: C{openat2}'s number in the system call table (Linux 5.6).
OPENAT2 = 437

#: The current directory, for a path that is absolute anyway.
_AT_FDCWD = -100

#: Refuse any symbolic link on the way (and the "magic" links of C{/proc}).
RESOLVE_NO_SYMLINKS = 0x04


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _openat2() -> Optional[Callable[..., int]]:
    return new_syscall(ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t)


class LinkFreeOpener:
    """
    Opens a file with fixed flags when its path has no symbolic link.

    Threads may share one: the structure it hands the kernel is never changed.

    :param flags: the C{os.open} flags of every open (no C{O_CREAT}: no mode is passed).
    :param syscall: C{syscall(number, dirfd, path, how, size)}, or C{None} where there is none;
        L{here} finds this system's.
    """

    def __init__(self, flags: int, syscall: Optional[Callable[..., int]]) -> None:
        self._syscall = syscall
        self._how = _OpenHow(flags, 0, RESOLVE_NO_SYMLINKS)
        self._how_pointer = ctypes.addressof(self._how)
        self._how_size = ctypes.sizeof(self._how)

    @classmethod
    def here(cls, flags: int) -> "LinkFreeOpener":
        """
        An opener that calls this system's C{openat2}, if it has one.
        """
        return cls(flags, _openat2())

    @property
    def available(self) -> bool:
        """
        Whether the kernel may answer (before the first call), or did.
        """
        return self._syscall is not None

    def open(self, path: str) -> Optional[int]:
        """
        A descriptor of C{path} (absolute), or C{None} if a component of it is a symbolic link
        or this system has no C{openat2}: the caller then checks the path and opens it itself.

        :raise OSError: as C{os.open} would (C{FileNotFoundError}, C{NotADirectoryError}, ...).
        """
        syscall = self._syscall
        if syscall is None:
            return None
        fd = syscall(OPENAT2, _AT_FDCWD, os.fsencode(path), self._how_pointer, self._how_size)
        if fd >= 0:
            return fd
        code = ctypes.get_errno()
        if code == errno.ELOOP:
            return None
        if code in (errno.ENOSYS, errno.EPERM, errno.E2BIG, errno.EINVAL):
            # No openat2 here (an older kernel, or a seccomp filter that refuses it): stop asking.
            self._syscall = None
            return None
        raise OSError(code, os.strerror(code), path)
