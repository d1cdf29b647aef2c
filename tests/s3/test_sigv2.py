"""
Tests of :mod:`gateway.s3.sigv2`: requests signed by real clients' Version 2 signers (botocore's
``HmacV1Auth``/``HmacV1QueryAuth``, boto3 with ``signature_version='s3'``, s3cmd's own signer)
must verify, and every tampered part must not.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import quote, urlsplit

import attr
import boto3
import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from gateway.s3.addressing import locate
from gateway.s3.errors import S3Error
from gateway.s3.sigv2 import (
    SignatureV2,
    VerifiedSignatureV2,
    canonical_subresources,
    parse_v2,
    request_time,
)
from gateway.s3.sigv4 import RequestFacts

ACCESS_KEY = "AKIDGATEWAYV2"
SECRET = "s3cr3t/with+odd=chars"
CREDENTIALS = Credentials(ACCESS_KEY, SECRET)
BASE_DOMAINS = ["s3.example.com"]
PATH_ENDPOINT = "http://127.0.0.1:8333"
VIRTUAL_ENDPOINT = "http://s3.example.com:8333"

KEYS = [
    "plain.txt",
    "with space",
    "plus+sign",
    "100%",
    "unicodé/日本語/ü",
    "double//slash",
    "trailing/",
    "tilde~star*(parens)!'",
    "q?uestion#hash&amp=",
]


def facts_of(prepared: AWSPreparedRequest) -> RequestFacts:
    """
    The request as the gateway would see it on the wire.
    """
    parts = urlsplit(prepared.url)
    headers: Dict[str, List[str]] = {}
    for name, value in prepared.headers.items():
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        headers.setdefault(name.lower(), []).append(text)
    headers.setdefault("host", [parts.netloc])
    return RequestFacts(
        method=prepared.method,
        raw_path=parts.path.encode("ascii"),
        raw_query=parts.query.encode("ascii"),
        headers=headers,
    )


def parse(facts: RequestFacts) -> SignatureV2:
    """
    Parse as the gateway will: the bucket from :func:`gateway.s3.addressing.locate`.
    """
    where = locate(facts.header("host"), facts.raw_path, BASE_DOMAINS)
    signature = parse_v2(facts, where.bucket, where.virtual_host)
    assert signature is not None
    return signature


def verify(
    facts: RequestFacts, secret: str = SECRET, now: Optional[float] = None
) -> VerifiedSignatureV2:
    return parse(facts).verify(facts, secret, time.time() if now is None else now)


def sign(
    method: str,
    url: str,
    headers: Optional[Dict[str, str]] = None,
    auth_path: Optional[str] = None,
    presign: bool = False,
    expires: int = 3600,
) -> RequestFacts:
    """
    A request signed by botocore's own V2 signers, called directly.
    """
    request = AWSRequest(method=method, url=url, headers=headers or {})
    request.auth_path = auth_path
    if presign:
        HmacV1QueryAuth(CREDENTIALS, expires=expires).add_auth(request)
    else:
        HmacV1Auth(CREDENTIALS).add_auth(request)
    return facts_of(request.prepare())


class _Captured(Exception):
    pass


def boto3_client(style: str = "path") -> Any:
    endpoint = VIRTUAL_ENDPOINT if style == "virtual" else PATH_ENDPOINT
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(
            retries={"max_attempts": 0},
            signature_version="s3",
            s3={"addressing_style": style},
        ),
    )


def boto3_request(call: Callable[[Any], Any], style: str = "path") -> RequestFacts:
    """
    The request a real boto3 client (``signature_version='s3'``) sends for ``call(client)``.
    """
    client = boto3_client(style)
    captured: List[RequestFacts] = []

    def capture(request: AWSPreparedRequest, **kwargs: Any) -> None:
        captured.append(facts_of(request))
        raise _Captured()

    client.meta.events.register("before-send.s3", capture)
    with pytest.raises(_Captured):
        call(client)
    (facts,) = captured
    return facts


def presigned_facts(url: str, method: str = "GET", **headers: str) -> RequestFacts:
    parts = urlsplit(url)
    all_headers = {"host": [parts.netloc]}
    all_headers.update({n.lower(): [v] for n, v in headers.items()})
    return RequestFacts(
        method=method,
        raw_path=parts.path.encode("ascii"),
        raw_query=parts.query.encode("ascii"),
        headers=all_headers,
    )


def with_header(facts: RequestFacts, name: str, *values: str) -> RequestFacts:
    headers = dict(facts.headers)
    headers[name] = list(values)
    return attr.evolve(facts, headers=headers)


def without_header(facts: RequestFacts, name: str) -> RequestFacts:
    return attr.evolve(facts, headers={n: v for n, v in facts.headers.items() if n != name})


def assert_mismatch(facts: RequestFacts, secret: str = SECRET) -> S3Error:
    with pytest.raises(S3Error) as caught:
        verify(facts, secret)
    assert caught.value.code == "SignatureDoesNotMatch"
    assert caught.value.status == 403
    return caught.value


# Real clients, both addressing styles.


@pytest.mark.parametrize("style", ["path", "virtual"])
@pytest.mark.parametrize("key", KEYS)
def test_boto3_put_object(style: str, key: str) -> None:
    facts = boto3_request(
        lambda c: c.put_object(
            Bucket="bucket",
            Key=key,
            Body=b"data",
            ContentType="text/plain; charset=utf-8",
            Metadata={"colour": "  dark  blue ", "n": "1"},
        ),
        style,
    )
    assert (facts.header("host") or "").startswith("bucket." if style == "virtual" else "127.")
    verified = verify(facts)
    assert verified == VerifiedSignatureV2(ACCESS_KEY, presigned=False)
    assert verified.payload_hash == "UNSIGNED-PAYLOAD"


@pytest.mark.parametrize("style", ["path", "virtual"])
@pytest.mark.parametrize("key", KEYS)
def test_boto3_get_and_delete_object(style: str, key: str) -> None:
    get = boto3_request(lambda c: c.get_object(Bucket="bucket", Key=key, Range="bytes=0-1"), style)
    verify(get)
    verify(boto3_request(lambda c: c.delete_object(Bucket="bucket", Key=key), style))


@pytest.mark.parametrize("style", ["path", "virtual"])
def test_boto3_subresources(style: str) -> None:
    calls = [
        lambda c: c.create_multipart_upload(Bucket="bucket", Key="a b+c"),
        lambda c: c.upload_part(
            Bucket="bucket", Key="k", UploadId="id/+=~x", PartNumber=3, Body=b"x"
        ),
        lambda c: c.complete_multipart_upload(
            Bucket="bucket",
            Key="k",
            UploadId="abc",
            MultipartUpload={"Parts": [{"ETag": '"e"', "PartNumber": 1}]},
        ),
        lambda c: c.list_parts(Bucket="bucket", Key="k", UploadId="abc"),
        lambda c: c.get_object_acl(Bucket="bucket", Key="k"),
        lambda c: c.get_bucket_acl(Bucket="bucket"),
        lambda c: c.list_multipart_uploads(Bucket="bucket"),
        lambda c: c.get_bucket_versioning(Bucket="bucket"),
        lambda c: c.get_object_tagging(Bucket="bucket", Key="k"),
        lambda c: c.delete_objects(Bucket="bucket", Delete={"Objects": [{"Key": "x"}]}),
        lambda c: c.list_objects_v2(Bucket="bucket", Prefix="a b/", Delimiter="/"),
        lambda c: c.get_object(
            Bucket="bucket", Key="k", ResponseContentDisposition='attachment; filename="a b"'
        ),
        lambda c: c.head_bucket(Bucket="bucket"),
        lambda c: c.create_bucket(Bucket="bucket"),
    ]
    for call in calls:
        verify(boto3_request(call, style))


def test_boto3_list_buckets() -> None:
    facts = boto3_request(lambda c: c.list_buckets())
    assert facts.raw_path == b"/"
    verify(facts)


def test_boto3_copy_source_header_is_signed() -> None:
    facts = boto3_request(
        lambda c: c.copy_object(Bucket="bucket", Key="dst", CopySource="src/a b")
    )
    verify(facts)
    assert_mismatch(with_header(facts, "x-amz-copy-source", "src/other"))


@pytest.mark.parametrize("style", ["path", "virtual"])
def test_boto3_presigned_get_with_response_override(style: str) -> None:
    url = boto3_client(style).generate_presigned_url(
        "get_object",
        Params={
            "Bucket": "bucket",
            "Key": "a b+c/é",
            "ResponseContentDisposition": 'attachment; filename="x y.txt"',
            "ResponseContentType": "text/plain",
        },
        ExpiresIn=120,
    )
    facts = presigned_facts(url)
    verified = verify(facts)
    assert verified.presigned
    tampered = url.replace("filename%3D%22x", "filename%3D%22z")
    assert tampered != url
    assert_mismatch(presigned_facts(tampered))


def test_boto3_presigned_put_with_signed_headers() -> None:
    url = boto3_client().generate_presigned_url(
        "put_object",
        Params={
            "Bucket": "bucket",
            "Key": "k",
            "ContentType": "text/plain",
            "Metadata": {"m": "v"},
        },
        ExpiresIn=120,
    )
    # The signed Content-Type and x-amz-meta-m travel in the query; whether the uploader also
    # sends them as headers, the signature holds.
    verify(presigned_facts(url, "PUT"))
    verify(presigned_facts(url, "PUT", **{"Content-Type": "text/plain", "x-amz-meta-m": "v"}))
    assert_mismatch(presigned_facts(url, "PUT", **{"Content-Type": "text/html"}))
    assert_mismatch(presigned_facts(url, "PUT", **{"x-amz-meta-m": "w"}))
    assert_mismatch(presigned_facts(url, "PUT", **{"x-amz-acl": "public-read"}))
    assert_mismatch(presigned_facts(url, "GET"))


# botocore's signers called directly.


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
@pytest.mark.parametrize("key", KEYS)
def test_hmacv1_path_style(method: str, key: str) -> None:
    url = f"{PATH_ENDPOINT}/bucket/{quote(key, safe='/~')}"
    verify(sign(method, url, {"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg==", "x-amz-meta-a": "b"}))


@pytest.mark.parametrize("key", KEYS)
def test_hmacv1_virtual_host(key: str) -> None:
    encoded = quote(key, safe="/~")
    facts = sign(
        "PUT",
        f"http://my.bucket.s3.example.com/{encoded}",
        {"Content-Type": "application/octet-stream"},
        auth_path=f"/my.bucket/{encoded}",
    )
    assert parse(facts).bucket == "my.bucket"
    verify(facts)


def test_bucket_request_signs_trailing_slash_in_both_styles() -> None:
    path = sign("GET", f"{PATH_ENDPOINT}/bucket", auth_path="/bucket/")
    assert path.raw_path == b"/bucket"
    verify(path)
    virtual = sign("GET", "http://bucket.s3.example.com/", auth_path="/bucket/")
    verify(virtual)
    assert parse(virtual).canonical_resource(virtual) == b"/bucket/"
    assert parse(path).canonical_resource(path) == b"/bucket/"


def test_bucket_request_signed_without_trailing_slash() -> None:
    """
    Some signers sign a path-style bucket request's path as sent, ``/bucket``: the same resource.
    """
    facts = sign("GET", f"{PATH_ENDPOINT}/bucket?acl")
    signature = parse(facts)
    assert signature.canonical_resource(facts) == b"/bucket/?acl"
    assert signature.canonical_resource(facts, bucket_slash=False) == b"/bucket?acl"
    verify(facts)
    assert_mismatch(attr.evolve(facts, raw_path=b"/bucket/k"))
    assert_mismatch(attr.evolve(facts, raw_path=b"/bucke"))
    virtual = sign("GET", "http://bucket.s3.example.com/", auth_path="/bucket")
    verify(virtual)


def test_the_bucket_from_the_host_is_signed() -> None:
    facts = sign("GET", "http://bucket.s3.example.com/k", auth_path="/bucket/k")
    verify(facts)
    moved = with_header(facts, "host", "other.s3.example.com")
    assert_mismatch(moved)
    # The same key path-style on another host names another resource.
    assert_mismatch(with_header(facts, "host", "127.0.0.1"))


@pytest.mark.parametrize(
    "query",
    [
        "uploads",
        "uploadId=abc%2Bdef&partNumber=2",
        "partNumber=2&uploadId=abc",
        "acl",
        "tagging",
        "versionId=v%20one",
        "delete",
        "response-content-type=text%2Fplain&response-cache-control=no-cache",
    ],
)
def test_hmacv1_subresources(query: str) -> None:
    facts = sign("POST", f"{PATH_ENDPOINT}/bucket/k?{query}&prefix=ignored&max-keys=3")
    verify(facts)


@pytest.mark.parametrize(
    "original, tampered",
    [
        ("uploadId=abc&partNumber=2", "uploadId=abc&partNumber=3"),
        ("uploadId=abc&partNumber=2", "uploadId=abd&partNumber=2"),
        ("acl", "tagging"),
        ("uploads", "delete"),
        ("versionId=1", ""),
        ("", "acl"),
        ("response-content-type=a", "response-content-type=b"),
    ],
)
def test_tampered_subresource(original: str, tampered: str) -> None:
    facts = sign("PUT", f"{PATH_ENDPOINT}/bucket/k?{original}")
    verify(facts)
    assert_mismatch(attr.evolve(facts, raw_query=tampered.encode("ascii")))


def test_other_query_parameters_are_not_signed() -> None:
    facts = sign("GET", f"{PATH_ENDPOINT}/bucket?prefix=a&max-keys=2")
    verify(attr.evolve(facts, raw_query=b"prefix=b&max-keys=1000"))


def test_canonical_subresources() -> None:
    assert canonical_subresources(b"") == b""
    assert canonical_subresources(b"prefix=x&list-type=2") == b""
    assert (
        canonical_subresources(b"uploadId=a%2Fb&partNumber=2&x=1&uploads")
        == b"?partNumber=2&uploadId=a/b&uploads"
    )
    assert canonical_subresources(b"acl=") == b"?acl"


def test_amz_headers_canonicalised() -> None:
    """
    Names lower-cased and sorted, values trimmed, repeated headers joined by commas, inner
    blanks kept, folded lines unfolded.
    """
    request = AWSRequest(
        method="PUT",
        url=f"{PATH_ENDPOINT}/bucket/k",
        headers={"X-Amz-Meta-B": "  two  words ", "x-amz-meta-a": "1"},
    )
    request.headers.add_header("x-amz-meta-multi", "first")
    request.headers.add_header("x-amz-meta-multi", " second ")
    HmacV1Auth(CREDENTIALS).add_auth(request)
    # A prepared request folds repeated headers into one; take them as they would be sent.
    names = {name.lower() for name in request.headers.keys()}
    facts = attr.evolve(
        facts_of(request.prepare()),
        headers={name: list(request.headers.get_all(name)) for name in names},
    )
    assert facts.headers["x-amz-meta-multi"] == ["first", " second "]
    verify(facts)
    expected_lines = b"x-amz-meta-a:1\nx-amz-meta-b:two  words\nx-amz-meta-multi:first,second\n"
    assert expected_lines in parse(facts).string_to_sign(facts)
    folded = with_header(facts, "x-amz-meta-b", "two \r\n  words")
    assert b"x-amz-meta-b:two words\n" in parse(folded).string_to_sign(folded)


@pytest.mark.parametrize(
    "name, value",
    [
        ("x-amz-meta-a", "changed"),
        ("x-amz-meta-new", "added"),
        ("x-amz-acl", "public-read"),
        ("content-type", "text/html"),
        ("content-md5", "AAAAAAAAAAAAAAAAAAAAAA=="),
        ("date", "Thu, 01 Jan 2037 00:00:00 GMT"),
    ],
)
def test_tampered_header(name: str, value: str) -> None:
    facts = sign(
        "PUT",
        f"{PATH_ENDPOINT}/bucket/k",
        {
            "Content-Type": "text/plain",
            "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg==",
            "x-amz-meta-a": "1",
        },
    )
    verify(facts)
    with pytest.raises(S3Error) as caught:
        verify(with_header(facts, name, value))
    # A replaced Date is first of all far from now.
    assert caught.value.code in {"SignatureDoesNotMatch", "RequestTimeTooSkewed"}
    if name != "date":
        assert caught.value.code == "SignatureDoesNotMatch"


def test_removed_header() -> None:
    headers = {"Content-Type": "text/plain", "x-amz-meta-a": "1"}
    facts = sign("PUT", f"{PATH_ENDPOINT}/bucket/k", headers)
    assert_mismatch(without_header(facts, "content-type"))
    assert_mismatch(without_header(facts, "x-amz-meta-a"))


def test_unrelated_headers_are_not_signed() -> None:
    facts = sign("PUT", f"{PATH_ENDPOINT}/bucket/k")
    verify(with_header(facts, "user-agent", "other"))
    verify(with_header(facts, "host", "elsewhere:1"))  # path-style: the Host is not signed


def test_tampered_method_path_secret_and_signature() -> None:
    facts = sign("PUT", f"{PATH_ENDPOINT}/bucket/a%20b")
    verify(facts)
    assert_mismatch(attr.evolve(facts, method="DELETE"))
    assert_mismatch(attr.evolve(facts, raw_path=b"/bucket/a%20c"))
    assert_mismatch(attr.evolve(facts, raw_path=b"/other/a%20b"))
    # Signed as sent: another spelling of the same key is another string.
    assert_mismatch(attr.evolve(facts, raw_path=b"/bucket/a+b"))
    error = assert_mismatch(facts, secret="wrong")
    assert error.extra["AWSAccessKeyId"] == ACCESS_KEY
    assert error.extra["StringToSign"].startswith("PUT\n\n\n")
    assert error.extra["StringToSign"].endswith("\n/bucket/a%20b")
    assert all("wrong" not in value and SECRET not in value for value in error.extra.values())
    authorization = facts.header("authorization") or ""
    signature = authorization.rpartition(":")[2]
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert_mismatch(with_header(facts, "authorization", f"AWS {ACCESS_KEY}:{flipped}"))


def test_string_to_sign_layout() -> None:
    facts = RequestFacts(
        method="PUT",
        raw_path=b"/photos/puppy%20dog.jpg",
        raw_query=b"acl&foo=bar",
        headers={
            "content-type": ["image/jpeg"],
            "content-md5": ["abc=="],
            "date": ["Tue, 27 Mar 2007 21:15:45 +0000"],
            "x-amz-meta-reviewedby": ["joe@example.com", "jane@example.com"],
            "x-amz-acl": ["public-read"],
            "authorization": ["AWS AKID:sig"],
        },
    )
    signature = parse_v2(facts, "photos", False)
    assert signature is not None
    assert signature.string_to_sign(facts) == (
        b"PUT\nabc==\nimage/jpeg\nTue, 27 Mar 2007 21:15:45 +0000\n"
        b"x-amz-acl:public-read\n"
        b"x-amz-meta-reviewedby:joe@example.com,jane@example.com\n"
        b"/photos/puppy%20dog.jpg?acl"
    )
    virtual = parse_v2(facts, "bucket.example", True)
    assert virtual is not None
    assert virtual.string_to_sign(facts).endswith(b"\n/bucket.example/photos/puppy%20dog.jpg?acl")


# Time.


def test_x_amz_date_blanks_the_date_line() -> None:
    now = time.time()
    amz_date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(now))
    facts = sign("GET", f"{PATH_ENDPOINT}/bucket/k", {"x-amz-date": amz_date})
    # botocore signs its Date line even with x-amz-date present: accepted.
    verify(facts, now=now)
    signature = parse(facts)
    to_sign = signature.string_to_sign(facts)
    assert to_sign.split(b"\n")[3] == b""
    assert f"x-amz-date:{amz_date}\n".encode() in to_sign
    # A changed x-amz-date breaks either form.
    later = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(now + 60))
    assert_mismatch(with_header(facts, "x-amz-date", later))


@pytest.mark.parametrize("offset", [-901, 901, -86400 * 3])
def test_skew_too_large(offset: float) -> None:
    facts = sign("GET", f"{PATH_ENDPOINT}/bucket/k")
    with pytest.raises(S3Error) as caught:
        verify(facts, now=time.time() + offset)
    assert caught.value.code == "RequestTimeTooSkewed"
    assert caught.value.status == 403
    assert caught.value.extra["RequestTime"] == facts.header("date")
    assert caught.value.extra["MaxAllowedSkewMilliseconds"] == "900000"


@pytest.mark.parametrize("offset", [-890, 890])
def test_skew_within_limit(offset: float) -> None:
    verify(sign("GET", f"{PATH_ENDPOINT}/bucket/k"), now=time.time() + offset)


def test_skew_uses_x_amz_date_over_date() -> None:
    now = time.time()
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    facts = sign("GET", f"{PATH_ENDPOINT}/bucket/k", {"x-amz-date": amz_date})
    verify(facts, now=now)
    stale = with_header(facts, "date", "Mon, 01 Jan 2001 00:00:00 GMT")
    assert request_time(stale) == (amz_date, pytest.approx(now, abs=1))
    # The time check passes on x-amz-date; the changed Date still breaks the signature.
    assert_mismatch(stale)
    with pytest.raises(S3Error) as caught:
        verify(facts, now=now + 3600)
    assert caught.value.code == "RequestTimeTooSkewed"
    assert caught.value.extra["RequestTime"] == amz_date


def test_rfc1123_x_amz_date_skew() -> None:
    """
    s3cmd writes x-amz-date as RFC 1123 with ``+0000`` and sends no Date.
    """
    then = time.time() - 7200
    amz_date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(then))
    facts = RequestFacts(
        "GET", b"/b/k", b"", {"authorization": ["AWS AK:c2ln"], "x-amz-date": [amz_date]}
    )
    signature = parse_v2(facts, "b", False)
    assert signature is not None
    assert request_time(facts)[1] == pytest.approx(then, abs=1)
    with pytest.raises(S3Error) as caught:
        signature.verify(facts, SECRET, time.time())
    assert caught.value.code == "RequestTimeTooSkewed"
    with pytest.raises(S3Error) as caught:
        signature.verify(facts, SECRET, then + 10)
    assert caught.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize(
    "headers",
    [{}, {"date": ["yesterday"]}, {"x-amz-date": ["20130524T99"]}, {"date": [""]}],
)
def test_missing_or_bad_date(headers: Dict[str, List[str]]) -> None:
    facts = RequestFacts(
        "GET", b"/bucket/k", b"", dict(headers, authorization=[f"AWS {ACCESS_KEY}:c2ln"])
    )
    with pytest.raises(S3Error) as caught:
        parse_v2(facts, "bucket", False)
    assert caught.value.code == "AccessDenied"
    assert "Date" in caught.value.message


def test_presigned_expiry() -> None:
    facts = sign("GET", f"{PATH_ENDPOINT}/bucket/k", presign=True, expires=60)
    signature = parse(facts)
    assert signature.presigned and signature.expires is not None
    expires = int(signature.expires)
    assert abs(expires - (time.time() + 60)) < 5
    verify(facts, now=expires)
    # No skew applies to a presigned URL: it is good any time before it expires.
    verify(facts, now=expires - 86400 * 30)
    with pytest.raises(S3Error) as caught:
        verify(facts, now=expires + 1)
    assert caught.value.code == "AccessDenied"
    assert caught.value.message == "Request has expired"
    assert caught.value.status == 403


def test_presigned_tampered_expires() -> None:
    facts = sign("GET", f"{PATH_ENDPOINT}/bucket/k", presign=True, expires=60)
    expires = parse(facts).expires
    longer = facts.raw_query.replace(f"Expires={expires}".encode(), b"Expires=9999999999")
    assert longer != facts.raw_query
    assert_mismatch(attr.evolve(facts, raw_query=longer))


def test_presigned_with_subresources() -> None:
    facts = sign(
        "PUT",
        f"{PATH_ENDPOINT}/bucket/k%2Bk?partNumber=1&uploadId=xyz",
        presign=True,
    )
    verify(facts)
    assert_mismatch(
        attr.evolve(facts, raw_query=facts.raw_query.replace(b"partNumber=1", b"partNumber=9"))
    )


# Parsing.


def test_not_v2() -> None:
    assert parse_v2(RequestFacts("GET", b"/b/k", b"", {}), "b", False) is None
    v4 = RequestFacts(
        "GET", b"/b/k", b"", {"authorization": ["AWS4-HMAC-SHA256 Credential=x/y"]}
    )
    assert parse_v2(v4, "b", False) is None
    presigned_v4 = RequestFacts("GET", b"/b/k", b"X-Amz-Signature=ab&Expires=1", {})
    assert parse_v2(presigned_v4, "b", False) is None


@pytest.mark.parametrize("value", ["AWS ", "AWS nocolon", "AWS :sig", "AWS akid:"])
def test_malformed_header(value: str) -> None:
    facts = RequestFacts("GET", b"/b/k", b"", {"authorization": [value], "date": ["x"]})
    with pytest.raises(S3Error) as caught:
        parse_v2(facts, "b", False)
    assert caught.value.code == "InvalidArgument"
    assert caught.value.extra["ArgumentName"] == "Authorization"


def test_two_mechanisms() -> None:
    facts = sign("GET", f"{PATH_ENDPOINT}/bucket/k")
    for query in (b"Signature=abc", b"X-Amz-Signature=abc"):
        with pytest.raises(S3Error) as caught:
            parse_v2(attr.evolve(facts, raw_query=query), "bucket", False)
        assert caught.value.code == "InvalidArgument"


@pytest.mark.parametrize(
    "query",
    [
        b"AWSAccessKeyId=AK&Signature=abc",
        b"AWSAccessKeyId=AK&Expires=123",
        b"Signature=abc&Expires=123",
        b"AWSAccessKeyId=AK&Signature=&Expires=123",
    ],
)
def test_incomplete_query(query: bytes) -> None:
    with pytest.raises(S3Error) as caught:
        parse_v2(RequestFacts("GET", b"/b/k", query, {}), "b", False)
    assert caught.value.code == "AccessDenied"


@pytest.mark.parametrize("expires", [b"soon", b"-5", b"1.5", b"1234567890123"])
def test_bad_expires(expires: bytes) -> None:
    query = b"AWSAccessKeyId=AK&Signature=abc&Expires=" + expires
    with pytest.raises(S3Error) as caught:
        parse_v2(RequestFacts("GET", b"/b/k", query, {}), "b", False)
    assert caught.value.code == "AccessDenied"


def test_access_key_and_signature_from_query_are_decoded() -> None:
    facts = RequestFacts(
        "GET", b"/b/k", b"AWSAccessKeyId=A%2BK&Signature=a%2Bb%2F%3D&Expires=12", {}
    )
    signature = parse_v2(facts, "b", False)
    assert signature is not None
    assert (signature.access_key_id, signature.signature, signature.expires) == (
        "A+K",
        "a+b/=",
        "12",
    )


# s3cmd's own signer.


@pytest.fixture
def s3cmd(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Tuple[RequestFacts, Any]]:
    """
    A function that builds and signs a request with s3cmd's own code (``S3.S3.S3``) configured
    for ``signature_v2 = True``, and returns it as the gateway would see it.
    """
    s3_module = pytest.importorskip("S3.S3")
    config_module = pytest.importorskip("S3.Config")
    config = config_module.Config()
    for name, value in [
        ("access_key", ACCESS_KEY),
        ("secret_key", SECRET),
        ("access_token", ""),
        ("signature_v2", True),
        ("host_base", "s3.example.com:8333"),
        ("host_bucket", "%(bucket)s.s3.example.com:8333"),
        ("use_https", False),
        ("proxy_host", ""),
        ("requester_pays", False),
    ]:
        monkeypatch.setattr(config, name, value)

    def build(
        operation: str,
        bucket: Optional[str],
        key: Optional[str] = None,
        headers: Optional[Dict[str, str]] = None,
        params: Optional[Dict[str, Optional[str]]] = None,
        virtual: bool = True,
    ) -> Tuple[RequestFacts, Any]:
        if not virtual:
            monkeypatch.setattr(config, "host_bucket", "s3.example.com:8333")
        s3 = s3_module.S3(config)
        request = s3.create_request(
            operation, bucket=bucket, object=key, headers=headers, uri_params=params
        )
        method, resource, signed_headers = request.get_triplet()
        uri = s3.format_uri(resource)
        raw_path, _, raw_query = uri.partition("?")
        wire: Dict[str, List[str]] = {"host": [s3.get_hostname(bucket)]}
        for name, value in signed_headers.items():
            wire.setdefault(name.lower(), []).append(str(value))
        facts = RequestFacts(method, raw_path.encode("ascii"), raw_query.encode("ascii"), wire)
        return facts, config

    return build


@pytest.mark.parametrize("virtual", [True, False])
@pytest.mark.parametrize("key", ["plain", "with space", "plus+sign", "unicodé/ü", "a//b"])
def test_s3cmd_object_requests(s3cmd: Any, virtual: bool, key: str) -> None:
    for operation in ("OBJECT_GET", "OBJECT_PUT", "OBJECT_DELETE", "OBJECT_HEAD"):
        facts, _ = s3cmd(
            operation,
            "bucket",
            key,
            headers={"x-amz-meta-s3cmd-attrs": "mode:33188/uid:0", "content-type": "text/plain"},
            virtual=virtual,
        )
        assert facts.header("x-amz-date") is not None and facts.header("date") is None
        assert (facts.header("host") or "").startswith("bucket.") == virtual
        verified = verify(facts)
        assert verified.access_key_id == ACCESS_KEY
        assert_mismatch(facts, secret="other")


@pytest.mark.parametrize("virtual", [True, False])
def test_s3cmd_bucket_and_subresource_requests(s3cmd: Any, virtual: bool) -> None:
    cases = [
        ("BUCKET_LIST", None, {"prefix": "a b", "delimiter": "/"}),
        ("BUCKET_CREATE", None, None),
        ("OBJECT_POST", "k", {"uploads": None}),
        ("OBJECT_PUT", "k", {"partNumber": "2", "uploadId": "abc-123"}),
        ("OBJECT_POST", "k", {"uploadId": "abc-123"}),
        ("BATCH_DELETE", None, {"delete": None}),
        ("BUCKET_LIST", None, {"acl": None}),
    ]
    for operation, key, params in cases:
        facts, _ = s3cmd(operation, "bucket", key, params=params, virtual=virtual)
        verify(facts)


def test_s3cmd_list_buckets(s3cmd: Any) -> None:
    facts, _ = s3cmd("LIST_ALL_BUCKETS", None)
    assert facts.raw_path == b"/"
    verify(facts)


def test_s3cmd_sign_string_matches(s3cmd: Any) -> None:
    """
    s3cmd's low-level signer over the gateway's StringToSign gives the signature s3cmd sent.
    """
    crypto = pytest.importorskip("S3.Crypto")
    facts, _ = s3cmd("OBJECT_PUT", "bucket", "a b", headers={"x-amz-meta-x": "y"})
    to_sign = parse(facts).string_to_sign(facts)
    sent = (facts.header("authorization") or "").rpartition(":")[2]
    assert crypto.sign_string_v2(to_sign).decode("ascii") == sent


def test_s3cmd_presigned_url(s3cmd: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    crypto = pytest.importorskip("S3.Crypto")
    _, config = s3cmd("OBJECT_GET", "bucket", "k")  # configures s3cmd
    monkeypatch.setattr(config, "content_disposition", "attachment")
    monkeypatch.setattr(config, "content_type", "")
    monkeypatch.setattr(config, "signurl_use_https", False)
    expiry = int(time.time()) + 300
    url = crypto.sign_url_base_v2(bucket="bucket", object="dir/a b.txt", expiry=expiry)
    facts = presigned_facts(url)
    assert facts.header("host") == "bucket.s3.example.com:8333"
    verify(facts)
    with pytest.raises(S3Error) as caught:
        verify(facts, now=expiry + 1)
    assert caught.value.message == "Request has expired"


def test_s3cmd_blank_date_line_with_a_date_header_added(s3cmd: Any) -> None:
    """
    s3cmd signs a blank Date line beside x-amz-date, as the guide says; a Date header added on
    the way (a proxy) does not change what was signed.
    """
    facts, _ = s3cmd("OBJECT_GET", "bucket", "k")
    verify(with_header(facts, "date", "Thu, 01 Jan 2037 00:00:00 GMT"))
