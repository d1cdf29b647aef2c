"""
Tests of :mod:`gateway.s3.addressing`: path-style and virtual-host-style requests name the same
buckets and keys, and path-style answers are exactly those of :func:`gateway.s3.routing.parse_path`.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.config import Config

from gateway.s3.addressing import Address, address, host_bucket, host_name, locate
from gateway.s3.errors import S3Error
from gateway.s3.routing import parse_path

DOMAINS = ["s3.example.com", "localhost"]

RAW_PATHS = [
    b"/",
    b"/bucket",
    b"/bucket/",
    b"/bucket/key",
    b"/bucket/dir/",
    b"/bucket/a//b",
    b"/bucket//lead",
    b"/bucket/a%20b",
    b"/bucket/a+b",
    b"/bucket/a%2Bb",
    b"/bucket/%2F",
    b"/bucket/caf%C3%A9/%E6%97%A5",
    b"/bucket/100%25",
    b"/bucket/dot/./x/../y",
    b"/Bucket/Key",
    b"/bucket%2Fkey",
    b"//x",
]


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except S3Error as error:
        return (error.code, error.status)


@pytest.mark.parametrize("raw_path", RAW_PATHS + [b"", b"bucket/key", b"/bucket/%FF", b"/%C3"])
@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "127.0.0.1:8333",
        "[::1]:8333",
        "s3.example.com",
        "localhost:8333",
        "S3.Example.COM.",
        "elsewhere.org",
        "evil-s3.example.com.attacker",
    ],
)
def test_path_style_is_parse_path(host: Optional[str], raw_path: bytes) -> None:
    assert outcome(lambda: address(host, raw_path, DOMAINS)) == outcome(
        lambda: parse_path(raw_path)
    )
    located = outcome(lambda: locate(host, raw_path, DOMAINS))
    if isinstance(located, Address):
        assert not located.virtual_host


@pytest.mark.parametrize("raw_path", RAW_PATHS)
def test_empty_domain_list_is_path_style(raw_path: bytes) -> None:
    for host in ("bucket.s3.example.com", "bucket.localhost:8333", "x.y.z"):
        assert address(host, raw_path, []) == parse_path(raw_path)
        assert address(host, raw_path, [""]) == parse_path(raw_path)


@pytest.mark.parametrize(
    "host, raw_path, expected",
    [
        ("bucket.s3.example.com", b"/", ("bucket", "")),
        ("bucket.s3.example.com", b"/key", ("bucket", "key")),
        ("bucket.s3.example.com:8333", b"/dir/key", ("bucket", "dir/key")),
        ("my.bucket.s3.example.com", b"/k", ("my.bucket", "k")),
        ("a.b.c.s3.example.com", b"/k", ("a.b.c", "k")),
        ("bucket.localhost:8333", b"/k", ("bucket", "k")),
        ("BUCKET.S3.Example.Com", b"/Key", ("bucket", "Key")),
        ("bucket.s3.example.com.", b"/k", ("bucket", "k")),
        ("bucket.s3.example.com.:80", b"/k", ("bucket", "k")),
        ("bucket.s3.example.com", b"/dir/", ("bucket", "dir/")),
        ("bucket.s3.example.com", b"//k", ("bucket", "/k")),
        ("bucket.s3.example.com", b"/a//b/", ("bucket", "a//b/")),
        ("bucket.s3.example.com", b"/a%20b+c%2Bd", ("bucket", "a b+c+d")),
        ("bucket.s3.example.com", b"/%2F", ("bucket", "/")),
        ("bucket.s3.example.com", b"/caf%C3%A9", ("bucket", "café")),
        ("bucket.s3.example.com", b"/bucket/k", ("bucket", "bucket/k")),
        ("bucket.s3.example.com", b"/100%25", ("bucket", "100%")),
        ("bucket.s3.example.com", b"/%zz", ("bucket", "%zz")),
    ],
)
def test_virtual_host_style(host: str, raw_path: bytes, expected: Tuple[str, str]) -> None:
    assert address(host, raw_path, DOMAINS) == expected
    assert locate(host, raw_path, DOMAINS) == Address(*expected, virtual_host=True)


def test_virtual_host_key_decodes_as_path_style_key() -> None:
    """
    The key of ``bucket.domain/P`` is the key of ``domain/bucket/P``, for any path.
    """
    for raw_path in RAW_PATHS:
        if not raw_path.startswith(b"/"):
            continue
        virtual = outcome(lambda: address("bucket.s3.example.com", raw_path, DOMAINS))
        path_style = outcome(lambda: parse_path(b"/bucket" + raw_path))
        assert virtual == path_style


@pytest.mark.parametrize("raw_path", [b"/%FF", b"/ok/%C3", b"/\xff", b"", b"*", b"key"])
def test_virtual_host_invalid_uri(raw_path: bytes) -> None:
    with pytest.raises(S3Error) as caught:
        address("bucket.s3.example.com", raw_path, DOMAINS)
    assert (caught.value.code, caught.value.status) == ("InvalidURI", 400)


@pytest.mark.parametrize(
    "host",
    [
        "s3.example.com",
        "s3.example.com:8333",
        "S3.EXAMPLE.COM",
        "localhost",
        "localhost:8333",
        "127.0.0.1",
        "127.0.0.1:8333",
        "[::1]",
        "[::1]:8333",
        "::1",
        "[2001:db8::1]:443",
        "example.com",
        "nots3.example.com",
        "evil-s3.example.com",
        "evil-s3.example.com.attacker",
        "bucket.s3.example.com.attacker",
        "s3.example.com.bucket",
        ".s3.example.com",
        "bucket.s3.example.org",
        "mylocalhost",
        "",
        None,
    ],
)
def test_path_style_hosts(host: Optional[str]) -> None:
    assert host_bucket(host, DOMAINS) is None
    assert address(host, b"/bucket/key", DOMAINS) == ("bucket", "key")


def test_ip_address_even_under_a_numeric_base_domain() -> None:
    assert host_bucket("10.0.0.1", ["0.0.1"]) is None
    assert host_bucket("10.0.0.1", ["0.1"]) is None


def test_longest_base_domain_wins() -> None:
    domains = ["example.com", "s3.example.com"]
    assert host_bucket("b.s3.example.com", domains) == "b"
    assert host_bucket("b.s3.example.com", list(reversed(domains))) == "b"
    assert host_bucket("b.example.com", domains) == "b"
    # A Host that is itself a base domain names no bucket, even under a shorter one.
    assert host_bucket("s3.example.com", domains) is None


def test_base_domains_are_normalised() -> None:
    for domain in ("S3.Example.com", "s3.example.com.", " s3.example.com ", "s3.example.com:8333"):
        assert host_bucket("b.s3.example.com:9000", [domain]) == "b"


@pytest.mark.parametrize(
    "header, name",
    [
        ("Example.COM", "example.com"),
        ("example.com:8333", "example.com"),
        ("example.com:", "example.com"),
        ("example.com.", "example.com"),
        ("[::1]:8333", "::1"),
        ("[::1]", "::1"),
        ("[FE80::1]", "fe80::1"),
        ("::1", "::1"),
        ("127.0.0.1:80", "127.0.0.1"),
        (" spaced.example.com ", "spaced.example.com"),
        ("", ""),
        (None, ""),
    ],
)
def test_host_name(header: Optional[str], name: str) -> None:
    assert host_name(header) == name


# What a real client sends.


def boto3_targets(style: str, calls: Sequence[Callable[[Any], Any]]) -> List[Address]:
    """
    What the gateway reads from what boto3 sends for each call.
    """
    client = boto3.client(
        "s3",
        endpoint_url="http://s3.example.com:8333",
        aws_access_key_id="AK",
        aws_secret_access_key="SK",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 0}, s3={"addressing_style": style}),
    )
    seen: List[Address] = []

    class Captured(Exception):
        pass

    def capture(request: AWSPreparedRequest, **kwargs: Any) -> None:
        parts = urlsplit(request.url)
        seen.append(locate(parts.netloc, parts.path.encode("ascii"), DOMAINS))
        raise Captured()

    client.meta.events.register("before-send.s3", capture)
    for call in calls:
        with pytest.raises(Captured):
            call(client)
    return seen


@pytest.mark.parametrize(
    "key",
    ["plain", "with space", "plus+sign", "unicodé/日本語", "a//b", "trailing/", "/lead", "100%"],
)
def test_boto3_both_styles_name_the_same_object(key: str) -> None:
    calls = [
        lambda c: c.get_object(Bucket="my.bucket", Key=key),
        lambda c: c.put_object(Bucket="bucket-1", Key=key, Body=b"x"),
        lambda c: c.list_objects_v2(Bucket="bucket-1"),
    ]
    expected = [("my.bucket", key), ("bucket-1", key), ("bucket-1", "")]
    assert boto3_targets("path", calls) == [Address(*e, virtual_host=False) for e in expected]
    # Over plain HTTP boto3 puts even a dotted bucket in the Host.
    virtual = boto3_targets("virtual", calls)
    assert virtual == [Address(*e, virtual_host=True) for e in expected]


def test_boto3_virtual_host_request_carries_bucket_in_host() -> None:
    client = boto3.client(
        "s3",
        endpoint_url="http://s3.example.com:8333",
        aws_access_key_id="AK",
        aws_secret_access_key="SK",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "virtual"}),
    )
    url = client.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "a b"})
    parts = urlsplit(url)
    assert parts.netloc == "bkt.s3.example.com:8333"
    assert parts.path == "/" + quote("a b")
    assert locate(parts.netloc, parts.path.encode("ascii"), DOMAINS) == Address(
        "bkt", "a b", virtual_host=True
    )
