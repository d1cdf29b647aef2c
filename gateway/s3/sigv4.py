"""
AWS Signature Version 4, checked on the server side.

S3 clients sign every request either in the ``Authorization`` header or in presigned query
parameters; the gateway recomputes the signature from the request as it arrived on the wire and
compares. The rules are those of the S3 API Reference, "Authenticating Requests (AWS Signature
Version 4)", with its pages "Signature Calculations for the Authorization Header: Transferring
Payload in a Single Chunk" and "Authenticating Requests: Using Query Parameters". S3 differs from
other AWS services in that it does not normalise the path (no ``//`` or ``.`` folding) and in the
``x-amz-content-sha256`` header, which names how the payload is protected.

This module is pure: it neither reads the clock nor looks up secrets; the caller hands both in.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote_from_bytes, unquote_to_bytes

from attrs import field, frozen

from gateway.s3.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
#: The x-amz-content-sha256 values that are not a hash of the payload.
PAYLOAD_MODES = frozenset(
    [UNSIGNED_PAYLOAD, STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_TRAILER]
)
#: The longest validity of a presigned URL: seven days ("Authenticating Requests: Using Query
#: Parameters", X-Amz-Expires).
MAX_EXPIRES = 604800

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
_CREDENTIAL_FORM = 'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
_HEADER_PREFIX = "The authorization header is malformed; "
_QUERY_PREFIX = "Error parsing the X-Amz-Credential parameter; "
_QUERY_PARAMETERS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)

_TIMESTAMP = re.compile(r"\A\d{8}T\d{6}Z\Z")
_HEX_SIGNATURE = re.compile(r"\A[0-9a-fA-F]{64}\Z")
_HEADER_NAME = re.compile(r"\A[!#$%&'*+\-.^_`|~0-9a-z]+\Z")
_BLANKS = re.compile(rb"[ \t]+")


@frozen
class RequestFacts:
    """
    What signature checking needs of a request, exactly as it came off the wire.

    :ivar method: the HTTP method, e.g. ``"PUT"``.
    :ivar raw_path: the path with its percent-escapes, without the query.
    :ivar raw_query: what follows ``?``, possibly empty.
    :ivar headers: lower-case names to their values in arrival order, latin-1 decoded.
    """

    method: str
    raw_path: bytes
    raw_query: bytes
    headers: Mapping[str, Sequence[str]]

    def header(self, name: str) -> Optional[str]:
        """
        The first value of header ``name`` (lower case), or ``None``.
        """
        values = self.headers.get(name)
        return values[0] if values else None


@frozen
class VerifiedSignature:
    """
    The outcome of a successful check: who signed, and what the aws-chunked decoder needs to
    check the chunk signatures that follow (:mod:`gateway.s3.chunked`).
    """

    access_key_id: str
    signing_key: bytes = field(repr=False)
    scope: str
    timestamp: str
    seed_signature: str
    payload_hash: str


def signing_key(secret_access_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """
    The key derived from a secret for one day, region and service ("Signature Calculations for
    the Authorization Header", step 3).
    """
    key = hmac_sha256(("AWS4" + secret_access_key).encode("utf-8"), date.encode("ascii"))
    for part in (region, service, TERMINATOR):
        key = hmac_sha256(key, part.encode("utf-8"))
    return key


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def parse_timestamp(timestamp: str) -> Optional[float]:
    """
    POSIX time of an ISO 8601 basic timestamp (``20130524T000000Z``), or ``None`` if malformed.
    """
    if not _TIMESTAMP.match(timestamp):
        return None
    try:
        return float(calendar.timegm(time.strptime(timestamp, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


def _iso8601(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def canonical_uri(raw_path: bytes) -> bytes:
    """
    The path decoded once and re-encoded with AWS's rule: unreserved characters and ``/`` kept,
    everything else ``%XX``. S3 does not normalise ``//`` or ``.`` segments.
    """
    return quote_from_bytes(unquote_to_bytes(raw_path or b"/"), safe="/").encode("ascii")


def query_pairs(raw_query: bytes) -> List[Tuple[bytes, bytes]]:
    """
    The decoded ``(name, value)`` pairs of a query string, in order. ``+`` stays a plus: AWS
    signers encode a space as ``%20``.
    """
    pairs = []
    for piece in raw_query.split(b"&"):
        if piece:
            name, _, value = piece.partition(b"=")
            pairs.append((unquote_to_bytes(name), unquote_to_bytes(value)))
    return pairs


def canonical_query(pairs: Sequence[Tuple[bytes, bytes]], presigned: bool) -> bytes:
    """
    Every parameter (but the signature of a presigned URL) AWS-encoded, sorted by name then value.
    """
    encoded = sorted(
        (quote_from_bytes(name, safe=""), quote_from_bytes(value, safe=""))
        for name, value in pairs
        if not (presigned and name == b"X-Amz-Signature")
    )
    return "&".join(f"{name}={value}" for name, value in encoded).encode("ascii")


def canonical_headers(headers: Mapping[str, Sequence[str]], names: Sequence[str]) -> bytes:
    """
    ``name:value\\n`` for each signed header: values trimmed, inner runs of blanks folded to one,
    repeated headers joined with commas. Values are signed as the bytes that were sent.
    """
    lines = []
    for name in names:
        values = [
            _BLANKS.sub(b" ", value.encode("latin-1").strip(b" \t"))
            for value in headers.get(name, ())
        ]
        lines.append(name.encode("ascii") + b":" + b",".join(values) + b"\n")
    return b"".join(lines)


@frozen
class SignatureV4:
    """
    The signature a request carries, parsed but not yet checked.

    :ivar timestamp: the request time in ISO 8601 basic form, as signed.
    :ivar scope: ``date/region/s3/aws4_request``.
    :ivar signed_headers: the lower-case names, in the order the client signed them.
    :ivar expires: a presigned URL's validity in seconds, else ``None``.
    :ivar payload_hash: the x-amz-content-sha256 value that the signature covers.
    """

    access_key_id: str
    timestamp: str
    scope: str
    region: str
    signed_headers: Tuple[str, ...]
    signature: str
    presigned: bool
    expires: Optional[int]
    payload_hash: str

    def canonical_request(self, facts: RequestFacts) -> bytes:
        """
        The canonical request of "Signature Calculations for the Authorization Header", step 1.
        """
        pairs = query_pairs(facts.raw_query)
        return b"\n".join(
            [
                facts.method.encode("ascii"),
                canonical_uri(facts.raw_path),
                canonical_query(pairs, self.presigned),
                canonical_headers(facts.headers, self.signed_headers),
                ";".join(self.signed_headers).encode("ascii"),
                self.payload_hash.encode("ascii"),
            ]
        )

    def string_to_sign(self, canonical_request: bytes) -> str:
        digest = hashlib.sha256(canonical_request).hexdigest()
        return f"{ALGORITHM}\n{self.timestamp}\n{self.scope}\n{digest}"

    def check_region(self, region: str) -> None:
        """
        Refuse a signature made for another region, as S3 does.
        """
        if self.region != region:
            prefix = _QUERY_PREFIX if self.presigned else _HEADER_PREFIX
            raise S3Error(
                _malformed_code(self.presigned),
                f"{prefix}the region '{self.region}' is wrong; expecting '{region}'",
                Region=region,
            )

    def verify(
        self, facts: RequestFacts, secret_access_key: str, now: float, max_skew: int = 900
    ) -> VerifiedSignature:
        """
        Check the request's time and signature.

        :raise S3Error: ``RequestTimeTooSkewed``, ``AccessDenied`` (expired or future presigned
            URL, unsigned ``x-amz-*`` headers) or ``SignatureDoesNotMatch``.
        """
        self._check_time(now, max_skew)
        self._check_unsigned_headers(facts)
        date = self.scope.split("/", 1)[0]
        key = signing_key(secret_access_key, date, self.region)
        canonical = self.canonical_request(facts)
        string_to_sign = self.string_to_sign(canonical)
        expected = hmac.new(key, string_to_sign.encode("ascii"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.signature.lower()):
            raise S3Error(
                "SignatureDoesNotMatch",
                SIGNATURE_MISMATCH,
                AWSAccessKeyId=self.access_key_id,
                StringToSign=string_to_sign,
                SignatureProvided=self.signature,
                StringToSignBytes=_hex_bytes(string_to_sign.encode("ascii")),
                CanonicalRequest=canonical.decode("latin-1"),
                CanonicalRequestBytes=_hex_bytes(canonical),
            )
        return VerifiedSignature(
            access_key_id=self.access_key_id,
            signing_key=key,
            scope=self.scope,
            timestamp=self.timestamp,
            seed_signature=expected,
            payload_hash=self.payload_hash,
        )

    def _check_time(self, now: float, max_skew: int) -> None:
        signed_at = parse_timestamp(self.timestamp)
        assert signed_at is not None  # parse_v4 admits valid timestamps only
        if not self.presigned:
            if abs(now - signed_at) > max_skew:
                raise S3Error(
                    "RequestTimeTooSkewed",
                    "The difference between the request time and the current time is too large.",
                    RequestTime=self.timestamp,
                    ServerTime=_iso8601(now),
                    MaxAllowedSkewMilliseconds=str(max_skew * 1000),
                )
            return
        assert self.expires is not None
        expiry = _iso8601(signed_at + self.expires)
        if signed_at - now > max_skew:
            raise S3Error(
                "AccessDenied",
                "Request is not yet valid",
                **{"X-Amz-Date": self.timestamp, "Expires": expiry, "ServerTime": _iso8601(now)},
            )
        if now > signed_at + self.expires:
            raise S3Error(
                "AccessDenied",
                "Request has expired",
                **{
                    "X-Amz-Expires": str(self.expires),
                    "Expires": expiry,
                    "ServerTime": _iso8601(now),
                },
            )

    def _check_unsigned_headers(self, facts: RequestFacts) -> None:
        # S3 refuses x-amz-* headers that the signature does not cover: otherwise anybody on the
        # path could add or change, say, x-amz-meta-* or x-amz-content-sha256.
        signed = set(self.signed_headers)
        unsigned = sorted(n for n in facts.headers if n.startswith("x-amz-") and n not in signed)
        if unsigned:
            raise S3Error(
                "AccessDenied",
                "There were headers present in the request which were not signed",
                HeadersNotSigned=", ".join(unsigned),
            )


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
    query = {}
    for name, value in query_pairs(facts.raw_query):
        query.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    if "X-Amz-Algorithm" in query or "X-Amz-Credential" in query or "X-Amz-Signature" in query:
        return _parse_query(facts, query)
    return None


def _malformed_code(presigned: bool) -> str:
    return "AuthorizationQueryParametersError" if presigned else "AuthorizationHeaderMalformed"


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
            _HEADER_PREFIX + "the authorization header requires three components: "
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
            f"{_HEADER_PREFIX}the {date_header} header must be signed.",
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
    if any(name not in query for name in _QUERY_PARAMETERS):
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
    expires_text = query["X-Amz-Expires"]
    if not re.match(r"\A-?\d{1,12}\Z", expires_text):
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires should be a number")
    expires = int(expires_text)
    if expires < 1:
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative")
    if expires > MAX_EXPIRES:
        raise S3Error(
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        )
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


def _check_payload_hash(payload_hash: str) -> None:
    if payload_hash in PAYLOAD_MODES or re.match(r"\A[0-9a-fA-F]{64}\Z", payload_hash):
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
    code = _malformed_code(presigned)
    prefix = _QUERY_PREFIX if presigned else _HEADER_PREFIX
    parts = credential.rsplit("/", 4)
    if len(parts) != 5 or not all(parts) or not re.match(r"\A\d{8}\Z", parts[1]):
        raise S3Error(code, f"{prefix}the Credential is mal-formed; {_CREDENTIAL_FORM}")
    access_key_id, date, region, service, terminator = parts
    if service != SERVICE:
        raise S3Error(
            code, f'{prefix}incorrect service "{service}". This endpoint belongs to "{SERVICE}".'
        )
    if terminator != TERMINATOR:
        raise S3Error(
            code, f'{prefix}incorrect terminal "{terminator}". This endpoint uses "{TERMINATOR}".'
        )
    if date != timestamp[:8]:
        raise S3Error(
            code, f"{prefix}Invalid credential date. Date is not the same as X-Amz-Date."
        )
    names = tuple(signed_headers.split(";"))
    if not all(_HEADER_NAME.match(n) for n in names) or len(set(names)) != len(names):
        raise S3Error(code, f"{prefix}the SignedHeaders are mal-formed.")
    if "host" not in names:
        # S3 requires the Host header to be signed ("Authenticating Requests (AWS Signature
        # Version 4)", "Canonical headers").
        raise S3Error(code, f"{prefix}the SignedHeaders must include host.")
    if not _HEX_SIGNATURE.match(signature):
        raise S3Error(code, f"{prefix}the Signature is mal-formed.")
    return SignatureV4(
        access_key_id=access_key_id,
        timestamp=timestamp,
        scope=f"{date}/{region}/{service}/{terminator}",
        region=region,
        signed_headers=names,
        signature=signature,
        presigned=presigned,
        expires=expires,
        payload_hash=payload_hash,
    )


def _hex_bytes(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)
