"""
L{gateway.backends.linkfree}: opening a path in one call when it has no symbolic link, on real
files, and falling back where the kernel has no C{openat2}.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path
from typing import List

import pytest

from gateway.backends.linkfree import OPENAT2, LinkFreeOpener

FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK

opener_here = LinkFreeOpener.here(FLAGS)
needs_openat2 = pytest.mark.skipif(
    opener_here.open("/") is None, reason="no openat2 on this system"
)


def _read_and_close(fd: int) -> bytes:
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


@needs_openat2
def test_plain_path_opened(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "file").write_bytes(b"content")
    fd = LinkFreeOpener.here(FLAGS).open(str(tmp_path / "a" / "file"))
    assert fd is not None
    assert _read_and_close(fd) == b"content"


@needs_openat2
def test_links_left_to_the_caller(tmp_path: Path) -> None:
    """
    A link anywhere on the path, to a folder or to the file, is no answer: the caller checks
    where it leads. The opener keeps working afterwards.
    """
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "file").write_bytes(b"content")
    (tmp_path / "folder-link").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "file-link").symlink_to(tmp_path / "real" / "file")
    opener = LinkFreeOpener.here(FLAGS)
    assert opener.open(str(tmp_path / "folder-link" / "file")) is None
    assert opener.open(str(tmp_path / "real" / "file-link")) is None
    fd = opener.open(str(tmp_path / "real" / "file"))
    assert fd is not None
    _read_and_close(fd)


@needs_openat2
def test_errors_as_os_open_raises_them(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    opener = LinkFreeOpener.here(FLAGS)
    with pytest.raises(FileNotFoundError):
        opener.open(str(tmp_path / "missing"))
    with pytest.raises(NotADirectoryError):
        opener.open(str(tmp_path / "file" / "below"))


def _failing(code: int, calls: List[int]):  # type: ignore[no-untyped-def]
    def syscall(number: int, dirfd: int, path: bytes, how: int, size: int) -> int:
        assert number == OPENAT2 and isinstance(path, bytes) and size == 24
        calls.append(number)
        ctypes.set_errno(code)
        return -1

    return syscall


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EPERM])
def test_refused_call_not_asked_again(code: int) -> None:
    """
    An older kernel (C{ENOSYS}) or a seccomp filter (C{EPERM}): no answer, and no more calls.
    """
    calls: List[int] = []
    opener = LinkFreeOpener(FLAGS, _failing(code, calls))
    assert opener.available
    assert opener.open("/anything") is None
    assert opener.open("/anything") is None
    assert calls == [OPENAT2]
    assert not opener.available


def test_other_error_raised_and_call_kept() -> None:
    calls: List[int] = []
    opener = LinkFreeOpener(FLAGS, _failing(errno.EACCES, calls))
    for _ in range(2):
        with pytest.raises(PermissionError) as raised:
            opener.open("/locked")
        assert raised.value.filename == "/locked"
    assert calls == [OPENAT2, OPENAT2]
    assert opener.available


def test_without_the_call() -> None:
    assert LinkFreeOpener(FLAGS, None).open("/") is None
