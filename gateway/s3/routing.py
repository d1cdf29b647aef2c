"""
Which S3 operation a request asks for, from its method, path and query: S3 names operations by
sub-resource query parameters, not by path, so this is a table rather than URL routes.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple
from urllib.parse import unquote, unquote_to_bytes

from gateway.s3.errors import S3Error
from gateway.s3.sigv4 import raw_query_pairs

#: Sub-resources that name an operation the gateway does not offer.
UNSUPPORTED_SUBRESOURCES = frozenset(
    {
        "accelerate", "analytics", "attributes", "cors", "encryption", "intelligent-tiering",
        "inventory", "legal-hold", "lifecycle", "logging", "metrics", "notification",
        "object-lock", "ownershipControls", "policy", "policyStatus", "publicAccessBlock",
        "replication", "requestPayment", "restore", "retention", "select",
        "torrent", "website", "session", "renameObject",
    }
)


def parse_path(raw_path: bytes) -> Tuple[str, str]:
    """
    The bucket and key of a path-style request path, percent-decoded (``+`` stays ``+``).
    """
    try:
        path = unquote(raw_path.decode("utf-8"), encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.", status=400)
    if not path.startswith("/"):
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.", status=400)
    bucket, _, key = path[1:].partition("/")
    return bucket, key


def parse_query(
    raw_query: bytes,
    raw_pairs: Optional[Sequence[Tuple[bytes, bytes]]] = None,
    decoded_pairs: Optional[Sequence[Tuple[bytes, bytes]]] = None,
) -> Dict[str, str]:
    """
    The query parameters, decoded as a form would be (``+`` is a space); the first value of a
    repeated name wins.

    :param raw_pairs: the query already split into escaped pairs
        (L{gateway.s3.sigv4.RequestFacts.raw_pairs}), so that a request splits it once.
    :param decoded_pairs: those pairs with their escapes decoded
        (L{gateway.s3.sigv4.RequestFacts.query_pairs}), which the signature check has made
        already: a piece without ``+`` decodes the same either way, and is not decoded again.
    :raise S3Error: InvalidURI when the query, or what an escape in it stands for, is not UTF-8.
    """
    query: Dict[str, str] = {}
    if not raw_query:
        return query
    if raw_pairs is None:
        raw_pairs = raw_query_pairs(raw_query)
    try:
        raw_query.decode("utf-8")
        if decoded_pairs is None:
            for name, value in raw_pairs:
                query.setdefault(_form_decode(name), _form_decode(value))
            return query
        if b"+" not in raw_query:
            # No piece to form-decode differently: the decoded pairs are the answer.
            for name, value in decoded_pairs:
                query.setdefault(name.decode("utf-8"), value.decode("utf-8"))
            return query
        for (raw_name, raw_value), (name, value) in zip(raw_pairs, decoded_pairs):
            query.setdefault(
                _form_decode(raw_name) if b"+" in raw_name else name.decode("utf-8"),
                _form_decode(raw_value) if b"+" in raw_value else value.decode("utf-8"),
            )
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.", status=400)
    return query


def _form_decode(escaped: bytes) -> str:
    # As urllib.parse.parse_qsl(errors="strict") decodes a field of a query that is valid UTF-8
    # (checked by the caller): "+" a space, then %XX escapes, strictly UTF-8.
    if b"+" in escaped:
        escaped = escaped.replace(b"+", b" ")
    if b"%" in escaped:
        escaped = unquote_to_bytes(escaped)
    return escaped.decode("utf-8")


def operation_name(
    method: str, bucket: str, key: str, query: Mapping[str, str], copy_source: bool = False
) -> str:
    """
    The S3 operation of a request, e.g. ``"PutObject"``.

    :raise S3Error: NotImplemented for operations the gateway does not offer,
        MethodNotAllowed for a method S3 does not know at that resource.
    """
    for name in query:
        if name in UNSUPPORTED_SUBRESOURCES or name == "acl" and (key or method != "GET"):
            raise S3Error("NotImplemented", f"The {name} sub-resource is not supported.")
    if "tagging" in query and not key:
        raise S3Error("NotImplemented", "Bucket tagging is not supported.")
    if not bucket:
        if method == "GET":
            return "ListBuckets"
        raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")
    if not key:
        return _bucket_operation(method, query)
    operation = _object_operation(method, query)
    if copy_source and operation in ("PutObject", "UploadPart"):
        return "CopyObject" if operation == "PutObject" else "UploadPartCopy"
    return operation


def _bucket_operation(method: str, query: Mapping[str, str]) -> str:
    if method == "GET":
        for name, operation in (
            ("location", "GetBucketLocation"),
            ("acl", "GetBucketAcl"),
            ("versioning", "GetBucketVersioning"),
            ("versions", "ListObjectVersions"),
            ("uploads", "ListMultipartUploads"),
        ):
            if name in query:
                return operation
        if query.get("list-type") == "2":
            return "ListObjectsV2"
        return "ListObjects"
    if method == "HEAD":
        return "HeadBucket"
    if method == "PUT":
        if query.keys() & {"versioning", "acl"}:
            raise S3Error("NotImplemented", "Changing bucket settings is not supported.")
        return "CreateBucket"
    if method == "DELETE":
        return "DeleteBucket"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "POST":
        raise S3Error("NotImplemented", "POST object uploads are not supported.")
    raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")


def _object_operation(method: str, query: Mapping[str, str]) -> str:
    upload_id: Optional[str] = query.get("uploadId")
    if "tagging" in query:
        operation = {
            "GET": "GetObjectTagging",
            "PUT": "PutObjectTagging",
            "DELETE": "DeleteObjectTagging",
        }.get(method)
        if operation is None:
            raise S3Error(
                "MethodNotAllowed", "The specified method is not allowed against this resource."
            )
        return operation
    if method in ("GET", "HEAD"):
        if upload_id is not None and method == "GET":
            return "ListParts"
        return "GetObject" if method == "GET" else "HeadObject"
    if method == "PUT":
        if upload_id is not None or "partNumber" in query:
            return "UploadPart"
        return "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if upload_id is not None:
            return "CompleteMultipartUpload"
        raise S3Error("NotImplemented", "POST object uploads are not supported.")
    if method == "DELETE":
        if upload_id is not None:
            return "AbortMultipartUpload"
        return "DeleteObject"
    raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.")
