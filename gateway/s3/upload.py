"""
An upload's body on its way from the socket to a backend writer.

The request body (L{gateway.http.streaming.RequestBody}) pushes chunks into an L{UploadSink},
which undoes ``aws-chunked`` framing when the client used it, feeds every payload byte once to
the digests (MD5 for the ETag, plus whatever checksum the client declared), and passes it on to
the backend's writer. The writer's backpressure reaches the socket because the body producer is
registered straight on the writer.

Nothing is committed until the whole body has arrived and every digest matched: a truncated
body, a bad chunk signature or a checksum mismatch aborts the writer, leaving the previous object.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from twisted.internet.interfaces import IConsumer, IProducer, IReactorFromThreads
from zope.interface import implementer

from gateway.http.body import BodyConsumerStopped, IncompleteRequestBody, RequestBody
from gateway.http.streaming import LARGE_BODY_SIZE
from gateway.s3.checksums import BodyDigests
from gateway.s3.hashing import BackgroundDigests, HashingBudget
from gateway.s3.chunked import AwsChunkedDecoder
from gateway.s3.errors import S3Error
from gateway.s3.sigv4 import VerifiedSignature

#: Bodies at least this long are hashed on a thread of their own; for smaller ones the thread
#: would cost more than it saves. The same size as the bodies the channel reads in large reads.
BACKGROUND_HASHING_SIZE = LARGE_BODY_SIZE

#: The largest object a single PUT may carry, as in S3.
MAX_PUT_SIZE = 5 * 1024**3

STREAMING_MODES = (
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
)


@implementer(IConsumer)
class UploadSink:
    """
    The consumer of an upload's request body: decode, digest, forward.

    :ivar size: the payload bytes forwarded so far.
    :ivar error: the S3 error that stopped the upload, if any.
    """

    def __init__(
        self,
        writer: IConsumer,
        digests: "BodyDigests | BackgroundDigests",
        decoder: Optional[AwsChunkedDecoder],
    ) -> None:
        self._writer = writer
        self._digests = digests
        self._decoder = decoder
        self._producer: Optional[IProducer] = None
        self.size = 0
        self.error: Optional[S3Error] = None

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._producer = producer
        if isinstance(self._digests, BackgroundDigests):
            self._digests.attach(producer)
        self._writer.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._producer = None
        if isinstance(self._digests, BackgroundDigests):
            self._digests.attach(None)
        self._writer.unregisterProducer()

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            pieces = self._decoder.feed(data) if self._decoder is not None else (data,)
            for piece in pieces:
                self._forward(piece)
        except S3Error as error:
            self._stop(error)

    def _forward(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > MAX_PUT_SIZE:
            raise S3Error(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size."
            )
        self._digests.update(piece)
        self._writer.write(piece)

    def _stop(self, error: S3Error) -> None:
        self.error = error
        if self._producer is not None:
            self._producer.stopProducing()

    def finish(self, digests: BodyDigests) -> None:
        """
        Check the complete body: framing, trailers, declared length and digests.

        :raise S3Error: the first mismatch found.
        """
        if self.error is not None:
            raise self.error
        if self._decoder is not None:
            digests.set_trailer(self._decoder.finish())
        digests.verify()


def header(headers: Mapping[str, Sequence[str]], name: str) -> Optional[str]:
    values = headers.get(name)
    return values[0] if values else None


def make_decoder(
    headers: Mapping[str, Sequence[str]],
    payload_hash: str,
    signature: Optional[VerifiedSignature],
) -> Optional[AwsChunkedDecoder]:
    """
    The aws-chunked decoder that the declared payload hash calls for, or C{None}.
    """
    if payload_hash not in STREAMING_MODES:
        return None
    decoded = header(headers, "x-amz-decoded-content-length")
    if decoded is None or not decoded.isdigit():
        raise S3Error(
            "MissingContentLength",
            "You must provide the x-amz-decoded-content-length header with aws-chunked bodies.",
        )
    return AwsChunkedDecoder(payload_hash, int(decoded), signature)


async def receive_body(
    body: RequestBody,
    writer: IConsumer,
    headers: Mapping[str, Sequence[str]],
    payload_hash: str,
    signature: Optional[VerifiedSignature],
    max_size: int = MAX_PUT_SIZE,
    reactor: Optional[IReactorFromThreads] = None,
    hashing_budget: Optional[HashingBudget] = None,
) -> BodyDigests:
    """
    Stream a request body into C{writer} and check it; the caller commits or aborts the writer.

    :param reactor: given, bodies of L{BACKGROUND_HASHING_SIZE} or more are hashed on a thread
        beside the reactor (L{gateway.s3.hashing}).
    :param hashing_budget: the backlog budget such a thread shares with the process's other
        uploads.
    :return: the digests of the payload, all verified.
    :raise S3Error: IncompleteBody when the client went away or sent less than it declared,
        or whatever the checks found.
    """
    if body.length is not None and body.length > max_size + (64 * 1024 * 1024):
        raise S3Error(
            "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size."
        )
    if body.length is None and "aws-chunked" not in (header(headers, "content-encoding") or ""):
        if header(headers, "transfer-encoding") is None:
            raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.")
    decoder = make_decoder(headers, payload_hash, signature)
    digests = BodyDigests(headers, payload_hash)
    background = (
        BackgroundDigests(digests, reactor, hashing_budget)
        if reactor is not None and (body.length or 0) >= BACKGROUND_HASHING_SIZE
        else None
    )
    sink = UploadSink(writer, background or digests, decoder)
    try:
        await body.deliver(sink)
    except (BodyConsumerStopped, IncompleteRequestBody):
        if sink.error is not None:
            raise sink.error
        raise S3Error(
            "IncompleteBody", "You did not provide the number of bytes specified by the "
            "Content-Length HTTP header."
        )
    finally:
        if background is not None:
            await background.finish()
    sink.finish(digests)
    return digests
