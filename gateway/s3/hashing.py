"""
Hashing a large upload on a thread of its own, beside the reactor.

MD5 (the ETag) alone takes about half of a large PUT's time on one core; the rest is reading the
socket and writing the file. hashlib releases the GIL while it digests a large buffer, so a
second thread can hash chunk N while the reactor receives and writes chunk N+1: the upload then
goes about as fast as MD5 itself (bench/RESULTS.md). Every byte is still hashed once per
algorithm, in arrival order.

The backlog is bounded: past L{HIGH_WATER} bytes waiting to be hashed the body producer is
paused, and resumed once the thread is back under L{LOW_WATER}.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Deque, Optional, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProducer, IPushProducer, IReactorFromThreads

from gateway.s3.checksums import BodyDigests

HIGH_WATER = 2 * 1024 * 1024
LOW_WATER = 512 * 1024


class BackgroundDigests:
    """
    Feeds L{BodyDigests} from a dedicated thread; L{finish} fires once every byte is hashed.
    """

    def __init__(self, digests: BodyDigests, reactor: IReactorFromThreads) -> None:
        self.digests = digests
        self._reactor = reactor
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
        if backlog > HIGH_WATER and not self._paused and self._producer is not None:
            self._paused = True
            self._producer.pauseProducing()

    def finish(self) -> "Deferred[None]":
        """
        Stop taking data; fires when the thread has hashed everything it was given.
        """
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
                resume = self._paused and self._backlog < LOW_WATER
            if resume:
                self._reactor.callFromThread(self._resume)

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._producer is not None:
                self._producer.resumeProducing()
