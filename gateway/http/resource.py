"""
A twisted.web leaf resource that hands every request to one coroutine function.

S3 has no URL routes to match: the operation comes from the method and the query, and keys are
arbitrary strings that routing would normalise (see L{gateway.s3.app}). So the gateway needs none
of what a routing framework does per request (binding a URL map, matching rules, adapting the
request), and on small requests that work cost about a tenth of the gateway's CPU time
(``bench/RESULTS.md``). This resource keeps only what the handler relies on:

- the handler's result, bytes or C{None}, is written and the request finished (unless the handler
  finished it itself, as a streamed GetObject does);
- when the client goes away before the response is finished, the handler's coroutine is cancelled,
  so an upload in progress stops and discards its temporary file;
- an exception the handler lets escape is logged and answered with a bare 500, as twisted.web
  does; the S3 handler catches everything itself, so this is a last resort.
"""

from __future__ import annotations

from typing import Any, Callable, Coroutine, Optional

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

RequestHandler = Callable[[Request], Coroutine[Any, Any, Optional[bytes]]]


@implementer(IResource)
class HandlerResource:
    """
    The resource at every path: each request goes to C{handler}.
    """

    isLeaf = True
    log = Logger()

    def __init__(self, handler: RequestHandler) -> None:
        self._handler = handler

    def getChildWithDefault(self, name: bytes, request: IRequest) -> IResource:
        return self

    def putChild(self, path: bytes, child: IResource) -> None:
        raise NotImplementedError("every path is served by the one handler")

    def render(self, request: Request) -> object:
        finished = [False]
        running: list = []

        def request_done(result: object) -> None:
            finished[0] = True
            if isinstance(result, Failure) and running:
                # The client went away: stop the work done on its behalf.
                running[0].cancel()

        def respond(body: Optional[bytes]) -> None:
            if finished[0]:
                return
            if body:
                request.write(body)
            request.finish()

        def failed(failure: Failure) -> None:
            if failure.check(CancelledError):
                return
            self.log.failure("Unhandled error serving {uri!r}", failure, uri=request.uri)
            if finished[0] or getattr(request, "channel", None) is None:
                return
            if request.startedWriting:
                request.loseConnection()
                return
            request.setResponseCode(500)
            request.setHeader(b"content-length", b"0")
            request.finish()

        # Registered first: a handler may finish the request before its first await.
        request.notifyFinish().addBoth(request_done)
        outcome: Deferred[Optional[bytes]] = ensureDeferred(self._handler(request))
        running.append(outcome)
        outcome.addCallback(respond).addErrback(failed)
        return NOT_DONE_YET
