"""
Fixtures shared by the backends' tests.
"""

from __future__ import annotations

from typing import Iterator, List, Optional

import pytest

from gateway.backends import localindex
from gateway.backends.aiosync import KernelSyncs


@pytest.fixture
def hashing(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """
    The paths whose MD5 the local backend's index computes, in order.
    """
    hashed: List[str] = []
    real = localindex.md5_of_file

    def counting(path: str, dir_fd: Optional[int] = None) -> str:
        hashed.append(path)
        return real(path, dir_fd)

    monkeypatch.setattr(localindex, "md5_of_file", counting)
    return hashed


@pytest.fixture
def kernel_syncs() -> Iterator[KernelSyncs]:
    """
    fsyncs run by the kernel, watched by the global reactor (skips where this system has none).
    """
    from twisted.internet import reactor

    syncs = KernelSyncs.start(reactor)  # type: ignore[arg-type]
    if syncs is None:
        pytest.skip("no native AIO here")
    yield syncs
    syncs.close()
