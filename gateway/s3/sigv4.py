"""
AWS Signature Version 4, checked on the server side.

S3 clients sign every request either in the ``Authorization`` header or in presigned query
parameters; the gateway recomputes the signature from the request as it arrived on the wire and
compares. The rules are those of the S3 API Reference, "Authenticating Requests (AWS Signature
Version 4)", with its pages "Signature Calculations for the Authorization Header: Transferring
Payload in a Single Chunk" and "Authenticating Requests: Using Query Parameters". S3 differs from
other AWS services in that it does not normalise the path (no ``//`` or ``.`` folding) and in the
``x-amz-content-sha256`` header, which names how the payload is protected.

This module holds the maths and the check; reading a signature off a request is
:mod:`gateway.s3.sigv4_parse`'s. Both are pure: they neither read the clock nor look up secrets;
the caller hands both in.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import hmac
import re
import time
from typing import List, Mapping, Optional, Sequence, Tuple
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

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
#: How S3 begins the messages of malformed-signature errors, in a header or a query.
HEADER_ERROR_PREFIX = "The authorization header is malformed; "
QUERY_ERROR_PREFIX = "Error parsing the X-Amz-Credential parameter; "

_TIMESTAMP = re.compile(r"\A[0-9]{8}T[0-9]{6}Z\Z")
_BLANKS = re.compile(rb"[ \t]+")
#: Bytes that AWS's URI encoding leaves as they are (and, in a path, ``/``). Data made of them
#: only is its own encoding: deleting them (C{bytes.translate}) leaves nothing, the cheapest
#: test there is.
_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_UNRESERVED_PATH = _UNRESERVED + b"/"
#: A query name or value already in AWS's URI encoding: unreserved bytes, and upper-case escapes
#: of only the bytes that must be escaped (not of an unreserved one, as ``%41`` for ``A``).
_CANONICAL = re.compile(
    rb"(?:[A-Za-z0-9\-._~]"
    rb"|%(?:[01][0-9A-F]|2[0-9A-CF]|3[A-F]|40|5[B-E]|60|7[B-DF]|[89A-F][0-9A-F]))*"
)


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
    #: The query's ``(name, value)`` pairs as sent, still escaped, in order. Split once per
    #: request and shared: the signature parser, the canonical request and the routing
    #: (L{gateway.s3.routing.parse_query}) all read the query, and splitting and unescaping it
    #: three times was a tenth of a small presigned GET.
    raw_pairs: List[Tuple[bytes, bytes]] = field(init=False, eq=False, repr=False)
    #: L{query_pairs} of the raw query, decoded once per request (see L{raw_pairs}).
    query_pairs: List[Tuple[bytes, bytes]] = field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Made at once rather than as cached properties: every request with a query needs both,
        # and a cached property of a slotted attrs class is found through a __getattr__ that
        # raises and catches AttributeError first, about 0.5 us each.
        raw_pairs = raw_query_pairs(self.raw_query)
        object.__setattr__(self, "raw_pairs", raw_pairs)
        object.__setattr__(self, "query_pairs", decoded_pairs(raw_pairs))

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


@functools.lru_cache(maxsize=256)
def signing_key(secret_access_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """
    The key derived from a secret for one day, region and service ("Signature Calculations for
    the Authorization Header", step 3).

    Remembered for the most recent (secret, day, region, service) combinations: the derivation
    is four HMACs, as much as the rest of a small request's signature check, and a client signs
    with the same key all day. The derived key grants nothing the secret does not.
    """
    key = hmac_sha256(("AWS4" + secret_access_key).encode("utf-8"), date.encode("ascii"))
    for part in (region, service, TERMINATOR):
        key = hmac_sha256(key, part.encode("utf-8"))
    return key


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


@functools.lru_cache(maxsize=256)
def parse_timestamp(timestamp: str) -> Optional[float]:
    """
    POSIX time of an ISO 8601 basic timestamp (``20130524T000000Z``), or ``None`` if malformed.

    Remembered for recent timestamps: requests signed within the same second share one, and each
    request's is read twice (when parsed and when checked).
    """
    if not _TIMESTAMP.match(timestamp):
        return None
    # Fields sliced by hand: time.strptime costs more than the rest of a signature check.
    fields = (
        int(timestamp[0:4]), int(timestamp[4:6]), int(timestamp[6:8]),
        int(timestamp[9:11]), int(timestamp[11:13]), int(timestamp[13:15]),
    )
    year, month, day, hour, minute, second = fields
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return None
    if hour > 23 or minute > 59 or second > 61:
        return None
    return float(calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0)))


def _iso8601(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def canonical_uri(raw_path: bytes) -> bytes:
    """
    The path decoded once and re-encoded with AWS's rule: unreserved characters and ``/`` kept,
    everything else ``%XX``. S3 does not normalise ``//`` or ``.`` segments.
    """
    if not raw_path:
        return b"/"
    if not raw_path.translate(None, _UNRESERVED_PATH):
        return raw_path  # nothing escaped, nothing to escape: already canonical
    return quote_from_bytes(unquote_to_bytes(raw_path), safe="/").encode("ascii")


def query_pairs(raw_query: bytes) -> List[Tuple[bytes, bytes]]:
    """
    The decoded ``(name, value)`` pairs of a query string, in order. ``+`` stays a plus: AWS
    signers encode a space as ``%20``.
    """
    return decoded_pairs(raw_query_pairs(raw_query))


def raw_query_pairs(raw_query: bytes) -> List[Tuple[bytes, bytes]]:
    """
    The ``(name, value)`` pairs of a query string as sent (not unescaped), empty pieces left out.
    """
    pairs = []
    if raw_query:
        for piece in raw_query.split(b"&"):
            if piece:
                name, _, value = piece.partition(b"=")
                pairs.append((name, value))
    return pairs


def decoded_pairs(raw_pairs: Sequence[Tuple[bytes, bytes]]) -> List[Tuple[bytes, bytes]]:
    """
    Pairs as sent (L{raw_query_pairs}) with their percent-escapes decoded; ``+`` stays a plus.
    """
    return [
        (
            _unquote_escaped(name) if b"%" in name else name,
            _unquote_escaped(value) if b"%" in value else value,
        )
        for name, value in raw_pairs
    ]


#: The longest escaped piece whose decoding L{_unquote} remembers.
_REMEMBERED_PIECE = 128


def _unquote(escaped: bytes) -> bytes:
    return _unquote_escaped(escaped) if b"%" in escaped else escaped


def _unquote_escaped(escaped: bytes) -> bytes:
    """
    L{_unquote} of a piece known to hold a C{%}.
    """
    if len(escaped) > _REMEMBERED_PIECE:
        return unquote_to_bytes(escaped)
    return _unquote_short(escaped)


@functools.lru_cache(maxsize=1024)
def _unquote_short(escaped: bytes) -> bytes:
    """
    C{unquote_to_bytes}, remembered: the escaped pieces a client sends again and again are
    short (the credential of every presigned URL, ``key%2Fdate%2Fregion%2Fs3%2Faws4_request``),
    and C{urllib} decodes in Python, about 0.9 us a piece.
    """
    return unquote_to_bytes(escaped)


def aws_quote(data: bytes) -> str:
    """
    C{data} in AWS's URI encoding: unreserved characters as they are, every other byte ``%XX``.
    """
    if not data.translate(None, _UNRESERVED):
        return data.decode("ascii")
    return quote_from_bytes(data, safe="")


def canonical_query(raw_pairs: Sequence[Tuple[bytes, bytes]], presigned: bool) -> bytes:
    """
    Every parameter (but the signature of a presigned URL) decoded once and AWS-encoded, sorted
    by name then value; from the query's pairs as sent (L{RequestFacts.raw_pairs}).

    A name or value that is already in AWS's encoding, as signing clients send them, is its own
    encoding: decoding and re-encoding it (L{aws_quote}) cost more than the rest of the
    canonical request. Others go the long way. Canonical strings are ASCII, so their bytes sort
    as the strings do.
    """
    encoded = []
    for raw_name, raw_value in raw_pairs:
        name = _canonical_piece(raw_name)
        if presigned and name == b"X-Amz-Signature":
            continue
        encoded.append((name, _canonical_piece(raw_value)))
    encoded.sort()
    return b"&".join([name + b"=" + value for name, value in encoded])


def _canonical_piece(raw: bytes) -> bytes:
    """
    A query name or value as sent, in AWS's encoding.
    """
    if not raw.translate(None, _UNRESERVED):
        return raw
    if len(raw) <= _REMEMBERED_PIECE:
        return _encoded_short(raw)
    return _encoded(raw)


def _encoded(raw: bytes) -> bytes:
    if b"%" in raw and _CANONICAL.fullmatch(raw):
        return raw
    return aws_quote(_unquote(raw)).encode("ascii")


@functools.lru_cache(maxsize=1024)
def _encoded_short(raw: bytes) -> bytes:
    """
    L{_encoded}, remembered as L{_unquote_short} is: the regular expression that finds the
    credential of a presigned URL already in AWS's encoding took about 1.2 us each time.
    """
    return _encoded(raw)


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


def malformed_code(presigned: bool) -> str:
    """
    The code S3 gives a malformed signature: in the query when ``presigned``, else in the header.
    """
    return "AuthorizationQueryParametersError" if presigned else "AuthorizationHeaderMalformed"


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
        return b"\n".join(
            [
                facts.method.encode("ascii"),
                canonical_uri(facts.raw_path),
                canonical_query(facts.raw_pairs, self.presigned),
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
            prefix = QUERY_ERROR_PREFIX if self.presigned else HEADER_ERROR_PREFIX
            raise S3Error(
                malformed_code(self.presigned),
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
        if signed_at - now > max_skew:
            raise S3Error(
                "AccessDenied",
                "Request is not yet valid",
                None,
                **{
                    "X-Amz-Date": self.timestamp,
                    "Expires": _iso8601(signed_at + self.expires),
                    "ServerTime": _iso8601(now),
                },
            )
        if now > signed_at + self.expires:
            raise S3Error(
                "AccessDenied",
                "Request has expired",
                None,
                **{
                    "X-Amz-Expires": str(self.expires),
                    "Expires": _iso8601(signed_at + self.expires),
                    "ServerTime": _iso8601(now),
                },
            )

    def _check_unsigned_headers(self, facts: RequestFacts) -> None:
        # S3 refuses x-amz-* headers that the signature does not cover: otherwise anybody on the
        # path could add or change, say, x-amz-meta-* or x-amz-content-sha256.
        signed = self.signed_headers
        unsigned = [name for name in facts.headers if name[:6] == "x-amz-" and name not in signed]
        if unsigned:
            raise S3Error(
                "AccessDenied",
                "There were headers present in the request which were not signed",
                HeadersNotSigned=", ".join(sorted(unsigned)),
            )


def _hex_bytes(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)
