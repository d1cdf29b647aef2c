"""
Finishing the requests in flight before a worker exits.

L{ConnectionTracker} stands between a listening port and the site and remembers every HTTP channel
the site builds; it does not wrap the channels, so their transports stay the reactor's own (a
wrapping factory would put a Python layer under every write). L{drain} then closes the idle
connections (cutting those that do not close within L{IDLE_CLOSE_GRACE}), lets the busy ones
finish their current request and close, and aborts whatever is left when the time is up.
"""

from __future__ import annotations

import weakref
from typing import Any, Dict, List, Optional

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import (
    ILoggingContext,
    IProtocolFactory,
    IProtocolNegotiationFactory,
)
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

#: How often a drain looks at the open connections, in seconds.
DRAIN_POLL_INTERVAL = 0.1

#: How long an idle connection asked to close may take before it is cut, in seconds. Over TLS,
#: closing sends a close_notify and waits for the client's, which a client idle in its pool does
#: not send: without this, every such connection would hold the drain to its deadline.
IDLE_CLOSE_GRACE = 2.0

_log = Logger()


@implementer(IProtocolFactory, IProtocolNegotiationFactory, ILoggingContext)
class ConnectionTracker:
    """
    A protocol factory that builds the site's own channels and keeps a weak reference to each.

    It offers the site's protocols to TLS's ALPN: Twisted's TLS layer asks the factory it wraps,
    and fails the handshake of a client that offers ALPN when that factory names none.
    """

    def __init__(self, site: Any) -> None:
        self.site = site
        self._channels: "weakref.WeakSet[Any]" = weakref.WeakSet()

    def buildProtocol(self, addr: Any) -> Optional[Any]:
        channel = self.site.buildProtocol(addr)
        if channel is not None:
            self._channels.add(channel)
        return channel

    def doStart(self) -> None:
        self.site.doStart()

    def doStop(self) -> None:
        self.site.doStop()

    def acceptableProtocols(self) -> List[bytes]:
        return list(self.site.acceptableProtocols())

    def logPrefix(self) -> str:
        return self.site.__class__.__name__

    def open_channels(self) -> List[Any]:
        """
        The channels whose connection is still open.
        """
        return [
            channel
            for channel in list(self._channels)
            if channel.transport is not None and not channel.transport.disconnected
        ]


def drain(tracker: ConnectionTracker, reactor: Any, timeout: float) -> "Deferred[int]":
    """
    Close every connection of C{tracker} once it has no request in progress, waiting at most
    C{timeout} seconds; then abort the rest.

    A busy channel is made non-persistent, so that twisted.web closes it after the response in
    progress. The check repeats because a keep-alive connection may start a new request (which
    makes it persistent again) between two looks.

    :return: fires with the number of connections aborted at the deadline.
    """
    return ensureDeferred(_drain(tracker, reactor, timeout))


async def _drain(tracker: ConnectionTracker, reactor: Any, timeout: float) -> int:
    deadline = reactor.seconds() + timeout
    # When each idle channel was asked to close.
    closing: Dict[Any, float] = {}
    while True:
        channels = tracker.open_channels()
        if not channels:
            return 0
        if reactor.seconds() >= deadline:
            _log.warn(
                "Aborting {count} connection(s) still busy after {timeout}s",
                count=len(channels),
                timeout=timeout,
            )
            for channel in channels:
                channel.transport.abortConnection()
            return len(channels)
        now = reactor.seconds()
        for channel in channels:
            if channel.requests:
                channel.persistent = False
            elif channel not in closing:
                closing[channel] = now
                channel.transport.loseConnection()
            elif now - closing[channel] >= IDLE_CLOSE_GRACE:
                channel.transport.abortConnection()
        await deferLater(reactor, DRAIN_POLL_INTERVAL, lambda: None)
