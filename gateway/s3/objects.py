"""
Object operations: GetObject, HeadObject, PutObject, DeleteObject.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

from attrs import evolve

from gateway.interfaces import IObjectWriter
from gateway.model import ByteRange, ObjectInfo, WriteCondition, WriteMetadata
from gateway.s3.checksums import BodyDigests
from gateway.s3.context import OperationContext
from gateway.s3.conditions import check_early, write_condition
from gateway.s3.errors import S3Error
from gateway.s3.tagging import tags_from_header
from gateway.s3.preconditions import NOT_MODIFIED, check_read_preconditions
from gateway.s3.ranges import UnsatisfiableRange, content_range, parse_range
from gateway.s3.responses import empty, http_date, object_headers, quoted_etag
from gateway.s3.upload import receive_body

#: Object headers stored at PUT and sent back on GET and HEAD.
STORED_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)

#: GetObject's query overrides of response headers (used by presigned download links).
RESPONSE_OVERRIDES = {
    "response-content-type": b"content-type",
    "response-content-language": b"content-language",
    "response-expires": b"expires",
    "response-cache-control": b"cache-control",
    "response-content-disposition": b"content-disposition",
    "response-content-encoding": b"content-encoding",
}


def write_metadata(context: OperationContext, etag: str) -> WriteMetadata:
    """
    The metadata a PUT or a CreateMultipartUpload asks to store.
    """
    return WriteMetadata(
        etag=etag,
        content_type=context.header("content-type") or "binary/octet-stream",
        metadata=user_metadata(context),
        headers=stored_headers(context),
        tags=tags_from_header(context.header("x-amz-tagging")),
    )


def user_metadata(context: OperationContext) -> Dict[str, str]:
    return {
        name[len("x-amz-meta-"):]: ",".join(values)
        for name, values in context.facts.headers.items()
        if name.startswith("x-amz-meta-")
    }


def stored_headers(context: OperationContext) -> Dict[str, str]:
    headers = {}
    for name in STORED_HEADERS:
        value = context.header(name)
        if value is not None:
            if name == "content-encoding":
                # aws-chunked is a transfer framing, not part of the object (S3 drops it too).
                codings = [c.strip() for c in value.split(",") if c.strip() != "aws-chunked"]
                if not codings:
                    continue
                value = ",".join(codings)
            headers[name] = value
    return headers


#: Request headers that ask for a feature the gateway lacks.
UNSUPPORTED_HEADERS = frozenset({
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
    "x-amz-website-redirect-location",
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
})


def refuse_unsupported_headers(context: OperationContext) -> None:
    """
    Answer NotImplemented for request headers that ask for a feature the gateway lacks, rather
    than silently ignoring them.
    """
    asked = UNSUPPORTED_HEADERS.intersection(context.facts.headers)
    for name in sorted(asked):
        if context.header(name) is not None:
            raise S3Error("NotImplemented", f"The {name} header is not supported.")
    acl = context.header("x-amz-acl")
    if acl is not None and acl not in ("private", "bucket-owner-full-control"):
        raise S3Error("NotImplemented", "Only the private canned ACL is supported.")


async def get_object(context: OperationContext) -> Optional[bytes]:
    request = context.request
    reader = await context.storage.open(context.key)
    info = reader.info
    try:
        if check_read_preconditions(context.header, info) == NOT_MODIFIED:
            reader.close()
            return not_modified(request, info)
    except S3Error:
        reader.close()
        raise
    try:
        byte_range = requested_range(context, info)
    except S3Error:
        reader.close()
        raise
    if info.parts_count and "partNumber" in context.query:
        request.setHeader(b"x-amz-mp-parts-count", b"%d" % (info.parts_count,))
    if info.tags:
        request.setHeader(b"x-amz-tagging-count", b"%d" % (len(info.tags),))
    if byte_range is None:
        object_headers(request, info)
        request.setResponseCode(200)
    else:
        object_headers(request, info, byte_range.length)
        request.setHeader(b"content-range", content_range(byte_range, info.size).encode("ascii"))
        request.setResponseCode(206)
    if request.method == b"GET":
        for parameter, header_name in RESPONSE_OVERRIDES.items():
            if parameter in context.query:
                request.setHeader(header_name, context.query[parameter].encode("latin-1", "replace"))
    if request.method == b"HEAD" or (byte_range is None and info.size == 0):
        reader.close()
        return b""
    await reader.deliver(request, byte_range)
    return None


def requested_range(context: OperationContext, info: ObjectInfo) -> Optional[ByteRange]:
    """
    The bytes a GET or HEAD asks for: a ``Range`` header or a ``partNumber``.
    """
    if "partNumber" in context.query:
        if context.header("range") is not None:
            raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber.")
        return part_range(context.query["partNumber"], info)
    try:
        return parse_range(context.header("range"), info.size)
    except UnsatisfiableRange:
        raise S3Error(
            "InvalidRange",
            "The requested range is not satisfiable",
            ActualObjectSize=str(info.size),
            RangeRequested=context.header("range") or "",
        )


def part_range(text: str, info: ObjectInfo) -> Optional[ByteRange]:
    """
    The bytes of part C{text} of an object: a single-part object has one part, the whole.
    """
    if not text.isdigit() or not 1 <= int(text) <= 10000:
        raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive")
    number = int(text)
    sizes = info.part_sizes or (info.size,)
    if number > len(sizes):
        raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable")
    first = sum(sizes[: number - 1])
    if sizes[number - 1] == 0:
        return None
    return ByteRange(first, first + sizes[number - 1] - 1)


def not_modified(request, info: ObjectInfo) -> bytes:  # type: ignore[no-untyped-def]
    """
    A 304 answer: the validators only, no body (RFC 9110 section 15.4.5).
    """
    request.setResponseCode(304)
    request.setHeader(b"etag", quoted_etag(info.etag).encode("ascii"))
    request.setHeader(b"last-modified", http_date(int(info.last_modified)))
    return b""


async def put_object(context: OperationContext) -> bytes:
    refuse_unsupported_headers(context)
    backend = context.storage
    if backend.read_only:
        raise S3Error("AccessDenied", "The bucket is read-only.")
    condition = write_condition(context)
    metadata = write_metadata(context, "")
    await check_early(backend, context.key, condition)
    body = context.request.body  # type: ignore[attr-defined]
    writer = await backend.start_write(context.key, body.length)
    info, digests = await store_body(context, writer, metadata, condition)
    return upload_answer(context, info, digests)


async def store_body(
    context: OperationContext,
    writer: IObjectWriter,
    metadata: WriteMetadata,
    condition: Optional[WriteCondition] = None,
) -> Tuple[ObjectInfo, BodyDigests]:
    """
    Stream the request body into C{writer} and commit it with C{metadata} (its ETag the body's
    MD5); abort the writer on any failure. Used by PutObject and UploadPart.
    """
    try:
        digests = await receive_body(
            context.request.body,  # type: ignore[attr-defined]
            writer,
            context.facts.headers,
            context.caller.payload_hash,
            context.caller.signature,
            reactor=context.reactor,
            hashing_budget=context.hashing_budget,
        )
        info = await writer.commit(evolve(metadata, etag=digests.md5_hex), condition)
    except BaseException:
        await writer.abort()
        raise
    return info, digests


def upload_answer(context: OperationContext, info: ObjectInfo, digests: BodyDigests) -> bytes:
    """
    The answer to a stored upload: its ETag, and the checksum the client asked for.
    """
    request = context.request
    request.setHeader(b"etag", quoted_etag(info.etag).encode("ascii"))
    checksum = digests.checksum_header()
    if checksum is not None:
        request.setHeader(checksum[0].encode("ascii"), checksum[1].encode("ascii"))
    return empty(request)


async def delete_object(context: OperationContext) -> bytes:
    backend = context.storage
    if backend.read_only:
        raise S3Error("AccessDenied", "The bucket is read-only.")
    await backend.delete(context.key)
    return empty(context.request, 204)
