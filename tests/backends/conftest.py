"""
Fixtures shared by the backends' tests.
"""

from __future__ import annotations

from typing import Iterator, List, Optional

import pytest

from gateway.backends import localindex, reactorcommits
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
def kernel_syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[KernelSyncs]:
    """
    fsyncs run by the kernel, watched by the global reactor (skips where this system has none).
    Every PUT then commits on the reactor, also a lone one (which the gateway would give to the
    commit thread: L{reactorcommits.LONE_PUTS_ON_THREAD}).
    """
    from twisted.internet import reactor

    monkeypatch.setattr(reactorcommits, "LONE_PUTS_ON_THREAD", False)
    syncs = KernelSyncs.start(reactor)  # type: ignore[arg-type]
    if syncs is None:
        pytest.skip("no native AIO here")
    yield syncs
    syncs.close()
