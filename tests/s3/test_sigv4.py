"""
Tests of :mod:`gateway.s3.sigv4`: requests signed by botocore's own signers (the client side of
the real thing) must verify, and every tampered part must not.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import urlsplit

import attr
import boto3
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from gateway.s3.errors import S3Error
from gateway.s3.sigv4 import (
    RequestFacts,
    SignatureV4,
    aws_quote,
    canonical_query,
    canonical_uri,
    parse_timestamp,
    query_pairs,
    raw_query_pairs,
)
from gateway.s3.sigv4_parse import parse_v4

ACCESS_KEY = "AKIDGATEWAYTEST"
SECRET = "s3cr3t/with+odd=chars"
CREDENTIALS = Credentials(ACCESS_KEY, SECRET)
ENDPOINT = "http://127.0.0.1:8333"


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


def sign(
    method: str,
    url: str,
    headers: Optional[Dict[str, str]] = None,
    body: bytes = b"",
    presign: bool = False,
    expires: int = 3600,
    credentials: Credentials = CREDENTIALS,
) -> RequestFacts:
    request = AWSRequest(method=method, url=url, headers=headers or {}, data=body)
    if presign:
        S3SigV4QueryAuth(credentials, "s3", "us-east-1", expires=expires).add_auth(request)
    else:
        S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
    return facts_of(request.prepare())


def verify(facts: RequestFacts, secret: str = SECRET, now: Optional[float] = None) -> Any:
    signature = parse_v4(facts)
    assert signature is not None
    return signature.verify(facts, secret, time.time() if now is None else now)


class _Captured(Exception):
    pass


def boto3_requests(
    call: Callable[[Any], Any], endpoint: str = ENDPOINT, **config: Any
) -> List[RequestFacts]:
    """
    The requests a real boto3 client sends for ``call(client)``, caught before the network.
    """
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 0}, signature_version="s3v4", **config),
    )
    captured: List[RequestFacts] = []

    def capture(request: AWSPreparedRequest, **kwargs: Any) -> None:
        captured.append(facts_of(request))
        raise _Captured()

    client.meta.events.register("before-send.s3", capture)
    with pytest.raises(_Captured):
        call(client)
    return captured


KEYS = [
    "plain.txt",
    "with space",
    "plus+sign",
    "100%",
    "%2F-literal",
    "unicodé/日本語/ü",
    "double//slash",
    "/leading",
    "dot/./x",
    "dot/../x",
    "q?uestion#hash&amp=",
    "tilde~star*(parens)!'",
    "trailing/",
]


@pytest.mark.parametrize("key", KEYS)
def test_boto3_put_object(key: str) -> None:
    (facts,) = boto3_requests(lambda c: c.put_object(Bucket="bucket", Key=key, Body=b"data"))
    verified = verify(facts)
    assert verified.access_key_id == ACCESS_KEY
    assert verified.payload_hash == facts.header("x-amz-content-sha256")


@pytest.mark.parametrize("key", KEYS)
def test_boto3_get_object_range(key: str) -> None:
    (facts,) = boto3_requests(
        lambda c: c.get_object(Bucket="bucket", Key=key, Range="bytes=0-9")
    )
    verify(facts)


def test_boto3_streaming_trailer_upload_over_https() -> None:
    """
    Over TLS boto3 sends STREAMING-UNSIGNED-PAYLOAD-TRAILER by default; the seed is what is signed.
    """
    (facts,) = boto3_requests(
        lambda c: c.put_object(Bucket="bucket", Key="k", Body=b"data"),
        endpoint="https://127.0.0.1:8443",
    )
    assert facts.header("x-amz-content-sha256") == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert verify(facts).payload_hash == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


def test_boto3_unsigned_payload() -> None:
    (facts,) = boto3_requests(
        lambda c: c.put_object(Bucket="bucket", Key="k", Body=b"data"),
        s3={"payload_signing_enabled": False},
        request_checksum_calculation="when_required",
        endpoint="https://127.0.0.1:8443",
    )
    assert facts.header("x-amz-content-sha256") == "UNSIGNED-PAYLOAD"
    verify(facts)


@pytest.mark.parametrize(
    "prefix", ["", "a b", "a+b", "x=y&z", "é/", "~-_.", "%41", "semi;colon", "*"]
)
def test_boto3_list_with_query(prefix: str) -> None:
    (facts,) = boto3_requests(
        lambda c: c.list_objects_v2(
            Bucket="bucket", Prefix=prefix, Delimiter="/", StartAfter=prefix, MaxKeys=7
        )
    )
    verify(facts)


def test_boto3_subresources_without_values() -> None:
    calls = [
        lambda c: c.get_bucket_acl(Bucket="bucket"),
        lambda c: c.create_multipart_upload(Bucket="bucket", Key="k"),
        lambda c: c.list_multipart_uploads(Bucket="bucket"),
        lambda c: c.get_bucket_location(Bucket="bucket"),
    ]
    for call in calls:
        (facts,) = boto3_requests(call)
        verify(facts)


def test_boto3_presigned_get() -> None:
    client = boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(signature_version="s3v4"),
    )
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "a b+c/é"}, ExpiresIn=120
    )
    parts = urlsplit(url)
    facts = RequestFacts(
        "GET", parts.path.encode(), parts.query.encode(), {"host": [parts.netloc]}
    )
    signature = parse_v4(facts)
    assert signature is not None
    assert signature.presigned and signature.expires == 120
    assert signature.payload_hash == "UNSIGNED-PAYLOAD"
    signed_at = parse_timestamp(signature.timestamp)
    assert signed_at is not None
    signature.verify(facts, SECRET, signed_at + 119)
    with pytest.raises(S3Error) as expired:
        signature.verify(facts, SECRET, signed_at + 121)
    assert (expired.value.code, expired.value.message) == ("AccessDenied", "Request has expired")
    assert expired.value.extra["X-Amz-Expires"] == "120"
    with pytest.raises(S3Error) as early:
        signature.verify(facts, SECRET, signed_at - 3600)
    assert (early.value.code, early.value.message) == ("AccessDenied", "Request is not yet valid")
    # Within the allowed skew of a slow client clock it is valid.
    signature.verify(facts, SECRET, signed_at - 60)


@pytest.mark.parametrize(
    "url",
    [
        ENDPOINT + "/bucket?acl",
        ENDPOINT + "/bucket?uploads=",
        ENDPOINT + "/bucket?a=&b=c&a=2&a=1",
        ENDPOINT + "/bucket/key?partNumber=3&uploadId=x%2By%20z%3D",
        ENDPOINT + "/bucket?prefix=%E6%97%A5%2F&delimiter=%2F",
    ],
)
def test_signer_query_strings(url: str) -> None:
    verify(sign("GET", url))
    verify(sign("GET", url, presign=True))


def test_signer_put_with_payload_hash() -> None:
    facts = sign("PUT", ENDPOINT + "/bucket/key", body=b"hello world")
    assert facts.header("x-amz-content-sha256") == (
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    )
    verify(facts)


def test_signer_folds_header_whitespace() -> None:
    facts = sign("PUT", ENDPOINT + "/b/k", headers={"x-amz-meta-note": "  a   b \t c  "})
    verify(facts)


def test_signer_with_date_header() -> None:
    """
    botocore signs with the Date header instead of X-Amz-Date when one is present.
    """
    facts = sign("GET", ENDPOINT + "/b/k", headers={"Date": "placeholder"})
    assert facts.header("x-amz-date") is None
    assert facts.header("date") is not None
    verify(facts)


def _replace_header(facts: RequestFacts, name: str, value: str) -> RequestFacts:
    headers = dict(facts.headers)
    headers[name] = [value]
    return attr.evolve(facts, headers=headers)


TAMPERINGS: Dict[str, Callable[[RequestFacts], RequestFacts]] = {
    "method": lambda f: attr.evolve(f, method="DELETE"),
    "path": lambda f: attr.evolve(f, raw_path=f.raw_path + b"x"),
    "path-encoding": lambda f: attr.evolve(f, raw_path=f.raw_path.replace(b"%20", b"+")),
    "query": lambda f: attr.evolve(f, raw_query=f.raw_query + b"&extra=1"),
    "query-value": lambda f: attr.evolve(
        f, raw_query=f.raw_query.replace(b"max-keys=7", b"max-keys=8")
    ),
    "signed-header": lambda f: _replace_header(f, "x-amz-meta-colour", "blue"),
    "host": lambda f: _replace_header(f, "host", "evil.example:8333"),
    "payload-hash": lambda f: _replace_header(f, "x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    "date": lambda f: _replace_header(f, "x-amz-date", _another_second(f.header("x-amz-date"))),
}


def _another_second(timestamp: Optional[str]) -> str:
    assert timestamp is not None
    seconds = "01" if timestamp[-3:-1] == "00" else "00"
    return timestamp[:-3] + seconds + "Z"



@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_tampered_request_does_not_match(tampering: str) -> None:
    facts = sign(
        "GET",
        ENDPOINT + "/bucket/a%20b?list-type=2&max-keys=7",
        headers={"x-amz-meta-colour": "red"},
    )
    verify(facts)
    with pytest.raises(S3Error) as error:
        verify(TAMPERINGS[tampering](facts))
    assert error.value.code == "SignatureDoesNotMatch"
    assert error.value.status == 403


def test_wrong_secret_does_not_match_and_never_shows_the_secret() -> None:
    facts = sign("GET", ENDPOINT + "/bucket/key")
    with pytest.raises(S3Error) as error:
        verify(facts, secret="another secret")
    extra = error.value.extra
    assert extra["AWSAccessKeyId"] == ACCESS_KEY
    assert extra["StringToSign"].startswith("AWS4-HMAC-SHA256\n")
    assert extra["CanonicalRequest"].startswith("GET\n/bucket/key\n")
    for value in extra.values():
        assert SECRET not in value and "another secret" not in value
    signature = parse_v4(facts)
    assert signature is not None
    assert SECRET not in repr(signature.verify(facts, SECRET, time.time()))


def test_clock_skew() -> None:
    facts = sign("GET", ENDPOINT + "/bucket/key")
    signed_at = parse_timestamp(facts.header("x-amz-date") or "")
    assert signed_at is not None
    verify(facts, now=signed_at + 899)
    verify(facts, now=signed_at - 899)
    for now in (signed_at + 901, signed_at - 901):
        with pytest.raises(S3Error) as error:
            verify(facts, now=now)
        assert error.value.code == "RequestTimeTooSkewed"
        assert error.value.status == 403


def test_unsigned_amz_header_refused() -> None:
    facts = _replace_header(sign("GET", ENDPOINT + "/b/k"), "x-amz-meta-added", "1")
    with pytest.raises(S3Error) as error:
        verify(facts)
    assert error.value.code == "AccessDenied"
    assert error.value.extra["HeadersNotSigned"] == "x-amz-meta-added"


def test_no_v4_auth() -> None:
    assert parse_v4(RequestFacts("GET", b"/b/k", b"", {"host": ["h"]})) is None
    assert parse_v4(RequestFacts("GET", b"/b/k", b"", {"authorization": ["AWS AKID:c2ln"]})) is None
    assert parse_v4(RequestFacts("GET", b"/b/k", b"prefix=x", {})) is None


# The "GET Object" example of "Signature Calculations for the Authorization Header: Transferring
# Payload in a Single Chunk": the request and its signature as AWS publishes them.
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EXAMPLE_TIME = 1369353600.0  # 20130524T000000Z


def _example_get_object(signature: str) -> RequestFacts:
    return RequestFacts(
        "GET",
        b"/test.txt",
        b"",
        {
            "host": ["examplebucket.s3.amazonaws.com"],
            "range": ["bytes=0-9"],
            "x-amz-content-sha256": [
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            ],
            "x-amz-date": ["20130524T000000Z"],
            "authorization": [
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                "aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                f"Signature={signature}"
            ],
        },
    )


def test_aws_example_get_object() -> None:
    signature = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    facts = _example_get_object(signature)
    verified = verify(facts, EXAMPLE_SECRET, EXAMPLE_TIME)
    assert verified.seed_signature == signature
    assert verified.scope == "20130524/us-east-1/s3/aws4_request"
    with pytest.raises(S3Error):
        verify(_example_get_object("0" * 64), EXAMPLE_SECRET, EXAMPLE_TIME)


def example_streaming_put(content_sha256: str, signature: str, **more: str) -> RequestFacts:
    """
    The seed request of AWS's chunked-upload examples ("Signature Calculations for the
    Authorization Header: Transferring Payload in Multiple Chunks", "Example: PUT Object").
    """
    headers = {
        "host": ["s3.amazonaws.com"],
        "x-amz-date": ["20130524T000000Z"],
        "x-amz-storage-class": ["REDUCED_REDUNDANCY"],
        "x-amz-content-sha256": [content_sha256],
        "content-encoding": ["aws-chunked"],
        "x-amz-decoded-content-length": ["66560"],
        "content-length": ["66824"],
        "authorization": [
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
            f"x-amz-decoded-content-length;x-amz-storage-class,Signature={signature}"
        ],
    }
    headers.update({name: [value] for name, value in more.items()})
    return RequestFacts("PUT", b"/examplebucket/chunkObject.txt", b"", headers)


def test_aws_example_streaming_seed() -> None:
    seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    facts = example_streaming_put("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", seed)
    verified = verify(facts, EXAMPLE_SECRET, EXAMPLE_TIME)
    assert verified.seed_signature == seed
    assert verified.payload_hash == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


def _authorization(value: str) -> RequestFacts:
    return RequestFacts(
        "GET",
        b"/b/k",
        b"",
        {
            "host": ["h"],
            "x-amz-date": ["20130524T000000Z"],
            "x-amz-content-sha256": ["UNSIGNED-PAYLOAD"],
            "authorization": [value],
        },
    )


GOOD_CREDENTIAL = "Credential=AKID/20130524/us-east-1/s3/aws4_request"
GOOD_SIGNATURE = "Signature=" + "ab" * 32


@pytest.mark.parametrize(
    "value",
    [
        "AWS4-HMAC-SHA256",
        f"AWS4-HMAC-SHA256 {GOOD_CREDENTIAL}, {GOOD_SIGNATURE}",
        f"AWS4-HMAC-SHA256 {GOOD_CREDENTIAL}, SignedHeaders=host, {GOOD_SIGNATURE}, Extra=1",
        f"AWS4-HMAC-SHA256 {GOOD_CREDENTIAL}, SignedHeaders=host, Signature=abc",
        f"AWS4-HMAC-SHA256 {GOOD_CREDENTIAL}, SignedHeaders=x-amz-date, {GOOD_SIGNATURE}",
        f"AWS4-HMAC-SHA256 {GOOD_CREDENTIAL}, SignedHeaders=Host, {GOOD_SIGNATURE}",
        f"AWS4-HMAC-SHA256 {GOOD_CREDENTIAL}, SignedHeaders=, {GOOD_SIGNATURE}",
    ]
    + [
        f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host, {GOOD_SIGNATURE}"
        for credential in [
            "AKID/20130524/us-east-1/s3",
            "AKID/20130525/us-east-1/s3/aws4_request",
            "AKID/20130524/us-east-1/ec2/aws4_request",
            "AKID/20130524/us-east-1/s3/aws5_request",
            "AKID/2013052/us-east-1/s3/aws4_request",
            "/20130524/us-east-1/s3/aws4_request",
        ]
    ],
)
def test_malformed_authorization_header(value: str) -> None:
    with pytest.raises(S3Error) as error:
        parse_v4(_authorization(value))
    assert error.value.code == "AuthorizationHeaderMalformed"
    assert error.value.status == 400


def test_well_formed_authorization_header_parses() -> None:
    value = f"AWS4-HMAC-SHA256 {GOOD_CREDENTIAL},SignedHeaders=host;x-amz-date,{GOOD_SIGNATURE}"
    signature = parse_v4(_authorization(value))
    assert signature == SignatureV4(
        access_key_id="AKID",
        timestamp="20130524T000000Z",
        scope="20130524/us-east-1/s3/aws4_request",
        region="us-east-1",
        signed_headers=("host", "x-amz-date"),
        signature="ab" * 32,
        presigned=False,
        expires=None,
        payload_hash="UNSIGNED-PAYLOAD",
    )
    signature.check_region("us-east-1")
    with pytest.raises(S3Error) as error:
        signature.check_region("eu-west-1")
    assert error.value.code == "AuthorizationHeaderMalformed"
    assert error.value.extra["Region"] == "eu-west-1"


def test_content_sha256_header_required_and_valid() -> None:
    value = f"AWS4-HMAC-SHA256 {GOOD_CREDENTIAL}, SignedHeaders=host;x-amz-date, {GOOD_SIGNATURE}"
    facts = _authorization(value)
    headers = dict(facts.headers)
    del headers["x-amz-content-sha256"]
    with pytest.raises(S3Error) as missing:
        parse_v4(attr.evolve(facts, headers=headers))
    assert missing.value.code == "InvalidRequest"
    assert "x-amz-content-sha256" in missing.value.message
    with pytest.raises(S3Error) as bad:
        parse_v4(_replace_header(facts, "x-amz-content-sha256", "tjnVEQ5UTP/DL91eAGOmew=="))
    assert bad.value.code == "InvalidArgument"


def test_missing_or_bad_date() -> None:
    value = f"AWS4-HMAC-SHA256 {GOOD_CREDENTIAL}, SignedHeaders=host;x-amz-date, {GOOD_SIGNATURE}"
    facts = _authorization(value)
    for bad in (
        _replace_header(facts, "x-amz-date", "2013-05-24T00:00:00Z"),
        attr.evolve(facts, headers={k: v for k, v in facts.headers.items() if k != "x-amz-date"}),
    ):
        with pytest.raises(S3Error) as error:
            parse_v4(bad)
        assert error.value.code == "AccessDenied"


def _presigned(**params: str) -> RequestFacts:
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": "AKID%2F20130524%2Fus-east-1%2Fs3%2Faws4_request",
        "X-Amz-Date": "20130524T000000Z",
        "X-Amz-Expires": "86400",
        "X-Amz-SignedHeaders": "host",
        "X-Amz-Signature": "ab" * 32,
    }
    query.update(params)
    raw = "&".join(f"{k}={v}" for k, v in query.items() if v != "DROP")
    return RequestFacts("GET", b"/b/k", raw.encode(), {"host": ["h"]})


def test_presigned_parses() -> None:
    signature = parse_v4(_presigned())
    assert signature is not None
    assert signature.presigned and signature.expires == 86400
    assert signature.access_key_id == "AKID"


@pytest.mark.parametrize(
    "params",
    [
        {"X-Amz-Expires": "604801"},
        {"X-Amz-Expires": "0"},
        {"X-Amz-Expires": "-5"},
        {"X-Amz-Expires": "soon"},
        {"X-Amz-Expires": "DROP"},
        {"X-Amz-Signature": "DROP"},
        {"X-Amz-Algorithm": "AWS4-HMAC-SHA512"},
        {"X-Amz-Date": "20130524"},
        {"X-Amz-Credential": "AKID%2F20130523%2Fus-east-1%2Fs3%2Faws4_request"},
        {"X-Amz-Credential": "AKID"},
        {"X-Amz-SignedHeaders": "range"},
    ],
)
def test_malformed_presigned(params: Dict[str, str]) -> None:
    with pytest.raises(S3Error) as error:
        parse_v4(_presigned(**params))
    assert error.value.code == "AuthorizationQueryParametersError"


def test_presigned_with_session_token_not_implemented() -> None:
    with pytest.raises(S3Error) as error:
        parse_v4(_presigned(**{"X-Amz-Security-Token": "tok"}))
    assert error.value.code == "NotImplemented"


def test_canonical_forms() -> None:
    assert canonical_uri(b"/b/a%20b/%7e/%c3%a9//.") == b"/b/a%20b/~/%C3%A9//."
    assert canonical_uri(b"/b/a+b*") == b"/b/a%2Bb%2A"
    assert canonical_uri(b"") == b"/"
    pairs = raw_query_pairs(b"b=2&a=&c&a=%20x+&X-Amz-Signature=s")
    assert canonical_query(pairs, presigned=False) == (
        b"X-Amz-Signature=s&a=&a=%20x%2B&b=2&c="
    )
    assert canonical_query(pairs, presigned=True) == b"a=&a=%20x%2B&b=2&c="
    # Pieces up to 128 bytes are encoded once and remembered; longer ones each time. Both ways,
    # and again, lower-case escapes come back upper-case and canonical ones as they were.
    for count in (4, 40, 4, 40):
        raw = b"p=" + b"%2f" * count + b"&q=" + b"%2F" * count
        assert canonical_query(raw_query_pairs(raw), presigned=False) == (
            b"p=" + b"%2F" * count + b"&q=" + b"%2F" * count
        )


def test_parse_timestamp_agrees_with_strptime() -> None:
    import calendar
    import random
    import time as time_module

    from gateway.s3.sigv4 import parse_timestamp

    generator = random.Random(4)
    for _ in range(2000):
        moment = generator.randrange(0, 4_000_000_000)
        text = time_module.strftime("%Y%m%dT%H%M%SZ", time_module.gmtime(moment))
        expected = calendar.timegm(time_module.strptime(text, "%Y%m%dT%H%M%SZ"))
        assert parse_timestamp(text) == expected == moment
    for bad in ("20230229T000000Z", "20231301T000000Z", "20230100T000000Z", "20230101T240000Z",
                "20230101T006000Z", "2023010T000000Z", "20230101T000000", "٢٠٢٣0101T000000Z"):
        assert parse_timestamp(bad) is None, bad


def _random_queries(count: int) -> List[bytes]:
    import random

    rng = random.Random(4096)
    pieces = [
        b"a", b"Z", b"-", b"~", b".", b"_", b"+", b"=", b"&", b"/", b" ", b"%", b"%2F", b"%2f",
        b"%41", b"%7E", b"%7e", b"%20", b"%C3%A9", b"\xc3\xa9", b"%zz", b"%4", b"X-Amz-Signature",
        b"X-Amz-Signatur%65", b"%00", b"%FF", b"%5B", b"%60", b"%7F", b"%2D",
    ]
    return [b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(count)]


def _decode_and_encode(raw_query: bytes, presigned: bool) -> bytes:
    # The canonical query by the book: every name and value decoded, then AWS-encoded.
    encoded = sorted(
        (aws_quote(name), aws_quote(value))
        for name, value in query_pairs(raw_query)
        if not (presigned and name == b"X-Amz-Signature")
    )
    return "&".join(f"{name}={value}" for name, value in encoded).encode("ascii")


def test_decoded_pairs_match_unquote_also_when_remembered() -> None:
    """
    Short escaped pieces are decoded once and remembered; long ones every time. Either way, and
    the second time as the first, a pair decodes as ``unquote_to_bytes`` decodes it.
    """
    from urllib.parse import unquote_to_bytes

    from gateway.s3.sigv4 import decoded_pairs

    long_piece = b"%2F".join([b"k" * 60, b"x" * 80])
    for raw in _random_queries(2000) + [b"long=" + long_piece]:
        expected = [
            (unquote_to_bytes(name), unquote_to_bytes(value))
            for name, value in raw_query_pairs(raw)
        ]
        assert decoded_pairs(raw_query_pairs(raw)) == expected, raw
        assert decoded_pairs(raw_query_pairs(raw)) == expected, raw


@pytest.mark.parametrize("presigned", [False, True])
def test_canonical_query_of_raw_pairs_matches_decoding(presigned: bool) -> None:
    """
    The canonical query built from the pairs as sent (raw where they are already canonical) is
    the one built by decoding and re-encoding every name and value.
    """
    for raw in _random_queries(3000):
        assert canonical_query(raw_query_pairs(raw), presigned) == _decode_and_encode(
            raw, presigned
        ), raw


def test_facts_split_the_query_once() -> None:
    facts = RequestFacts("GET", b"/b/k", b"a=1&b=%2F&&c", {})
    assert facts.raw_pairs == [(b"a", b"1"), (b"b", b"%2F"), (b"c", b"")]
    assert facts.query_pairs == query_pairs(b"a=1&b=%2F&&c")
    assert facts.raw_pairs is facts.raw_pairs and facts.query_pairs is facts.query_pairs
