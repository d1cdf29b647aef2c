"""
ListObjectsV2, ListObjects (V1) and ListObjectVersions: query parameters in, XML out.

The listing itself (order, prefixes, pages) is the backend's, through L{gateway.listing}; this
module owns only the protocol: markers and continuation tokens, url encoding, the documents.
"""

from __future__ import annotations

import base64
import binascii
from typing import Dict, List, Optional, Sequence, Union
from urllib.parse import quote

from gateway.model import ListingPage, ObjectInfo
from gateway.s3 import xml
from gateway.s3.auth import owner_id
from gateway.s3.context import OperationContext
from gateway.s3.errors import S3Error
from gateway.s3.responses import quoted_etag, xml_body

MAX_KEYS = 1000


def max_keys(context: OperationContext, name: str = "max-keys") -> int:
    text = context.query.get(name)
    if text is None or text == "":
        return MAX_KEYS
    try:
        value = int(text)
    except ValueError:
        raise S3Error("InvalidArgument", f"Provided {name} not an integer or within integer range")
    if value < 0:
        raise S3Error("InvalidArgument", f"Argument {name} must be an integer between 0 and 2147483647")
    return min(value, MAX_KEYS)


def encoder(context: OperationContext):
    encoding = context.query.get("encoding-type")
    if encoding is None:
        return lambda value: value
    if encoding != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return lambda value: quote(value, safe="/")


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode("utf-8")).decode("ascii")


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect")


#: One key of a listing page; the values are escaped (L{xml.escape}) before they go in.
_CONTENTS = (
    "<Contents><Key>%s</Key><LastModified>%s</LastModified><ETag>%s</ETag><Size>%d</Size>"
    "%s<StorageClass>STANDARD</StorageClass></Contents>"
)

#: One common prefix of a listing page.
_COMMON_PREFIX = "<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>"


def contents(
    context: OperationContext, objects: Sequence[ObjectInfo], encode, with_owner: bool
) -> xml.Markup:
    """
    The ``Contents`` of a listing page, written from a template: a page holds up to a thousand
    keys, and an element tree per key cost more than everything else in a listing request.
    """
    owner = xml.markup(owner_node(context.caller.user)).text if with_owner else ""
    escape = xml.escape
    # Keys written together mostly share their timestamp.
    stamps: Dict[float, str] = {}
    parts = []
    for info in objects:
        stamp = stamps.get(info.last_modified)
        if stamp is None:
            stamp = stamps[info.last_modified] = xml.iso8601(info.last_modified)
        parts.append(
            _CONTENTS
            % (escape(encode(info.key)), stamp, escape(quoted_etag(info.etag)), info.size, owner)
        )
    return xml.Markup("".join(parts))


def owner_node(user: str) -> xml.Node:
    return ("Owner", [("ID", owner_id(user)), ("DisplayName", user)])


def prefixes(page: ListingPage, encode) -> xml.Markup:
    """
    The ``CommonPrefixes`` of a listing page (each one is non-empty: it ends with the delimiter).
    """
    escape = xml.escape
    return xml.Markup(
        "".join(_COMMON_PREFIX % (escape(encode(p)),) for p in page.common_prefixes)
    )


def _delimiter(context: OperationContext) -> Optional[str]:
    return context.query.get("delimiter") or None


async def list_objects_v2(context: OperationContext) -> bytes:
    encode = encoder(context)
    prefix = context.query.get("prefix", "")
    delimiter = _delimiter(context)
    limit = max_keys(context)
    token = context.query.get("continuation-token")
    start_after = context.query.get("start-after", "")
    marker = decode_token(token) if token is not None else start_after
    page = await context.storage.list_objects(prefix, delimiter, marker, limit)
    with_owner = context.query.get("fetch-owner", "false").lower() == "true"
    next_token = (
        encode_token(page.next_marker) if page.is_truncated and page.next_marker else None
    )
    children: List[Union[xml.Node, xml.Markup, None]] = [
        ("Name", context.bucket),
        ("Prefix", encode(prefix)),
        ("Delimiter", encode(delimiter)) if delimiter else None,
        ("MaxKeys", limit),
        ("KeyCount", len(page.objects) + len(page.common_prefixes)),
        ("IsTruncated", page.is_truncated),
        ("EncodingType", "url") if "encoding-type" in context.query else None,
        ("ContinuationToken", token) if token is not None else None,
        ("NextContinuationToken", next_token) if next_token else None,
        ("StartAfter", encode(start_after)) if "start-after" in context.query else None,
    ]
    children.append(contents(context, page.objects, encode, with_owner))
    children.append(prefixes(page, encode))
    return xml_body(context.request, ("ListBucketResult", children))


async def list_objects_v1(context: OperationContext) -> bytes:
    encode = encoder(context)
    prefix = context.query.get("prefix", "")
    delimiter = _delimiter(context)
    limit = max_keys(context)
    marker = context.query.get("marker", "")
    page = await context.storage.list_objects(prefix, delimiter, marker, limit)
    children: List[Union[xml.Node, xml.Markup, None]] = [
        ("Name", context.bucket),
        ("Prefix", encode(prefix)),
        ("Marker", encode(marker)),
        # S3 sends NextMarker only with a delimiter; clients use the last key otherwise. Sending
        # it always is harmless and spares clients that rule.
        ("NextMarker", encode(page.next_marker)) if page.is_truncated and page.next_marker else None,
        ("MaxKeys", limit),
        ("Delimiter", encode(delimiter)) if delimiter else None,
        ("IsTruncated", page.is_truncated),
        ("EncodingType", "url") if "encoding-type" in context.query else None,
    ]
    children.append(contents(context, page.objects, encode, True))
    children.append(prefixes(page, encode))
    return xml_body(context.request, ("ListBucketResult", children))


async def list_object_versions(context: OperationContext) -> bytes:
    """
    No version history is kept: a valid, empty result.
    """
    encode = encoder(context)
    delimiter = _delimiter(context)
    return xml_body(
        context.request,
        (
            "ListVersionsResult",
            [
                ("Name", context.bucket),
                ("Prefix", encode(context.query.get("prefix", ""))),
                ("KeyMarker", encode(context.query.get("key-marker", ""))),
                ("VersionIdMarker", context.query.get("version-id-marker", "")),
                ("MaxKeys", max_keys(context)),
                ("Delimiter", encode(delimiter)) if delimiter else None,
                ("IsTruncated", False),
            ],
        ),
    )
