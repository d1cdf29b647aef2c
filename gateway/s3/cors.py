"""
CORS for browser clients: preflight ``OPTIONS`` and the response headers of actual requests, so a
web page may, for instance, upload through a presigned URL.

Allowed origins are configured per bucket name (the ``[cors]`` section of the config file), not
through S3's PutBucketCors. A preflight carries no credentials, so it is answered from the bucket
name alone; the actual request is then authenticated as usual.
"""

from __future__ import annotations

import fnmatch
from typing import Mapping, Optional, Sequence, Tuple

from attrs import field, frozen
from twisted.web.iweb import IRequest

from gateway.s3.errors import S3Error

ALLOWED_METHODS = b"GET, PUT, POST, DELETE, HEAD"
EXPOSED_HEADERS = (
    b"ETag, Content-Length, Content-Range, Content-Type, Last-Modified, Accept-Ranges, "
    b"x-amz-request-id, x-amz-id-2, x-amz-version-id, x-amz-checksum-crc32, "
    b"x-amz-checksum-crc32c, x-amz-checksum-crc64nvme, x-amz-checksum-sha1, x-amz-checksum-sha256"
)
MAX_AGE = b"3000"


def _origins(value: Mapping[str, Sequence[str]]) -> Mapping[str, Tuple[str, ...]]:
    return {bucket: tuple(origins) for bucket, origins in value.items()}


@frozen
class CorsPolicy:
    """
    Which origins may call which buckets.

    :ivar origins: bucket name (or ``*`` for every bucket) to its allowed origins; an origin is
        exact (``https://app.example.com``), a shell-style pattern (``https://*.example.com``),
        or ``*`` for any.
    """

    origins: Mapping[str, Tuple[str, ...]] = field(factory=dict, converter=_origins)

    def allowed(self, bucket: str, origin: str) -> Optional[str]:
        """
        The ``Access-Control-Allow-Origin`` value for C{origin} on C{bucket}, or C{None}.
        """
        for pattern in self.origins.get(bucket, ()) + self.origins.get("*", ()):
            if pattern == "*":
                return "*"
            if pattern == origin or fnmatch.fnmatchcase(origin, pattern):
                return origin
        return None


def parse_origins(text: str) -> Tuple[str, ...]:
    """
    A config value: origins separated by commas or white space.
    """
    return tuple(o for o in text.replace(",", " ").split() if o)


def _set_allow_origin(request: IRequest, allowed: str) -> None:
    request.setHeader(b"access-control-allow-origin", allowed.encode("latin-1"))
    if allowed != "*":
        request.setHeader(b"vary", b"Origin")


def preflight(
    request: IRequest,
    policy: CorsPolicy,
    bucket: str,
    origin: Optional[str],
    method: Optional[str],
    requested_headers: Optional[str],
) -> bytes:
    """
    Answer a preflight ``OPTIONS`` request (S3's "OPTIONS object").

    :param method: the ``Access-Control-Request-Method`` header.
    :param requested_headers: the ``Access-Control-Request-Headers`` header.
    :raise S3Error: AccessForbidden when the origin or method is not allowed.
    """
    if origin is None or method is None:
        raise S3Error(
            "BadRequest", "Insufficient information. Origin request header needed.", status=400
        )
    allowed = policy.allowed(bucket, origin) if bucket else None
    if allowed is None or method.strip().upper() not in ALLOWED_METHODS.decode("ascii").split(", "):
        raise S3Error("AccessForbidden", "CORSResponse: This CORS request is not allowed.")
    _set_allow_origin(request, allowed)
    request.setHeader(b"access-control-allow-methods", ALLOWED_METHODS)
    if requested_headers:
        request.setHeader(b"access-control-allow-headers", requested_headers.encode("latin-1"))
    request.setHeader(b"access-control-max-age", MAX_AGE)
    request.setHeader(b"access-control-expose-headers", EXPOSED_HEADERS)
    request.setHeader(b"content-length", b"0")
    return b""


def decorate(request: IRequest, policy: CorsPolicy, bucket: str, origin: Optional[str]) -> None:
    """
    Add the CORS headers of an actual request from an allowed origin (errors included, so the
    page can read the error document).
    """
    if origin is None or not bucket:
        return
    allowed = policy.allowed(bucket, origin)
    if allowed is None:
        return
    _set_allow_origin(request, allowed)
    request.setHeader(b"access-control-expose-headers", EXPOSED_HEADERS)
