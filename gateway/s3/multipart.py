"""
The multipart upload family: Create, UploadPart, Complete, Abort, ListMultipartUploads,
ListParts.

Uploads and parts are rows of the metadata store; part bodies belong to the backend. A part is
recorded in the store only once the backend has it safely, and CompleteMultipartUpload checks the
client's part list against those rows before the backend joins the parts.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
from typing import List, Optional, Tuple

from gateway.interfaces import IMetadataStore
from gateway.model import MultipartUpload, UploadedPart, WriteMetadata
from gateway.s3 import xml
from gateway.s3.conditions import check_early, write_condition
from gateway.s3.context import OperationContext
from gateway.s3.errors import S3Error
from gateway.s3.listings import owner_node
from gateway.s3.objects import (
    refuse_unsupported_headers,
    store_body,
    stored_headers,
    upload_answer,
    user_metadata,
)
from gateway.s3.responses import empty, quoted_etag, xml_body
from gateway.s3.smallbody import collect_body
from gateway.s3.tagging import tags_from_header

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10000
#: The largest CompleteMultipartUpload document accepted (10,000 parts fit in well under this).
MAX_COMPLETE_BODY = 2 * 1024 * 1024


_UPLOAD_ID_ALPHABET = string.ascii_letters + string.digits


def new_upload_id() -> str:
    """
    A random upload id of 48 letters and digits (about 285 bits). Letters and digits only: an id
    beginning with ``-`` is taken for an option by command lines (``aws s3api ... --upload-id``),
    and SigV2 clients differ on how they encode other characters in what they sign.
    """
    return "".join(secrets.choice(_UPLOAD_ID_ALPHABET) for _ in range(48))


def no_such_upload() -> S3Error:
    return S3Error(
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.",
    )


async def find_upload(context: OperationContext, store: IMetadataStore) -> MultipartUpload:
    upload_id = context.query.get("uploadId", "")
    upload = await store.get_upload(upload_id) if upload_id else None
    if (
        upload is None
        or upload.user != context.caller.user
        or upload.bucket != context.bucket
        or upload.key != context.key
    ):
        raise no_such_upload()
    return upload


def refuse_read_only(context: OperationContext) -> None:
    if context.storage.read_only:
        raise S3Error("AccessDenied", "The bucket is read-only.")


async def create_upload(context: OperationContext, store: IMetadataStore) -> bytes:
    refuse_unsupported_headers(context)
    refuse_read_only(context)
    upload = await store.create_upload(
        MultipartUpload(
            upload_id=new_upload_id(),
            user=context.caller.user,
            bucket=context.bucket,
            key=context.key,
            initiated=time.time(),
            content_type=context.header("content-type") or "binary/octet-stream",
            metadata=user_metadata(context),
            headers=stored_headers(context),
            tags=tags_from_header(context.header("x-amz-tagging")),
        )
    )
    return xml_body(
        context.request,
        (
            "InitiateMultipartUploadResult",
            [("Bucket", context.bucket), ("Key", context.key), ("UploadId", upload.upload_id)],
        ),
    )


def part_number(context: OperationContext) -> int:
    text = context.query.get("partNumber", "")
    if not text.isdigit() or not 1 <= int(text) <= MAX_PART_NUMBER:
        raise S3Error(
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=text,
        )
    return int(text)


async def upload_part(context: OperationContext, store: IMetadataStore) -> bytes:
    number = part_number(context)
    upload = await find_upload(context, store)
    refuse_read_only(context)
    writer = await context.storage.start_part_write(upload.upload_id, number)
    info, digests = await store_body(context, writer, WriteMetadata(etag=""))
    try:
        await store.put_part(
            UploadedPart(upload.upload_id, number, info.etag, info.size, time.time())
        )
    except KeyError:
        raise no_such_upload()
    return upload_answer(context, info, digests)


def parse_part_list(body: bytes) -> List[Tuple[int, str]]:
    """
    The ``(PartNumber, ETag)`` pairs of a CompleteMultipartUpload document, in document order.
    """
    root = xml.parse(body, "CompleteMultipartUpload")
    parts = []
    for element in xml.children(root, "Part"):
        number_text = xml.child_text(element, "PartNumber")
        etag = xml.child_text(element, "ETag")
        if number_text is None or etag is None or not number_text.strip().isdigit():
            raise S3Error("MalformedXML", "Each Part needs a PartNumber and an ETag.")
        parts.append((int(number_text), etag.strip().strip('"')))
    if not parts:
        raise S3Error(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our "
            "published schema.",
        )
    return parts


def check_parts(
    requested: List[Tuple[int, str]], uploaded: List[UploadedPart]
) -> List[UploadedPart]:
    """
    The uploaded parts that the client's list names, checked as S3 checks them.
    """
    by_number = {part.part_number: part for part in uploaded}
    chosen = []
    previous = 0
    for number, etag in requested:
        if number <= previous:
            raise S3Error(
                "InvalidPartOrder",
                "The list of parts was not in ascending order. The parts list must be "
                "specified in order by part number.",
            )
        previous = number
        part = by_number.get(number)
        if part is None or part.etag != etag:
            raise S3Error(
                "InvalidPart",
                "One or more of the specified parts could not be found. The part might not "
                "have been uploaded, or the specified entity tag might not have matched the "
                "part's entity tag.",
                UploadId=part.upload_id if part else "",
                PartNumber=str(number),
                ETag=etag,
            )
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < MIN_PART_SIZE:
            raise S3Error(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed object size.",
                ProposedSize=str(part.size),
                MinSizeAllowed=str(MIN_PART_SIZE),
                PartNumber=str(part.part_number),
                ETag=part.etag,
            )
    return chosen


def multipart_etag(parts: List[UploadedPart]) -> str:
    """
    S3's ETag of a multipart object: the MD5 of the parts' binary MD5s, then ``-N``.
    """
    digest = hashlib.md5(b"".join(bytes.fromhex(part.etag) for part in parts))
    return f"{digest.hexdigest()}-{len(parts)}"


async def complete_upload(context: OperationContext, store: IMetadataStore) -> bytes:
    refuse_unsupported_headers(context)
    upload = await find_upload(context, store)
    refuse_read_only(context)
    condition = write_condition(context)
    await check_early(context.storage, upload.key, condition)
    requested = parse_part_list(await collect_body(context, MAX_COMPLETE_BODY))
    uploaded, _ = await store.list_parts(upload.upload_id)
    chosen = check_parts(requested, list(uploaded))
    metadata = WriteMetadata(
        etag=multipart_etag(chosen),
        content_type=upload.content_type,
        metadata=upload.metadata,
        headers=upload.headers,
        tags=upload.tags,
    )
    info = await context.storage.complete_upload(
        upload.upload_id, upload.key, [(p.part_number, p.size) for p in chosen], metadata,
        condition,
    )
    await store.delete_upload(upload.upload_id)
    host = context.header("host") or "localhost"
    return xml_body(
        context.request,
        (
            "CompleteMultipartUploadResult",
            [
                ("Location", f"http://{host}{context.resource}"),
                ("Bucket", context.bucket),
                ("Key", context.key),
                ("ETag", quoted_etag(info.etag)),
            ],
        ),
    )


async def abort_upload(context: OperationContext, store: IMetadataStore) -> bytes:
    upload = await find_upload(context, store)
    refuse_read_only(context)
    await context.storage.abort_upload(upload.upload_id)
    await store.delete_upload(upload.upload_id)
    return empty(context.request, 204)


def _int_parameter(context: OperationContext, name: str, default: int, most: int) -> int:
    text = context.query.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit():
        raise S3Error("InvalidArgument", f"Provided {name} not an integer or within integer range")
    return min(int(text), most)


async def list_uploads(context: OperationContext, store: IMetadataStore) -> bytes:
    prefix = context.query.get("prefix", "")
    key_marker = context.query.get("key-marker", "")
    upload_id_marker = context.query.get("upload-id-marker", "") if key_marker else ""
    limit = _int_parameter(context, "max-uploads", 1000, 1000)
    uploads, truncated = await store.list_uploads(
        context.caller.user, context.bucket, prefix, key_marker, upload_id_marker, limit
    )
    owner = owner_node(context.caller.user)
    children: List[Optional[xml.Node]] = [
        ("Bucket", context.bucket),
        ("KeyMarker", key_marker),
        ("UploadIdMarker", upload_id_marker),
        ("NextKeyMarker", uploads[-1].key if truncated and uploads else None),
        ("NextUploadIdMarker", uploads[-1].upload_id if truncated and uploads else None),
        ("Prefix", prefix),
        ("MaxUploads", limit),
        ("IsTruncated", truncated),
    ]
    for upload in uploads:
        children.append(
            (
                "Upload",
                [
                    ("Key", upload.key),
                    ("UploadId", upload.upload_id),
                    ("Initiator", owner[1]),
                    owner,
                    ("StorageClass", "STANDARD"),
                    ("Initiated", xml.iso8601(upload.initiated)),
                ],
            )
        )
    return xml_body(context.request, ("ListMultipartUploadsResult", children))


async def list_parts(context: OperationContext, store: IMetadataStore) -> bytes:
    upload = await find_upload(context, store)
    marker = _int_parameter(context, "part-number-marker", 0, MAX_PART_NUMBER)
    limit = _int_parameter(context, "max-parts", 1000, 1000)
    parts, truncated = await store.list_parts(upload.upload_id, marker, limit)
    owner = owner_node(context.caller.user)
    children: List[Optional[xml.Node]] = [
        ("Bucket", context.bucket),
        ("Key", context.key),
        ("UploadId", upload.upload_id),
        ("Initiator", owner[1]),
        owner,
        ("StorageClass", "STANDARD"),
        ("PartNumberMarker", marker),
        ("NextPartNumberMarker", parts[-1].part_number if parts else marker),
        ("MaxParts", limit),
        ("IsTruncated", truncated),
    ]
    for part in parts:
        children.append(
            (
                "Part",
                [
                    ("PartNumber", part.part_number),
                    ("LastModified", xml.iso8601(part.last_modified)),
                    ("ETag", quoted_etag(part.etag)),
                    ("Size", part.size),
                ],
            )
        )
    return xml_body(context.request, ("ListPartsResult", children))
