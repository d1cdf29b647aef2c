"""
L{gateway.backends.pagecache}: the kernel's answer on real files, cached and evicted.
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path
from typing import List

import pytest

from gateway.backends.pagecache import PAGE_SIZE, PageCacheProbe

probe_here = PageCacheProbe()


def _evicted(path: Path, probe: PageCacheProbe) -> int:
    """
    Open C{path} with its clean pages dropped from the page cache (a file just written and
    synced; tmpfs cannot drop them, and the test is skipped there).
    """
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    if probe.resident(fd, 0, PAGE_SIZE):
        os.close(fd)
        pytest.skip("this filesystem keeps its pages (tmpfs?)")
    return fd


@pytest.mark.skipif(not probe_here.available, reason="no cachestat on this system")
def test_cached_then_evicted_then_read(tmp_path: Path) -> None:
    path = tmp_path / "object"
    path.write_bytes(os.urandom(64 * PAGE_SIZE))
    probe = PageCacheProbe()
    fd = os.open(path, os.O_RDONLY)
    try:
        # Just written: every page is in the cache.
        assert probe.resident(fd, 0, 64 * PAGE_SIZE)
        assert probe.resident(fd, 100, 5000)
    finally:
        os.close(fd)
    fd = _evicted(path, probe)
    try:
        assert not probe.resident(fd, 0, 64 * PAGE_SIZE)
        # One page read back: that page only (the read may bring in a few more ahead).
        os.pread(fd, 10, 3 * PAGE_SIZE)
        assert probe.resident(fd, 3 * PAGE_SIZE, PAGE_SIZE)
        assert probe.resident(fd, 3 * PAGE_SIZE + 10, 20)
        assert not probe.resident(fd, 0, 3 * PAGE_SIZE + 10)
        assert probe.available
    finally:
        os.close(fd)


def test_an_empty_range_is_cached(tmp_path: Path) -> None:
    assert PageCacheProbe().resident(-1, 0, 0)


@pytest.mark.parametrize(
    "error, calls, still_asked",
    [
        # No cachestat in this kernel (or a seccomp filter refuses it): asked once, never again.
        (errno.ENOSYS, 1, False),
        (errno.EPERM, 1, False),
        # Any other failure (a bad descriptor) says nothing of the kernel: asked each time.
        (errno.EBADF, 2, True),
    ],
)
def test_a_refused_call_counts_as_cached(error: int, calls: int, still_asked: bool) -> None:
    made = []

    def refused(*args: object) -> int:
        made.append(args)
        ctypes.set_errno(error)
        return -1

    probe = PageCacheProbe()
    probe._syscall = refused
    assert probe.resident(3, 0, 100) and probe.resident(3, 0, 100)
    assert len(made) == calls and probe.available is still_asked


def _all_cached(probe: PageCacheProbe) -> None:
    def answer(*args: object) -> int:
        probe._counts.cache = 1 << 20
        return 0

    probe._syscall = answer


def test_a_page_still_being_read_counts_as_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    # cachestat counts a page a read-ahead has put in the cache before the disk filled it; the
    # last byte, read without waiting, tells.
    probe = PageCacheProbe()
    _all_cached(probe)
    asked = []

    def would_wait(fd: int, buffers: list, offset: int, flags: int) -> int:
        asked.append((offset, flags))
        raise BlockingIOError(errno.EAGAIN, "would block")

    monkeypatch.setattr(os, "preadv", would_wait)
    assert not probe.resident(3, 1000, 5000)
    assert asked == [(5999, os.RWF_NOWAIT)]


def _cannot_read_without_waiting(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """
    Make every C{RWF_NOWAIT} read fail as on a filesystem that cannot do it; the offsets asked.
    """
    asked: List[int] = []

    def unsupported(fd: int, buffers: list, offset: int, flags: int) -> int:
        asked.append(offset)
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(os, "preadv", unsupported)
    return asked


def test_a_filesystem_that_cannot_read_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = PageCacheProbe()
    _all_cached(probe)
    asked = _cannot_read_without_waiting(monkeypatch)
    assert probe.resident(3, 0, 10) and probe.resident(3, 0, 10)
    # Asked once: the filesystem cannot tell, and cachestat's answer stands alone after.
    assert asked == [9]


@pytest.mark.skipif(not probe_here.available, reason="no cachestat on this system")
def test_read_cached_reads_what_is_cached_and_nothing_else(tmp_path: Path) -> None:
    data = os.urandom(16 * PAGE_SIZE)
    path = tmp_path / "object"
    path.write_bytes(data)
    probe = PageCacheProbe()
    fd = os.open(path, os.O_RDONLY)
    try:
        assert probe.read_cached(fd, 100, 5000) == data[100:5100]
        # Past the end: a short read, which the caller cannot tell from an uncached page.
        assert probe.read_cached(fd, len(data) - 10, 20) is None
    finally:
        os.close(fd)
    fd = _evicted(path, probe)
    try:
        assert probe.read_cached(fd, 0, 4 * PAGE_SIZE) is None
        os.pread(fd, 10, 0)
        assert probe.read_cached(fd, 0, 10) == data[:10]
    finally:
        os.close(fd)


def test_read_cached_without_reads_that_do_not_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A filesystem that cannot read without waiting: asked once, then cachestat decides and
    # the bytes are read plainly; a short read is no answer, as with RWF_NOWAIT.
    path = tmp_path / "object"
    path.write_bytes(b"0123456789")
    probe = PageCacheProbe()
    _all_cached(probe)
    asked = _cannot_read_without_waiting(monkeypatch)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert probe.read_cached(fd, 2, 5) == b"23456"
        assert probe.read_cached(fd, 8, 5) is None
    finally:
        os.close(fd)
    assert asked == [2]
    probe._counts.cache = 0
    probe._syscall = lambda *args: 0
    assert probe.read_cached(3, 0, 10) is None


def test_read_cached_that_would_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = PageCacheProbe()

    def would_wait(fd: int, buffers: list, offset: int, flags: int) -> int:
        raise BlockingIOError(errno.EAGAIN, "would block")

    monkeypatch.setattr(os, "preadv", would_wait)
    if probe._nowait is None:
        pytest.skip("no RWF_NOWAIT here")
    assert probe.read_cached(3, 0, 10) is None
