"""
Small request documents (CompleteMultipartUpload, later DeleteObjects) read whole, through the
same checks as any upload body: payload hash, Content-MD5, checksums, aws-chunked framing.
"""

from __future__ import annotations

from typing import List, Optional

from twisted.internet.interfaces import IConsumer, IProducer
from zope.interface import implementer

from gateway.s3.context import OperationContext
from gateway.s3.errors import S3Error
from gateway.s3.upload import receive_body


@implementer(IConsumer)
class DocumentCollector:
    """
    A consumer that keeps the body in memory, refusing more than C{limit} bytes.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: List[bytes] = []
        self._size = 0
        self._producer: Optional[IProducer] = None

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._producer = producer

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise S3Error("MalformedXML", "The XML document is too large.")
        self._chunks.append(data)

    @property
    def document(self) -> bytes:
        return b"".join(self._chunks)


async def collect_body(context: OperationContext, limit: int) -> bytes:
    """
    The whole (small) request body, checked.
    """
    collector = DocumentCollector(limit)
    await receive_body(
        context.request.body,  # type: ignore[attr-defined]
        collector,
        context.facts.headers,
        context.caller.payload_hash,
        context.caller.signature,
        max_size=limit,
    )
    return collector.document
