"""
Which bucket and key a request names: path-style (``host/bucket/key``) or virtual-host-style
(``bucket.host/key``), as the S3 User Guide's "Virtual hosting of buckets" describes.

boto3 and the aws cli address buckets virtual-host-style by default against AWS; against the
gateway they do so when configured with ``addressing_style='virtual'`` and an endpoint whose name
is one of the gateway's configured base domains. Any other Host, an IP address or a base domain
itself leaves the bucket in the path, so path-style clients work unchanged.
"""

from __future__ import annotations

import ipaddress
from typing import Optional, Sequence, Tuple

from attrs import frozen

from gateway.s3.errors import S3Error
from gateway.s3.routing import parse_path


@frozen
class Address:
    """
    What a request names.

    :ivar bucket: the bucket, ``""`` for the service itself (ListBuckets).
    :ivar key: the object key, percent-decoded (``+`` stays ``+``), ``""`` for the bucket.
    :ivar virtual_host: whether the bucket came from the Host header, in which case the whole
        path is the key (Signature Version 2 needs to know: :func:`gateway.s3.sigv2.parse_v2`).
    """

    bucket: str
    key: str
    virtual_host: bool


def locate(
    host_header: Optional[str], raw_path: bytes, base_domains: Sequence[str]
) -> Address:
    """
    The bucket and key of a request, from its Host header and its raw (still percent-encoded)
    path.

    :param base_domains: the names under which buckets are virtual hosts, e.g.
        ``["s3.example.com", "localhost"]``.
    :raise S3Error: ``InvalidURI`` for a path that is not percent-encoded UTF-8 or that does not
        start with ``/``.
    """
    bucket = host_bucket(host_header, base_domains)
    if bucket is None:
        bucket, key = parse_path(raw_path)
        return Address(bucket, key, virtual_host=False)
    if not raw_path.startswith(b"/"):
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.", status=400)
    # The whole path is the key: decode it exactly as a path-style key is decoded, behind a
    # placeholder bucket segment.
    _, key = parse_path(b"/-" + raw_path)
    return Address(bucket, key, virtual_host=True)


def address(
    host_header: Optional[str], raw_path: bytes, base_domains: Sequence[str]
) -> Tuple[str, str]:
    """
    The ``(bucket, key)`` a request names; see :func:`locate`.
    """
    located = locate(host_header, raw_path, base_domains)
    return located.bucket, located.key


def host_bucket(host_header: Optional[str], base_domains: Sequence[str]) -> Optional[str]:
    """
    The bucket a Host header names as ``<bucket>.<base domain>`` (the bucket may hold dots), or
    ``None`` when the request is path-style. A Host that is itself a base domain names no
    bucket; otherwise the longest matching base domain wins.
    """
    if not base_domains:
        return None
    host = host_name(host_header)
    if not host or _is_ip_address(host):
        return None
    domains = {host_name(d) for d in base_domains} - {""}
    if host in domains:
        return None
    for domain in sorted(domains, key=len, reverse=True):
        suffix = "." + domain
        if host.endswith(suffix) and len(host) > len(suffix):
            return host[: -len(suffix)]
    return None


def host_name(host_header: Optional[str]) -> str:
    """
    A Host header's name, lower-cased, without its port, brackets (IPv6 literals) or the
    trailing dot of a fully qualified name.
    """
    host = (host_header or "").strip().lower()
    if host.startswith("["):
        literal, bracket, _ = host[1:].partition("]")
        return literal if bracket else host
    name, colon, port = host.rpartition(":")
    if colon and (port.isdigit() or not port) and ":" not in name:
        host = name
    return host[:-1] if host.endswith(".") else host


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
