"""
A request whose whole head arrives in one read is taken in one step
(L{gateway.http.streaming.StreamingChannel._head_at_once}); one that arrives byte by byte goes
through twisted.web line by line. Both must give the same answers and the same requests, for
well-formed heads and for every kind of malformed one, so each input here is fed both ways and
the two outcomes compared.
"""

from __future__ import annotations

from typing import List, Tuple

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from gateway.http import streaming
from gateway.http.streaming import FAST_HEAD_SIZE, StreamingChannel, StreamingSite

Seen = Tuple[bytes, bytes, bytes, List[Tuple[bytes, List[bytes]]], bytes]


class EchoResource(Resource):
    """
    Answers each request with what it saw of it, and records it: method, URI, version, headers
    and body (read whole).
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: List[Seen] = []

    def render(self, request: streaming.StreamingRequest) -> object:
        chunks: List[bytes] = []

        class Collect:
            def registerProducer(self, producer: object, streaming: bool) -> None:
                pass

            def unregisterProducer(self) -> None:
                pass

            def write(self, data: bytes) -> None:
                chunks.append(data)

        def answer(_: object) -> None:
            headers = sorted(
                (name, list(values)) for name, values in request.requestHeaders.getAllRawHeaders()
            )
            body = b"".join(chunks)
            self.seen.append((request.method, request.uri, request.clientproto, headers, body))
            text = b"%s %s %d" % (request.method, request.uri, len(body))
            request.setHeader(b"content-length", b"%d" % (len(text),))
            request.write(text)
            request.finish()

        request.body.deliver(Collect()).addCallbacks(answer, lambda _: None)
        return NOT_DONE_YET


def serve(data: bytes, bytewise: bool) -> Tuple[bytes, List[Seen], bool]:
    """
    Feed C{data} to a new connection at once or byte by byte: what was written back (the Date
    header blanked), the requests the resource saw, and whether the connection is closing.
    """
    resource = EchoResource()
    site = StreamingSite(resource, reactor=MemoryReactorClock())
    protocol = site.buildProtocol(None)
    assert isinstance(protocol, StreamingChannel)
    transport = StringTransport()
    protocol.makeConnection(transport)
    if bytewise:
        for i in range(len(data)):
            if transport.disconnecting:
                break
            protocol.dataReceived(data[i : i + 1])
    else:
        protocol.dataReceived(data)
    written = b"\r\n".join(
        b"Date: -" if line.startswith(b"Date: ") else line
        for line in transport.value().split(b"\r\n")
    )
    return written, resource.seen, bool(transport.disconnecting)


GOOD = [
    b"GET /bucket/key?X-Amz-Signature=abc&x=%2F HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: h\r\n\r\n",
    b"HEAD /k HTTP/1.1\r\nHost: h\r\nX-Amz-Date: 1\r\nx-amz-date: 2\r\n\r\n",
    b"PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT /k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
    b"PUT /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nabGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost:    spaced   \t\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost:\r\n\r\n",
    b"GET /\xb0 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /a HTTP/1.1\r\n\r\n",
]

#: Heads that twisted.web takes in its own way: a request for "*" (answered without the
#: resource), and headers folded over several lines (joined, as RFC 9112 allows a server to).
ODD = [
    b"M-SEARCH * HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: h\r\n Folded: line\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: h\r\nX-Long: a\r\n\tcontinued\r\n\r\n",
]

MALFORMED = [
    b"GET /a HTTP/2.0\r\nHost: h\r\n\r\n",
    b"GET /a http/1.1\r\nHost: h\r\n\r\n",
    b"GET  /a HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /\xb1 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /\x7f\x00 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"G(T /a HTTP/1.1\r\nHost: h\r\n\r\n",
    b" /a HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /a HTTP/1.1 \r\nHost: h\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost : h\r\n\r\n",
    b"GET /a HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"GET /a HTTP/1.1\r\n: empty name\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: h\nX-Smuggled: 1\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
    b"PUT /a HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
    b"PUT /a HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nab",
    b"PUT /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"PUT /a HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
    b"PUT /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"\r\nGET /after-an-empty-line HTTP/1.1\r\nHost: h\r\n\r\n",
    b"\r\n\r\nGET /after-two HTTP/1.1\r\nHost: h\r\n\r\n",
]


@pytest.mark.parametrize("data", GOOD + ODD + MALFORMED)
def test_at_once_as_line_by_line(data: bytes) -> None:
    assert serve(data, bytewise=False) == serve(data, bytewise=True)


@pytest.mark.parametrize("data", GOOD)
def test_good_heads_are_answered(data: bytes) -> None:
    written, seen, _ = serve(data, bytewise=False)
    assert seen and written.split(b"\r\n", 1)[0].endswith(b" 200 OK")


@pytest.mark.parametrize("data", MALFORMED[:-2])
def test_malformed_heads_are_refused(data: bytes) -> None:
    written, seen, closing = serve(data, bytewise=False)
    assert seen == [] and written.startswith(b"HTTP/1.1 400 ") and closing


def test_long_head_goes_line_by_line() -> None:
    long = b"GET /a HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"p" * FAST_HEAD_SIZE + b"\r\n\r\n"
    at_once = serve(long, bytewise=False)
    assert at_once == serve(long, bytewise=True)
    assert at_once[1][0][3][-1] == (b"X-Pad", [b"p" * FAST_HEAD_SIZE])


def test_head_over_twisted_limit_is_refused_either_way() -> None:
    lines = [b"X-H%d: %s" % (n, b"v" * 100) for n in range(200)]
    data = b"GET /a HTTP/1.1\r\n" + b"\r\n".join(lines) + b"\r\n\r\n"
    at_once = serve(data, bytewise=False)
    assert at_once == serve(data, bytewise=True)
    assert at_once[0].startswith(b"HTTP/1.1 400 ")


def test_the_step_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    A plain head read at once does not go through twisted.web's line parsing at all.
    """
    lines: List[bytes] = []
    original = StreamingChannel.lineReceived

    def counting(self: StreamingChannel, line: bytes) -> None:
        lines.append(line)
        original(self, line)

    monkeypatch.setattr(StreamingChannel, "lineReceived", counting)
    written, seen, _ = serve(GOOD[0], bytewise=False)
    assert lines == [] and len(seen) == 1
    serve(GOOD[0], bytewise=True)
    assert len(lines) == 3
