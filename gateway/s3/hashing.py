"""
Hashing a large upload on a thread of its own, beside the reactor.

MD5 (the ETag) alone takes about half of a large PUT's time on one core; the rest is reading the
socket and writing the file. hashlib releases the GIL while it digests a large buffer, so a
second thread can hash chunk N while the reactor receives and writes chunk N+1: the upload then
goes about as fast as MD5 itself (bench/RESULTS.md). Every byte is still hashed once per
algorithm, in arrival order.

The backlog is bounded, and the bound is shared: every upload hashed at once in one process draws
on one L{HashingBudget}. An upload whose backlog passes its share (L{HashingBudget.share}) has its
body producer paused, and resumed once the thread is back under half of it.

The share is large when an upload is alone: 6 MiB, resumed under 3. Resuming costs the reactor a
millisecond or two (wake up, read the socket, write the file), and the thread must have that much
left to hash meanwhile or it sits idle. With the earlier marks of 2 MiB and 512 KiB it went idle
70-130 times per GiB, for 0.08-0.14 s in all (instrumented 1 GiB PUTs); with these, a few times,
for 0.002-0.03 s, and the PUT's median went from 695 to 725 MB/s (bench/README.md). Sixty-four
uploads at once share 24 MiB instead of holding 6 MiB each: with both cores busy hashing, a
longer backlog would only hold memory.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Deque, Optional, cast

from attrs import define
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProducer, IPushProducer, IReactorFromThreads

from gateway.s3.checksums import BodyDigests

#: The most bytes one upload may have waiting to be hashed: its share when it is alone.
HIGH_WATER = 6 * 1024 * 1024

#: The bytes waiting to be hashed across all the uploads of one process.
BACKLOG_BUDGET = 24 * 1024 * 1024


@define
class HashingBudget:
    """
    How many bytes of upload bodies may wait for the hashing threads of one process, shared
    between the uploads being hashed (L{BackgroundDigests}). Only the reactor changes it.

    :ivar total: the bytes all the uploads together may have waiting.
    :ivar uploads: the uploads being hashed now.
    """

    total: int = BACKLOG_BUDGET
    uploads: int = 0

    def share(self) -> int:
        """
        The backlog past which one upload's body is paused: an even share of L{total}, at most
        L{HIGH_WATER}. The body resumes at half of it, or less.
        """
        return min(HIGH_WATER, self.total // max(self.uploads, 1))


class BackgroundDigests:
    """
    Feeds L{BodyDigests} from a dedicated thread; L{finish} fires once every byte is hashed.
    """

    def __init__(
        self,
        digests: BodyDigests,
        reactor: IReactorFromThreads,
        budget: Optional[HashingBudget] = None,
    ) -> None:
        """
        :param budget: the budget shared with the process's other uploads; by default, one of
            its own.
        """
        self.digests = digests
        self._reactor = reactor
        self._budget = budget if budget is not None else HashingBudget()
        self._budget.uploads += 1
        self._finished = False
        self._chunks: Deque[Optional[bytes]] = deque()
        self._ready = threading.Condition()
        self._backlog = 0
        self._producer: Optional[IPushProducer] = None
        self._paused = False
        self._done: Deferred[None] = Deferred()
        self._thread = threading.Thread(target=self._run, name="s3gateway-hashing", daemon=True)
        self._thread.start()

    def attach(self, producer: Optional[IProducer]) -> None:
        """
        The producer to pause while the backlog is too long: a request body, a push producer.
        """
        self._producer = cast(Optional[IPushProducer], producer)

    def update(self, data: bytes) -> None:
        with self._ready:
            self._chunks.append(data)
            self._backlog += len(data)
            backlog = self._backlog
            self._ready.notify()
        if backlog > self._budget.share() and not self._paused and self._producer is not None:
            self._paused = True
            self._producer.pauseProducing()

    def finish(self) -> "Deferred[None]":
        """
        Stop taking data, and leave the budget; fires when the thread has hashed everything it
        was given.
        """
        if not self._finished:
            self._finished = True
            self._budget.uploads -= 1
        with self._ready:
            self._chunks.append(None)
            self._ready.notify()
        return self._done

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._chunks:
                    self._ready.wait()
                chunk = self._chunks.popleft()
            if chunk is None:
                self._reactor.callFromThread(self._done.callback, None)
                return
            self.digests.update(chunk)
            with self._ready:
                self._backlog -= len(chunk)
                resume = self._paused and self._backlog <= self._budget.share() // 2
            if resume:
                self._reactor.callFromThread(self._resume)

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._producer is not None:
                self._producer.resumeProducing()
