"""
AWS Signature Version 4 read off a request: the ``Authorization`` header or the presigned query
parameters parsed into a :class:`~gateway.s3.sigv4.SignatureV4`, which that module then checks.

Parsing refuses, with the errors S3 answers, whatever the check could not use: a malformed
credential, scope or signed-header list, a missing or unsigned date, an unknown payload mode.
Like the check, it is pure.
"""

from __future__ import annotations

import functools
import re
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Dict, Mapping, Optional, Tuple

from gateway.s3.errors import S3Error
from gateway.s3.sigv4 import (
    ALGORITHM,
    HEADER_ERROR_PREFIX,
    PAYLOAD_MODES,
    QUERY_ERROR_PREFIX,
    SERVICE,
    TERMINATOR,
    UNSIGNED_PAYLOAD,
    RequestFacts,
    SignatureV4,
    malformed_code,
    parse_timestamp,
)

#: The longest validity of a presigned URL: seven days ("Authenticating Requests: Using Query
#: Parameters", X-Amz-Expires).
MAX_EXPIRES = 604800

_CREDENTIAL_FORM = 'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
_QUERY_PARAMETERS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)

_REQUIRED_PARAMETERS = frozenset(_QUERY_PARAMETERS)
_HEX_SIGNATURE = re.compile(r"\A[0-9a-fA-F]{64}\Z")
_EXPIRES = re.compile(r"\A-?\d{1,12}\Z")
_DATE = re.compile(r"\A\d{8}\Z")
_HEADER_NAME = re.compile(r"\A[!#$%&'*+\-.^_`|~0-9a-z]+\Z")


def parse_v4(facts: RequestFacts) -> Optional[SignatureV4]:
    """
    The V4 signature a request carries in its ``Authorization`` header or its query, or ``None``
    when it carries none (anonymous, or another scheme, left to the caller).

    :raise S3Error: ``AuthorizationHeaderMalformed``, ``AuthorizationQueryParametersError``,
        ``InvalidRequest``/``InvalidArgument`` for a missing or bad x-amz-content-sha256,
        ``AccessDenied`` for a missing date, ``NotImplemented`` for session tokens.
    """
    authorization = (facts.header("authorization") or "").strip()
    if authorization:
        if authorization.split(None, 1)[0] != ALGORITHM:
            return None
        return _parse_header(facts, authorization)
    query: Dict[str, str] = {}
    for name, value in facts.query_pairs:
        query.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    if "X-Amz-Algorithm" in query or "X-Amz-Credential" in query or "X-Amz-Signature" in query:
        return _parse_query(facts, query)
    return None



def _parse_header(facts: RequestFacts, authorization: str) -> SignatureV4:
    components: Dict[str, str] = {}
    for part in authorization[len(ALGORITHM) :].split(","):
        name, equals, value = part.strip().partition("=")
        if not equals or name in components:
            components = {}
            break
        components[name] = value.strip()
    if set(components) != {"Credential", "SignedHeaders", "Signature"}:
        raise S3Error(
            "AuthorizationHeaderMalformed",
            HEADER_ERROR_PREFIX + "the authorization header requires three components: "
            "Credential, SignedHeaders, and Signature.",
        )
    timestamp, date_header = _header_timestamp(facts)
    payload_hash = facts.header("x-amz-content-sha256")
    if payload_hash is None:
        # What S3 answers (aws/aws-cli#2134 shows its XML body).
        raise S3Error(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
        )
    _check_payload_hash(payload_hash)
    signature = _signature(
        components["Credential"],
        timestamp,
        components["SignedHeaders"],
        components["Signature"],
        payload_hash,
        expires=None,
    )
    if date_header not in signature.signed_headers:
        # An unsigned date could be replaced to replay the request later.
        raise S3Error(
            "AuthorizationHeaderMalformed",
            f"{HEADER_ERROR_PREFIX}the {date_header} header must be signed.",
        )
    return signature


def _header_timestamp(facts: RequestFacts) -> Tuple[str, str]:
    """
    The request time from x-amz-date or, failing that, the RFC 1123 Date header, as S3 accepts,
    and the name of the header it came from.
    """
    invalid = S3Error(
        "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
    )
    amz_date = facts.header("x-amz-date")
    if amz_date is not None:
        if parse_timestamp(amz_date.strip()) is None:
            raise invalid
        return amz_date.strip(), "x-amz-date"
    date = facts.header("date")
    if date is None:
        raise invalid
    try:
        when = parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        raise invalid from None
    # "-0000" (what botocore writes) parses to a naive time: it is UTC too.
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.strftime("%Y%m%dT%H%M%SZ"), "date"


def _parse_query(facts: RequestFacts, query: Mapping[str, str]) -> SignatureV4:
    if "X-Amz-Security-Token" in query:
        raise S3Error("NotImplemented", "Temporary security credentials are not supported.")
    if not _REQUIRED_PARAMETERS <= query.keys():
        raise S3Error(
            "AuthorizationQueryParametersError",
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
            "and X-Amz-Expires parameters.",
        )
    if query["X-Amz-Algorithm"] != ALGORITHM:
        raise S3Error(
            "AuthorizationQueryParametersError",
            f'X-Amz-Algorithm only supports "{ALGORITHM}"',
        )
    expires = _expires(query["X-Amz-Expires"])
    if isinstance(expires, str):
        raise S3Error("AuthorizationQueryParametersError", expires)
    timestamp = query["X-Amz-Date"]
    if parse_timestamp(timestamp) is None:
        raise S3Error(
            "AuthorizationQueryParametersError",
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
        )
    payload_hash = (
        query.get("X-Amz-Content-Sha256")
        or facts.header("x-amz-content-sha256")
        or UNSIGNED_PAYLOAD
    )
    _check_payload_hash(payload_hash)
    return _signature(
        query["X-Amz-Credential"],
        timestamp,
        query["X-Amz-SignedHeaders"],
        query["X-Amz-Signature"],
        payload_hash,
        expires=expires,
    )


@functools.lru_cache(maxsize=64)
def _expires(text: str) -> "int | str":
    """
    A presigned URL's validity in seconds, or why it is refused (clients use a few values).
    """
    if not _EXPIRES.match(text):
        return "X-Amz-Expires should be a number"
    expires = int(text)
    if expires < 1:
        return "X-Amz-Expires must be non-negative"
    if expires > MAX_EXPIRES:
        return "X-Amz-Expires must be less than a week (in seconds) that is 604800"
    return expires


def _check_payload_hash(payload_hash: str) -> None:
    if payload_hash in PAYLOAD_MODES or _HEX_SIGNATURE.match(payload_hash):
        return
    if payload_hash.startswith("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"):
        raise S3Error("NotImplemented", "Signature Version 4A is not supported.")
    # The message S3 answers, naming the values it accepts.
    raise S3Error(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
        "or a valid sha256 value.",
        ArgumentName="x-amz-content-sha256",
        ArgumentValue=payload_hash,
    )


def _signature(
    credential: str,
    timestamp: str,
    signed_headers: str,
    signature: str,
    payload_hash: str,
    expires: Optional[int],
) -> SignatureV4:
    presigned = expires is not None
    scope = _scope(credential)
    if isinstance(scope, str):
        raise S3Error(malformed_code(presigned), _prefixed(presigned, scope))
    access_key_id, date, region = scope
    if date != timestamp[:8]:
        raise S3Error(
            malformed_code(presigned),
            _prefixed(presigned, "Invalid credential date. Date is not the same as X-Amz-Date."),
        )
    names = _signed_header_names(signed_headers)
    if isinstance(names, str):
        raise S3Error(malformed_code(presigned), _prefixed(presigned, names))
    if not _HEX_SIGNATURE.match(signature):
        raise S3Error(
            malformed_code(presigned), _prefixed(presigned, "the Signature is mal-formed.")
        )
    return SignatureV4(
        access_key_id=access_key_id,
        timestamp=timestamp,
        scope=f"{date}/{region}/{SERVICE}/{TERMINATOR}",
        region=region,
        signed_headers=names,
        signature=signature,
        presigned=presigned,
        expires=expires,
        payload_hash=payload_hash,
    )


def _prefixed(presigned: bool, message: str) -> str:
    return (QUERY_ERROR_PREFIX if presigned else HEADER_ERROR_PREFIX) + message


# The two parts of a signature that a client repeats on every request (its scope changes once
# a day, its list of signed headers seldom) are checked once and remembered: their regular
# expressions and splits were a tenth of a small GET's signature check.


@functools.lru_cache(maxsize=256)
def _scope(credential: str) -> "Tuple[str, str, str] | str":
    """
    The access key id, date and region of a Credential, or why it is refused.
    """
    parts = credential.rsplit("/", 4)
    if len(parts) != 5 or not all(parts) or not _DATE.match(parts[1]):
        return f"the Credential is mal-formed; {_CREDENTIAL_FORM}"
    access_key_id, date, region, service, terminator = parts
    if service != SERVICE:
        return f'incorrect service "{service}". This endpoint belongs to "{SERVICE}".'
    if terminator != TERMINATOR:
        return f'incorrect terminal "{terminator}". This endpoint uses "{TERMINATOR}".'
    return access_key_id, date, region


@functools.lru_cache(maxsize=256)
def _signed_header_names(signed_headers: str) -> "Tuple[str, ...] | str":
    """
    The names of a SignedHeaders list, or why it is refused.
    """
    names = tuple(signed_headers.split(";"))
    if not all(_HEADER_NAME.match(n) for n in names) or len(set(names)) != len(names):
        return "the SignedHeaders are mal-formed."
    if "host" not in names:
        # S3 requires the Host header to be signed ("Authenticating Requests (AWS Signature
        # Version 4)", "Canonical headers").
        return "the SignedHeaders must include host."
    return names
