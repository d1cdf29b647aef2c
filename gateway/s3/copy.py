"""
CopyObject and UploadPartCopy: ``x-amz-copy-source`` with its own ``x-amz-copy-source-if-*``
conditions, the metadata and tagging directives, and the copy itself, which a backend does
natively when source and destination share it (L{IServerSideCopy}) and which otherwise streams
from one backend's reader into the other's writer, hashing as it goes, never held in memory.
"""

from __future__ import annotations

import hashlib
import time
from typing import Awaitable, Callable, Optional, Tuple
from urllib.parse import unquote

from attrs import evolve
from twisted.internet.interfaces import IConsumer, IProducer
from zope.interface import implementer

from gateway.interfaces import IBackend, IMetadataStore, IObjectWriter, IServerSideCopy
from gateway.model import ByteRange, ObjectInfo, UploadedPart, WriteMetadata
from gateway.s3 import xml
from gateway.s3.conditions import check_early, precondition_failed, write_condition
from gateway.s3.context import OperationContext
from gateway.s3.errors import S3Error
from gateway.s3.multipart import find_upload, no_such_upload, part_number, refuse_read_only
from gateway.s3.objects import refuse_unsupported_headers, write_metadata
from gateway.s3.preconditions import NOT_MODIFIED, check_read_preconditions
from gateway.s3.responses import quoted_etag, xml_body
from gateway.s3.tagging import tags_from_header

SourceFinder = Callable[[str, str], Awaitable[IBackend]]

#: The largest object CopyObject copies in one request, as in S3.
MAX_COPY_SIZE = 5 * 1024**3


def parse_copy_source(header: str) -> Tuple[str, str]:
    """
    The bucket and key named by ``x-amz-copy-source`` (``bucket/key`` or ``/bucket/key``,
    URL-encoded, optionally ``?versionId=...``).
    """
    path, _, query = header.partition("?")
    if query and query not in ("versionId=null",):
        raise S3Error("NotImplemented", "Copying a specific version is not supported.")
    path = unquote(path.removeprefix("/"))
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
    return bucket, key


def check_source_conditions(context: OperationContext, info: ObjectInfo) -> None:
    """
    The ``x-amz-copy-source-if-*`` conditions, with GetObject's precedence; a copy has no 304,
    so "not modified" fails the copy too.
    """
    def header(name: str) -> Optional[str]:
        return context.header("x-amz-copy-source-" + name)

    try:
        outcome = check_read_preconditions(header, info)
    except S3Error as error:
        raise precondition_failed("x-amz-copy-source-" + error.extra.get("Condition", "").lower())
    if outcome == NOT_MODIFIED:
        raise precondition_failed("x-amz-copy-source-If-None-Match")


@implementer(IConsumer)
class HashingConsumer:
    """
    Passes a copy's bytes to the destination writer, computing their MD5 on the way.
    """

    def __init__(self, writer: IObjectWriter) -> None:
        self._writer = writer
        self._md5 = hashlib.md5()
        self.size = 0

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._writer.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._writer.unregisterProducer()

    def write(self, data: bytes) -> None:
        self._md5.update(data)
        self.size += len(data)
        self._writer.write(data)

    @property
    def md5_hex(self) -> str:
        return self._md5.hexdigest()


async def stream_copy(
    source: IBackend, source_key: str, byte_range: Optional[ByteRange], writer: IObjectWriter
) -> str:
    """
    Stream (a range of) an object into a writer; the hex MD5 of what was copied.
    """
    reader = await source.open(source_key)
    consumer = HashingConsumer(writer)
    await reader.deliver(consumer, byte_range)
    return consumer.md5_hex


def copy_metadata(context: OperationContext, source: ObjectInfo) -> WriteMetadata:
    """
    The destination's metadata under the request's metadata and tagging directives.
    """
    directive = (context.header("x-amz-metadata-directive") or "COPY").upper()
    tagging = (context.header("x-amz-tagging-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE") or tagging not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata or tagging directive.")
    if directive == "REPLACE":
        metadata = write_metadata(context, source.etag)
    else:
        metadata = WriteMetadata(
            etag=source.etag,
            content_type=source.content_type,
            metadata=source.metadata,
            headers=source.headers,
        )
    tags = tags_from_header(context.header("x-amz-tagging")) if tagging == "REPLACE" else source.tags
    return evolve(metadata, tags=dict(tags))


async def copy_object(context: OperationContext, find_source: SourceFinder) -> bytes:
    refuse_unsupported_headers(context)
    backend = context.storage
    if backend.read_only:
        raise S3Error("AccessDenied", "The bucket is read-only.")
    source_bucket, source_key = parse_copy_source(context.header("x-amz-copy-source") or "")
    source = await find_source(context.caller.user, source_bucket)
    source_info = await source.stat(source_key)
    check_source_conditions(context, source_info)
    if source_info.size > MAX_COPY_SIZE:
        raise S3Error(
            "InvalidRequest",
            "The specified copy source is larger than the maximum allowable size for a copy "
            "source: 5368709120",
        )
    metadata = copy_metadata(context, source_info)
    condition = write_condition(context)
    await check_early(backend, context.key, condition)
    onto_itself = source is backend and source_key == context.key
    if onto_itself:
        if (context.header("x-amz-metadata-directive") or "COPY").upper() != "REPLACE" and (
            context.header("x-amz-tagging-directive") or "COPY"
        ).upper() != "REPLACE":
            raise S3Error(
                "InvalidRequest",
                "This copy request is illegal because it is trying to copy an object to itself "
                "without changing the object's metadata, storage class, website redirect "
                "location or encryption attributes.",
            )
        info = await backend.update_metadata(context.key, metadata, condition)
    elif source is backend and IServerSideCopy.providedBy(backend):
        info = await backend.copy_object(source_key, context.key, metadata, condition)
    else:
        writer = await backend.start_write(context.key)
        try:
            etag = await stream_copy(source, source_key, None, writer)
            info = await writer.commit(evolve(metadata, etag=etag), condition)
        except BaseException:
            await writer.abort()
            raise
    return xml_body(
        context.request,
        (
            "CopyObjectResult",
            [("LastModified", xml.iso8601(info.last_modified)), ("ETag", quoted_etag(info.etag))],
        ),
    )


def copy_source_range(header: Optional[str], size: int) -> Optional[ByteRange]:
    """
    The ``x-amz-copy-source-range`` of an UploadPartCopy: ``bytes=first-last``, both given.
    """
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    first, dash, last = spec.partition("-")
    if unit != "bytes" or not dash or not first.isdigit() or not last.isdigit():
        raise S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first "
            "and last are the zero-based offsets of the first and last bytes to copy",
        )
    if int(first) > int(last) or int(last) >= size:
        raise S3Error("InvalidRange", "The requested range is not satisfiable")
    return ByteRange(int(first), int(last))


async def upload_part_copy(
    context: OperationContext, store: IMetadataStore, find_source: SourceFinder
) -> bytes:
    number = part_number(context)
    upload = await find_upload(context, store)
    refuse_read_only(context)
    backend = context.storage
    source_bucket, source_key = parse_copy_source(context.header("x-amz-copy-source") or "")
    source = await find_source(context.caller.user, source_bucket)
    source_info = await source.stat(source_key)
    check_source_conditions(context, source_info)
    byte_range = copy_source_range(context.header("x-amz-copy-source-range"), source_info.size)
    if source is backend and IServerSideCopy.providedBy(backend):
        info = await backend.copy_part(source_key, byte_range, upload.upload_id, number)
        etag, size = info.etag, info.size
    else:
        writer = await backend.start_part_write(upload.upload_id, number)
        try:
            etag = await stream_copy(source, source_key, byte_range, writer)
            info = await writer.commit(WriteMetadata(etag=etag))
        except BaseException:
            await writer.abort()
            raise
        size = info.size
    now = time.time()
    try:
        await store.put_part(UploadedPart(upload.upload_id, number, etag, size, now))
    except KeyError:
        raise no_such_upload()
    return xml_body(
        context.request,
        ("CopyPartResult", [("LastModified", xml.iso8601(now)), ("ETag", quoted_etag(etag))]),
    )
