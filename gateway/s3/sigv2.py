"""
AWS Signature Version 2, checked on the server side.

Older tools (s3cmd with ``signature_v2 = True``, boto 2, botocore's ``signature_version='s3'``,
presigned links made by legacy code) sign with HMAC-SHA1 over a short "StringToSign". The rules
are those of the Amazon S3 Developer Guide's legacy page "Signing and Authenticating REST Requests"
and its section "Query String Request Authentication Alternative". Unlike Version 4, the signature
covers neither the Host nor the payload: the bucket enters the signed resource explicitly, which
is why the caller passes it in (with virtual-host-style addressing it is only in the Host), and
the body is unsigned (``UNSIGNED-PAYLOAD`` for the caller; Content-MD5 still protects it when sent).

This module is pure: it neither reads the clock nor looks up secrets; the caller hands both in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Dict, List, Optional, Tuple

from attrs import frozen

from gateway.s3.errors import S3Error
from gateway.s3.sigv4 import (
    SIGNATURE_MISMATCH,
    UNSIGNED_PAYLOAD,
    RequestFacts,
    parse_timestamp,
    query_pairs,
)

#: The query parameters that name a sub-resource or a response override, which the canonical
#: resource keeps: the legacy guide's list ("Constructing the CanonicalizedResource Element"),
#: with the later ones botocore's ``HmacV1Auth`` signs (what AWS came to expect of V2 clients).
SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete", "inventory",
        "lifecycle", "location", "logging", "metrics", "notification", "object-lock",
        "partNumber", "policy", "replication", "requestPayment", "restore", "select",
        "select-type", "storageClass", "tagging", "torrent", "uploadId", "uploads",
        "versionId", "versioning", "versions", "website",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
        "response-content-language", "response-content-type", "response-expires",
    }
)
_QUERY_PARAMETERS = ("AWSAccessKeyId", "Signature", "Expires")
_INVALID_DATE = "AWS authentication requires a valid Date or x-amz-date header"
# Obsolete line folding (RFC 7230, 3.2.4): a line break and the blanks around it count as one space.
_FOLD = re.compile(rb"[ \t]*\r?\n[ \t]*")


@frozen
class VerifiedSignatureV2:
    """
    The outcome of a successful Version 2 check: who signed. The payload is never signed in
    Version 2, hence ``payload_hash`` is always ``UNSIGNED-PAYLOAD``.
    """

    access_key_id: str
    presigned: bool
    payload_hash: str = UNSIGNED_PAYLOAD


@frozen
class SignatureV2:
    """
    The Version 2 signature a request carries, parsed but not yet checked.

    :ivar bucket: the bucket the request names, which the canonical resource starts with.
    :ivar virtual_host: whether the bucket came from the Host: then the canonical resource is
        ``/bucket`` and the whole path; path-style, it is the path as sent.
    :ivar expires: a presigned URL's ``Expires`` (POSIX seconds, as sent), else ``None``.
    """

    access_key_id: str
    signature: str
    bucket: str
    virtual_host: bool
    expires: Optional[str]
    payload_hash: str = UNSIGNED_PAYLOAD

    @property
    def presigned(self) -> bool:
        return self.expires is not None

    def canonical_resource(self, facts: RequestFacts, bucket_slash: bool = True) -> bytes:
        """
        ``/bucket/key`` with the key as sent (still percent-encoded), then the sub-resources.

        :param bucket_slash: whether a request on a bucket itself signs ``/bucket/`` (as the
            guide, s3cmd and botocore do; botocore sends ``/bucket`` path-style but signs
            ``/bucket/``) rather than ``/bucket`` (the path as sent, as simpler signers do).
        """
        raw_path = facts.raw_path or b"/"
        if self.virtual_host:
            path = b"/" + self.bucket.encode("utf-8") + raw_path
        elif self.bucket and b"/" not in raw_path[1:]:
            path = raw_path + b"/"
        else:
            path = raw_path
        if not bucket_slash and self.bucket and path.count(b"/") == 2 and path.endswith(b"/"):
            path = path[:-1]
        return path + canonical_subresources(facts.raw_query)

    def string_to_sign(
        self, facts: RequestFacts, date_line: Optional[str] = None, bucket_slash: bool = True
    ) -> bytes:
        """
        The StringToSign of "Constructing the Authentication Header" (or, presigned, of "Query
        String Request Authentication Alternative"), as the bytes that are signed.

        :param date_line: the third line if not the one the guide prescribes.
        :param bucket_slash: see :meth:`canonical_resource`.
        """
        if date_line is None:
            date_line = self.expires if self.presigned else _date_line(facts)
        lines = [
            facts.method.encode("ascii", "replace"),
            _header_bytes(self._standard_header(facts, "content-md5")),
            _header_bytes(self._standard_header(facts, "content-type")),
            _header_bytes(date_line or ""),
        ]
        return (
            b"\n".join(lines)
            + b"\n"
            + canonical_amz_headers(self._amz_headers(facts))
            + self.canonical_resource(facts, bucket_slash)
        )

    def verify(
        self, facts: RequestFacts, secret_access_key: str, now: float, max_skew: int = 900
    ) -> VerifiedSignatureV2:
        """
        Check the request's time (or a presigned URL's expiry) and signature.

        :raise S3Error: ``RequestTimeTooSkewed``, ``AccessDenied`` (expired presigned URL, bad
            date) or ``SignatureDoesNotMatch``.
        """
        self._check_time(facts, now, max_skew)
        key = secret_access_key.encode("utf-8")
        provided = self.signature.encode("latin-1", "replace")
        candidates = self._candidates(facts)
        matched = False
        for candidate in candidates:
            expected = base64.b64encode(hmac.new(key, candidate, hashlib.sha1).digest())
            matched |= hmac.compare_digest(expected, provided)
        if not matched:
            raise S3Error(
                "SignatureDoesNotMatch",
                SIGNATURE_MISMATCH,
                AWSAccessKeyId=self.access_key_id,
                StringToSign=candidates[0].decode("utf-8", "replace"),
                SignatureProvided=self.signature,
                StringToSignBytes=" ".join(f"{b:02x}" for b in candidates[0]),
            )
        return VerifiedSignatureV2(access_key_id=self.access_key_id, presigned=self.presigned)

    def _candidates(self, facts: RequestFacts) -> List[bytes]:
        """
        The StringToSign the guide prescribes, then the variants real clients sign for the same
        request: none of them lets a signature cover another request.
        """
        date_lines: List[Optional[str]] = [None]
        if not self.presigned and facts.header("x-amz-date") is not None:
            # The guide blanks the Date line when x-amz-date is present; botocore's HmacV1Auth
            # signs the Date header regardless. Both cover x-amz-date in the x-amz-* lines.
            date = facts.header("date")
            if date is not None:
                date_lines.append(date.strip())
        candidates = []
        for date_line in date_lines:
            for bucket_slash in (True, False):
                candidate = self.string_to_sign(facts, date_line, bucket_slash)
                if candidate not in candidates:
                    candidates.append(candidate)
        return candidates

    def _standard_header(self, facts: RequestFacts, name: str) -> str:
        value = facts.header(name)
        if value is None and self.presigned:
            # botocore's HmacV1QueryAuth moves the signed Content-Type and Content-MD5 into the
            # query; a client fetching the link may or may not send them again as headers.
            value = _query(facts).get(name)
        return (value or "").strip()

    def _amz_headers(self, facts: RequestFacts) -> Dict[str, List[str]]:
        headers = {n: list(v) for n, v in facts.headers.items() if n.startswith("x-amz-")}
        if self.presigned:
            # Likewise, signed x-amz-* headers travel as query parameters of a presigned URL.
            for name, value in _query(facts).items():
                lower = name.lower()
                if lower.startswith("x-amz-") and lower not in headers:
                    headers[lower] = [value]
        return headers

    def _check_time(self, facts: RequestFacts, now: float, max_skew: int) -> None:
        if self.presigned:
            assert self.expires is not None
            if now > int(self.expires):
                raise S3Error(
                    "AccessDenied",
                    "Request has expired",
                    Expires=_iso8601(int(self.expires)),
                    ServerTime=_iso8601(now),
                )
            return
        sent, signed_at = request_time(facts)
        if abs(now - signed_at) > max_skew:
            raise S3Error(
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                RequestTime=sent,
                ServerTime=_iso8601(now),
                MaxAllowedSkewMilliseconds=str(max_skew * 1000),
            )


def parse_v2(facts: RequestFacts, bucket: str, virtual_host: bool) -> Optional[SignatureV2]:
    """
    The V2 signature a request carries in ``Authorization: AWS AKID:signature`` or in its query
    (``AWSAccessKeyId``, ``Expires``, ``Signature``), or ``None`` when it carries none.

    :param bucket: the bucket the request names (``""`` for the service itself).
    :param virtual_host: whether the bucket came from the Host header rather than the path
        (:func:`gateway.s3.addressing.locate` tells).
    :raise S3Error: ``InvalidArgument`` for a malformed header or two auth mechanisms,
        ``AccessDenied`` for incomplete query parameters, a bad ``Expires``, or (header form)
        a missing or invalid date.
    """
    authorization = (facts.header("authorization") or "").strip()
    query = _query(facts)
    in_query = any(name in query for name in _QUERY_PARAMETERS[:2])
    if authorization:
        if authorization.split(None, 1)[0] != "AWS":
            return None
        if in_query or "X-Amz-Signature" in query:
            raise S3Error(
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                "Signature query string parameter or the Authorization header should be "
                "specified",
                ArgumentName="Authorization",
                ArgumentValue=authorization,
            )
        access_key_id, colon, signature = authorization[3:].strip().rpartition(":")
        if not colon or not access_key_id or not signature:
            raise S3Error(
                "InvalidArgument",
                "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
                ArgumentName="Authorization",
                ArgumentValue=authorization,
            )
        request_time(facts)  # refuse a missing or unreadable date before looking the key up
        return SignatureV2(access_key_id, signature, bucket, virtual_host, expires=None)
    if not in_query:
        return None
    if not all(query.get(name) for name in _QUERY_PARAMETERS):
        raise S3Error(
            "AccessDenied",
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId "
            "parameters",
        )
    expires = query["Expires"]
    if not re.match(r"\A\d{1,12}\Z", expires):
        raise S3Error(
            "AccessDenied", "Invalid date (should be seconds since epoch)", Expires=expires
        )
    return SignatureV2(
        query["AWSAccessKeyId"], query["Signature"], bucket, virtual_host, expires=expires
    )


def canonical_subresources(raw_query: bytes) -> bytes:
    """
    ``?name[=value]&...`` for the sub-resources and response overrides in a query, sorted by
    name, values decoded; empty when there are none.
    """
    kept = [
        (name, value)
        for name, value in query_pairs(raw_query)
        if name.decode("latin-1") in SUBRESOURCES
    ]
    if not kept:
        return b""
    kept.sort(key=lambda pair: pair[0])
    return b"?" + b"&".join(name + (b"=" + value if value else b"") for name, value in kept)


def canonical_amz_headers(headers: Dict[str, List[str]]) -> bytes:
    """
    ``name:value\\n`` for each ``x-amz-*`` header, sorted by name: values unfolded and trimmed,
    repeated headers joined with commas. Inner blanks are kept, as clients sign them.
    """
    lines = []
    for name in sorted(headers):
        values = [_FOLD.sub(b" ", _header_bytes(v)).strip(b" \t") for v in headers[name]]
        lines.append(name.encode("latin-1") + b":" + b",".join(values) + b"\n")
    return b"".join(lines)


def request_time(facts: RequestFacts) -> Tuple[str, float]:
    """
    The request time as sent and as POSIX seconds: from ``x-amz-date`` when present (RFC 1123
    as V2 clients write it, or ISO 8601 basic), else from ``Date``.

    :raise S3Error: ``AccessDenied`` when neither is present and valid.
    """
    sent = facts.header("x-amz-date")
    if sent is None:
        sent = facts.header("date")
    if sent is None:
        raise S3Error("AccessDenied", _INVALID_DATE)
    sent = sent.strip()
    when = parse_timestamp(sent)
    if when is not None:
        return sent, when
    try:
        parsed = parsedate_to_datetime(sent)
    except (TypeError, ValueError, IndexError):
        raise S3Error("AccessDenied", _INVALID_DATE) from None
    if parsed.tzinfo is None:  # "-0000" parses to a naive time: UTC too
        parsed = parsed.replace(tzinfo=timezone.utc)
    return sent, parsed.timestamp()


def _date_line(facts: RequestFacts) -> str:
    if facts.header("x-amz-date") is not None:
        return ""
    return (facts.header("date") or "").strip()


def _query(facts: RequestFacts) -> Dict[str, str]:
    query: Dict[str, str] = {}
    for name, value in facts.query_pairs:
        query.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return query


def _header_bytes(value: str) -> bytes:
    # Header values are latin-1 decoded from the wire; signing their bytes signs what was sent.
    return value.encode("latin-1", "replace")


def _iso8601(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
