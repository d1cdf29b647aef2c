"""
Tests of :mod:`gateway.s3.checksums` against botocore's own checksum classes (what clients send),
hashlib and zlib.
"""

from __future__ import annotations

import base64
import hashlib
import random
from typing import Dict, List, Optional

import pytest
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    CrtXxhash3Checksum,
    CrtXxhash64Checksum,
    CrtXxhash128Checksum,
    Sha1Checksum,
    Sha256Checksum,
    Sha512Checksum,
)

from gateway.s3.checksums import ALGORITHMS, BodyDigests, header_name
from gateway.s3.errors import S3Error

BOTOCORE = {
    "CRC32": Crc32Checksum,
    "CRC32C": CrtCrc32cChecksum,
    "CRC64NVME": CrtCrc64NvmeChecksum,
    "SHA1": Sha1Checksum,
    "SHA256": Sha256Checksum,
    "SHA512": Sha512Checksum,
    "XXHASH64": CrtXxhash64Checksum,
    "XXHASH3": CrtXxhash3Checksum,
    "XXHASH128": CrtXxhash128Checksum,
}
BODY = random.Random(7).randbytes(300001)


def client_checksum(algorithm: str, data: bytes) -> str:
    if algorithm == "MD5":
        return base64.b64encode(hashlib.md5(data).digest()).decode()
    checksum = BOTOCORE[algorithm]()
    checksum.update(data)
    return checksum.b64digest()


def digests(headers: Dict[str, str], payload_hash: Optional[str] = None) -> BodyDigests:
    return BodyDigests({k: [v] for k, v in headers.items()}, payload_hash)


def feed(body_digests: BodyDigests, data: bytes, pieces: int = 7) -> None:
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        body_digests.update(data[start : start + step])


def test_md5_always() -> None:
    body = digests({})
    feed(body, BODY)
    body.verify()
    assert body.md5_hex == hashlib.md5(BODY).hexdigest()
    assert body.size == len(BODY)
    assert body.checksum_header() is None


def test_known_vectors() -> None:
    """
    Published check values of each CRC over "123456789", independent of any library here.
    """
    for algorithm, expected in [
        ("CRC32", "cbf43926"),
        ("CRC32C", "e3069283"),
        ("CRC64NVME", "ae8b14860a799888"),
    ]:
        body = digests({"x-amz-sdk-checksum-algorithm": algorithm})
        body.update(b"1234")
        body.update(b"56789")
        header = body.checksum_header()
        assert header is not None
        assert base64.b64decode(header[1]).hex() == expected


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_header_checksum_matches_client(algorithm: str) -> None:
    value = client_checksum(algorithm, BODY)
    body = digests({header_name(algorithm): value})
    feed(body, BODY)
    body.verify()
    assert body.checksum_header() == (header_name(algorithm), value)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_header_checksum_mismatch(algorithm: str) -> None:
    value = client_checksum(algorithm, BODY + b"x")
    body = digests({header_name(algorithm): value})
    feed(body, BODY)
    with pytest.raises(S3Error) as error:
        body.verify()
    assert error.value.code == "BadDigest"
    assert error.value.message == (
        f"The {algorithm} you specified did not match the calculated checksum."
    )


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA256", "CRC64NVME"])
def test_trailer_checksum(algorithm: str) -> None:
    headers = {"x-amz-trailer": header_name(algorithm), "x-amz-sdk-checksum-algorithm": algorithm}
    body = digests(headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    feed(body, BODY)
    body.set_trailer({header_name(algorithm): client_checksum(algorithm, BODY)})
    body.verify()
    assert body.checksum_header() == (header_name(algorithm), client_checksum(algorithm, BODY))

    bad = digests(headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    feed(bad, BODY[:-1])
    bad.set_trailer({header_name(algorithm): client_checksum(algorithm, BODY)})
    with pytest.raises(S3Error) as error:
        bad.verify()
    assert error.value.code == "BadDigest"


def test_trailer_missing_or_unannounced() -> None:
    body = digests({"x-amz-trailer": "x-amz-checksum-crc32"})
    feed(body, BODY)
    body.set_trailer({"x-amz-other": "1"})
    with pytest.raises(S3Error) as missing:
        body.verify()
    assert missing.value.code == "InvalidRequest"
    with pytest.raises(S3Error) as other:
        body.set_trailer({"x-amz-checksum-crc32c": client_checksum("CRC32C", BODY)})
    assert other.value.code == "InvalidRequest"
    with pytest.raises(S3Error) as unannounced:
        digests({}).set_trailer({"x-amz-checksum-crc32": client_checksum("CRC32", BODY)})
    assert unannounced.value.code == "InvalidRequest"


def test_payload_sha256() -> None:
    body = digests({}, hashlib.sha256(BODY).hexdigest().upper())
    feed(body, BODY)
    body.verify()
    bad = digests({}, hashlib.sha256(b"other").hexdigest())
    feed(bad, BODY)
    with pytest.raises(S3Error) as error:
        bad.verify()
    assert error.value.code == "XAmzContentSHA256Mismatch"
    assert error.value.extra["S3ComputedContentSHA256"] == hashlib.sha256(BODY).hexdigest()
    for unsigned in ("UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", None):
        body = digests({}, unsigned)
        feed(body, BODY)
        body.verify()


def test_content_md5() -> None:
    good = base64.b64encode(hashlib.md5(BODY).digest()).decode()
    body = digests({"content-md5": good})
    feed(body, BODY)
    body.verify()
    body = digests({"content-md5": base64.b64encode(hashlib.md5(b"x").digest()).decode()})
    feed(body, BODY)
    with pytest.raises(S3Error) as error:
        body.verify()
    assert error.value.code == "BadDigest"
    short = base64.b64encode(b"short").decode()
    for malformed in ("not base64!", short, hashlib.md5().hexdigest()):
        with pytest.raises(S3Error) as invalid:
            digests({"content-md5": malformed})
        assert invalid.value.code == "InvalidDigest"


def test_all_checks_together_hash_each_byte_once() -> None:
    sha = hashlib.sha256(BODY).hexdigest()
    headers = {
        "content-md5": base64.b64encode(hashlib.md5(BODY).digest()).decode(),
        "x-amz-checksum-sha256": client_checksum("SHA256", BODY),
    }
    body = digests(headers, sha)
    # The SHA-256 of the payload hash and of the checksum is one hasher, MD5 is another.
    assert len(body._hashers) == 2
    feed(body, BODY)
    body.verify()


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": client_checksum("SHA1", b"")},
        {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-trailer": "x-amz-checksum-crc32c"},
        {"x-amz-checksum-crc32": "not base64"},
        {"x-amz-checksum-crc32": "AAAAAAAA"},
        {"x-amz-checksum-sha256": "AAAAAA=="},
        {"x-amz-sdk-checksum-algorithm": "MD4"},
        {"x-amz-sdk-checksum-algorithm": "CRC32C", "x-amz-checksum-crc32": "AAAAAA=="},
        {"x-amz-trailer": "x-amz-checksum-md4"},
    ],
)
def test_bad_checksum_headers(headers: Dict[str, str]) -> None:
    with pytest.raises(S3Error) as error:
        digests(headers)
    assert error.value.code == "InvalidRequest"


def test_sdk_algorithm_alone_is_computed_and_echoed() -> None:
    body = digests({"x-amz-sdk-checksum-algorithm": "crc32"})
    feed(body, BODY)
    body.verify()
    assert body.checksum_header() == ("x-amz-checksum-crc32", client_checksum("CRC32", BODY))


def test_empty_body() -> None:
    checks: List[str] = ["CRC32", "SHA256"]
    for algorithm in checks:
        body = digests({header_name(algorithm): client_checksum(algorithm, b"")})
        body.verify()
    assert digests({}).md5_hex == hashlib.md5(b"").hexdigest()
