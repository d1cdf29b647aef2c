"""
Tests of :mod:`gateway.s3.chunked`: AWS's published chunked-upload examples, bodies from
botocore's own aws-chunked encoder and from a reference encoder written after the AWS docs, fed in
pieces of every size, and every way of breaking them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import random
from typing import List, Mapping, Optional, Sequence, Tuple

import pytest
from awscrt import checksums as crt
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, CrtCrc32cChecksum

from gateway.s3.chunked import AwsChunkedDecoder
from gateway.s3.errors import S3Error
from gateway.s3.sigv4 import (
    EMPTY_SHA256,
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    RequestFacts,
    VerifiedSignature,
)
from gateway.s3.sigv4_parse import parse_v4

from .test_sigv4 import EXAMPLE_SECRET, EXAMPLE_TIME, example_streaming_put

# "Transferring Payload in Multiple Chunks", "Example: PUT Object": 66560 bytes of "a" in a chunk
# of 65536, one of 1024 and the final empty one, with the signatures AWS publishes.
EXAMPLE_PAYLOAD = b"a" * 66560
EXAMPLE_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
EXAMPLE_CHUNK_SIGNATURES = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
# "Signature calculations for trailing headers (chunked uploads)": the same payload with a
# CRC32C trailer.
TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
TRAILER_CHUNK_SIGNATURES = [
    "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
    "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
    "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
]
TRAILER_SIGNATURE = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"


def example_verified(mode: str, seed: str) -> VerifiedSignature:
    """
    The seed of an AWS example, through the real signature check.
    """
    facts = example_streaming_put(mode, seed)
    if mode == STREAMING_PAYLOAD_TRAILER:
        # That example announces its trailer and signs no Content-Length.
        headers = {k: v for k, v in facts.headers.items() if k != "content-length"}
        headers["x-amz-trailer"] = ["x-amz-checksum-crc32c"]
        headers["authorization"] = [
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;"
            "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,"
            f"Signature={seed}"
        ]
        facts = RequestFacts(facts.method, facts.raw_path, facts.raw_query, headers)
    signature = parse_v4(facts)
    assert signature is not None
    return signature.verify(facts, EXAMPLE_SECRET, EXAMPLE_TIME)


def example_body(signatures: Sequence[str], trailer: bytes = b"") -> bytes:
    sizes = [65536, 1024, 0]
    body = b"".join(
        b"%x;chunk-signature=%s\r\n%s\r\n" % (size, sig.encode(), b"a" * size)
        for size, sig in zip(sizes[:2], signatures)
    )
    if trailer:
        return body + b"0;chunk-signature=%s\r\n%s" % (signatures[2].encode(), trailer)
    return body + b"0;chunk-signature=%s\r\n\r\n" % signatures[2].encode()


def encode_signed(
    chunks: Sequence[bytes],
    verified: VerifiedSignature,
    trailers: Optional[Sequence[Tuple[str, str]]] = None,
) -> bytes:
    """
    A reference encoder written after "Transferring Payload in Multiple Chunks" and "Signature
    calculations for trailing headers".
    """

    def sign(string_to_sign: str) -> str:
        return hmac.new(
            verified.signing_key, string_to_sign.encode(), hashlib.sha256
        ).hexdigest()

    previous = verified.seed_signature
    out = []
    for chunk in list(chunks) + [b""]:
        previous = sign(
            "\n".join(
                [
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    verified.timestamp,
                    verified.scope,
                    previous,
                    EMPTY_SHA256,
                    hashlib.sha256(chunk).hexdigest(),
                ]
            )
        )
        out.append(b"%x;chunk-signature=%s\r\n" % (len(chunk), previous.encode()))
        if chunk or trailers is None:
            out.append(chunk + b"\r\n")
    if trailers is not None:
        text = "".join(f"{name}:{value}\n" for name, value in trailers)
        previous = sign(
            "\n".join(
                [
                    "AWS4-HMAC-SHA256-TRAILER",
                    verified.timestamp,
                    verified.scope,
                    previous,
                    hashlib.sha256(text.encode()).hexdigest(),
                ]
            )
        )
        out.append(text.replace("\n", "\r\n").encode())
        out.append(b"x-amz-trailer-signature:%s\r\n\r\n" % previous.encode())
    return b"".join(out)


def decode(
    decoder: AwsChunkedDecoder, body: bytes, rng: random.Random, largest: Optional[int] = None
) -> Tuple[bytes, Mapping[str, str]]:
    """
    Feed ``body`` in pieces of random sizes; the payload and trailers that come out.
    """
    pieces: List[bytes] = []
    position = 0
    while position < len(body):
        size = rng.randint(1, largest or len(body))
        pieces.extend(decoder.feed(body[position : position + size]))
        position += size
    trailers = decoder.finish()
    return b"".join(pieces), trailers


SEEDS = range(8)


@pytest.mark.parametrize("seed", SEEDS)
def test_aws_example(seed: int) -> None:
    verified = example_verified(STREAMING_PAYLOAD, EXAMPLE_SEED)
    body = example_body(EXAMPLE_CHUNK_SIGNATURES)
    assert len(body) == 66824  # the example's Content-Length
    rng = random.Random(seed)
    decoder = AwsChunkedDecoder(STREAMING_PAYLOAD, 66560, verified)
    payload, trailers = decode(decoder, body, rng, largest=[None, 10, 5000][seed % 3])
    assert payload == EXAMPLE_PAYLOAD
    assert trailers == {}


@pytest.mark.parametrize("seed", SEEDS)
def test_aws_trailer_example(seed: int) -> None:
    verified = example_verified(STREAMING_PAYLOAD_TRAILER, TRAILER_SEED)
    trailer = b"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:%s\r\n\r\n" % (
        TRAILER_SIGNATURE.encode()
    )
    body = example_body(TRAILER_CHUNK_SIGNATURES, trailer)
    decoder = AwsChunkedDecoder(STREAMING_PAYLOAD_TRAILER, 66560, verified)
    payload, trailers = decode(decoder, body, random.Random(seed))
    assert payload == EXAMPLE_PAYLOAD
    assert trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}
    assert base64.b64encode(crt.crc32c(payload).to_bytes(4, "big")) == b"sOO8/Q=="


def test_reference_encoder_reproduces_aws_examples() -> None:
    verified = example_verified(STREAMING_PAYLOAD, EXAMPLE_SEED)
    chunks = [b"a" * 65536, b"a" * 1024]
    assert encode_signed(chunks, verified) == example_body(EXAMPLE_CHUNK_SIGNATURES)
    verified = example_verified(STREAMING_PAYLOAD_TRAILER, TRAILER_SEED)
    trailer = b"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:%s\r\n\r\n" % (
        TRAILER_SIGNATURE.encode()
    )
    assert encode_signed(
        chunks, verified, [("x-amz-checksum-crc32c", "sOO8/Q==")]
    ) == example_body(TRAILER_CHUNK_SIGNATURES, trailer)


def random_chunks(rng: random.Random) -> List[bytes]:
    size = rng.choice([0, 1, 100, 8192, 70000, 300000])
    payload = rng.randbytes(size)
    chunks, position = [], 0
    while position < size:
        step = rng.randint(1, 100000)
        chunks.append(payload[position : position + step])
        position += step
    return chunks


@pytest.mark.parametrize("seed", range(20))
def test_signed_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    verified = example_verified(STREAMING_PAYLOAD, EXAMPLE_SEED)
    chunks = random_chunks(rng)
    payload = b"".join(chunks)
    with_trailer = seed % 2 == 0
    mode = STREAMING_PAYLOAD_TRAILER if with_trailer else STREAMING_PAYLOAD
    trailers = [("x-amz-checksum-sha256", "abc="), ("x-amz-other", "x")] if with_trailer else None
    body = encode_signed(chunks, verified, trailers)
    decoder = AwsChunkedDecoder(mode, len(payload) if seed % 3 else None, verified)
    decoded, got = decode(decoder, body, rng)
    assert decoded == payload
    assert got == dict(trailers or [])


@pytest.mark.parametrize("seed", range(12))
def test_botocore_unsigned_trailer(seed: int) -> None:
    rng = random.Random(seed)
    payload = rng.randbytes(rng.choice([0, 1, 5000, 100000]))
    checksum = [Crc32Checksum, CrtCrc32cChecksum][seed % 2]
    name = ["x-amz-checksum-crc32", "x-amz-checksum-crc32c"][seed % 2]
    wrapper = AwsChunkedWrapper(
        io.BytesIO(payload),
        checksum_cls=checksum,
        checksum_name=name,
        chunk_size=rng.randint(1, 9000),
    )
    body = wrapper.read()
    decoder = AwsChunkedDecoder(STREAMING_UNSIGNED_TRAILER, len(payload), None)
    decoded, trailers = decode(decoder, body, rng, largest=rng.choice([1, 7, None]))
    assert decoded == payload
    expected = checksum()
    expected.update(payload)
    assert trailers == {name: expected.b64digest()}


def test_one_byte_at_a_time() -> None:
    verified = example_verified(STREAMING_PAYLOAD, EXAMPLE_SEED)
    body = encode_signed([b"x" * 3000, b"y" * 17], verified, [("x-amz-checksum-crc32", "AAAAAA==")])
    decoder = AwsChunkedDecoder(STREAMING_PAYLOAD_TRAILER, 3017, verified)
    out = b"".join(b"".join(decoder.feed(body[i : i + 1])) for i in range(len(body)))
    assert out == b"x" * 3000 + b"y" * 17
    assert decoder.finish() == {"x-amz-checksum-crc32": "AAAAAA=="}


def test_large_chunk_passes_without_copy() -> None:
    verified = example_verified(STREAMING_PAYLOAD, EXAMPLE_SEED)
    data = bytes(8 * 1024 * 1024)
    body = encode_signed([data], verified)
    header_end = body.index(b"\r\n") + 2
    decoder = AwsChunkedDecoder(STREAMING_PAYLOAD, len(data), verified)
    assert decoder.feed(body[:header_end]) == []
    pieces = decoder.feed(data)
    assert len(pieces) == 1 and pieces[0] is data
    assert decoder.feed(body[header_end + len(data) :]) == []
    decoder.finish()


def _flip(body: bytes, index: int) -> bytes:
    return body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]


def _signed_example() -> Tuple[VerifiedSignature, bytes]:
    verified = example_verified(STREAMING_PAYLOAD, EXAMPLE_SEED)
    return verified, encode_signed([b"a" * 9000, b"b" * 1000], verified)


def _run(
    mode: str, body: bytes, verified: Optional[VerifiedSignature], length: Optional[int] = None
) -> None:
    decoder = AwsChunkedDecoder(mode, length, verified)
    decoder.feed(body)
    decoder.finish()


@pytest.mark.parametrize("where", [100, 9000, 9100, 9500])
def test_tampered_payload_byte(where: int) -> None:
    verified, body = _signed_example()
    # Offsets inside the payload of the first or second chunk, past its size line.
    first_line = body.index(b"\r\n") + 2
    index = first_line + where if where < 9000 else body.index(b"b") + (where - 9000)
    with pytest.raises(S3Error) as error:
        _run(STREAMING_PAYLOAD, _flip(body, index), verified)
    assert error.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("chunk", [0, 1, 2])
def test_tampered_chunk_signature(chunk: int) -> None:
    verified, body = _signed_example()
    position = -1
    for _ in range(chunk + 1):
        position = body.index(b"chunk-signature=", position + 1)
    index = position + len("chunk-signature=") + 5
    replacement = b"0" if body[index : index + 1] != b"0" else b"1"
    tampered = body[:index] + replacement + body[index + 1 :]
    with pytest.raises(S3Error) as error:
        _run(STREAMING_PAYLOAD, tampered, verified)
    assert error.value.code == "SignatureDoesNotMatch"


def test_reordered_chunks_do_not_match() -> None:
    verified = example_verified(STREAMING_PAYLOAD, EXAMPLE_SEED)
    body = encode_signed([b"a" * 10, b"b" * 10], verified)
    first = body.index(b"\r\n", body.index(b"\r\n") + 2) + 2
    second = body.index(b"\r\n", body.index(b"\r\n", first) + 2) + 2
    swapped = body[first:second] + body[:first] + body[second:]
    with pytest.raises(S3Error) as error:
        _run(STREAMING_PAYLOAD, swapped, verified)
    assert error.value.code == "SignatureDoesNotMatch"


def test_wrong_seed_does_not_match() -> None:
    verified, body = _signed_example()
    other = VerifiedSignature(
        verified.access_key_id, verified.signing_key, verified.scope, verified.timestamp,
        "0" * 64, verified.payload_hash,
    )
    with pytest.raises(S3Error) as error:
        _run(STREAMING_PAYLOAD, body, other)
    assert error.value.code == "SignatureDoesNotMatch"


def test_tampered_trailer() -> None:
    verified = example_verified(STREAMING_PAYLOAD, EXAMPLE_SEED)
    body = encode_signed([b"a" * 100], verified, [("x-amz-checksum-crc32", "AAAAAA==")])
    for tampered in (
        body.replace(b"AAAAAA==", b"AAAAAB=="),
        body.replace(b"x-amz-checksum-crc32:", b"x-amz-checksum-crc32c:"),
        _flip(body, body.index(b"x-amz-trailer-signature:") + 30),
    ):
        with pytest.raises(S3Error) as error:
            _run(STREAMING_PAYLOAD_TRAILER, tampered, verified)
        assert error.value.code == "SignatureDoesNotMatch"


def test_every_truncation_is_incomplete() -> None:
    verified = example_verified(STREAMING_PAYLOAD, EXAMPLE_SEED)
    bodies = [
        (STREAMING_PAYLOAD, encode_signed([b"a" * 50, b"b" * 20], verified), verified, 0),
        (
            STREAMING_PAYLOAD_TRAILER,
            encode_signed([b"a" * 50], verified, [("x-amz-checksum-crc32", "AAAAAA==")]),
            verified,
            2,  # the blank line that ends the trailers may be missing
        ),
        (
            STREAMING_UNSIGNED_TRAILER,
            b"32\r\n" + b"a" * 50 + b"\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n",
            None,
            2,
        ),
    ]
    for mode, body, seed, optional in bodies:
        _run(mode, body, seed, 70 if mode == STREAMING_PAYLOAD else 50)
        for cut in range(len(body) - optional):
            decoder = AwsChunkedDecoder(mode, None, seed)
            decoder.feed(body[:cut])
            with pytest.raises(S3Error) as error:
                decoder.finish()
            assert error.value.code == "IncompleteBody", (mode, cut)


def test_missing_final_chunk() -> None:
    verified, body = _signed_example()
    final = body.rindex(b"0;chunk-signature=")
    with pytest.raises(S3Error) as error:
        _run(STREAMING_PAYLOAD, body[:final], verified)
    assert error.value.code == "IncompleteBody"


def test_unsigned_trailer_without_trailer_is_incomplete() -> None:
    with pytest.raises(S3Error) as error:
        _run(STREAMING_UNSIGNED_TRAILER, b"1\r\na\r\n0\r\n\r\n", None)
    assert error.value.code == "IncompleteBody"


@pytest.mark.parametrize("length", [9999, 10001, 0])
def test_decoded_length_mismatch(length: int) -> None:
    verified, body = _signed_example()
    with pytest.raises(S3Error) as error:
        _run(STREAMING_PAYLOAD, body, verified, length)
    assert error.value.code == "IncompleteBody"


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\n",
        b"-1\r\n",
        b"\r\n",
        b"5 \r\nabcde\r\n",
        b"5\nabcde\r\n",
        b"1" * 5000,
        b"ffffffff\r\n",
        b"5\r\nabcdefg\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n",
        b"1\r\na\r\n0\r\nno-colon-here\r\n\r\n",
        b"1\r\na\r\n0\r\nx:1\r\n\r\nmore",
        b"1\r\na\r\n0\r\n" + b"".join(b"x-%d:1\r\n" % i for i in range(20)) + b"\r\n",
    ],
)
def test_malformed_framing(body: bytes) -> None:
    with pytest.raises(S3Error) as error:
        _run(STREAMING_UNSIGNED_TRAILER, body, None)
    assert error.value.code == "InvalidRequest"


def test_signed_chunk_without_signature() -> None:
    verified = example_verified(STREAMING_PAYLOAD, EXAMPLE_SEED)
    for line in (b"5\r\nabcde\r\n", b"5;chunk-signature=xyz\r\n", b"5;other=1\r\n"):
        with pytest.raises(S3Error) as error:
            _run(STREAMING_PAYLOAD, line, verified)
        assert error.value.code == "InvalidRequest"


def test_constructor_contract() -> None:
    with pytest.raises(ValueError):
        AwsChunkedDecoder("UNSIGNED-PAYLOAD", None, None)
    with pytest.raises(ValueError):
        AwsChunkedDecoder(STREAMING_PAYLOAD, None, None)
