"""
Every form of AWS Signature Version 4 that current clients send, every checksum they attach, and
the errors of each, against the daemon.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Dict, List

import pytest
from awscrt import checksums
from botocore.exceptions import ClientError

from tests.e2e.clients import (
    Daemon,
    RawResponse,
    Signer,
    error_of,
    files_under,
    raw_request,
    signed_request,
)
from tests.e2e.conftest import Bucket, boto3_client

KiB = 1024
MiB = 1024 * KiB


def md5_etag(body: bytes) -> str:
    return '"' + hashlib.md5(body).hexdigest() + '"'


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


#: The value of each ``x-amz-checksum-*`` header, computed here from the S3 docs' definitions.
CHECKSUMS: Dict[str, Callable[[bytes], str]] = {
    "crc32": lambda data: _b64(checksums.crc32(data).to_bytes(4, "big")),
    "crc32c": lambda data: _b64(checksums.crc32c(data).to_bytes(4, "big")),
    "crc64nvme": lambda data: _b64(checksums.crc64nvme(data).to_bytes(8, "big")),
    "sha1": lambda data: _b64(hashlib.sha1(data).digest()),
    "sha256": lambda data: _b64(hashlib.sha256(data).digest()),
}


def record_headers(client) -> List[Dict[str, str]]:
    """
    Keep the headers of every request the client sends, as sent (after signing).
    """
    sent: List[Dict[str, str]] = []

    def keep(request, **kwargs):
        sent.append({k.lower(): (v.decode() if isinstance(v, bytes) else v)
                     for k, v in request.headers.items()})

    client.meta.events.register("before-send.s3", keep)
    return sent


def send_checksum_in_trailer(client) -> None:
    """
    Make botocore put the flexible checksum in an aws-chunked trailer, as it does by default over
    TLS (``botocore.httpchecksum.resolve_request_checksum_algorithm`` keeps it in a header over
    plain HTTP only). The body then goes as STREAMING-UNSIGNED-PAYLOAD-TRAILER.
    """

    def to_trailer(params, **kwargs):
        algorithm = params["context"].get("checksum", {}).get("request_algorithm")
        if isinstance(algorithm, dict):
            algorithm["in"] = "trailer"

    client.meta.events.register("before-call.s3.PutObject", to_trailer)
    client.meta.events.register("before-call.s3.UploadPart", to_trailer)


def nothing_stored(s3, bucket: Bucket, key: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket.name, Key=key)
    assert error_of(excinfo)[1] == 404
    visible = [p for p in files_under(bucket.path) if ".s3gateway" not in p.parts]
    assert visible == []


def no_temp_files(bucket: Bucket, wait: float = 10.0) -> List[Path]:
    """
    The files left in the bucket's ``.s3gateway/tmp/`` once the gateway has had C{wait} seconds
    to clean up (an empty list is the expected answer).
    """
    tmp = bucket.path / ".s3gateway" / "tmp"
    deadline = time.monotonic() + wait
    while True:
        left = files_under(tmp) if tmp.exists() else []
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


# Header authentication


def test_signed_payload(gateway: Daemon, s3, signer: Signer, bucket: Bucket) -> None:
    body = os.urandom(3000)
    sent = record_headers(s3)
    s3.put_object(Bucket=bucket.name, Key="by-boto3", Body=body)
    assert sent[-1]["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert s3.get_object(Bucket=bucket.name, Key="by-boto3")["Body"].read() == body

    response = signed_request(gateway.port, signer, "PUT", f"/{bucket.name}/by-hand", body=body)
    assert response.status == 200, response.body
    assert response.headers["etag"] == md5_etag(body)
    got = signed_request(gateway.port, signer, "GET", f"/{bucket.name}/by-hand")
    assert (got.status, got.body) == (200, body)


def test_unsigned_payload(gateway: Daemon, signer: Signer, bucket: Bucket) -> None:
    client = boto3_client(
        gateway.endpoint, gateway.access_key, gateway.secret_key,
        s3={"addressing_style": "path", "payload_signing_enabled": False},
        request_checksum_calculation="when_required",
    )  # fmt: skip
    sent = record_headers(client)
    body = os.urandom(5000)
    client.put_object(Bucket=bucket.name, Key="unsigned", Body=body)
    assert sent[-1]["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert client.get_object(Bucket=bucket.name, Key="unsigned")["Body"].read() == body

    response = signed_request(
        gateway.port, signer, "PUT", f"/{bucket.name}/unsigned-by-hand",
        body=body, payload_hash="UNSIGNED-PAYLOAD",
    )  # fmt: skip
    assert response.status == 200, response.body
    assert (bucket.path / "unsigned-by-hand").read_bytes() == body


def test_unknown_access_key(gateway: Daemon, bucket: Bucket) -> None:
    stranger = boto3_client(gateway.endpoint, "AKIAE2EUNKNOWNKEY000", "x" * 40)
    with pytest.raises(ClientError) as excinfo:
        stranger.list_buckets()
    assert error_of(excinfo) == ("InvalidAccessKeyId", 403)
    with pytest.raises(ClientError) as excinfo:
        stranger.put_object(Bucket=bucket.name, Key="k", Body=b"x")
    assert error_of(excinfo) == ("InvalidAccessKeyId", 403)


def test_wrong_secret(gateway: Daemon, s3, bucket: Bucket) -> None:
    impostor = boto3_client(gateway.endpoint, gateway.access_key, "W" * 40)
    with pytest.raises(ClientError) as excinfo:
        impostor.list_buckets()
    assert error_of(excinfo) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(ClientError) as excinfo:
        impostor.put_object(Bucket=bucket.name, Key="k", Body=b"x")
    assert error_of(excinfo) == ("SignatureDoesNotMatch", 403)
    nothing_stored(s3, bucket, "k")


def test_anonymous_requests_denied(gateway: Daemon, s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="private", Body=b"private")
    for url in (f"{gateway.endpoint}/", f"{gateway.endpoint}/{bucket.name}/private",
                f"{gateway.endpoint}/{bucket.name}?list-type=2"):
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            urllib.request.urlopen(url, timeout=30)
        assert excinfo.value.code == 403
        assert RawResponse(403, {}, excinfo.value.read()).error_code == "AccessDenied"
    put = urllib.request.Request(
        f"{gateway.endpoint}/{bucket.name}/anonymous", data=b"nope", method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(put, timeout=30)
    assert excinfo.value.code == 403
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket.name, Key="anonymous")
    assert not (bucket.path / "anonymous").exists()


# Presigned URLs


def test_presigned_put_and_get(s3, bucket: Bucket) -> None:
    body = os.urandom(70 * KiB)
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket.name, "Key": "pre signed/ü"}, ExpiresIn=300
    )
    request = urllib.request.Request(put_url, data=body, method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert response.headers["ETag"] == md5_etag(body)
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket.name, "Key": "pre signed/ü"}, ExpiresIn=300
    )
    with urllib.request.urlopen(get_url, timeout=30) as response:
        assert response.status == 200
        assert response.read() == body
    assert (bucket.path / "pre signed" / "ü").read_bytes() == body


def test_presigned_expired(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="k", Body=b"v")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket.name, "Key": "k"}, ExpiresIn=1
    )
    time.sleep(2.5)
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(url, timeout=30)
    assert excinfo.value.code == 403
    assert RawResponse(403, {}, excinfo.value.read()).error_code == "AccessDenied"


def test_presigned_tampered(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="k", Body=b"v")
    s3.put_object(Bucket=bucket.name, Key="other", Body=b"w")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket.name, "Key": "k"}, ExpiresIn=300
    )
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(url.replace("/k?", "/other?"), timeout=30)
    assert excinfo.value.code == 403
    assert RawResponse(403, {}, excinfo.value.read()).error_code == "SignatureDoesNotMatch"


# Checksums as boto3 sends them


def test_boto3_default_put_checksum(s3, bucket: Bucket) -> None:
    """
    botocore's shipped default (request_checksum_calculation=when_supported) attaches a CRC32 to
    every PutObject: in a header over plain HTTP, in a trailer over TLS. Both reach the gateway.
    """
    assert s3.meta.config.request_checksum_calculation in (None, "when_supported")
    body = os.urandom(40 * KiB)
    sent = record_headers(s3)
    s3.put_object(Bucket=bucket.name, Key="header", Body=body)
    assert sent[-1]["x-amz-checksum-crc32"] == CHECKSUMS["crc32"](body)

    send_checksum_in_trailer(s3)
    s3.put_object(Bucket=bucket.name, Key="trailer", Body=body)
    assert sent[-1]["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert sent[-1]["x-amz-trailer"] == "x-amz-checksum-crc32"
    assert "aws-chunked" in sent[-1]["content-encoding"]
    for key in ("header", "trailer"):
        got = s3.get_object(Bucket=bucket.name, Key=key)
        assert got["ETag"] == md5_etag(body)
        assert got["Body"].read() == body
        assert "aws-chunked" not in got["ResponseMetadata"]["HTTPHeaders"].get(
            "content-encoding", ""
        )
    assert (bucket.path / "trailer").read_bytes() == body


@pytest.mark.parametrize("where", ["header", "trailer"])
@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"])
def test_put_with_checksum_algorithm(s3, bucket: Bucket, algorithm: str, where: str) -> None:
    if where == "trailer":
        send_checksum_in_trailer(s3)
    sent = record_headers(s3)
    body = os.urandom(100 * KiB + 7)
    response = s3.put_object(
        Bucket=bucket.name, Key="checked", Body=body, ChecksumAlgorithm=algorithm
    )
    name = f"x-amz-checksum-{algorithm.lower()}"
    if where == "header":
        assert sent[-1][name] == CHECKSUMS[algorithm.lower()](body)
    else:
        assert sent[-1]["x-amz-trailer"] == name
    assert response["ETag"] == md5_etag(body)
    echoed = response.get(f"Checksum{algorithm}")
    assert echoed in (None, CHECKSUMS[algorithm.lower()](body))
    assert s3.get_object(Bucket=bucket.name, Key="checked")["Body"].read() == body


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"])
def test_wrong_checksum_header(s3, bucket: Bucket, algorithm: str) -> None:
    s3.put_object(Bucket=bucket.name, Key="k", Body=b"previous")
    wrong = CHECKSUMS[algorithm.lower()](b"something else")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(
            Bucket=bucket.name, Key="k", Body=b"new body", **{f"Checksum{algorithm}": wrong}
        )
    assert error_of(excinfo) == ("BadDigest", 400)
    assert s3.get_object(Bucket=bucket.name, Key="k")["Body"].read() == b"previous"
    assert no_temp_files(bucket) == []


def test_wrong_content_md5(s3, bucket: Bucket) -> None:
    wrong = _b64(hashlib.md5(b"something else").digest())
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket.name, Key="k", Body=b"body", ContentMD5=wrong)
    assert error_of(excinfo) == ("BadDigest", 400)
    nothing_stored(s3, bucket, "k")
    right = _b64(hashlib.md5(b"body").digest())
    s3.put_object(Bucket=bucket.name, Key="k", Body=b"body", ContentMD5=right)
    assert (bucket.path / "k").read_bytes() == b"body"


def test_wrong_content_sha256(gateway: Daemon, s3, signer: Signer, bucket: Bucket) -> None:
    response = signed_request(
        gateway.port, signer, "PUT", f"/{bucket.name}/k", body=b"the body",
        payload_hash=hashlib.sha256(b"another body").hexdigest(),
    )  # fmt: skip
    assert (response.status, response.error_code) == (400, "XAmzContentSHA256Mismatch")
    nothing_stored(s3, bucket, "k")


@pytest.mark.parametrize("minutes", [-20, 20])
def test_clock_skew(gateway: Daemon, signer: Signer, bucket: Bucket, minutes: int) -> None:
    when = datetime.now(timezone.utc) + timedelta(minutes=minutes)
    response = signed_request(gateway.port, signer, "GET", f"/{bucket.name}", when=when)
    assert (response.status, response.error_code) == (403, "RequestTimeTooSkewed")


# aws-chunked bodies made by hand


def _chunked_signed_body(
    signer: Signer, when: datetime, seed: str, data: bytes, size: int
) -> List[tuple]:
    """
    The chunks of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body: C{(header, data)} pairs, the last
    one empty, each signature chained on the previous one.
    """
    chunks, previous = [], seed
    pieces = [data[i : i + size] for i in range(0, len(data), size)] + [b""]
    for piece in pieces:
        signature = signer.chunk_signature(when, previous, piece)
        chunks.append((f"{len(piece):x};chunk-signature={signature}\r\n".encode(), piece))
        previous = signature
    return chunks


def _put_signed_chunks(
    gateway: Daemon, signer: Signer, path: str, data: bytes, tamper: bool = False
) -> RawResponse:
    when = datetime.now(timezone.utc)
    headers = {
        "host": f"127.0.0.1:{gateway.port}",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "content-type": "text/x-chunked",
    }
    sent, seed = signer.sign(
        "PUT", path, headers, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", when=when
    )
    chunks = _chunked_signed_body(signer, when, seed, data, 64 * KiB)
    if tamper:
        header, piece = chunks[1]
        chunks[1] = (header, bytes([piece[0] ^ 1]) + piece[1:])
    body = b"".join(header + piece + b"\r\n" for header, piece in chunks)
    sent["Content-Length"] = str(len(body))
    return raw_request(gateway.port, "PUT", path, sent, body)


def test_streaming_signed_chunks(gateway: Daemon, s3, signer: Signer, bucket: Bucket) -> None:
    data = os.urandom(200 * KiB + 3)
    response = _put_signed_chunks(gateway, signer, f"/{bucket.name}/chunked", data)
    assert response.status == 200, response.body
    assert response.headers["etag"] == md5_etag(data)
    got = s3.get_object(Bucket=bucket.name, Key="chunked")
    assert got["Body"].read() == data
    assert got["ContentType"] == "text/x-chunked"
    assert got["ContentLength"] == len(data)


def test_streaming_signed_chunks_tampered(
    gateway: Daemon, s3, signer: Signer, bucket: Bucket
) -> None:
    data = os.urandom(200 * KiB)
    response = _put_signed_chunks(gateway, signer, f"/{bucket.name}/chunked", data, tamper=True)
    assert (response.status, response.error_code) == (403, "SignatureDoesNotMatch")
    nothing_stored(s3, bucket, "chunked")
    assert no_temp_files(bucket) == []


def _put_unsigned_trailer(
    gateway: Daemon, signer: Signer, path: str, data: bytes, trailer_value: str
) -> RawResponse:
    headers = {
        "host": f"127.0.0.1:{gateway.port}",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    sent, _ = signer.sign("PUT", path, headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    pieces = [data[i : i + 50 * KiB] for i in range(0, len(data), 50 * KiB)]
    body = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces)
    body += f"0\r\nx-amz-checksum-crc32:{trailer_value}\r\n\r\n".encode()
    sent["Content-Length"] = str(len(body))
    return raw_request(gateway.port, "PUT", path, sent, body)


def test_unsigned_trailer_by_hand(gateway: Daemon, s3, signer: Signer, bucket: Bucket) -> None:
    data = os.urandom(120 * KiB)
    response = _put_unsigned_trailer(
        gateway, signer, f"/{bucket.name}/trailer", data, CHECKSUMS["crc32"](data)
    )
    assert response.status == 200, response.body
    assert s3.get_object(Bucket=bucket.name, Key="trailer")["Body"].read() == data


def test_unsigned_trailer_wrong_checksum(
    gateway: Daemon, s3, signer: Signer, bucket: Bucket
) -> None:
    data = os.urandom(120 * KiB)
    response = _put_unsigned_trailer(
        gateway, signer, f"/{bucket.name}/trailer", data, CHECKSUMS["crc32"](b"other")
    )
    assert (response.status, response.error_code) == (400, "BadDigest")
    nothing_stored(s3, bucket, "trailer")
    assert no_temp_files(bucket) == []


# A client that goes away


def test_disconnect_mid_upload(gateway: Daemon, s3, signer: Signer, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="previous", Body=b"the previous object")
    for key in ("fresh", "previous"):
        path = f"/{bucket.name}/{key}"
        headers, _ = signer.sign(
            "PUT", path, {"host": f"127.0.0.1:{gateway.port}"}, "UNSIGNED-PAYLOAD"
        )
        head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {10 * MiB}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
            sock.sendall(head.encode())
            sock.sendall(os.urandom(MiB))
            time.sleep(0.3)
    assert no_temp_files(bucket) == []
    listing = s3.list_objects_v2(Bucket=bucket.name)
    assert [(o["Key"], o["Size"]) for o in listing["Contents"]] == [("previous", 19)]
    assert s3.get_object(Bucket=bucket.name, Key="previous")["Body"].read() == b"the previous object"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket.name, Key="fresh")
    assert [p.name for p in bucket.path.iterdir() if p.name != ".s3gateway"] == ["previous"]


def test_streamed_uploads_do_not_stall(gateway: Daemon, signer: Signer, bucket: Bucket) -> None:
    """
    Uploads sent in 64 KiB writes, one after the other on fresh connections, each complete
    promptly (a paused transport that is never resumed shows up here as a timeout).
    """
    body = os.urandom(5 * MiB)
    for attempt in range(8):
        for payload_hash in (hashlib.sha256(body).hexdigest(), "UNSIGNED-PAYLOAD"):
            path = f"/{bucket.name}/streamed-{attempt}"
            headers, _ = signer.sign(
                "PUT", path, {"host": f"127.0.0.1:{gateway.port}"}, payload_hash
            )
            conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
            try:
                conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    conn.putheader(name, value)
                conn.endheaders()
                for offset in range(0, len(body), 64 * KiB):
                    conn.send(body[offset : offset + 64 * KiB])
                response = conn.getresponse()
                assert response.status == 200, response.read()
                assert response.getheader("ETag") == md5_etag(body)
            finally:
                conn.close()


# Operator surface seen from the log


def test_log_has_access_lines_and_no_secrets(gateway: Daemon, s3, bucket: Bucket) -> None:
    key = f"logged-{os.urandom(4).hex()}"
    s3.put_object(Bucket=bucket.name, Key=key, Body=b"12345")
    impostor = boto3_client(gateway.endpoint, gateway.access_key, "W" * 40)
    with pytest.raises(ClientError):
        impostor.list_buckets()
    deadline = time.monotonic() + 5
    while True:
        log = gateway.log_path.read_text(errors="replace")
        lines = [line for line in log.splitlines() if key in line and "PUT" in line]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert lines, "no access-log line for the PUT"
    assert "200" in lines[-1] and bucket.name in lines[-1] and gateway.access_key in lines[-1]
    assert gateway.secret_key not in log
    assert "W" * 40 not in log
