"""
L{gateway.backends.localtemp}: temporary upload files spread over subfolders placed apart.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
from pathlib import Path

from gateway.backends.localtemp import (
    FS_IOC_GETFLAGS,
    FS_TOPDIR_FL,
    TEMPORARY_FOLDERS,
    TemporaryFiles,
    mark_as_top,
    temporary_files,
)


def _flags(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return struct.unpack("I", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(4)))[0]
    finally:
        os.close(fd)


def test_files_go_round_robin_into_private_subfolders(tmp_path: Path) -> None:
    folder = tmp_path / "tmp"
    files = TemporaryFiles()
    made = []
    for _ in range(TEMPORARY_FOLDERS + 1):
        fd, path = files.new(str(folder))
        os.write(fd, b"x")
        os.close(fd)
        made.append(path)
    subfolders = [os.path.relpath(os.path.dirname(path), folder) for path in made]
    assert subfolders == ["%x" % (n % TEMPORARY_FOLDERS) for n in range(TEMPORARY_FOLDERS + 1)]
    assert len(set(made)) == len(made)
    assert sorted(temporary_files(str(folder))) == sorted(made)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(folder / "0").st_mode) == 0o700


def test_the_folder_is_marked_where_the_filesystem_can(tmp_path: Path) -> None:
    folder = tmp_path / "tmp"
    fd, _ = TemporaryFiles().new(str(folder))
    os.close(fd)
    if mark_as_top(str(folder)):
        assert _flags(folder) & FS_TOPDIR_FL
    # Anything else (not a folder, missing) is only a hint that was not taken.
    assert not mark_as_top(str(tmp_path / "missing"))


def test_leftovers_are_listed_wherever_they_are(tmp_path: Path) -> None:
    folder = tmp_path / "tmp"
    (folder / "3").mkdir(parents=True)
    (folder / "empty").mkdir()
    (folder / "3" / "inner").write_bytes(b"a")
    (folder / "older-version").write_bytes(b"b")
    assert sorted(os.path.relpath(path, folder) for path in temporary_files(str(folder))) == [
        "3/inner", "older-version"
    ]
    assert list(temporary_files(str(tmp_path / "missing"))) == []
