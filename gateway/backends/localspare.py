"""
Small replaced objects kept as spare files, for later uploads to write into.

A write that replaces an object frees the old file and makes a new one. Under a steady load of
small overwrites, that pair was the largest kernel cost of a PUT on the benchmark machine (ext4
without a journal, mounted with ``discard``). Making a file there means stepping over every inode
freed in the last minute or so, and freeing one means discarding its blocks. In a loop of 4 KiB
writes, each fsynced and renamed over an existing file, the machine spent 173-190 microseconds
of CPU a write. Writing into a kept file instead, it spent 122-125 (``bench/README.md``).

So, before the rename, a small old file owned by the gateway gets a second name in
``<root>/.s3gateway/spare`` (L{SpareFiles.keep}: a hard link; no data moves). After the rename,
that name is its only one. A later upload takes such a file (L{SpareFiles.take}) instead of a
new one. It renames the file into the temporary folder (a claim no other process can also win),
then overwrites it from the start. The writer cuts off what is left of the old bytes before the
commit (L{gateway.backends.localfs.LocalWriter}); nothing of them can show, since a file becomes
an object only by its rename after that.

A reader may still hold the old object open: a GET that began before the rename, in this process
or another. Overwriting the file would change the bytes under that reader. So a taken file is
used only if no descriptor has it open. The kernel tells that without a race: a write lease
(``F_SETLEASE``) is granted only to the sole opener of a file. Nothing else can open a taken file
after that, since its only name is then in the temporary folder. A file in use, or one with
another name, is removed instead, and the reader keeps its descriptor.

At most L{SPARE_COUNT} files of at most L{SPARE_SIZE} bytes wait in a process, so a bucket's
spare folder holds at most that much disk space per process. The folder is emptied with the
retired one (L{gateway.backends.localretire.sweep_now}). A spare file whose name such a sweep
took is skipped when its turn comes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
import sys
from typing import List, Optional, Tuple

from gateway.backends.localkeys import RESERVED

#: The largest old object kept as a spare file.
SPARE_SIZE = 256 * 1024

#: How many spare files one process keeps for one bucket at most. Each upload in flight takes
#: one; the benchmark's 64 concurrent PUTs, spread over the workers, never used them all.
SPARE_COUNT = 128

#: ``F_SETLEASE`` from ``<fcntl.h>`` (Linux; Python names it from 3.11 on some builds only).
F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)

#: Errors of a lease that say leases do not work on this filesystem or for this process, as
#: opposed to a file that someone has open (C{EAGAIN}).
_LEASES_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EACCES, errno.EPERM, errno.ENOLCK}


def spare_folder(root: str) -> str:
    """
    Where the spare files of the resolved C{root} wait.
    """
    return os.path.join(root, RESERVED, "spare")


class SpareFiles:
    """
    The spare files that one process has kept for one bucket, newest last. Used from any
    thread: a list's C{append} and C{pop} are atomic under the GIL.
    """

    def __init__(self, enabled: bool = sys.platform.startswith("linux")) -> None:
        self._names: List[str] = []
        self._owner = os.geteuid()
        #: Cleared for good once leases turn out not to work here: without them, nothing tells
        #: whether a reader still has a file open.
        self.enabled = enabled

    def __len__(self) -> int:
        return len(self._names)

    def keep(self, root: str, path: str, replaced: Optional[os.stat_result]) -> Optional[str]:
        """
        Give the file at C{path}, which a rename is about to replace, a name in the spare
        folder; blocks. Call L{add} with that name once the rename is done, or remove it if the
        rename failed.

        :param replaced: what a C{stat} of C{path} gave just before (L{localfs.check_clash}).
        :return: the new name, or C{None} when the file is not kept: no file, a large one, one
            with another name, one the gateway does not own, or the process keeps enough.
        """
        if (
            replaced is None
            or not self.enabled
            or replaced.st_size > SPARE_SIZE
            or replaced.st_nlink != 1
            or replaced.st_uid != self._owner
            or not stat.S_ISREG(replaced.st_mode)
            or len(self._names) >= SPARE_COUNT
        ):
            return None
        folder = spare_folder(root)
        name = os.path.join(folder, secrets.token_hex(16))
        try:
            try:
                os.link(path, name, follow_symlinks=False)
            except FileNotFoundError:
                os.makedirs(folder, mode=0o700, exist_ok=True)
                os.link(path, name, follow_symlinks=False)
        except OSError:
            return None
        return name

    def add(self, name: str) -> None:
        """
        Offer the file named C{name} by L{keep} to later uploads.
        """
        self._names.append(name)

    def take(self, path: str) -> Optional[Tuple[int, int]]:
        """
        Claim a spare file as the new temporary file C{path} (in the same filesystem's
        temporary folder), open for writing from its start; blocks.

        :return: its descriptor and the bytes of old content it holds, which the writer must
            cut off; or C{None} when there is no spare file that may be written.
        """
        if not self.enabled:
            return None
        try:
            name = self._names.pop()
        except IndexError:
            return None
        try:
            os.rename(name, path)
        except OSError:
            return None  # a sweep took it, or the temporary folder is not there
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            _remove(path)
            return None
        try:
            if not self._only_opener(fd):
                raise OSError(errno.EBUSY, "in use")
            found = os.fstat(fd)
            if (
                found.st_nlink != 1
                or found.st_uid != self._owner
                or not stat.S_ISREG(found.st_mode)
            ):
                raise OSError(errno.EBUSY, "not ours alone")
        except OSError:
            os.close(fd)
            _remove(path)
            return None
        return fd, found.st_size

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


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
