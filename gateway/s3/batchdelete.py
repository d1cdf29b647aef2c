"""
DeleteObjects (``POST /<bucket>?delete``): up to 1,000 keys in one request, each deleted on its
own, with a per-key ``<Deleted>`` or ``<Error>`` entry (only errors in Quiet mode).

S3 requires an integrity header on this request (Content-MD5 or an ``x-amz-checksum-*``), since
a corrupted key list would delete the wrong objects; the body's digests are then checked like any
upload's before anything is deleted.
"""

from __future__ import annotations

from typing import List, Optional

from gateway.interfaces import BackendError
from gateway.s3 import xml
from gateway.s3.context import OperationContext
from gateway.s3.errors import S3Error, from_backend_error
from gateway.s3.responses import xml_body
from gateway.s3.smallbody import collect_body

MAX_KEYS = 1000
MAX_DOCUMENT = 2 * 1024 * 1024


def _has_integrity_header(context: OperationContext) -> bool:
    if context.header("content-md5") is not None:
        return True
    if context.header("x-amz-sdk-checksum-algorithm") is not None:
        return True
    if context.header("x-amz-trailer") is not None:
        return True
    return any(name.startswith("x-amz-checksum-") for name in context.facts.headers)


def parse_delete(body: bytes) -> tuple:
    """
    The keys and the Quiet flag of a ``<Delete>`` document.
    """
    root = xml.parse(body, "Delete")
    quiet = (xml.child_text(root, "Quiet") or "false").strip().lower() == "true"
    keys: List[str] = []
    for element in xml.children(root, "Object"):
        key = xml.child_text(element, "Key")
        if key is None:
            raise S3Error("MalformedXML", "Each Object needs a Key.")
        if xml.child_text(element, "VersionId"):
            raise S3Error("NotImplemented", "Versioned deletes are not supported.")
        keys.append(key)
    if not keys or len(keys) > MAX_KEYS:
        raise S3Error(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our "
            "published schema.",
        )
    return keys, quiet


async def delete_objects(context: OperationContext) -> bytes:
    if not _has_integrity_header(context):
        raise S3Error(
            "InvalidRequest",
            "Missing required header for this request: Content-MD5 or x-amz-checksum-*",
        )
    keys, quiet = parse_delete(await collect_body(context, MAX_DOCUMENT))
    backend = context.storage
    entries: List[Optional[xml.Node]] = []
    for key in keys:
        try:
            if backend.read_only:
                raise S3Error("AccessDenied", "Access Denied")
            await backend.delete(key)
        except (S3Error, BackendError) as failure:
            error = failure if isinstance(failure, S3Error) else from_backend_error(failure, key)
            entries.append(
                ("Error", [("Key", key), ("Code", error.code), ("Message", error.message)])
            )
            continue
        if not quiet:
            entries.append(("Deleted", [("Key", key)]))
    return xml_body(context.request, ("DeleteResult", entries))
