"""
Tests of :mod:`gateway.http.streaming`: a request is dispatched once its headers are in, and its
body flows to the consumer the resource attaches, with backpressure, never spooled.

No sockets: a L{StreamingSite} protocol is connected to a L{StringTransport} (which records
C{pauseProducing}/C{resumeProducing} in C{producerState}) and fed raw HTTP bytes in pieces.
"""

from __future__ import annotations

import tracemalloc
from typing import Any, Dict, Iterator, List, Optional, Tuple

import attr
import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer
from zope.interface.verify import verifyObject

from gateway.http.body import (
    HIGH_WATER_MARK,
    BodyConsumerStopped,
    IncompleteRequestBody,
    RequestBody,
)
from gateway.http.streaming import (
    LARGE_BODY_SIZE,
    LARGE_READ_SIZE,
    LARGE_READERS,
    READ_SIZE,
    StreamingChannel,
    StreamingRequest,
    StreamingSite,
)

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


# Test doubles.


@implementer(IConsumer)
class RecordingConsumer:
    """
    A body consumer that keeps what it is given and lets a test decide when it pauses or stops.

    :ivar pause_on_write: pause the producer after each write while this is set.
    :ivar stop_on_write: stop the producer on the first write.
    :ivar keep: keep the chunks (a large transfer only counts them).
    """

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.chunks: List[bytes] = []
        self.count = 0
        self.producer: Optional[IPushProducer] = None
        self.registrations: List[Tuple[object, bool]] = []
        self.unregistrations = 0
        self.pause_on_write = False
        self.stop_on_write = False

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        self.producer = producer
        self.registrations.append((producer, streaming))

    def unregisterProducer(self) -> None:
        self.producer = None
        self.unregistrations += 1

    def write(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        self.count += len(data)
        if self.keep:
            self.chunks.append(data)
        if self.stop_on_write and self.producer is not None:
            self.producer.stopProducing()
        elif self.pause_on_write and self.producer is not None:
            self.producer.pauseProducing()

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class Upload:
    """
    One body-carrying request as the test resource saw it, and what became of its body.

    :ivar received_at_dispatch: how much body had arrived when the resource was called.
    :ivar stored: whether delivery completed (the resource then answered 200).
    :ivar failure: why delivery failed, if it did.
    """

    def __init__(self, request: StreamingRequest) -> None:
        self.request = request
        self.body: RequestBody = request.body
        self.received_at_dispatch = request.body.received
        self.consumer: Optional[RecordingConsumer] = None
        self.done: Optional[Deferred[None]] = None
        self.failure: Optional[Failure] = None
        self.stored = False
        self.producer_at_completion: Optional[object] = "not completed"

    def start(self, consumer: Optional[RecordingConsumer] = None) -> RecordingConsumer:
        """
        Attach a consumer to the body, as a PUT handler does once it decides to read it.
        """
        self.consumer = consumer if consumer is not None else RecordingConsumer()
        self.done = self.body.deliver(self.consumer)
        self.done.addCallbacks(self._stored, self._failed)
        return self.consumer

    def answer(self, code: int, body: bytes) -> None:
        self.request.setResponseCode(code)
        self.request.setHeader(b"content-length", b"%d" % (len(body),))
        self.request.write(body)
        self.request.finish()

    def _stored(self, _: None) -> None:
        assert self.consumer is not None
        self.stored = True
        self.producer_at_completion = self.consumer.producer
        self.answer(200, b"stored %d" % (self.consumer.count,))

    def _failed(self, failure: Failure) -> None:
        self.failure = failure
        if failure.check(BodyConsumerStopped) and not self.request.finished:
            self.answer(400, b"stopped")


class BodyResource(Resource):
    """
    A resource whose behaviour is named by the path: ``/deliver`` reads the body at once,
    ``/hold`` leaves it to the test, ``/refuse`` answers 403 without reading, ``/stop`` reads
    with a consumer that stops the body on its first chunk; GET answers ``hello <path>``.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.uploads: List[Upload] = []
        self.gets: List[bytes] = []

    def render_PUT(self, request: StreamingRequest) -> object:
        upload = Upload(request)
        self.uploads.append(upload)
        if request.path == b"/refuse":
            request.setResponseCode(403)
            return b"denied"
        if request.path == b"/deliver":
            upload.start()
        elif request.path == b"/stop":
            consumer = RecordingConsumer()
            consumer.stop_on_write = True
            upload.start(consumer)
        return NOT_DONE_YET

    render_POST = render_PUT

    def render_GET(self, request: StreamingRequest) -> bytes:
        self.gets.append(request.path)
        if request.path == b"/meta":
            request.setHeader(b"x-amz-meta-Color", b"Dark Red")
            request.setHeader(b"X-AMZ-Request-Id", b"ABC123")
            request.setHeader(b"Content-Type", b"Text/Plain")
            request.setHeader(b"x-custom-thing", b"V")
        return b"hello " + request.path


@attr.s(auto_attribs=True)
class Response:
    status: int
    headers: Dict[bytes, bytes]
    body: bytes


def parse_responses(data: bytes) -> List[Response]:
    """
    Split what the server wrote into responses (interim ones included), checking the framing.
    """
    responses = []
    while data:
        head, separator, data = data.partition(b"\r\n\r\n")
        assert separator, f"unterminated response head: {head!r}"
        status_line, *header_lines = head.split(b"\r\n")
        version, status, _ = status_line.split(b" ", 2)
        assert version == b"HTTP/1.1"
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if int(status) == 100:
            pass
        elif b"content-length" in headers:
            length = int(headers[b"content-length"])
            body, data = data[:length], data[length:]
            assert len(body) == length, "truncated response body"
        elif headers.get(b"transfer-encoding") == b"chunked":
            while True:
                size_line, _, data = data.partition(b"\r\n")
                size = int(size_line, 16)
                body, data = body + data[:size], data[size + 2 :]
                if size == 0:
                    break
        responses.append(Response(int(status), headers, body))
    return responses


def final_responses(transport: StringTransport) -> List[Response]:
    return [r for r in parse_responses(transport.value()) if r.status != 100]


def head(
    method: bytes,
    path: bytes,
    length: Optional[int] = None,
    chunked: bool = False,
    expect: bool = False,
    version: bytes = b"HTTP/1.1",
    extra: Tuple[bytes, ...] = (),
) -> bytes:
    lines = [b"%s %s %s" % (method, path, version), b"Host: example.test"]
    if length is not None:
        lines.append(b"Content-Length: %d" % (length,))
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
    if expect:
        lines.append(b"Expect: 100-continue")
    lines.extend(extra)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


@attr.s(auto_attribs=True)
class Connection:
    resource: BodyResource
    protocol: StreamingChannel
    transport: StringTransport

    def feed(self, *pieces: bytes) -> None:
        for piece in pieces:
            self.protocol.dataReceived(piece)

    def feed_bytewise(self, data: bytes) -> None:
        for i in range(len(data)):
            self.protocol.dataReceived(data[i : i + 1])

    @property
    def paused(self) -> bool:
        return self.transport.producerState == "paused"


@pytest.fixture(autouse=True)
def no_logged_failures() -> Iterator[None]:
    """
    Fail a test in which anything logs a failure (an unregistered producer at cleanup, an
    exception in a resource): such errors never reach the test otherwise.
    """
    failures: List[Dict[str, Any]] = []

    def observe(event: Dict[str, Any]) -> None:
        if "log_failure" in event:
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        yield
    finally:
        globalLogPublisher.removeObserver(observe)
    assert [e["log_failure"].getTraceback() for e in failures] == []


@pytest.fixture
def connection() -> Connection:
    resource = BodyResource()
    site = StreamingSite(resource, reactor=MemoryReactorClock())
    protocol = site.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return Connection(resource, protocol, transport)


def fill_until_paused(connection: Connection, read: int, limit: int) -> int:
    """
    Send body in reads of C{read} bytes while the transport reads, as a socket would, but no
    more than C{limit} bytes; return how many were sent.
    """
    fed = 0
    while connection.transport.producerState == "producing" and fed + read <= limit:
        connection.feed(b"q" * read)
        fed += read
    return fed


# The parts.


def test_site_builds_streaming_channel_and_requests(connection: Connection) -> None:
    """
    The site speaks through L{StreamingChannel} and L{StreamingRequest}, and the body is a push
    producer.
    """
    assert isinstance(connection.protocol, StreamingChannel)
    connection.feed(head(b"PUT", b"/hold", length=3))
    (upload,) = connection.resource.uploads
    assert isinstance(upload.request, StreamingRequest)
    assert verifyObject(IPushProducer, upload.body)


# (a) dispatch on headers.


def test_dispatched_when_headers_arrive(connection: Connection) -> None:
    """
    The resource sees the request as soon as its headers are in, before any body byte, with
    method, path, query and version already set.
    """
    connection.feed(head(b"PUT", b"/hold?uploadId=7&partNumber=&x=a%20b", length=10))
    (upload,) = connection.resource.uploads
    request = upload.request
    assert upload.received_at_dispatch == 0
    assert not upload.body.complete
    assert upload.body.length == 10
    assert request.method == b"PUT"
    assert request.path == b"/hold"
    assert request.uri == b"/hold?uploadId=7&partNumber=&x=a%20b"
    assert request.clientproto == b"HTTP/1.1"
    assert request.args == {b"uploadId": [b"7"], b"partNumber": [b""], b"x": [b"a b"]}
    assert request.getHeader(b"content-length") == b"10"
    assert connection.transport.value() == b""


def test_dispatched_on_headers_when_headers_arrive_bytewise(connection: Connection) -> None:
    """
    Headers dribbling in byte by byte still dispatch exactly once, at their end.
    """
    data = head(b"PUT", b"/hold", length=4)
    connection.feed_bytewise(data[:-1])
    assert connection.resource.uploads == []
    connection.feed(data[-1:])
    assert len(connection.resource.uploads) == 1


def test_chunked_request_dispatched_on_headers(connection: Connection) -> None:
    """
    A chunked body has no declared length, and the request is dispatched before any chunk.
    """
    connection.feed(head(b"PUT", b"/hold", chunked=True))
    (upload,) = connection.resource.uploads
    assert upload.body.length is None
    assert upload.received_at_dispatch == 0
    assert not upload.body.complete


# (b) chunks in order, completion.


def test_content_length_body_reaches_consumer_in_order(connection: Connection) -> None:
    """
    Each piece reaches the consumer as it arrives, in order; the Deferred fires after the last
    byte, with the producer unregistered by then.
    """
    pieces = [b"alpha-", b"beta-", b"gamma-", b"delta"]
    total = sum(map(len, pieces))
    connection.feed(head(b"PUT", b"/deliver", length=total))
    (upload,) = connection.resource.uploads
    consumer = upload.consumer
    assert consumer is not None
    assert consumer.registrations == [(upload.body, True)]
    for index, piece in enumerate(pieces[:-1]):
        connection.feed(piece)
        assert consumer.data == b"".join(pieces[: index + 1])
        assert not upload.stored
    connection.feed(pieces[-1])
    assert consumer.chunks == pieces
    assert upload.stored
    assert upload.producer_at_completion is None
    assert consumer.unregistrations == 1
    assert upload.body.complete and upload.body.received == total
    (response,) = final_responses(connection.transport)
    assert (response.status, response.body) == (200, b"stored %d" % (total,))


def test_body_in_same_packet_as_headers(connection: Connection) -> None:
    """
    A body that arrives together with its headers is delivered whole.
    """
    connection.feed(head(b"PUT", b"/deliver", length=11) + b"hello world")
    (upload,) = connection.resource.uploads
    assert upload.consumer is not None and upload.consumer.data == b"hello world"
    assert upload.stored


def test_body_bytewise(connection: Connection) -> None:
    """
    A body fed one byte at a time arrives whole and in order.
    """
    body = bytes(range(256))
    connection.feed(head(b"PUT", b"/deliver", length=len(body)))
    connection.feed_bytewise(body)
    (upload,) = connection.resource.uploads
    assert upload.consumer is not None and upload.consumer.data == body
    assert upload.stored


def test_chunked_body_reaches_consumer(connection: Connection) -> None:
    """
    ``Transfer-Encoding: chunked`` is decoded; the consumer gets the payload only, and the
    Deferred fires at the last chunk.
    """
    connection.feed(head(b"PUT", b"/deliver", chunked=True))
    (upload,) = connection.resource.uploads
    consumer = upload.consumer
    assert consumer is not None
    connection.feed(chunk(b"first "), chunk(b"second "))
    assert consumer.data == b"first second "
    assert not upload.stored
    wire = chunk(b"third") + LAST_CHUNK
    connection.feed_bytewise(wire)
    assert consumer.data == b"first second third"
    assert upload.stored
    assert upload.body.received == len(b"first second third")
    (response,) = final_responses(connection.transport)
    assert response.body == b"stored 18"


def test_empty_body(connection: Connection) -> None:
    """
    A ``Content-Length: 0`` PUT is dispatched with a complete body: delivering it fires at once.
    """
    connection.feed(head(b"PUT", b"/deliver", length=0))
    (upload,) = connection.resource.uploads
    assert upload.body.complete
    assert upload.consumer is not None and upload.consumer.chunks == []
    assert upload.stored
    (response,) = final_responses(connection.transport)
    assert response.body == b"stored 0"


def test_body_before_deliver_is_kept(connection: Connection) -> None:
    """
    Body that arrives before the resource reads it waits, and comes out first, in order.
    """
    connection.feed(head(b"PUT", b"/hold", length=9), b"abc", b"def")
    (upload,) = connection.resource.uploads
    consumer = upload.start()
    assert consumer.data == b"abcdef"
    connection.feed(b"ghi")
    assert consumer.chunks[-1] == b"ghi" and consumer.data == b"abcdefghi"
    assert upload.stored


def test_deliver_after_complete_body(connection: Connection) -> None:
    """
    A body that is complete before it is read is delivered whole when read.
    """
    connection.feed(head(b"PUT", b"/hold", length=6) + b"abcdef")
    (upload,) = connection.resource.uploads
    assert upload.body.complete
    consumer = upload.start()
    assert consumer.data == b"abcdef"
    assert upload.stored


def test_deliver_twice_is_refused(connection: Connection) -> None:
    connection.feed(head(b"PUT", b"/deliver", length=5))
    (upload,) = connection.resource.uploads
    with pytest.raises(RuntimeError):
        upload.body.deliver(RecordingConsumer())


def test_request_content_is_never_spooled(
    connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Twisted's spool (C{_getContentFile}) is never asked for, and C{content} stays C{None}.
    """

    def no_spool(length: Optional[int]) -> None:
        raise AssertionError("the body was spooled")

    monkeypatch.setattr(http, "_getContentFile", no_spool)
    body = b"x" * 300_000  # above twisted's 100 KB switch to a temporary file
    connection.feed(head(b"PUT", b"/deliver", length=len(body)), body)
    connection.feed(head(b"PUT", b"/deliver", chunked=True), chunk(body), LAST_CHUNK)
    connection.feed(head(b"GET", b"/after"))
    assert [u.stored for u in connection.resource.uploads] == [True, True]
    assert all(u.request.content is None for u in connection.resource.uploads)
    assert [r.status for r in final_responses(connection.transport)] == [200, 200, 200]


# (c) backpressure.


def test_consumer_pause_pauses_transport_and_buffers(connection: Connection) -> None:
    """
    A consumer that pauses the body pauses the transport; what arrives meanwhile is kept, and
    resuming delivers it in order and resumes the transport.
    """
    connection.feed(head(b"PUT", b"/deliver", length=40))
    (upload,) = connection.resource.uploads
    consumer = upload.consumer
    assert consumer is not None
    consumer.pause_on_write = True
    connection.feed(b"a" * 10)
    assert consumer.data == b"a" * 10
    assert connection.paused
    consumer.pause_on_write = False
    connection.feed(b"b" * 10, b"c" * 10)
    assert consumer.data == b"a" * 10
    assert connection.paused
    assert consumer.producer is upload.body
    upload.body.resumeProducing()
    assert consumer.data == b"a" * 10 + b"b" * 10 + b"c" * 10
    assert consumer.chunks == [b"a" * 10, b"b" * 10, b"c" * 10]
    assert connection.transport.producerState == "producing"
    assert not upload.stored
    connection.feed(b"d" * 10)
    assert upload.stored
    assert consumer.data.endswith(b"d" * 10)


def test_body_complete_while_paused_finishes_on_resume(connection: Connection) -> None:
    """
    The end of a body that arrives while the consumer is paused waits for it too: the Deferred
    fires only after the consumer has had every byte.
    """
    connection.feed(head(b"PUT", b"/deliver", length=6))
    (upload,) = connection.resource.uploads
    consumer = upload.consumer
    assert consumer is not None
    upload.body.pauseProducing()
    assert connection.paused
    connection.feed(b"abc", b"def")
    assert upload.body.complete
    assert consumer.chunks == []
    assert not upload.stored
    assert final_responses(connection.transport) == []
    upload.body.resumeProducing()
    assert consumer.data == b"abcdef"
    assert upload.stored
    assert [r.body for r in final_responses(connection.transport)] == [b"stored 6"]
    assert connection.transport.producerState == "producing"


def test_pause_during_flush_stops_flush(connection: Connection) -> None:
    """
    A consumer that pauses while the buffered body is being flushed gets nothing more until it
    resumes (the re-entrance guard), and the transport stays paused meanwhile.
    """
    connection.feed(head(b"PUT", b"/hold", length=9), b"abc", b"def", b"ghi")
    (upload,) = connection.resource.uploads
    consumer = RecordingConsumer()
    consumer.pause_on_write = True
    upload.start(consumer)
    assert consumer.chunks == [b"abc"]
    upload.body.resumeProducing()
    assert consumer.chunks == [b"abc", b"def"]
    consumer.pause_on_write = False
    upload.body.resumeProducing()
    assert consumer.chunks == [b"abc", b"def", b"ghi"]
    assert upload.stored


def test_resume_without_data_keeps_transport_producing(connection: Connection) -> None:
    """
    Pause and resume with nothing buffered leave the transport as it was: producing.
    """
    connection.feed(head(b"PUT", b"/deliver", length=4))
    (upload,) = connection.resource.uploads
    upload.body.pauseProducing()
    assert connection.paused
    upload.body.resumeProducing()
    assert connection.transport.producerState == "producing"
    connection.feed(b"abcd")
    assert upload.stored


# (d) bounded memory.


def test_large_body_with_slow_consumer_stays_bounded(connection: Connection) -> None:
    """
    An 8 MiB body through a consumer that pauses after every write: a client that honours the
    paused transport never has more than one read waiting in the request.
    """
    size, read = 8 * 1024 * 1024, 64 * 1024
    connection.feed(head(b"PUT", b"/hold", length=size))
    (upload,) = connection.resource.uploads
    consumer = RecordingConsumer(keep=False)
    consumer.pause_on_write = True
    upload.start(consumer)
    fed = held_max = 0
    for _ in range(4 * size // read):  # bounded: a stuck transfer fails instead of hanging
        if upload.stored:
            break
        if connection.transport.producerState == "producing" and fed < size:
            connection.feed(b"z" * read)
            fed += read
        else:
            upload.body.resumeProducing()  # the storage caught up
        held_max = max(held_max, fed - consumer.count)
    assert upload.stored
    assert consumer.count == size
    assert held_max <= read
    assert upload.request.content is None


def test_unread_body_pauses_transport_above_high_water_mark(connection: Connection) -> None:
    """
    Body that no consumer reads yet is held up to the high-water mark, then the transport is
    paused: the request holds at most one read beyond the mark.
    """
    read = 64 * 1024
    connection.feed(head(b"PUT", b"/hold", length=4 * HIGH_WATER_MARK))
    (upload,) = connection.resource.uploads
    fed = fill_until_paused(connection, read, HIGH_WATER_MARK + 4 * read)
    assert connection.paused
    assert HIGH_WATER_MARK < fed <= HIGH_WATER_MARK + read
    assert upload.body.received == fed


def test_deliver_after_high_water_mark_resumes_transport(connection: Connection) -> None:
    """
    A resource that reads the body only after an asynchronous step (signature check, store
    lookup) while a client without ``Expect`` sends more than the high-water mark: once the
    consumer takes the buffered body the transport must read again, or the upload never ends.
    """
    read = 64 * 1024
    size = 2 * HIGH_WATER_MARK
    connection.feed(head(b"PUT", b"/hold", length=size))
    (upload,) = connection.resource.uploads
    fed = fill_until_paused(connection, read, size)
    assert connection.paused
    consumer = upload.start(RecordingConsumer(keep=False))
    assert consumer.count == fed
    assert connection.transport.producerState == "producing"
    connection.feed(b"q" * (size - fed))
    assert upload.stored


def test_large_upload_memory_peak(connection: Connection) -> None:
    """
    16 MiB through the request to a counting consumer: Python's allocation peak stays a small
    fraction of the body (nothing accumulates in the request or the channel).
    """
    size, read = 16 * 1024 * 1024, 64 * 1024
    connection.feed(head(b"PUT", b"/deliver", length=size))
    (upload,) = connection.resource.uploads
    upload.consumer.keep = False  # type: ignore[union-attr]
    tracemalloc.start()
    try:
        for _ in range(size // read):
            connection.feed(b"m" * read)  # a fresh buffer each time, as a socket read makes
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert upload.stored
    assert upload.consumer is not None and upload.consumer.count == size
    assert peak < HIGH_WATER_MARK


# (e) Expect: 100-continue.


def test_continue_only_when_resource_reads(connection: Connection) -> None:
    """
    No ``100 Continue`` goes out at the headers; it goes out, once, when the resource reads.
    """
    connection.feed(head(b"PUT", b"/hold", length=5, expect=True))
    (upload,) = connection.resource.uploads
    assert connection.transport.value() == b""
    upload.start()
    assert connection.transport.value() == CONTINUE
    connection.feed(b"hello")
    assert upload.stored
    responses = parse_responses(connection.transport.value())
    assert [r.status for r in responses] == [100, 200]
    assert responses[1].headers.get(b"connection") != b"close"
    assert not connection.transport.disconnecting


def test_continue_at_once_when_resource_reads_on_dispatch(connection: Connection) -> None:
    connection.feed(head(b"PUT", b"/deliver", length=5, expect=True))
    assert connection.transport.value() == CONTINUE
    connection.feed(b"hello", head(b"GET", b"/next"))
    statuses = [r.status for r in parse_responses(connection.transport.value())]
    assert statuses == [100, 200, 200]


def test_continue_for_chunked_body(connection: Connection) -> None:
    connection.feed(head(b"PUT", b"/hold", chunked=True, expect=True))
    assert connection.transport.value() == b""
    (upload,) = connection.resource.uploads
    upload.start()
    assert connection.transport.value() == CONTINUE
    connection.feed(chunk(b"abc"), LAST_CHUNK)
    assert upload.stored


def test_refused_before_reading_with_expect_closes(connection: Connection) -> None:
    """
    A request answered before its body is read, whose client still waits for ``100 Continue``,
    gets its response with ``Connection: close`` and the connection is closed; no 100 is sent.
    """
    connection.feed(head(b"PUT", b"/refuse", length=1000, expect=True))
    data = connection.transport.value()
    assert b"100 Continue" not in data
    (response,) = parse_responses(data)
    assert response.status == 403
    assert response.body == b"denied"
    assert response.headers[b"connection"] == b"close"
    assert connection.transport.disconnecting


def test_refused_later_with_expect_closes(connection: Connection) -> None:
    """
    The same when the refusal comes after an asynchronous step rather than during render.
    """
    connection.feed(head(b"PUT", b"/hold", length=1000, expect=True))
    (upload,) = connection.resource.uploads
    upload.answer(403, b"no")
    data = connection.transport.value()
    assert b"100 Continue" not in data
    (response,) = parse_responses(data)
    assert response.headers[b"connection"] == b"close"
    assert connection.transport.disconnecting


def test_refused_with_expect_then_body_arrives_anyway(connection: Connection) -> None:
    """
    A client that raced its body out before reading the refusal: the bytes that came with it
    (body and a following request) are dropped without error, and nothing more is served.
    """
    connection.feed(head(b"PUT", b"/refuse", length=10, expect=True))
    assert connection.transport.disconnecting
    connection.feed(b"0123456789" + head(b"GET", b"/next"))
    assert connection.resource.gets == []
    assert [r.status for r in final_responses(connection.transport)] == [403]


def test_expect_value_is_case_insensitive(connection: Connection) -> None:
    connection.feed(head(b"PUT", b"/hold", length=3, extra=(b"Expect: 100-Continue",)))
    assert connection.transport.value() == b""
    (upload,) = connection.resource.uploads
    upload.start()
    assert connection.transport.value() == CONTINUE


def test_expect_but_body_sent_anyway_keeps_connection(connection: Connection) -> None:
    """
    A client that sent its body without waiting for 100 is not waiting: an early answer keeps
    the connection, drains the body, and the next request is served.
    """
    connection.feed(head(b"PUT", b"/hold", length=10, expect=True), b"01234")
    (upload,) = connection.resource.uploads
    upload.answer(403, b"no")
    (response,) = final_responses(connection.transport)
    assert response.headers.get(b"connection") != b"close"
    assert not connection.transport.disconnecting
    connection.feed(b"56789" + head(b"GET", b"/next"))
    responses = final_responses(connection.transport)
    assert [(r.status, r.body) for r in responses] == [(403, b"no"), (200, b"hello /next")]
    assert b"100 Continue" not in connection.transport.value()


def test_no_continue_for_http10(connection: Connection) -> None:
    """
    ``100 Continue`` is an HTTP/1.1 thing: an HTTP/1.0 request that asks for it is not sent one.
    """
    connection.feed(head(b"PUT", b"/deliver", length=3, expect=True, version=b"HTTP/1.0"))
    assert connection.transport.value() == b""
    connection.feed(b"abc")
    (upload,) = connection.resource.uploads
    assert upload.stored
    assert b"100 Continue" not in connection.transport.value()


def test_continue_for_empty_body_that_asks(connection: Connection) -> None:
    """
    An empty body with ``Expect: 100-continue`` gets its 100 at once, before the final answer:
    botocore misreads the next response on the connection otherwise.
    """
    connection.feed(head(b"PUT", b"/deliver", length=0, expect=True))
    value = connection.transport.value()
    assert value.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")
    (upload,) = connection.resource.uploads
    assert upload.stored
    assert not connection.transport.disconnecting


# (f) an early answer drains the rest of the body.


def test_early_answer_drains_body_and_serves_next(connection: Connection) -> None:
    """
    Answered while the body is still arriving (no ``Expect``): the answer goes out at once, the
    rest of the body is read and dropped, and a pipelined request is then served.
    """
    connection.feed(head(b"PUT", b"/refuse", length=20), b"01234")
    (response,) = final_responses(connection.transport)
    assert response.status == 403
    assert response.headers.get(b"connection") != b"close"
    assert not connection.transport.disconnecting
    connection.feed(b"56789", b"abcde")
    assert connection.resource.gets == []
    connection.feed(b"fghij" + head(b"GET", b"/next") + head(b"GET", b"/again"))
    responses = final_responses(connection.transport)
    assert [(r.status, r.body) for r in responses] == [
        (403, b"denied"),
        (200, b"hello /next"),
        (200, b"hello /again"),
    ]
    assert connection.resource.gets == [b"/next", b"/again"]
    assert not connection.transport.disconnecting
    assert connection.transport.producerState == "producing"


def test_early_answer_then_body_and_request_bytewise(connection: Connection) -> None:
    connection.feed(head(b"PUT", b"/refuse", length=12))
    connection.feed_bytewise(b"hello world!" + head(b"PUT", b"/deliver", length=3) + b"xyz")
    responses = final_responses(connection.transport)
    assert [r.status for r in responses] == [403, 200]
    second = connection.resource.uploads[1]
    assert second.consumer is not None and second.consumer.data == b"xyz"


def test_early_answer_drains_chunked_body(connection: Connection) -> None:
    connection.feed(head(b"PUT", b"/refuse", chunked=True), chunk(b"a" * 100))
    connection.feed(chunk(b"b" * 100), LAST_CHUNK + head(b"GET", b"/next"))
    responses = final_responses(connection.transport)
    assert [(r.status, r.body) for r in responses] == [(403, b"denied"), (200, b"hello /next")]


def test_early_answer_after_high_water_mark_resumes_transport(connection: Connection) -> None:
    """
    A request refused after the held body paused the transport: the drain resumes it, drops
    what was held, and the connection goes on.
    """
    read = 64 * 1024
    size = 2 * HIGH_WATER_MARK
    connection.feed(head(b"PUT", b"/hold", length=size))
    (upload,) = connection.resource.uploads
    fed = fill_until_paused(connection, read, size)
    assert connection.paused
    upload.answer(403, b"late no")
    assert connection.transport.producerState == "producing"
    while fed < size:
        step = min(read, size - fed)
        connection.feed(b"q" * step)
        fed += step
        assert connection.transport.producerState == "producing"
    connection.feed(head(b"GET", b"/next"))
    responses = final_responses(connection.transport)
    assert [(r.status, r.body) for r in responses] == [(403, b"late no"), (200, b"hello /next")]


def test_early_answer_while_consumer_paused_resumes_transport(connection: Connection) -> None:
    """
    Answered while the consumer has the body paused: the drain resumes the transport and drops
    what was waiting.
    """
    connection.feed(head(b"PUT", b"/deliver", length=30))
    (upload,) = connection.resource.uploads
    upload.body.pauseProducing()
    connection.feed(b"a" * 10)
    assert connection.paused
    upload.answer(507, b"full")
    assert connection.transport.producerState == "producing"
    assert upload.failure is not None and upload.failure.check(BodyConsumerStopped)
    connection.feed(b"b" * 20 + head(b"GET", b"/next"))
    assert upload.consumer is not None and upload.consumer.chunks == []
    assert [r.status for r in final_responses(connection.transport)] == [507, 200]


def test_early_answer_with_connection_close(connection: Connection) -> None:
    """
    A client that asked for ``Connection: close`` gets its early answer and the close.
    """
    connection.feed(head(b"PUT", b"/refuse", length=10, extra=(b"Connection: close",)))
    (response,) = final_responses(connection.transport)
    assert response.status == 403
    assert connection.transport.disconnecting


# (g) connection lost.


def test_connection_lost_mid_body_fails_deliver(connection: Connection) -> None:
    connection.feed(head(b"PUT", b"/deliver", length=100), b"x" * 40)
    (upload,) = connection.resource.uploads
    connection.protocol.connectionLost(Failure(ConnectionLost("gone")))
    assert not upload.stored
    assert upload.failure is not None
    assert upload.failure.check(IncompleteRequestBody)
    assert upload.consumer is not None
    assert upload.consumer.count == 40
    assert upload.consumer.unregistrations == 1


def test_connection_lost_while_paused_fails_deliver(connection: Connection) -> None:
    connection.feed(head(b"PUT", b"/deliver", length=100))
    (upload,) = connection.resource.uploads
    upload.body.pauseProducing()
    connection.feed(b"x" * 40)
    connection.protocol.connectionLost(Failure(ConnectionDone()))
    assert upload.failure is not None and upload.failure.check(IncompleteRequestBody)


def test_connection_lost_before_deliver_fails_deliver(connection: Connection) -> None:
    """
    Reading a body whose client has already gone fails at once rather than waiting forever.
    """
    connection.feed(head(b"PUT", b"/hold", length=100), b"x" * 10)
    (upload,) = connection.resource.uploads
    connection.protocol.connectionLost(Failure(ConnectionLost("gone")))
    upload.start()
    assert upload.failure is not None and upload.failure.check(IncompleteRequestBody)
    assert not upload.stored


def test_connection_lost_chunked_mid_body(connection: Connection) -> None:
    connection.feed(head(b"PUT", b"/deliver", chunked=True), chunk(b"abc"))
    (upload,) = connection.resource.uploads
    connection.protocol.connectionLost(Failure(ConnectionLost("gone")))
    assert upload.failure is not None and upload.failure.check(IncompleteRequestBody)


def test_connection_lost_after_body_is_not_a_body_failure(connection: Connection) -> None:
    """
    Once the body is complete, losing the connection is no body error: delivery still succeeds.
    """
    connection.feed(head(b"PUT", b"/hold", length=3), b"abc")
    (upload,) = connection.resource.uploads
    finished: List[Failure] = []
    upload.request.notifyFinish().addErrback(finished.append)
    connection.protocol.connectionLost(Failure(ConnectionLost("gone")))
    assert len(finished) == 1
    consumer = RecordingConsumer()
    done = upload.body.deliver(consumer)
    results: List[object] = []
    done.addBoth(results.append)
    assert results == [None]
    assert consumer.data == b"abc"


# (h) bodyless requests, keep-alive.


def test_gets_keep_alive(connection: Connection) -> None:
    for path in (b"/one", b"/two", b"/three"):
        connection.feed(head(b"GET", path))
    connection.feed(head(b"GET", b"/four") + head(b"GET", b"/five"))
    responses = final_responses(connection.transport)
    assert [r.body for r in responses] == [
        b"hello /one",
        b"hello /two",
        b"hello /three",
        b"hello /four",
        b"hello /five",
    ]
    assert all(r.status == 200 for r in responses)
    assert connection.resource.uploads == []
    assert not connection.transport.disconnecting


def test_get_request_attributes(connection: Connection) -> None:
    connection.feed(head(b"GET", b"/x?list-type=2&prefix="))
    (response,) = final_responses(connection.transport)
    assert response.body == b"hello /x"


def test_mixed_requests_on_one_connection(connection: Connection) -> None:
    """
    GET, PUT (content-length), GET, PUT (chunked), GET in one pipelined write.
    """
    connection.feed(
        head(b"GET", b"/a")
        + head(b"PUT", b"/deliver", length=3)
        + b"one"
        + head(b"GET", b"/b")
        + head(b"PUT", b"/deliver", chunked=True)
        + chunk(b"two")
        + LAST_CHUNK
        + head(b"GET", b"/c")
    )
    responses = final_responses(connection.transport)
    assert [r.body for r in responses] == [
        b"hello /a",
        b"stored 3",
        b"hello /b",
        b"stored 3",
        b"hello /c",
    ]
    consumers = [u.consumer for u in connection.resource.uploads]
    assert [c.data for c in consumers if c is not None] == [b"one", b"two"]


def test_pipelined_request_waits_for_held_upload(connection: Connection) -> None:
    """
    Head-of-line: a request pipelined behind an upload is answered only after the upload is.
    """
    connection.feed(head(b"PUT", b"/hold", length=3) + b"abc" + head(b"GET", b"/next"))
    assert connection.resource.gets == []
    (upload,) = connection.resource.uploads
    upload.start()
    responses = final_responses(connection.transport)
    assert [r.body for r in responses] == [b"stored 3", b"hello /next"]


def test_pipelined_upload_behind_held_upload(connection: Connection) -> None:
    """
    A second upload pipelined behind a held one: its bytes wait in the channel (which pauses
    the transport past its small limit), and once the first is answered the second is
    dispatched and gets its whole body.
    """
    second = bytes(range(256)) * 400  # 100 KiB, past the channel's 16 KiB eager-read limit
    connection.feed(head(b"PUT", b"/hold", length=3) + b"abc")
    connection.feed(head(b"PUT", b"/deliver", length=len(second)) + second[:50_000])
    assert len(connection.resource.uploads) == 1
    assert connection.paused
    first = connection.resource.uploads[0]
    first.start()
    assert len(connection.resource.uploads) == 2
    assert connection.transport.producerState == "producing"
    connection.feed(second[50_000:])
    upload = connection.resource.uploads[1]
    assert upload.consumer is not None and upload.consumer.data == second
    assert [r.body for r in final_responses(connection.transport)] == [
        b"stored 3",
        b"stored %d" % (len(second),),
    ]


def test_resumed_body_leaves_next_requests_pause_alone(connection: Connection) -> None:
    """
    An upload whose paused consumer resumes at the end of its body, and is answered at once,
    lets the channel go on to a pipelined upload whose consumer pauses in turn: the first
    body's resume must not undo the second body's pause of the shared transport.
    """
    connection.feed(head(b"PUT", b"/deliver", length=3))
    first = connection.resource.uploads[0]
    first.body.pauseProducing()
    connection.feed(b"abc" + head(b"PUT", b"/hold", length=100) + b"x" * 10)
    assert first.body.complete and not first.stored

    def start_paused() -> None:
        consumer = RecordingConsumer()
        consumer.pause_on_write = True
        connection.resource.uploads[1].start(consumer)

    # The second upload reads its body (and pauses at the first chunk) as soon as it is
    # dispatched, from inside the first one's resumeProducing.
    original = BodyResource.render_PUT

    def render(resource: BodyResource, request: StreamingRequest) -> object:
        result = original(resource, request)
        if request.path == b"/hold":
            start_paused()
        return result

    connection.resource.render_PUT = (  # type: ignore[method-assign]
        lambda request: render(connection.resource, request)
    )
    first.body.resumeProducing()
    assert first.stored
    second = connection.resource.uploads[1]
    assert second.consumer is not None and second.consumer.data == b"x" * 10
    assert connection.paused
    connection.feed(b"y" * 90)
    assert second.consumer.data == b"x" * 10
    second.body.resumeProducing()
    assert second.stored


def test_http10_put_closes_after_response(connection: Connection) -> None:
    connection.feed(head(b"PUT", b"/deliver", length=3, version=b"HTTP/1.0"), b"abc")
    (upload,) = connection.resource.uploads
    assert upload.stored
    assert connection.transport.disconnecting


# (i) the consumer stops the body.


def test_stop_producing_fails_deliver_and_discards_rest(connection: Connection) -> None:
    """
    A consumer that stops the body: deliver fails with L{BodyConsumerStopped}, nothing more
    reaches it, the rest of the body is dropped and the connection serves the next request.
    """
    connection.feed(head(b"PUT", b"/stop", length=30), b"a" * 10)
    (upload,) = connection.resource.uploads
    consumer = upload.consumer
    assert consumer is not None
    assert upload.failure is not None and upload.failure.check(BodyConsumerStopped)
    assert consumer.chunks == [b"a" * 10]
    assert consumer.unregistrations == 1
    connection.feed(b"b" * 10)
    connection.feed(b"c" * 10 + head(b"GET", b"/next"))
    assert consumer.chunks == [b"a" * 10]
    responses = final_responses(connection.transport)
    assert [(r.status, r.body) for r in responses] == [(400, b"stopped"), (200, b"hello /next")]
    assert connection.transport.producerState == "producing"
    assert not connection.transport.disconnecting


def test_stop_producing_while_paused_resumes_transport(connection: Connection) -> None:
    """
    Stopping a paused body resumes the transport, so the rest can be read and dropped.
    """
    connection.feed(head(b"PUT", b"/deliver", length=30))
    (upload,) = connection.resource.uploads
    upload.body.pauseProducing()
    connection.feed(b"a" * 10)
    assert connection.paused
    upload.body.stopProducing()
    assert upload.failure is not None and upload.failure.check(BodyConsumerStopped)
    assert connection.transport.producerState == "producing"
    assert upload.consumer is not None and upload.consumer.chunks == []
    connection.feed(b"b" * 20 + head(b"GET", b"/next"))
    assert [r.status for r in final_responses(connection.transport)] == [400, 200]


def test_finish_while_consumer_reads_fails_deliver(connection: Connection) -> None:
    """
    A response finished while its consumer is still reading (an error mid-upload) stops the
    delivery with L{BodyConsumerStopped}; the rest is drained and the connection goes on.
    """
    connection.feed(head(b"PUT", b"/hold", length=20), b"a" * 5)
    (upload,) = connection.resource.uploads
    consumer = RecordingConsumer()
    done = upload.body.deliver(consumer)
    failures: List[Failure] = []
    done.addErrback(failures.append)
    upload.answer(500, b"broken")
    assert len(failures) == 1 and failures[0].check(BodyConsumerStopped)
    assert consumer.unregistrations == 1
    connection.feed(b"b" * 15 + head(b"GET", b"/next"))
    assert consumer.data == b"a" * 5
    assert [r.status for r in final_responses(connection.transport)] == [500, 200]


# Response headers.


def test_amz_header_names_in_lower_case(connection: Connection) -> None:
    """
    ``x-amz-*`` names go out in lower case (botocore reads user metadata names as sent); other
    names keep twisted's form, and no value changes.
    """
    connection.feed(head(b"GET", b"/meta"))
    data = connection.transport.value()
    header_block = data.split(b"\r\n\r\n", 1)[0]
    lines = header_block.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert b"x-amz-meta-color: Dark Red" in lines
    assert b"x-amz-request-id: ABC123" in lines
    assert b"Content-Type: Text/Plain" in lines
    assert b"X-Custom-Thing: V" in lines
    assert not any(line.lower().startswith(b"x-amz-") and line[:6] != b"x-amz-" for line in lines)
    (response,) = final_responses(connection.transport)
    assert response.body == b"hello /meta"


# Per-request work skipped for a leaf root.


def test_leaf_root_request_has_server_and_date_headers(connection: Connection) -> None:
    """
    A leaf root is rendered without traversal, with a Server header that names no version and
    a Date header; the path's segments are still there when asked for.
    """
    connection.feed(head(b"GET", b"/a%20b/c?x=1"))
    (response,) = final_responses(connection.transport)
    assert response.status == 200 and response.body == b"hello /a%20b/c"
    assert response.headers[b"server"] == b"s3gateway"
    assert response.headers[b"date"].endswith(b" GMT")
    assert connection.resource.gets == [b"/a%20b/c"]


def test_star_request_is_answered_without_the_resource(connection: Connection) -> None:
    """
    C{OPTIONS *} is answered as twisted.web answers it (200, or 405 for another method), with
    a Server header that names no version; the resource never sees it.
    """
    connection.feed(head(b"OPTIONS", b"*") + head(b"GET", b"*"))
    options, get = final_responses(connection.transport)
    assert (options.status, options.body) == (200, b"")
    assert (get.status, get.headers[b"allow"]) == (405, b"OPTIONS")
    assert options.headers[b"server"] == get.headers[b"server"] == b"s3gateway"
    assert connection.resource.gets == []


def test_postpath_is_decoded_segments(connection: Connection) -> None:
    request = StreamingRequest(connection.protocol, False)
    request.path = b"/a%20b/c/"
    assert request.postpath == [b"a b", b"c", b""]
    request.postpath = [b"x"]
    assert request.postpath == [b"x"]


def test_non_leaf_root_is_traversed() -> None:
    root = Resource()
    child = BodyResource()
    root.putChild(b"child", child)
    site = StreamingSite(root, reactor=MemoryReactorClock())
    protocol = site.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(head(b"GET", b"/child/x"))
    (response,) = final_responses(transport)
    assert response.status == 200 and response.body == b"hello /child/x"


def test_date_header_formatted_once_per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.http import streaming

    now = [1_700_000_000.2]
    monkeypatch.setattr(streaming.time, "time", lambda: now[0])
    site = StreamingSite(BodyResource(), reactor=MemoryReactorClock())
    first = site.http_date()
    assert first == http.datetimeToString(1_700_000_000)
    now[0] = 1_700_000_000.9
    assert site.http_date() is first
    now[0] = 1_700_000_001.0
    assert site.http_date() == http.datetimeToString(1_700_000_001)


def test_channel_asks_the_transport_for_its_address_once(connection: Connection) -> None:
    calls = []
    original = connection.transport.getHost

    def get_host():  # type: ignore[no-untyped-def]
        calls.append(1)
        return original()

    connection.transport.getHost = get_host  # type: ignore[method-assign]
    connection.feed(head(b"GET", b"/one"), head(b"GET", b"/two"))
    assert len(final_responses(connection.transport)) == 2
    assert len(calls) == 1


# (k) the read size of large bodies.


class ReadingTransport(StringTransport):
    """
    A L{StringTransport} with a read size, as Twisted's TCP transports have.
    """

    bufferSize = 64 * 1024


@pytest.fixture
def site() -> StreamingSite:
    return StreamingSite(BodyResource(), reactor=MemoryReactorClock())


def connect(site: StreamingSite) -> Connection:
    protocol = site.buildProtocol(None)
    transport = ReadingTransport()
    protocol.makeConnection(transport)
    return Connection(site.resource, protocol, transport)  # type: ignore[arg-type]


def test_a_large_body_is_read_in_large_reads_until_it_is_in(site: StreamingSite) -> None:
    connection = connect(site)
    assert connection.transport.bufferSize == READ_SIZE
    connection.feed(head(b"PUT", b"/deliver", length=LARGE_BODY_SIZE - 1), b"x" * 10)
    assert connection.transport.bufferSize == READ_SIZE
    connection.feed(b"x" * (LARGE_BODY_SIZE - 11))
    connection.feed(head(b"PUT", b"/deliver", length=LARGE_BODY_SIZE), b"x" * 10)
    assert connection.transport.bufferSize == LARGE_READ_SIZE
    assert site.large_readers == 1
    connection.feed(b"x" * (LARGE_BODY_SIZE - 10))
    assert connection.transport.bufferSize == READ_SIZE
    assert site.large_readers == 0
    assert [r.status for r in final_responses(connection.transport)] == [200, 200]


def test_only_so_many_bodies_read_in_large_reads_at_once(site: StreamingSite) -> None:
    """
    Past L{LARGE_READERS} bodies, the next reads in L{READ_SIZE} until one of them is in.
    """
    connections = [connect(site) for _ in range(LARGE_READERS + 1)]
    for connection in connections:
        connection.feed(head(b"PUT", b"/deliver", length=LARGE_BODY_SIZE))
    sizes = [c.transport.bufferSize for c in connections]
    assert sizes == [LARGE_READ_SIZE] * LARGE_READERS + [READ_SIZE]
    assert site.large_readers == LARGE_READERS
    connections[0].feed(b"x" * LARGE_BODY_SIZE)
    assert site.large_readers == LARGE_READERS - 1
    later = connect(site)
    later.feed(head(b"PUT", b"/deliver", length=LARGE_BODY_SIZE))
    assert later.transport.bufferSize == LARGE_READ_SIZE


def test_a_lost_connection_gives_its_large_reads_back(site: StreamingSite) -> None:
    connection = connect(site)
    connection.feed(head(b"PUT", b"/deliver", length=LARGE_BODY_SIZE), b"x" * 100)
    assert site.large_readers == 1
    connection.protocol.connectionLost(Failure(ConnectionLost("gone")))
    assert site.large_readers == 0


def test_an_early_answer_gives_the_large_reads_back(site: StreamingSite) -> None:
    """
    Answered before its body came, a request gives its large reads back when done with: at
    once on a connection that closes, once the rest of the body is drained on one kept open.
    """
    closing = connect(site)
    closing.feed(head(b"PUT", b"/refuse", length=LARGE_BODY_SIZE, extra=(b"Connection: close",)))
    assert closing.transport.disconnecting
    assert site.large_readers == 0
    kept = connect(site)
    kept.feed(head(b"PUT", b"/refuse", length=LARGE_BODY_SIZE), b"x" * 100)
    assert [r.status for r in final_responses(kept.transport)] == [403]
    assert site.large_readers == 1
    kept.feed(b"x" * (LARGE_BODY_SIZE - 100))
    assert site.large_readers == 0
    assert kept.transport.bufferSize == READ_SIZE


# (l) the idle timeout.


class HeldResource(Resource):
    """
    Holds every GET unanswered until the test answers it.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.held: List[StreamingRequest] = []

    def render_GET(self, request: StreamingRequest) -> object:
        self.held.append(request)
        return NOT_DONE_YET


IDLE = 10.0


def timed_connection(resource: Resource) -> Tuple[MemoryReactorClock, Connection]:
    clock = MemoryReactorClock()
    site = StreamingSite(resource, reactor=clock, timeout=IDLE)
    protocol = site.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return clock, Connection(resource, protocol, transport)  # type: ignore[arg-type]


def test_an_idle_connection_is_closed() -> None:
    clock, connection = timed_connection(BodyResource())
    connection.feed(head(b"GET", b"/one"))
    clock.advance(IDLE - 1)
    assert not connection.transport.disconnecting
    connection.feed(head(b"GET", b"/two"))
    clock.advance(IDLE - 1)
    assert not connection.transport.disconnecting
    clock.advance(2)
    assert connection.transport.disconnecting
    assert len(final_responses(connection.transport)) == 2


def test_a_request_answered_slowly_is_not_timed_out() -> None:
    """
    The idle timer does not run while a request is answered, however long that takes; once
    answered, the connection is idle again and timed out after the idle period.
    """
    resource = HeldResource()
    clock, connection = timed_connection(resource)
    connection.feed(head(b"GET", b"/slow"))
    clock.advance(IDLE * 3)
    assert not connection.transport.disconnecting
    (request,) = resource.held
    request.write(b"late")
    request.finish()
    assert [r.body for r in final_responses(connection.transport)] == [b"late"]
    clock.advance(IDLE - 1)
    assert not connection.transport.disconnecting
    clock.advance(2)
    assert connection.transport.disconnecting


def test_requests_move_the_idle_timer_rather_than_replace_it() -> None:
    """
    Answering a request schedules no new timer while the idle one is pending: twisted.web
    cancelled it and scheduled another for each request.
    """
    clock, connection = timed_connection(BodyResource())
    (timer,) = clock.getDelayedCalls()
    for _ in range(5):
        clock.advance(1)
        connection.feed(head(b"GET", b"/again"))
    assert clock.getDelayedCalls() == [timer]
    assert timer.getTime() == 5 + IDLE


def test_a_lost_connection_leaves_no_timer() -> None:
    resource = HeldResource()
    clock, connection = timed_connection(resource)
    connection.feed(head(b"GET", b"/slow"))
    connection.protocol.connectionLost(Failure(ConnectionDone("gone")))
    assert clock.getDelayedCalls() == []
