"""
The temporary files uploads are written to, spread over folders that the filesystem keeps apart.

Every PUT writes a new file under ``<root>/.s3gateway/tmp`` and renames it into place; every
overwrite or delete frees the inode of the file it replaces. On ext4 without a journal (this
benchmark machine's disk, and common on virtual machines) the kernel will not hand out an inode
freed in the last minute or more: each new file's allocation steps over all of them, one by one,
within the block group of the folder it is created in. With every temporary file in one folder,
all of them come from one group and are freed back into it, and under a steady load of small
overwrites a file creation took 265-305 us of kernel time, against about 15 us on a fresh
group (5,000 creations and renames over existing files, four rounds; ``bench/README.md``).

So the files go round-robin into L{TEMPORARY_FOLDERS} subfolders, and the parent is marked as a
top of a directory tree (``chattr +T``), which makes ext4 place each subfolder, and with it the
inodes of the files created in it, in a block group of its own. In the same test: 10-24 us a
creation. Filesystems without the mark ignore it; the spreading then costs nothing but the
folders.

ext4 places such a folder in a group with many free inodes, which after a large deletion (a tree
of test files, an old dataset) are the groups full of recently freed ones. With 16 folders a
creation then still took 130-206 us in some runs, depending on where the folders landed; with
256, each taking a sixteenth of the load, 14-54 us in every run (five runs alternating 16, 64
and 256 folders, 10,000 creations and overwrites a round, on a disk churned by earlier runs).

An upload's body need not go into a new file at all: a small object that a write replaced may
be written again (L{TemporaryFiles.new_or_spare}, L{gateway.backends.localspare}), which makes
no inode.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import secrets
import struct
from typing import TYPE_CHECKING, Iterator, List, Tuple

if TYPE_CHECKING:
    from gateway.backends.localspare import SpareFiles

#: How many folders the temporary files are spread over.
TEMPORARY_FOLDERS = 256

#: ``FS_IOC_GETFLAGS`` and ``FS_IOC_SETFLAGS`` from ``<linux/fs.h>`` (declared as taking a
#: long, but the kernel reads and writes an int).
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602

#: ``FS_TOPDIR_FL``: place the subfolders of this folder apart (ext2, ext3, ext4).
FS_TOPDIR_FL = 0x00020000


def mark_as_top(folder: str) -> bool:
    """
    Ask the filesystem to place the subfolders of C{folder} apart from each other; whether it
    took the mark. A hint: a filesystem that has no such mark (or refuses it) changes nothing.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = struct.unpack("I", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(4)))[0]
        if not flags & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("I", flags | FS_TOPDIR_FL))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class TemporaryFiles:
    """
    Makes the temporary files of uploads under a root's temporary folder, one subfolder after
    the other. Used from any thread: the counter's C{next} is atomic under the GIL.
    """

    def __init__(self) -> None:
        self._turn = itertools.count()

    def new(self, folder: str) -> Tuple[int, str]:
        """
        A new empty file under C{folder} (the root's temporary folder): its descriptor, open for
        writing, and its path.
        """
        subfolder = os.path.join(folder, "%x" % (next(self._turn) % TEMPORARY_FOLDERS))
        path = os.path.join(subfolder, secrets.token_hex(16))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            return os.open(path, flags, 0o644), path
        except FileNotFoundError:
            # The subfolder's first file (folders are made once, not checked each time).
            make_subfolder(folder, subfolder)
            return os.open(path, flags, 0o644), path

    def new_or_spare(self, folder: str, spares: "SpareFiles") -> Tuple[int, str, int]:
        """
        L{new}, or one of C{spares} if there is one to take: its descriptor, its path, and the
        bytes of old content it holds (0 for a new file), which the writer must cut off.
        """
        taken = spares.take()
        if taken is not None:
            return taken
        fd, path = self.new(folder)
        return fd, path, 0


def make_subfolder(folder: str, subfolder: str) -> None:
    """
    Make C{subfolder} of the temporary C{folder}, marking C{folder} first (L{mark_as_top}) so
    that the new subfolder is placed apart; concurrent calls are harmless.
    """
    os.makedirs(folder, mode=0o700, exist_ok=True)
    mark_as_top(folder)
    try:
        os.mkdir(subfolder, 0o700)
    except FileExistsError:
        pass


def temporary_files(folder: str) -> Iterator[str]:
    """
    The paths of the files under the temporary C{folder}: in its subfolders, and in the folder
    itself (where versions before the subfolders put them).
    """
    for name in names_in(folder):
        path = os.path.join(folder, name)
        inside = names_in(path)
        if inside:
            for inner in inside:
                yield os.path.join(path, inner)
        elif not os.path.isdir(path):
            yield path


def names_in(folder: str) -> List[str]:
    """
    The names in C{folder}; none if it cannot be listed (missing, not a folder, unreadable).
    """
    try:
        return os.listdir(folder)
    except OSError:
        return []
