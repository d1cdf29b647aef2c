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

The handler's coroutine is started here rather than by C{ensureDeferred}: a small GET never waits
(its metadata is cached and its file read at once), and then the coroutine is done after its
first step, with no L{Deferred} to make and fire for it. Wrapping it in one cost 2.4 us of a
4 KiB GET's 88. A coroutine that does wait is handed, as it stands, to Twisted's own driver
(L{_rest}).
"""

from __future__ import annotations

from typing import Any, Callable, Coroutine, Generator, Optional

from twisted.internet.defer import CancelledError, Deferred
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
        coroutine = self._handler(request)
        try:
            awaited = coroutine.send(None)
        except StopIteration as done:
            try:
                respond(done.value)
            except BaseException:
                failed(Failure())
            return NOT_DONE_YET
        except BaseException:
            failed(Failure())
            return NOT_DONE_YET
        outcome: Deferred[Optional[bytes]] = Deferred.fromCoroutine(_rest(coroutine, awaited))
        running.append(outcome)
        outcome.addCallback(respond).addErrback(failed)
        return NOT_DONE_YET


def _rest(
    coroutine: Coroutine[Any, Any, Optional[bytes]], awaited: Any
) -> Generator[Any, Any, Optional[bytes]]:
    """
    The rest of a started C{coroutine}, now waiting on C{awaited}, as a generator that Twisted's
    C{inlineCallbacks} driver runs: each L{Deferred} the coroutine waits on is passed up to the
    driver, and its result (or failure, a cancellation among them) passed back down.
    """
    while True:
        try:
            result = yield awaited
        except GeneratorExit:
            coroutine.close()
            raise
        except BaseException as error:
            try:
                awaited = coroutine.throw(error)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        else:
            try:
                awaited = coroutine.send(result)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
