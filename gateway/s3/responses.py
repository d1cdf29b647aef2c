"""
Writing S3 responses: XML bodies, empty bodies and object headers, with the headers S3 sends.
"""

from __future__ import annotations

import functools
from typing import Optional

from twisted.web.http import datetimeToString
from twisted.web.iweb import IRequest

from gateway.model import ObjectInfo
from gateway.s3 import xml


def xml_body(request: IRequest, node: xml.Node, status: int = 200) -> bytes:
    """
    Set up an XML response and return its body for the caller to hand back.
    """
    body = xml.render(node)
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/xml")
    request.setHeader(b"content-length", b"%d" % (len(body),))
    return body


def empty(request: IRequest, status: int = 200) -> bytes:
    request.setResponseCode(status)
    if status != 204:
        request.setHeader(b"content-length", b"0")
    return b""


@functools.lru_cache(maxsize=4096)
def http_date(seconds: int) -> bytes:
    """
    The HTTP date of a POSIX time in whole seconds, as Last-Modified gives it; remembered for
    the most recent times, since the objects read most are read again and again, and formatting
    a date was 3% of a small GET's samples.
    """
    return datetimeToString(seconds)


def quoted_etag(etag: str) -> str:
    return '"' + etag + '"'


def object_headers(request: IRequest, info: ObjectInfo, length: Optional[int] = None) -> None:
    """
    The headers that describe an object on GET and HEAD.
    """
    request.setHeader(b"etag", quoted_etag(info.etag).encode("ascii"))
    request.setHeader(b"last-modified", http_date(int(info.last_modified)))
    request.setHeader(b"content-type", info.content_type.encode("latin-1", "replace"))
    request.setHeader(
        b"content-length", b"%d" % (info.size if length is None else length,)
    )
    request.setHeader(b"accept-ranges", b"bytes")
    for name, value in info.headers.items():
        request.setHeader(name.encode("latin-1"), value.encode("latin-1", "replace"))
    for name, value in info.metadata.items():
        request.setHeader(b"x-amz-meta-" + name.encode("latin-1"), encode_header_value(value))
    if info.parts_count:
        request.setHeader(b"x-amz-mp-parts-count", b"%d" % (info.parts_count,))


def encode_header_value(value: str) -> bytes:
    """
    A header value as bytes. Values are kept as they arrived (bytes read as latin-1), so that
    non-ASCII user metadata goes back to the client byte for byte.
    """
    return value.encode("latin-1", "replace")
