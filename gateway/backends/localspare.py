"""
Small replaced objects kept as spare files, for later uploads to write into.

A write that replaces an object frees the old file and makes a new one. Under a steady load of
small overwrites, that pair was the largest kernel cost of a PUT on the benchmark machine (ext4
without a journal, mounted with ``discard``). Making a file there means stepping over every inode
freed in the last minute or so, and freeing one means discarding its blocks. In a loop of 4 KiB
writes, each fsynced and renamed over an existing file, the machine spent 173-190 microseconds
of CPU a write. Writing into a kept file instead, it spent 122-125; writing into a kept file and
exchanging it with the old one (below), 73 (``bench/README.md``).

Each process keeps its spare files in a folder of its own, ``<root>/.s3gateway/spare/<token>``,
on which it holds an exclusive C{flock} while it lives. Nothing else ever opens a file there.
An upload takes a spare file (L{SpareFiles.take}) instead of making a new one, and overwrites it
from the start. The writer cuts off what is left of the old bytes before the commit
(L{gateway.backends.localfs.LocalWriter}); nothing of them can show, since a file becomes an
object only by its rename after that.

The commit then puts the file in place by exchanging it with the object it replaces
(L{SpareFiles.swap}: C{renameat2} with C{RENAME_EXCHANGE}, one atomic step). The old file takes
the spare file's name, and is the next spare file. An upload into a new file, or one that
creates a key, keeps the old object, if any, with a hard link into the folder before an
ordinary rename (L{SpareFiles.keep}).

A reader may still hold an old object open: a GET that began before the exchange, in this
process or another. Overwriting the file would change the bytes under that reader. So a taken
file is used only if no descriptor has it open. The kernel tells that without a race: a write
lease (``F_SETLEASE``) is granted only to the sole opener of a file, and nothing else can open
a spare file. A file in use, or one with another name, is removed instead, and the reader keeps
its descriptor.

Only a plain file of at most L{SPARE_SIZE} bytes, owned by the gateway's user, with one name, is
kept, and a process keeps at most L{SPARE_COUNT} for a bucket. A process that ends cleanly
removes its folder (L{SpareFiles.close}); the folder of one that died is removed by the next
process to write to the bucket (L{sweep_dead}).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import secrets
import shutil
import stat
import sys
import threading
import time
from typing import Dict, List, Optional, Tuple

from gateway.backends.localkeys import RESERVED
from gateway.libc import libc_function

#: The largest old object kept as a spare file.
SPARE_SIZE = 256 * 1024

#: How many spare files one process keeps for one bucket at most.
SPARE_COUNT = 128

#: A folder still being made (L{_MAKING}) is swept only once this old: its process may be about to
#: lock it.
YOUNG_FOLDER_SECONDS = 60

#: The prefix of a process's spare folder before it is locked.
_MAKING = ".making-"

#: ``F_SETLEASE`` from ``<fcntl.h>`` (Linux).
F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)

#: Errors of a lease that say leases do not work on this filesystem or for this process, as
#: opposed to a file that someone has open (C{EAGAIN}).
_LEASES_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EACCES, errno.EPERM, errno.ENOLCK}

#: Errors of C{renameat2} that say the exchange does not work here.
_EXCHANGE_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2 = libc_function(
    "renameat2", ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint
)


def spare_folder(root: str) -> str:
    """
    Where the spare files of the resolved C{root} wait, in one folder per process.
    """
    return os.path.join(root, RESERVED, "spare")


def exchange(first: str, second: str) -> None:
    """
    Swap the files at C{first} and C{second} in one atomic step; blocks.

    :raise OSError: as C{renameat2} fails (C{EINVAL} where the filesystem cannot exchange).
    """
    if _renameat2 is None:
        raise OSError(errno.ENOSYS, "no renameat2 here")
    if _renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    ) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number), second)


class SpareFiles:
    """
    The spare files that one process has kept for one bucket, newest last. Used from any
    thread: a list's C{append} and C{pop} are atomic under the GIL.
    """

    def __init__(self, enabled: bool = sys.platform.startswith("linux")) -> None:
        self._names: List[str] = []
        self._owner = os.geteuid()
        #: This process's folder under each root, and the descriptor that holds its lock.
        self._folders: Dict[str, Tuple[str, int]] = {}
        #: Held while a folder is made: the commit thread and the reactor may both keep one.
        self._making = threading.Lock()
        #: Cleared for good once leases turn out not to work here: without them, nothing tells
        #: whether a reader still has a file open.
        self.enabled = enabled
        #: Cleared for good once the filesystem refuses to exchange two files.
        self.exchanging = _renameat2 is not None

    def __len__(self) -> int:
        return len(self._names)

    def _keeps(self, replaced: Optional[os.stat_result]) -> bool:
        """
        Whether the file that a C{stat} described as C{replaced} may become a spare file.
        """
        return (
            replaced is not None
            and self.enabled
            and replaced.st_size <= SPARE_SIZE
            and replaced.st_nlink == 1
            and replaced.st_uid == self._owner
            and stat.S_ISREG(replaced.st_mode)
        )

    def keep(self, root: str, path: str, replaced: Optional[os.stat_result]) -> Optional[str]:
        """
        Give the file at C{path}, which a rename is about to replace, a name in this process's
        spare folder; blocks. Call L{add} with that name once the rename is done, or remove it if
        the rename failed.

        :param replaced: what a C{stat} of C{path} gave just before (L{localfs.check_clash}).
        :return: the new name, or C{None} when the file is not kept: no file, a large one, one
            with another name, one the gateway does not own, or the process keeps enough.
        """
        if not self._keeps(replaced) or len(self._names) >= SPARE_COUNT:
            return None
        try:
            name = os.path.join(self._own_folder(root), secrets.token_hex(16))
            os.link(path, name, follow_symlinks=False)
        except OSError:
            return None
        return name

    def swaps(self, root: str, temp: str, replaced: Optional[os.stat_result]) -> bool:
        """
        Whether the upload written to C{temp} may be put in place by L{swap}: it is one of this
        process's spare files, and what it replaces may become one.
        """
        if not self.exchanging or not self._keeps(replaced):
            return False
        folder = self._folders.get(root)
        return folder is not None and os.path.dirname(temp) == folder[0]

    def swap(self, temp: str, path: str) -> bool:
        """
        Exchange the spare file C{temp}, now written, with the object at C{path}; blocks. The old
        object is then at C{temp}: offer it with L{add}.

        :return: whether it was done; C{False} where the filesystem cannot exchange files (then
            nothing changed: rename instead).
        :raise OSError: when the exchange failed otherwise, or found a folder at C{path} (which
            it has put back).
        """
        try:
            exchange(temp, path)
        except OSError as e:
            if e.errno in _EXCHANGE_UNSUPPORTED:
                self.exchanging = False
                return False
            raise
        if stat.S_ISDIR(os.lstat(temp).st_mode):
            # A folder made at the key since it was checked: a rename would have failed.
            exchange(temp, path)
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way", path)
        return True

    def _own_folder(self, root: str) -> str:
        """
        This process's spare folder under C{root}, made and locked at first use.
        """
        found = self._folders.get(root)
        if found is not None:
            return found[0]
        with self._making:
            found = self._folders.get(root)
            if found is not None:
                return found[0]
            return self._make_folder(root)

    def _make_folder(self, root: str) -> str:
        parent = spare_folder(root)
        os.makedirs(parent, mode=0o700, exist_ok=True)
        token = secrets.token_hex(8)
        # Made under a name that sweeps leave alone, locked, then named: a folder with a plain
        # name is locked from the moment it has that name.
        making = os.path.join(parent, _MAKING + token)
        folder = os.path.join(parent, token)
        os.mkdir(making, 0o700)
        fd = os.open(making, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(making, folder)
        except OSError:
            os.close(fd)
            shutil.rmtree(making, ignore_errors=True)
            raise
        self._folders[root] = (folder, fd)
        return folder

    def add(self, name: str) -> None:
        """
        Offer the spare file C{name} (from L{keep}, or a L{swap}'s old object) to later uploads.
        """
        self._names.append(name)

    def take(self) -> Optional[Tuple[int, str, int]]:
        """
        A spare file to write an upload into, open for writing from its start; blocks.

        :return: its descriptor, its path (the upload's temporary file) and the bytes of old
            content it holds, which the writer must cut off; or C{None} when there is no spare
            file that may be written.
        """
        if not self.enabled:
            return None
        try:
            name = self._names.pop()
        except IndexError:
            return None
        try:
            fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            _remove(name)
            return None
        try:
            if not self._only_opener(fd):
                raise OSError(errno.EBUSY, "in use")
            found = os.fstat(fd)
            if not self._keeps(found):
                raise OSError(errno.EBUSY, "not ours alone")
        except OSError:
            os.close(fd)
            _remove(name)
            return None
        return fd, name, found.st_size

    def _only_opener(self, fd: int) -> bool:
        """
        Whether C{fd} is the only descriptor open on its file (a lease taken and given back).
        """
        try:
            fcntl.fcntl(fd, F_SETLEASE, fcntl.F_WRLCK)
        except OSError as e:
            if e.errno in _LEASES_UNSUPPORTED:
                self.enabled = False
            return False
        fcntl.fcntl(fd, F_SETLEASE, fcntl.F_UNLCK)
        return True

    def close(self) -> None:
        """
        Remove this process's spare folders and what is in them; blocks.
        """
        self._names = []
        folders, self._folders = self._folders, {}
        for folder, fd in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
            os.close(fd)


def sweep_dead(root: str) -> None:
    """
    Remove the spare folders under the resolved C{root} whose processes have ended (no lock on
    them); blocks.
    """
    parent = spare_folder(root)
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        path = os.path.join(parent, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except NotADirectoryError:
            _remove(path)
            continue
        except OSError:
            continue
        try:
            if name.startswith(_MAKING) and (
                time.time() - os.fstat(fd).st_mtime < YOUNG_FOLDER_SECONDS
            ):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its process is alive
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
