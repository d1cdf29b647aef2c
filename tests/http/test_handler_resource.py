"""
L{gateway.http.resource.HandlerResource}: a handler's result becomes the response whether the
handler finishes in its first step or waits on L{Deferred}s first, its failures become a 500, and
a client that goes away cancels what the handler waits on.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import pytest

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyChannel, DummyRequest

from gateway.http.resource import HandlerResource


class Boom(Exception):
    pass


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> List[Failure]:
    """
    The failures L{HandlerResource} logs during a test.
    """
    failures: List[Failure] = []

    def observe(event: Dict[str, object]) -> None:
        if "log_failure" in event:
            failures.append(event["log_failure"])  # type: ignore[arg-type]

    monkeypatch.setattr(HandlerResource, "log", Logger(observer=observe))
    return failures


def render(handler) -> DummyRequest:  # type: ignore[no-untyped-def]
    request = DummyRequest([b""])
    # What twisted.web's Request has and DummyRequest lacks: the 500 is only written on an
    # open channel, before anything else was.
    request.channel = DummyChannel()
    request.startedWriting = False
    assert HandlerResource(handler).render(request) is NOT_DONE_YET
    return request


def test_finished_in_the_first_step() -> None:
    """
    A handler that never waits (awaiting only fired L{Deferred}s) is answered at once.
    """

    async def handler(request: DummyRequest) -> Optional[bytes]:
        first = await succeed(b"hello, ")
        return first + b"world"

    request = render(handler)
    assert request.written == [b"hello, world"]
    assert request.finished == 1


def test_no_body() -> None:
    """
    A handler that returns C{b""} or C{None} writes nothing, and the request is finished.
    """

    async def handler(request: DummyRequest) -> Optional[bytes]:
        request.setResponseCode(204)
        return None

    request = render(handler)
    assert request.written == []
    assert request.finished == 1
    assert request.responseCode == 204


def test_waits_then_answers() -> None:
    """
    A handler that waits on L{Deferred}s is answered when it returns, after each has fired and
    handed its result back to it.
    """
    first: Deferred[bytes] = Deferred()
    second: Deferred[bytes] = Deferred()
    seen: List[bytes] = []

    async def handler(request: DummyRequest) -> Optional[bytes]:
        seen.append(await first)
        seen.append(await second)
        return b"".join(seen)

    request = render(handler)
    assert request.finished == 0
    first.callback(b"one")
    assert seen == [b"one"]
    assert request.finished == 0
    second.callback(b"two")
    assert request.written == [b"onetwo"]
    assert request.finished == 1


def test_failure_of_awaited_is_raised_in_handler() -> None:
    """
    The failure of a L{Deferred} the handler waits on is raised where it awaits, where the
    handler may catch it.
    """
    waited: Deferred[bytes] = Deferred()

    async def handler(request: DummyRequest) -> Optional[bytes]:
        try:
            await waited
        except Boom:
            return b"caught"
        return b"not caught"

    request = render(handler)
    waited.errback(Boom())
    assert request.written == [b"caught"]
    assert request.finished == 1


def test_escaping_failure_in_first_step(logged: List[Failure]) -> None:
    """
    An exception that escapes the handler before it waits is logged and answered with a 500.
    """

    async def handler(request: DummyRequest) -> Optional[bytes]:
        raise Boom()

    request = render(handler)
    assert request.responseCode == 500
    assert request.finished == 1
    assert request.written == []
    assert [f.type for f in logged] == [Boom]


def test_escaping_failure_after_waiting(logged: List[Failure]) -> None:
    """
    An exception that escapes the handler after it waited is logged and answered with a 500.
    """
    waited: Deferred[None] = Deferred()

    async def handler(request: DummyRequest) -> Optional[bytes]:
        await waited
        raise Boom()

    request = render(handler)
    assert request.finished == 0
    waited.callback(None)
    assert request.responseCode == 500
    assert request.finished == 1
    assert [f.type for f in logged] == [Boom]


def test_client_gone_cancels_what_the_handler_waits_on() -> None:
    """
    When the client goes away while the handler waits, what it waits on is cancelled, the
    cancellation is raised in the handler (which may clean up), and nothing is written.
    """
    cancelled: List[bool] = []
    waited: Deferred[bytes] = Deferred(lambda d: cancelled.append(True))
    cleaned: List[str] = []

    async def handler(request: DummyRequest) -> Optional[bytes]:
        try:
            return await waited
        except CancelledError:
            cleaned.append("cleaned up")
            raise

    request = render(handler)
    request.processingFailed(Failure(ConnectionError("gone")))
    assert cancelled == [True]
    assert cleaned == ["cleaned up"]
    assert request.written == []
    assert request.finished == 0


def test_client_gone_after_handler_finished_writing() -> None:
    """
    A handler that finished the request itself (as a streamed GET does) is not answered a
    second time.
    """
    waited: Deferred[None] = Deferred()

    async def handler(request: DummyRequest) -> Optional[bytes]:
        await waited
        request.write(b"streamed")
        request.finish()
        return None

    request = render(handler)
    waited.callback(None)
    assert request.written == [b"streamed"]
    assert request.finished == 1
