"""
The digests of an upload's body, computed in one pass as it streams through.

Every PUT needs the MD5 for its ETag; a client may also ask S3 to check the body against the
``x-amz-content-sha256`` payload hash ("Authenticating Requests (AWS Signature Version 4)"),
against ``Content-MD5`` (RFC 1864, "PutObject"), or against one additional checksum sent in an
``x-amz-checksum-*`` header or, with aws-chunked bodies, in a trailer ("Checking object integrity
in Amazon S3"). The body is never read twice: each piece is fed once to each distinct algorithm,
and a failed check answers the S3 error before anything is committed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from typing import Callable, Dict, Mapping, Optional, Protocol, Sequence, Tuple

from awscrt import checksums as crt

from gateway.s3.errors import S3Error


class _Hasher(Protocol):
    def update(self, data: bytes) -> None: ...

    def digest(self) -> bytes: ...


class _Crc:
    """
    A running CRC (zlib's CRC32, or the CRT's CRC32C and CRC64NVME), big-endian as S3 sends it.
    """

    def __init__(self, function: Callable[[bytes, int], int], width: int) -> None:
        self._function = function
        self._width = width
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = self._function(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._width, "big")


class _XXHash:
    """
    The CRT's xxHash, whose ``finalize`` may be called once only.
    """

    def __init__(self, factory: Callable[[], crt.XXHash]) -> None:
        self._hash = factory()
        self._digest: Optional[bytes] = None

    def update(self, data: bytes) -> None:
        self._hash.update(data)

    def digest(self) -> bytes:
        if self._digest is None:
            self._digest = self._hash.finalize()
        return self._digest


#: The checksum algorithms of S3's ``ChecksumAlgorithm``, by their upper-case names.
ALGORITHMS: Dict[str, Callable[[], _Hasher]] = {
    "CRC32": lambda: _Crc(zlib.crc32, 4),
    "CRC32C": lambda: _Crc(crt.crc32c, 4),
    "CRC64NVME": lambda: _Crc(crt.crc64nvme, 8),
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
    "MD5": hashlib.md5,
    "XXHASH64": lambda: _XXHash(crt.XXHash.new_xxhash64),
    "XXHASH3": lambda: _XXHash(crt.XXHash.new_xxhash3_64),
    "XXHASH128": lambda: _XXHash(crt.XXHash.new_xxhash3_128),
}
_DIGEST_SIZES = {
    "CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32, "SHA512": 64,
    "MD5": 16, "XXHASH64": 8, "XXHASH3": 8, "XXHASH128": 16,
}  # fmt: skip
_PREFIX = "x-amz-checksum-"
_HEX_SHA256 = re.compile(r"\A[0-9a-fA-F]{64}\Z")


def header_name(algorithm: str) -> str:
    """
    The header that carries a checksum, e.g. ``x-amz-checksum-crc32`` for ``CRC32``.
    """
    return _PREFIX + algorithm.lower()


#: Each algorithm with the header that carries its checksum.
_HEADER_NAMES = [(algorithm, header_name(algorithm)) for algorithm in ALGORITHMS]


def _decode(value: str, size: int) -> Optional[bytes]:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None


def _first(headers: Mapping[str, Sequence[str]], name: str) -> Optional[str]:
    values = headers.get(name)
    return values[0] if values else None


def _multiple() -> S3Error:
    return S3Error(
        "InvalidRequest",
        "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
    )


class BodyDigests:
    """
    The digests of one request body, and the checks its headers ask for.

    :param headers: the request's headers, lower-case names.
    :param payload_hash: its x-amz-content-sha256 value, if any: a hex SHA-256 is checked.
    :raise S3Error: ``InvalidDigest`` for a malformed Content-MD5, ``InvalidRequest`` for malformed
        or conflicting checksum headers.
    """

    def __init__(self, headers: Mapping[str, Sequence[str]], payload_hash: Optional[str]) -> None:
        self._size = 0
        self._hashers: Dict[str, _Hasher] = {"MD5": hashlib.md5()}
        self._payload_sha256: Optional[str] = None
        if payload_hash is not None and _HEX_SHA256.match(payload_hash):
            self._payload_sha256 = payload_hash.lower()
            self._add("SHA256")
        self._content_md5: Optional[str] = None
        content_md5 = _first(headers, "content-md5")
        if content_md5 is not None:
            if _decode(content_md5, 16) is None:
                raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.")
            self._content_md5 = content_md5.strip()
        self.algorithm: Optional[str] = None
        self._expected: Optional[str] = None
        self._in_trailer = False
        self._choose_checksum(headers)
        if self.algorithm is not None:
            self._add(self.algorithm)

    def _add(self, algorithm: str) -> None:
        if algorithm not in self._hashers:
            self._hashers[algorithm] = ALGORITHMS[algorithm]()

    def _choose_checksum(self, headers: Mapping[str, Sequence[str]]) -> None:
        sent = [a for a, name in _HEADER_NAMES if name in headers]
        announced = []
        for name in (_first(headers, "x-amz-trailer") or "").split(","):
            name = name.strip().lower()
            if name.startswith(_PREFIX):
                if name[len(_PREFIX) :].upper() not in ALGORITHMS:
                    raise S3Error(
                        "InvalidRequest",
                        "The value specified in the x-amz-trailer header is not supported",
                    )
                announced.append(name[len(_PREFIX) :].upper())
        if len(sent) + len(announced) > 1:
            raise _multiple()
        sdk = _first(headers, "x-amz-sdk-checksum-algorithm")
        if sdk is not None:
            sdk = sdk.strip().upper()
            if sdk not in ALGORITHMS or (sent + announced and sent + announced != [sdk]):
                raise S3Error(
                    "InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid."
                )
        if sent:
            self.algorithm = sent[0]
            self._expected = _first(headers, header_name(self.algorithm))
            self._check_value(self._expected or "", "header")
        elif announced:
            self.algorithm = announced[0]
            self._in_trailer = True
        else:
            # Announced alone, it is computed and echoed, as S3 stores it for the object.
            self.algorithm = sdk

    def _check_value(self, value: str, where: str) -> None:
        assert self.algorithm is not None
        if _decode(value, _DIGEST_SIZES[self.algorithm]) is None:
            raise S3Error(
                "InvalidRequest",
                f"Value for {header_name(self.algorithm)} {where} is invalid.",
            )

    @property
    def size(self) -> int:
        """
        How many bytes have been hashed.
        """
        return self._size

    def update(self, data: bytes) -> None:
        """
        Hash the next piece of the body, once per distinct algorithm.
        """
        self._size += len(data)
        for hasher in self._hashers.values():
            hasher.update(data)

    def set_trailer(self, trailers: Mapping[str, str]) -> None:
        """
        Take the checksum that an aws-chunked body carried in its trailer.

        :raise S3Error: ``InvalidRequest`` for a checksum trailer that was not announced in
            x-amz-trailer (the body has passed: it cannot be hashed again) or a malformed one.
        """
        for name, value in trailers.items():
            name = name.lower()
            if not name.startswith(_PREFIX):
                continue
            if not self._in_trailer or self.algorithm is None:
                raise S3Error("InvalidRequest", f"The trailer {name} was not announced.")
            if name != header_name(self.algorithm):
                raise _multiple()
            self._check_value(value, "trailing header")
            self._expected = value.strip()

    def verify(self) -> None:
        """
        Check the whole body against what the client said of it.

        :raise S3Error: ``XAmzContentSHA256Mismatch``, ``BadDigest``, or ``InvalidRequest`` when
            an announced trailer checksum never came.
        """
        if self._payload_sha256 is not None:
            computed = self._hashers["SHA256"].digest().hex()
            if computed != self._payload_sha256:
                raise S3Error(
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    ClientComputedContentSHA256=self._payload_sha256,
                    S3ComputedContentSHA256=computed,
                )
        if self._content_md5 is not None:
            computed = base64.b64encode(self.md5_digest).decode("ascii")
            if _decode(self._content_md5, 16) != self.md5_digest:
                raise S3Error(
                    "BadDigest",
                    "The Content-MD5 you specified did not match what we received.",
                    ExpectedDigest=self._content_md5,
                    CalculatedDigest=computed,
                )
        if self.algorithm is None:
            return
        if self._expected is None and self._in_trailer:
            raise S3Error(
                "InvalidRequest",
                f"The {header_name(self.algorithm)} trailer announced in x-amz-trailer is missing.",
            )
        digest = self._hashers[self.algorithm].digest()
        if self._expected is not None and _decode(self._expected, len(digest)) != digest:
            raise S3Error(
                "BadDigest",
                f"The {self.algorithm} you specified did not match the calculated checksum.",
            )

    def _computed(self) -> str:
        assert self.algorithm is not None
        return base64.b64encode(self._hashers[self.algorithm].digest()).decode("ascii")

    @property
    def md5_digest(self) -> bytes:
        return self._hashers["MD5"].digest()

    @property
    def md5_hex(self) -> str:
        """
        The hex MD5 of the body: a single-part object's ETag, without quotes.
        """
        return self.md5_digest.hex()

    def checksum_header(self) -> Optional[Tuple[str, str]]:
        """
        The ``x-amz-checksum-*`` header and base64 value to answer, if the client chose one.
        """
        if self.algorithm is None:
            return None
        return header_name(self.algorithm), self._computed()
