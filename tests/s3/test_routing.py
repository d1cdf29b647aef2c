"""
Tests of :mod:`gateway.s3.routing`: every row of the operations table (method x path x
sub-resource), the sub-resources answered NotImplemented, and the decoding of paths and queries.
"""

from __future__ import annotations

from typing import Dict, Optional

import pytest

from gateway.s3.errors import S3Error
from gateway.s3.routing import (
    UNSUPPORTED_SUBRESOURCES,
    operation_name,
    parse_path,
    parse_query,
)
from gateway.s3.sigv4 import decoded_pairs, raw_query_pairs


def route(method: str, target: str, copy_source: bool = False) -> str:
    """
    The operation of a request line's method and target, decoded as the app decodes them.
    """
    raw_path, _, raw_query = target.encode("utf-8").partition(b"?")
    bucket, key = parse_path(raw_path)
    query = parse_query(raw_query)
    if copy_source:
        return operation_name(method, bucket, key, query, copy_source=True)
    return operation_name(method, bucket, key, query)


def refused(method: str, target: str) -> S3Error:
    with pytest.raises(S3Error) as raised:
        route(method, target)
    return raised.value


# The original operations table (SPEC.md) and issue 2.

TABLE = [
    # buckets
    ("GET", "/", "ListBuckets"),
    ("HEAD", "/bucket", "HeadBucket"),
    ("HEAD", "/bucket/", "HeadBucket"),
    ("PUT", "/bucket", "CreateBucket"),
    ("DELETE", "/bucket", "DeleteBucket"),
    ("GET", "/bucket?location", "GetBucketLocation"),
    ("GET", "/bucket?location=", "GetBucketLocation"),
    ("GET", "/bucket?acl", "GetBucketAcl"),
    ("GET", "/bucket?versioning", "GetBucketVersioning"),
    ("GET", "/bucket?versions", "ListObjectVersions"),
    ("GET", "/bucket?versions&prefix=a&max-keys=10", "ListObjectVersions"),
    # listings
    ("GET", "/bucket?list-type=2&prefix=&delimiter=/&max-keys=1000", "ListObjectsV2"),
    ("GET", "/bucket?list-type=2", "ListObjectsV2"),
    ("GET", "/bucket/?list-type=2&encoding-type=url", "ListObjectsV2"),
    ("GET", "/bucket?list-type=2&continuation-token=abc&start-after=x", "ListObjectsV2"),
    ("GET", "/bucket?prefix=&delimiter=/&marker=&max-keys=", "ListObjects"),
    ("GET", "/bucket", "ListObjects"),
    ("GET", "/bucket/", "ListObjects"),
    ("GET", "/bucket?list-type=1", "ListObjects"),
    ("GET", "/bucket?encoding-type=url", "ListObjects"),
    # objects
    ("HEAD", "/bucket/key", "HeadObject"),
    ("GET", "/bucket/key", "GetObject"),
    ("PUT", "/bucket/key", "PutObject"),
    ("PUT", "/bucket/folder/", "PutObject"),
    ("DELETE", "/bucket/key", "DeleteObject"),
    ("GET", "/bucket/key?response-content-type=text/plain", "GetObject"),
    ("GET", "/bucket/key?partNumber=2", "GetObject"),
    ("HEAD", "/bucket/key?partNumber=1", "HeadObject"),
    ("HEAD", "/bucket/key?uploadId=u", "HeadObject"),
    # multipart
    ("POST", "/bucket/key?uploads", "CreateMultipartUpload"),
    ("POST", "/bucket/key?uploads=", "CreateMultipartUpload"),
    ("PUT", "/bucket/key?partNumber=3&uploadId=abc", "UploadPart"),
    ("PUT", "/bucket/key?uploadId=abc&partNumber=3", "UploadPart"),
    ("POST", "/bucket/key?uploadId=abc", "CompleteMultipartUpload"),
    ("DELETE", "/bucket/key?uploadId=abc", "AbortMultipartUpload"),
    ("GET", "/bucket?uploads", "ListMultipartUploads"),
    ("GET", "/bucket?uploads&prefix=a&key-marker=k&upload-id-marker=u", "ListMultipartUploads"),
    ("GET", "/bucket/key?uploadId=abc", "ListParts"),
    ("GET", "/bucket/key?uploadId=abc&max-parts=2&part-number-marker=1", "ListParts"),
]


@pytest.mark.parametrize("method, target, operation", TABLE)
def test_operations_table(method: str, target: str, operation: str) -> None:
    assert route(method, target) == operation


@pytest.mark.parametrize("method, target, operation", TABLE)
def test_x_id_is_ignored(method: str, target: str, operation: str) -> None:
    """
    boto3 adds ``x-id=<Operation>`` to some requests; routing never reads it, even when it
    names another operation.
    """
    separator = "&" if "?" in target else "?"
    assert route(method, target + separator + "x-id=PutObject") == operation
    assert route(method, target + separator + "x-id=DeleteObjects") == operation


def test_sub_resource_takes_precedence_over_list_type() -> None:
    assert route("GET", "/bucket?uploads&list-type=2") == "ListMultipartUploads"
    assert route("GET", "/bucket?versions&list-type=2") == "ListObjectVersions"


def test_key_with_query_lookalike_in_path() -> None:
    """
    A key that only looks like a sub-resource (percent-encoded ``?``) is an object.
    """
    assert route("GET", "/bucket/key%3Facl") == "GetObject"
    assert route("PUT", "/bucket/uploads") == "PutObject"


# Issue 3's operations, as routed now.


@pytest.mark.parametrize(
    "method, target, copy_source, operation",
    [
        ("POST", "/bucket?delete", False, "DeleteObjects"),
        ("POST", "/bucket?delete=", False, "DeleteObjects"),
        ("PUT", "/bucket/key", True, "CopyObject"),
        ("PUT", "/bucket/key?partNumber=1&uploadId=u", True, "UploadPartCopy"),
        ("GET", "/bucket/key", True, "GetObject"),
        ("POST", "/bucket/key?uploadId=u", True, "CompleteMultipartUpload"),
        ("GET", "/bucket/key?tagging", False, "GetObjectTagging"),
        ("PUT", "/bucket/key?tagging", False, "PutObjectTagging"),
        ("DELETE", "/bucket/key?tagging", False, "DeleteObjectTagging"),
    ],
)
def test_later_operations(method: str, target: str, copy_source: bool, operation: str) -> None:
    assert route(method, target, copy_source=copy_source) == operation


# NotImplemented and MethodNotAllowed.


@pytest.mark.parametrize(
    "method, target",
    [
        ("GET", "/bucket?policy"),
        ("PUT", "/bucket?policy"),
        ("DELETE", "/bucket?policy"),
        ("GET", "/bucket?cors"),
        ("PUT", "/bucket?cors"),
        ("GET", "/bucket?lifecycle"),
        ("GET", "/bucket?website"),
        ("GET", "/bucket?encryption"),
        ("GET", "/bucket?notification"),
        ("GET", "/bucket?logging"),
        ("GET", "/bucket?replication"),
        ("GET", "/bucket?object-lock"),
        ("GET", "/bucket?publicAccessBlock"),
        ("GET", "/bucket?ownershipControls"),
        ("GET", "/bucket?requestPayment"),
        ("GET", "/bucket?accelerate"),
        ("GET", "/bucket?tagging"),
        ("PUT", "/bucket?tagging"),
        ("DELETE", "/bucket?tagging"),
        ("GET", "/bucket?session"),
        ("PUT", "/bucket?acl"),
        ("PUT", "/bucket?versioning"),
        ("GET", "/bucket/key?acl"),
        ("PUT", "/bucket/key?acl"),
        ("GET", "/bucket/key?retention"),
        ("PUT", "/bucket/key?legal-hold"),
        ("GET", "/bucket/key?attributes"),
        ("GET", "/bucket/key?torrent"),
        ("POST", "/bucket/key?restore"),
        ("POST", "/bucket/key?select&select-type=2"),
        ("PUT", "/bucket/key?renameObject"),
        ("POST", "/bucket/key"),
        ("GET", "/?cors"),
        ("GET", "/bucket?policy&list-type=2"),
        ("PUT", "/bucket/key?partNumber=1&uploadId=u&acl"),
    ],
)
def test_not_implemented(method: str, target: str) -> None:
    error = refused(method, target)
    assert (error.code, error.status) == ("NotImplemented", 501)


@pytest.mark.parametrize(
    "method, target",
    [
        ("PUT", "/"),
        ("POST", "/"),
        ("DELETE", "/"),
        ("HEAD", "/"),
        ("PATCH", "/bucket"),
        ("PATCH", "/bucket/key"),
        ("TRACE", "/bucket/key"),
        ("POST", "/bucket/key?tagging"),
        ("HEAD", "/bucket/key?tagging"),
    ],
)
def test_method_not_allowed(method: str, target: str) -> None:
    error = refused(method, target)
    assert (error.code, error.status) == ("MethodNotAllowed", 405)


def test_post_object_form_upload_is_not_implemented() -> None:
    error = refused("POST", "/bucket")
    assert error.code == "NotImplemented"


def test_unsupported_set_holds_the_documented_names() -> None:
    for name in ("policy", "cors", "lifecycle", "website", "replication", "restore", "select"):
        assert name in UNSUPPORTED_SUBRESOURCES
    for name in ("uploads", "uploadId", "partNumber", "list-type", "delete", "location"):
        assert name not in UNSUPPORTED_SUBRESOURCES


@pytest.mark.parametrize("name", sorted(UNSUPPORTED_SUBRESOURCES))
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "POST", "HEAD"])
@pytest.mark.parametrize("path", ["/bucket", "/bucket/key"])
def test_every_unsupported_sub_resource(name: str, method: str, path: str) -> None:
    error = refused(method, f"{path}?{name}")
    assert error.code == "NotImplemented"


# parse_path


@pytest.mark.parametrize(
    "raw, bucket, key",
    [
        (b"/", "", ""),
        (b"/bucket", "bucket", ""),
        (b"/bucket/", "bucket", ""),
        (b"/bucket/key", "bucket", "key"),
        (b"/bucket/dir/", "bucket", "dir/"),
        (b"/bucket/a/b/c.txt", "bucket", "a/b/c.txt"),
        (b"/bucket/a%2Fb", "bucket", "a/b"),
        (b"/bucket/a%2fb", "bucket", "a/b"),
        (b"/bucket/a+b", "bucket", "a+b"),
        (b"/bucket/a%2Bb", "bucket", "a+b"),
        (b"/bucket/a%20b", "bucket", "a b"),
        (b"/bucket/100%25", "bucket", "100%"),
        (b"/bucket/%3F%23%26%3D", "bucket", "?#&="),
        (b"/bucket/caf\xc3\xa9", "bucket", "caf\u00e9"),
        (b"/bucket/caf%C3%A9", "bucket", "caf\u00e9"),
        (b"/bucket/%E2%98%83/%F0%9F%98%80", "bucket", "\u2603/\U0001f600"),
        (b"/bucket/\xe9\x9b\xaa", "bucket", "\u96ea"),
        (b"/bucket//key", "bucket", "/key"),
        (b"/bucket//", "bucket", "/"),
        (b"/bucket/a//b", "bucket", "a//b"),
        (b"/bucket/%2Fkey", "bucket", "/key"),
        (b"/bucket/..", "bucket", ".."),
        (b"/bucket/a/../b", "bucket", "a/../b"),
        (b"//", "", ""),
    ],
)
def test_parse_path(raw: bytes, bucket: str, key: str) -> None:
    assert parse_path(raw) == (bucket, key)


@pytest.mark.parametrize(
    "raw",
    [
        b"/bucket/\xff",
        b"/bucket/caf\xe9",  # latin-1, not UTF-8
        b"/bucket/%FF",
        b"/bucket/%C3",
        b"/bucket/%C3%28",
        b"/bucket/%ED%A0%80",  # an encoded surrogate
        b"",
        b"bucket/key",
        b"*",
        b"http://host/bucket/key",
    ],
)
def test_parse_path_invalid(raw: bytes) -> None:
    with pytest.raises(S3Error) as raised:
        parse_path(raw)
    assert (raised.value.code, raised.value.status) == ("InvalidURI", 400)


# parse_query


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"", {}),
        (b"uploads", {"uploads": ""}),
        (b"uploads=", {"uploads": ""}),
        (b"acl&versioning", {"acl": "", "versioning": ""}),
        (b"list-type=2&prefix=&delimiter=%2F", {"list-type": "2", "prefix": "", "delimiter": "/"}),
        (b"prefix=a%20b", {"prefix": "a b"}),
        (b"prefix=a+b", {"prefix": "a b"}),
        (b"prefix=a%2Bb", {"prefix": "a+b"}),
        (b"prefix=caf%C3%A9", {"prefix": "caf\u00e9"}),
        (b"prefix=caf\xc3\xa9", {"prefix": "caf\u00e9"}),
        (b"a=1&a=2", {"a": "1"}),
        (b"a=&a=2", {"a": ""}),
        (b"a=1=2", {"a": "1=2"}),
        (b"&&a=1&", {"a": "1"}),
        (b"x-id=PutObject&uploadId=u", {"x-id": "PutObject", "uploadId": "u"}),
        (b"continuation-token=1%2Fabc%3D%3D", {"continuation-token": "1/abc=="}),
    ],
)
def test_parse_query(raw: bytes, expected: Dict[str, str]) -> None:
    assert parse_query(raw) == expected
    # The same from the pairs the signature check split and decoded (``+`` still a plus there).
    raw_pairs = raw_query_pairs(raw)
    assert parse_query(raw, raw_pairs, decoded_pairs(raw_pairs)) == expected


def test_parse_query_names_are_case_sensitive() -> None:
    """
    S3's sub-resources are case-sensitive: ``uploadid`` is not ``uploadId``.
    """
    query = parse_query(b"uploadid=u&UPLOADS")
    assert "uploadId" not in query and "uploads" not in query
    assert route("PUT", "/bucket/key?uploadid=u") == "PutObject"


@pytest.mark.parametrize("raw", [b"prefix=\xff", b"prefix=%FF", b"\xc3=1", b"prefix=%C3%28"])
def test_parse_query_invalid(raw: bytes) -> None:
    raw_pairs = raw_query_pairs(raw)
    for decoded in (None, decoded_pairs(raw_pairs)):
        with pytest.raises(S3Error) as raised:
            parse_query(raw, raw_pairs, decoded)
        assert (raised.value.code, raised.value.status) == ("InvalidURI", 400)


@pytest.mark.parametrize("value", [None, "", "abc"])
def test_upload_id_presence_not_value_decides(value: Optional[str]) -> None:
    """
    A blank ``uploadId`` still names the multipart operation: presence decides, the handler
    then answers NoSuchUpload for a bad value.
    """
    query = {} if value is None else {"uploadId": value}
    expected = "DeleteObject" if value is None else "AbortMultipartUpload"
    assert operation_name("DELETE", "bucket", "key", query) == expected



def _parse_qsl_reference(raw: bytes) -> Dict[str, str]:
    from urllib.parse import parse_qsl

    query: Dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict"):
        query.setdefault(name, value)
    return query


@pytest.mark.parametrize(
    "raw",
    [
        b"a+b%2B=c+%2b+d", b"%=%%&%zz=%4", b"k=%E2%82%AC+\xe2\x82\xac", b"=v&n=", b"a;b=c",
        b"X-Amz-Credential=AK%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Expires=60",
        b"response-content-disposition=attachment%3B+filename%3D%22a+b.txt%22",
    ],
)
def test_parse_query_decodes_as_parse_qsl(raw: bytes) -> None:
    """
    The query is split once per request (shared with the signature check) and decoded by hand,
    exactly as a form would be by urllib's parse_qsl.
    """
    from gateway.s3.sigv4 import raw_query_pairs

    assert parse_query(raw) == _parse_qsl_reference(raw)
    assert parse_query(raw, raw_query_pairs(raw)) == _parse_qsl_reference(raw)
    pairs = raw_query_pairs(raw)
    assert parse_query(raw, pairs, decoded_pairs(pairs)) == _parse_qsl_reference(raw)


def test_parse_query_from_decoded_pairs_decodes_as_parse_qsl() -> None:
    """
    From the signature check's decoded pairs, with and without a ``+`` anywhere in the query
    (without one, the decoded pairs are taken as they are), the answer is urllib's.
    """
    import random

    rng = random.Random(7)
    pieces = [b"a", b"Z", b"-", b"~", b"+", b"=", b"&", b"/", b"%", b"%2F", b"%2B", b"%2b",
              b"%20", b"%C3%A9", b"\xc3\xa9", b"%zz", b"%4", b"%3D", b"%26", b"x"]
    tried = 0
    for _ in range(3000):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        try:
            expected = _parse_qsl_reference(raw)
        except UnicodeDecodeError:
            continue
        pairs = raw_query_pairs(raw)
        assert parse_query(raw, pairs, decoded_pairs(pairs)) == expected, raw
        tried += 1
    assert tried > 2000


def test_parse_query_refuses_bytes_that_an_escape_would_complete() -> None:
    """
    A raw continuation byte after an escaped lead byte decodes to UTF-8 only after unescaping:
    parse_qsl refuses it (the raw query is not UTF-8), and so does this.
    """
    with pytest.raises(S3Error):
        parse_query(b"prefix=%C3\xa9")
