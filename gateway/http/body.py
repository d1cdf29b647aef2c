"""
The body of a streamed request: a push producer of the chunks the channel parses.

L{gateway.http.streaming} dispatches a request as soon as its headers are in; its body is a
L{RequestBody}, which hands chunks to whichever consumer the resource attaches and pauses the
transport when that consumer falls behind (or when more than L{HIGH_WATER_MARK} bytes wait for a
consumer not yet attached).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, List, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

if TYPE_CHECKING:
    from gateway.http.streaming import StreamingRequest

#: How much body may wait in memory for a consumer before the transport is paused.
HIGH_WATER_MARK = 1024 * 1024


class BodyConsumerStopped(Exception):
    """
    The consumer of a request body stopped it before the end.
    """


class IncompleteRequestBody(Exception):
    """
    The connection was lost before the request body had fully arrived.
    """


@implementer(IPushProducer)
class RequestBody:
    """
    The body of one request, delivered chunk by chunk to a consumer.

    :ivar length: the declared Content-Length, or C{None} for a chunked transfer.
    :ivar received: how many bytes have arrived so far.
    :ivar complete: whether the whole body has arrived.
    """

    def __init__(self, request: "StreamingRequest", length: Optional[int]) -> None:
        # Weak: the request holds its body, and a strong reference back made every request a
        # reference cycle, left for the cyclic collector to find (a tenth of the collector's
        # work on small GETs) instead of being freed when its last user lets go.
        self._request = weakref.ref(request)
        self.length = length
        self.received = 0
        self.complete = length == 0
        self._buffer: List[bytes] = []
        self._buffered = 0
        self._consumer: Optional[IConsumer] = None
        self._done: Optional[Deferred[None]] = None
        self._paused = False
        self._transport_paused = False
        self._discarding = False
        self._failure: Optional[Failure] = None
        self._delivering = False
        self.on_complete: List[object] = []

    @property
    def started(self) -> bool:
        """
        Whether a consumer has asked for the body (so a 100 Continue has been sent if expected).
        """
        return self._consumer is not None or self._discarding

    def deliver(self, consumer: IConsumer) -> "Deferred[None]":
        """
        Stream the body to C{consumer}, which may pause this producer when it falls behind.

        :return: fires once the last byte has been written to the consumer (the producer is
            unregistered by then); fails with L{IncompleteRequestBody} if the client went away.
        """
        if self._consumer is not None or self._discarding:
            raise RuntimeError("the request body is already being read")
        self._consumer = consumer
        self._done = Deferred()
        done = self._done
        request = self._request()
        if request is not None:
            request.send_continue()
        consumer.registerProducer(self, True)
        if self._failure is not None:
            self._fail(self._failure)
        else:
            self._flush()
            # Body held past the high-water mark before the consumer came paused the transport.
            if not self._paused and not self._buffer:
                self._resume_transport()
        return done

    def discard(self) -> None:
        """
        Read the rest of the body and throw it away: used when the response is already decided.
        """
        self._discarding = True
        self._buffer.clear()
        self._buffered = 0
        if self._consumer is not None and self._done is not None:
            self._fail(Failure(BodyConsumerStopped()))
        self._resume_transport()

    # Called by the request, as the channel parses the body.

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self._discarding:
            return
        if self._consumer is not None and not self._paused and not self._buffer:
            self._consumer.write(data)
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._paused or self._buffered > HIGH_WATER_MARK:
            self._pause_transport()

    def content_complete(self) -> None:
        self.complete = True
        self._flush()
        for callback in self.on_complete:
            callback()  # type: ignore[operator]
        self.on_complete = []

    def connection_lost(self, reason: Failure) -> None:
        if self.complete:
            return
        self._failure = Failure(IncompleteRequestBody(str(reason.value)))
        if self._done is not None:
            self._fail(self._failure)

    # IPushProducer, called by the consumer.

    def pauseProducing(self) -> None:
        self._paused = True
        self._pause_transport()

    def resumeProducing(self) -> None:
        self._paused = False
        self._flush()
        if not self._paused and not self._buffer:
            self._resume_transport()

    def stopProducing(self) -> None:
        if self._done is not None:
            self._fail(Failure(BodyConsumerStopped()))
        self._discarding = True
        self._resume_transport()

    # Internals.

    def _flush(self) -> None:
        # Guard against re-entrance: a consumer's write may pause or resume us.
        if self._delivering or self._consumer is None or self._done is None:
            return
        self._delivering = True
        try:
            while self._buffer and not self._paused and self._done is not None:
                chunk = self._buffer.pop(0)
                self._buffered -= len(chunk)
                self._consumer.write(chunk)
        finally:
            self._delivering = False
        if self.complete and not self._buffer and self._done is not None:
            done, self._done = self._done, None
            self._consumer.unregisterProducer()
            done.callback(None)

    def _fail(self, failure: Failure) -> None:
        done, self._done = self._done, None
        if done is None:
            return
        consumer = self._consumer
        if consumer is not None:
            consumer.unregisterProducer()
        done.errback(failure)

    def _transport(self) -> Optional[IPushProducer]:
        request = self._request()
        return None if request is None else request.transport_for_body()

    def _pause_transport(self) -> None:
        transport = self._transport()
        if transport is not None and not self._transport_paused:
            self._transport_paused = True
            transport.pauseProducing()

    def _resume_transport(self) -> None:
        transport = self._transport()
        if transport is not None and self._transport_paused:
            self._transport_paused = False
            transport.resumeProducing()
