"""
Who is calling: the request's signature checked against the access keys in the metadata store.

Signature maths lives in L{gateway.s3.sigv4}; this module only gathers the request's facts, looks
the key up, and turns the outcome into a L{Caller} or an S3 error.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from attrs import frozen
from twisted.web.iweb import IRequest

from gateway.interfaces import IMetadataStore
from gateway.s3.errors import S3Error
from gateway.s3.sigv4 import RequestFacts, VerifiedSignature, parse_v4


@frozen
class Caller:
    """
    An authenticated caller.

    :ivar payload_hash: the request's declared payload hash (a hex SHA-256, ``UNSIGNED-PAYLOAD``
        or one of the ``STREAMING-...`` forms), which decides how the body is read.
    """

    user: str
    access_key_id: str
    signature: VerifiedSignature
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


async def authenticate(facts: RequestFacts, store: IMetadataStore, now: float) -> Caller:
    """
    Check the request's AWS Signature Version 4.

    :raise S3Error: AccessDenied for an anonymous request, InvalidAccessKeyId for an unknown
        key, SignatureDoesNotMatch, RequestTimeTooSkewed, or an expired presigned URL.
    """
    signature = parse_v4(facts)
    if signature is None:
        if _uses_signature_v2(facts):
            raise S3Error(
                "NotImplemented",
                "AWS Signature Version 2 is not supported; sign requests with Version 4.",
            )
        raise S3Error("AccessDenied", "Access Denied")
    key = await store.get_key(signature.access_key_id)
    if key is None:
        raise S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            AWSAccessKeyId=signature.access_key_id,
        )
    verified = signature.verify(facts, key.secret_access_key, now)
    return Caller(key.user, key.access_key_id, verified, signature.payload_hash)


def owner_id(user: str) -> str:
    """
    A stable canonical-user-id-like owner ID for a user (S3's are 64 hex digits).
    """
    import hashlib

    return hashlib.sha256(b"s3gateway-user:" + user.encode("utf-8")).hexdigest()


def optional_header(facts: RequestFacts, name: str) -> Optional[str]:
    values = facts.headers.get(name)
    return values[0] if values else None
