"""
twisted.web without the request-body spool.

Stock twisted.web collects a request's whole body (in memory, or in a temporary file above 100 KB)
before a resource sees the request (C{_getContentFile} in C{twisted.web.http}; twisted/twisted#4688).
An S3 gateway cannot: a 5 GiB PUT must flow from the socket to the storage as it arrives. Here a
request that has a body is dispatched as soon as its headers are in; its body is a
L{gateway.http.body.RequestBody}, a push producer that hands chunks to whichever consumer the
resource attaches and pauses the transport when that consumer falls behind.

``Expect: 100-continue`` is answered only when the resource starts reading the body, so a request
refused before that (bad signature, no such bucket) never makes the client send its body.

A response that is finished before the body has fully arrived leaves the channel in the middle of
a body. Then either the rest is read and thrown away (the client is sending it anyway, and expects
to read our answer after), or, when the client is still waiting for ``100 Continue``, the
connection is closed after the response, as RFC 9110 section 10.1.1 allows.
"""

from __future__ import annotations

import re
import time
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, unquote_to_bytes

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import connectionDone
from twisted.python import failure
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.iweb import INonQueuedRequestFactory
from twisted.web.resource import _IEncodingResource

from gateway.http.body import RequestBody


#: The Server header: the product, without a version, so that an answer does not tell a scanner
#: which Twisted (and so which known bugs) is behind it. twisted.web's default is
#: C{TwistedWeb/<version>}.
SERVER_HEADER = b"s3gateway"


class StreamingRequest(server.Request):
    """
    A request dispatched as soon as its headers have arrived; its body is L{body}.
    """

    body: RequestBody
    channel: "StreamingChannel"
    sitepath: List[bytes]
    _args: Optional[Dict[bytes, List[bytes]]] = None
    _query = b""
    _dispatched_early = False
    _continue_expected = False
    _continue_sent = False
    _large_reads_of: Optional["StreamingSite"] = None

    def gotLength(self, length: Optional[int]) -> None:
        self.body = RequestBody(self, length)
        self.content = None  # nothing is spooled; see the module docstring
        expect = self.requestHeaders.getRawHeaders(b"expect") or []
        channel = self.channel
        if length is not None and length >= LARGE_BODY_SIZE:
            self._start_large_reads(channel)
        self._continue_expected = bool(
            expect
            and expect[0].lower() == b"100-continue"
            and channel._version == b"HTTP/1.1"
        )
        if length == 0:
            if self._continue_expected:
                # An empty body that still asked: answer 100 at once, as stock twisted.web
                # does. botocore (aws cli) sends Expect on every upload, empty ones too, and
                # misreads the next response on the connection when no 100 came.
                self._continue_sent = True
                channel._send100Continue()
            return
        self._dispatched_early = True
        self._begin(channel._command, channel._path, channel._version)

    def _begin(self, command: bytes, path: bytes, version: bytes) -> None:
        self.method, self.uri, self.clientproto = command, path, version
        self.path, _, self._query = path.partition(b"?")
        self.process()

    def process(self) -> None:
        """
        Find the resource and render it, as twisted.web does, less its per-request work that a
        site whose root is a leaf never uses: the path is not split into C{postpath} segments
        (unless asked for, see L{postpath}) nor walked, and the Date header is formatted once
        per second (L{StreamingSite.http_date}).
        """
        site = self.channel.site
        root = site.resource
        if self.path == b"*":
            self._answer_star(site)
            return
        if not getattr(root, "isLeaf", False):
            super().process()
            return
        self.site = site
        self.sitepath = []
        self.prepath = []
        self.setHeader(b"date", site.http_date())
        try:
            if _IEncodingResource.providedBy(root):
                encoder = root.getEncoder(self)
                if encoder is not None:
                    self._encoder = encoder
            self.render(root)
        except BaseException:
            self.processingFailed(failure.Failure())

    def _answer_star(self, site: "StreamingSite") -> None:
        # As twisted.web answers a request for "*" (RFC 9110's "OPTIONS *", a probe of the
        # server), with this Server header rather than its versioned one.
        self.site = site
        self.setHeader(b"server", SERVER_HEADER)
        self.setHeader(b"date", site.http_date())
        if self.method == b"OPTIONS":
            self.setResponseCode(http.OK)
        else:
            self.setResponseCode(http.NOT_ALLOWED)
            self.setHeader(b"allow", b"OPTIONS")
        self.setHeader(b"content-length", b"0")
        self.finish()

    def render(self, resrc: Any) -> None:
        # Here rather than in process: twisted.web's own process (taken for a root that is not
        # a leaf, and for "OPTIONS *") sets its versioned header first, and this replaces it.
        self.setHeader(b"server", SERVER_HEADER)
        super().render(resrc)

    @property
    def postpath(self) -> List[bytes]:
        """
        The path segments not yet consumed by resource traversal, decoded; computed when first
        asked for (the gateway's single leaf resource never asks).
        """
        segments = self.__dict__.get("_postpath")
        if segments is None:
            segments = [unquote_to_bytes(s) for s in self.path[1:].split(b"/")]
            self.__dict__["_postpath"] = segments
        return segments

    @postpath.setter
    def postpath(self, value: List[bytes]) -> None:
        self.__dict__["_postpath"] = value

    @property  # type: ignore[override]
    def args(self) -> Dict[bytes, List[bytes]]:
        """
        The query's arguments, parsed when first asked for: the gateway reads the raw query
        (signatures cover it byte for byte), so most requests never need this.
        """
        if self._args is None:
            query = self._query
            self._args = parse_qs(query, keep_blank_values=True) if query else {}
        return self._args

    @args.setter
    def args(self, value: Dict[bytes, List[bytes]]) -> None:
        self._args = value

    def _start_large_reads(self, channel: "StreamingChannel") -> None:
        """
        Read this body's socket L{LARGE_READ_SIZE} bytes at a time, if fewer than
        L{LARGE_READERS} bodies of this site already do.
        """
        site = channel.site
        transport = channel.transport
        if site.large_readers >= LARGE_READERS or not hasattr(transport, "bufferSize"):
            return
        site.large_readers += 1
        self._large_reads_of = site
        transport.bufferSize = LARGE_READ_SIZE  # type: ignore[union-attr]

    def _end_large_reads(self) -> None:
        """
        Back to L{READ_SIZE} reads, once the body is in, the request is done with, or the
        connection is gone (whichever comes first).
        """
        site = self._large_reads_of
        if site is None:
            return
        self._large_reads_of = None
        site.large_readers -= 1
        channel = getattr(self, "channel", None)
        if channel is not None and channel.transport is not None:
            channel.transport.bufferSize = READ_SIZE

    def handleContentChunk(self, data: bytes) -> None:
        self.body.data_received(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self._end_large_reads()
        if self._dispatched_early:
            self.body.content_complete()
        else:
            self.body.content_complete()
            self._begin(command, path, version)

    def send_continue(self) -> None:
        """
        Tell a client that waits with ``Expect: 100-continue`` to send the body.
        """
        if self._continue_expected and not self._continue_sent and not self.startedWriting:
            self._continue_sent = True
            channel = getattr(self, "channel", None)
            if channel is not None:
                channel._send100Continue()

    def transport_for_body(self) -> Optional[IPushProducer]:
        # After cleanup the channel attribute is deleted (Request._cleanup).
        channel = getattr(self, "channel", None)
        if channel is None or channel.transport is None:
            return None
        return channel.transport

    def write(self, data: bytes) -> None:
        if not self.startedWriting and self._waiting_for_continue():
            # The client never sent the body: the connection cannot carry another request.
            self.responseHeaders.setRawHeaders(b"connection", [b"close"])
            channel = getattr(self, "channel", None)
            if channel is not None:
                channel.persistent = False
        super().write(data)

    def _waiting_for_continue(self) -> bool:
        return (
            self._continue_expected
            and not self._continue_sent
            and not self.body.complete
            and self.body.received == 0
        )

    def _cleanup(self) -> None:
        body = self.body
        if (
            not self._dispatched_early
            or body.complete
            or self.channel is None
            or not self.channel.persistent
        ):
            self._end_large_reads()
            super()._cleanup()
            return
        # Finished while the body is still arriving: drain it, then let the channel go on.
        body.on_complete.append(self._cleanup_after_body)
        body.discard()

    def _cleanup_after_body(self) -> None:
        if getattr(self, "channel", None) is not None:
            super()._cleanup()

    def connectionLost(self, reason: Failure) -> None:
        self._end_large_reads()
        body = getattr(self, "body", None)
        if body is not None:
            body.connection_lost(reason)
        super().connectionLost(reason)


#: Bytes read from the socket at once. Twisted's default, 64 KiB, makes a 1 GiB upload 16,384
#: trips through the protocol stack; larger reads cut that per-read cost by four.
READ_SIZE = 256 * 1024

#: Bytes read at once for a large body (L{LARGE_BODY_SIZE} or more), while at most
#: L{LARGE_READERS} bodies of the site read that way. A 1 GiB PUT then cost the reactor 0.45-0.53 s
#: of CPU against 0.60-0.76 with L{READ_SIZE} reads, and went from 725 to 769 MB/s (medians of
#: 21 alternating PUTs; bench/README.md). A paused upload holds about one read in memory, so
#: not every body reads that way: 64 uploads at once, each reading 1 MiB, took the worker to a
#: peak of 138-148 MB, against 85-89 MB in quarter-mebibyte reads.
LARGE_READ_SIZE = 1024 * 1024

#: The smallest body read in L{LARGE_READ_SIZE} bytes; also the size from which uploads are
#: hashed on a thread of their own (L{gateway.s3.upload.BACKGROUND_HASHING_SIZE}).
LARGE_BODY_SIZE = 4 * 1024 * 1024

#: How many bodies of one site may read L{LARGE_READ_SIZE} bytes at once.
LARGE_READERS = 4

#: The longest request head taken in one step (L{StreamingChannel._head_at_once}); twisted.web
#: parses longer ones, and answers those over its limits (16 KiB of head, 500 headers).
FAST_HEAD_SIZE = 8192

#: A request line as twisted.web accepts it: a token, a request target of printable bytes
#: (33 to 176, its own range), and HTTP/1.0 or 1.1, separated by single spaces.
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\xb0]+) (HTTP/1\.[01])")


class StreamingChannel(http.HTTPChannel):
    """
    An HTTP/1.1 channel for L{StreamingRequest}: it leaves ``100 Continue`` to the request, and
    tolerates a request that was answered, and closed, before its body ended.
    """

    _host = None
    #: Whether the connection is gone (L{setTimeout} then cancels the idle timer).
    _lost = False
    #: Set by the site that builds the channel (twisted.web's Site.buildProtocol).
    site: "StreamingSite"

    def connectionMade(self) -> None:
        super().connectionMade()
        transport = self.transport
        if transport is not None and hasattr(transport, "bufferSize"):
            transport.bufferSize = READ_SIZE

    def setTimeout(self, period: Optional[float]) -> Optional[float]:
        """
        Suspend the idle timeout while a request is answered, without cancelling its timer.

        twisted.web calls this with C{None} when a request's head is in, and again with the
        period when the answer is done: each time it cancelled the timer and scheduled a new
        one, two operations on the reactor's heap per request (1.5 us of a 4 KiB GET's 85) and
        a cancelled call left in the heap. Here the timer stays scheduled and the next call
        only moves it later (C{DelayedCall.reset}); if it fires while a request is answered,
        L{timeoutConnection} does nothing and the next call here schedules a new one. Once the
        connection is lost the timer is cancelled as before, so that it does not keep the
        channel alive.
        """
        if period is None and not self._lost:
            previous, self.timeOut = self.timeOut, None
            return previous
        return super().setTimeout(period)  # type: ignore[no-any-return]

    def timeoutConnection(self) -> None:
        if self.timeOut is None:
            return  # a request is being answered (see setTimeout): the connection is not idle
        super().timeoutConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        super().connectionLost(reason)

    def getHost(self):  # type: ignore[no-untyped-def]
        """
        The local address, asked of the socket once per connection rather than once per request
        (twisted.web's Request asks for it when made: a C{getsockname} call each time).
        """
        host = self._host
        if host is None:
            host = self._host = super().getHost()
        return host

    def dataReceived(self, data: bytes) -> None:
        """
        Take a request whose whole head is in C{data} in one step (L{_head_at_once}); anything
        else goes through twisted.web line by line.
        """
        if (
            self.line_mode
            and not self._buffer
            and not self.requests
            and self.persistent
            and not self.paused
        ):
            end = data.find(b"\r\n\r\n", 0, FAST_HEAD_SIZE)
            if end > 0 and self._head_at_once(data[:end], data[end + 4 :]):
                return
        super().dataReceived(data)

    def _head_at_once(self, head: bytes, rest: bytes) -> bool:
        """
        Do what twisted.web's C{lineReceived} does for each line of a request's head, in one
        call rather than one per line, with the request line matched by one regular expression
        rather than checked byte by byte (a presigned URL's request line took 3.7 us that way,
        in a GET of about 120). Each header line still goes through C{headerReceived}, which
        checks it as for any request.

        :return: C{False}, having changed nothing, for a head it leaves to twisted.web: a
            request line that is not plainly valid (its errors are twisted.web's to answer), or
            a header folded over several lines.
        """
        lines = head.split(b"\r\n")
        matched = _REQUEST_LINE.fullmatch(lines[0])
        if matched is None:
            return False
        headers = lines[1:]
        for line in headers:
            if line.startswith((b" ", b"\t")):
                return False
        self.resetTimeout()
        factory = self.requestFactory
        if INonQueuedRequestFactory.providedBy(factory):
            request = factory(self)
        else:
            request = factory(self, len(self.requests))
        self.requests.append(request)
        self._command, self._path, self._version = matched.groups()
        for line in headers:
            if not self.headerReceived(line):
                return True  # answered 400 and closing
        self.allHeadersReceived()
        if self.length == 0:
            self.allContentReceived()
        else:
            self.setRawMode()
        if rest and not getattr(self.transport, "disconnecting", False):
            self.dataReceived(rest)
        return True

    def allHeadersReceived(self) -> None:
        request = self.requests[-1]
        request.parseCookies()
        self.persistent = self.checkPersistence(request, self._version)
        request.gotLength(self.length)

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers) -> None:  # type: ignore[no-untyped-def]
        """
        Write the status line and headers, with S3's ``x-amz-*`` headers in lower case.

        twisted.web's L{Headers} capitalises every name (``X-Amz-Meta-Color``). HTTP does not
        care, but S3 clients read user metadata names from the header names as sent (botocore
        keeps the case after ``x-amz-meta-``), and S3 sends them in lower case.
        """
        sequence = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            if name[:6] == b"X-Amz-":
                name = name.lower()
            for value in values:
                sequence.extend((name, b": ", value, b"\r\n"))
        sequence.append(b"\r\n")
        assert self.transport is not None  # headers are written on an open connection
        self.transport.writeSequence(sequence)

    def allContentReceived(self) -> None:
        if not self.requests:
            # The request was answered early on a connection being closed.
            self._transferDecoder = None
            return
        super().allContentReceived()


class StreamingSite(server.Site):
    """
    A Site whose requests stream their bodies.

    It writes no access log of its own: the application logs every request with what an operator
    of an S3 service needs (operation, bucket, key, access key, bytes; L{gateway.accesslog}).
    twisted.web's combined-format line would be a second log event per request, and on small
    requests it cost a tenth of the gateway's time.
    """

    requestFactory = StreamingRequest
    protocol = StreamingChannel  # type: ignore[assignment]
    #: The bodies reading L{LARGE_READ_SIZE} bytes at once now.
    large_readers = 0
    _date_second = -1
    _date = b""

    def http_date(self) -> bytes:
        """
        The Date header's value for now, formatted once per second.
        """
        now = int(time.time())
        if now != self._date_second:
            self._date = http.datetimeToString(now)
            self._date_second = now
        return self._date

    def log(self, request: http.Request) -> None:
        pass

    def acceptableProtocols(self) -> List[bytes]:
        """
        The protocols offered over TLS's ALPN: HTTP/1.1 only, which is all L{StreamingChannel}
        speaks. twisted.web's Site would offer HTTP/2 too wherever the C{h2} package happens to
        be installed, and a client that took it would get HTTP/1.1 answers.
        """
        return [b"http/1.1"]
