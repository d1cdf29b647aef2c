"""
Object tagging: GetObjectTagging, PutObjectTagging, DeleteObjectTagging and the ``x-amz-tagging``
header of PutObject, with S3's limits ("Categorizing your storage using tags"): at most 10 tags
per object, keys of 1 to 128 characters, values of at most 256, keys unique. Tags are stored with
the object's metadata by the backend.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qsl


from gateway.model import WriteMetadata
from gateway.s3 import xml
from gateway.s3.context import OperationContext
from gateway.s3.errors import S3Error
from gateway.s3.responses import empty, xml_body
from gateway.s3.smallbody import collect_body

MAX_TAGS = 10
MAX_KEY_LENGTH = 128
MAX_VALUE_LENGTH = 256
MAX_DOCUMENT = 64 * 1024


def invalid_tag(message: str) -> S3Error:
    return S3Error("InvalidTag", message)


def check_tags(pairs: List[Tuple[str, str]]) -> Dict[str, str]:
    """
    A tag set from key-value pairs, checked against S3's limits.
    """
    if len(pairs) > MAX_TAGS:
        raise S3Error("BadRequest", "Object tags cannot be greater than 10", status=400)
    tags: Dict[str, str] = {}
    for key, value in pairs:
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise invalid_tag("The TagKey you have provided is invalid")
        if len(value) > MAX_VALUE_LENGTH:
            raise invalid_tag("The TagValue you have provided is invalid")
        if key.startswith("aws:"):
            raise invalid_tag("Your TagKey cannot be prefixed with aws:")
        if key in tags:
            raise invalid_tag("Cannot provide multiple Tags with the same key")
        tags[key] = value
    return tags


def tags_from_header(header: Optional[str]) -> Dict[str, str]:
    """
    The tag set of an ``x-amz-tagging`` header: a URL query string, ``k1=v1&k2=v2``.
    """
    if not header:
        return {}
    try:
        pairs = parse_qsl(header, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise invalid_tag("The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.")
    return check_tags(pairs)


def tags_from_document(body: bytes) -> Dict[str, str]:
    root = xml.parse(body, "Tagging")
    tag_sets = xml.children(root, "TagSet")
    if len(tag_sets) != 1:
        raise S3Error("MalformedXML", "A Tagging document holds one TagSet.")
    pairs = []
    for tag in xml.children(tag_sets[0], "Tag"):
        key = xml.child_text(tag, "Key")
        value = xml.child_text(tag, "Value")
        if key is None or value is None:
            raise S3Error("MalformedXML", "Each Tag needs a Key and a Value.")
        pairs.append((key, value))
    return check_tags(pairs)


def tagging_document(tags: Mapping[str, str]) -> xml.Node:
    return (
        "Tagging",
        [("TagSet", [("Tag", [("Key", k), ("Value", v)]) for k, v in tags.items()])],
    )


async def get_object_tagging(context: OperationContext) -> bytes:
    info = await context.storage.stat(context.key)
    return xml_body(context.request, tagging_document(info.tags))


async def _replace_tags(context: OperationContext, tags: Dict[str, str]) -> None:
    backend = context.storage
    if backend.read_only:
        raise S3Error("AccessDenied", "The bucket is read-only.")
    info = await backend.stat(context.key)
    metadata = WriteMetadata(
        etag=info.etag,
        content_type=info.content_type,
        metadata=info.metadata,
        headers=info.headers,
        tags=tags,
    )
    await backend.update_metadata(context.key, metadata)


async def put_object_tagging(context: OperationContext) -> bytes:
    tags = tags_from_document(await collect_body(context, MAX_DOCUMENT))
    await _replace_tags(context, tags)
    return empty(context.request)


async def delete_object_tagging(context: OperationContext) -> bytes:
    await _replace_tags(context, {})
    return empty(context.request, 204)
