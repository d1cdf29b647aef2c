"""
Who is calling: the request's signature checked against the access keys in the metadata store.

Signature maths lives in L{gateway.s3.sigv4}; this module only gathers the request's facts, looks
the key up, and turns the outcome into a L{Caller} or an S3 error.
"""

from __future__ import annotations

import hashlib
from typing import Dict, List, Optional

from attrs import frozen
from twisted.web.iweb import IRequest

from gateway.interfaces import IMetadataStore
from gateway.s3.errors import S3Error
from gateway.s3.sigv2 import parse_v2
from gateway.s3.sigv4 import RequestFacts, VerifiedSignature
from gateway.s3.sigv4_parse import parse_v4


@frozen
class Caller:
    """
    An authenticated caller.

    :ivar signature: the checked Version 4 signature (its signing key verifies aws-chunked
        bodies), or C{None} for a Version 2 signature, which never covers the payload.
    :ivar payload_hash: the request's declared payload hash (a hex SHA-256, ``UNSIGNED-PAYLOAD``
        or one of the ``STREAMING-...`` forms), which decides how the body is read.
    """

    user: str
    access_key_id: str
    signature: Optional[VerifiedSignature]
    payload_hash: str


def request_facts(request: IRequest) -> RequestFacts:
    """
    The parts of a twisted.web request that a signature covers, exactly as they arrived.
    """
    raw_path, _, raw_query = request.uri.partition(b"?")
    headers: Dict[str, List[str]] = {}
    for name, values in request.requestHeaders.getAllRawHeaders():
        headers.setdefault(name.decode("latin-1").lower(), []).extend(
            value.decode("latin-1") for value in values
        )
    return RequestFacts(
        method=request.method.decode("ascii", "replace"),
        raw_path=raw_path,
        raw_query=raw_query,
        headers=headers,
    )


def _uses_signature_v2(facts: RequestFacts) -> bool:
    authorization = (facts.headers.get("authorization") or [""])[0]
    return authorization.startswith("AWS ") or b"Signature=" in facts.raw_query


async def authenticate(
    facts: RequestFacts,
    store: IMetadataStore,
    now: float,
    bucket: str = "",
    virtual_host: bool = False,
    allow_signature_v2: bool = True,
) -> Caller:
    """
    Check the request's AWS signature: Version 4, or Version 2 where allowed.

    :param bucket: the addressed bucket, and C{virtual_host} whether the Host named it: a
        Version 2 signature covers the bucket in its canonical resource either way.
    :raise S3Error: AccessDenied for an anonymous request, InvalidAccessKeyId for an unknown
        key, SignatureDoesNotMatch, RequestTimeTooSkewed, or an expired presigned URL.
    """
    signature = parse_v4(facts)
    if signature is not None:
        key = await _key(store, signature.access_key_id)
        verified = signature.verify(facts, key.secret_access_key, now)
        return Caller(key.user, key.access_key_id, verified, signature.payload_hash)
    if _uses_signature_v2(facts):
        if not allow_signature_v2:
            raise S3Error(
                "AccessDenied",
                "AWS Signature Version 2 is switched off here; sign requests with Version 4.",
            )
        signature_v2 = parse_v2(facts, bucket, virtual_host)
        if signature_v2 is not None:
            key = await _key(store, signature_v2.access_key_id)
            checked = signature_v2.verify(facts, key.secret_access_key, now)
            return Caller(key.user, key.access_key_id, None, checked.payload_hash)
    raise S3Error("AccessDenied", "Access Denied")


async def _key(store: IMetadataStore, access_key_id: str):  # type: ignore[no-untyped-def]
    key = await store.get_key(access_key_id)
    if key is None:
        raise S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            AWSAccessKeyId=access_key_id,
        )
    return key


def owner_id(user: str) -> str:
    """
    A stable canonical-user-id-like owner ID for a user (S3's are 64 hex digits).
    """
    return hashlib.sha256(b"s3gateway-user:" + user.encode("utf-8")).hexdigest()
