"""
Tests of :mod:`gateway.s3.ranges`: every form of the ``Range`` header S3 clients send, and the
malformed ones that are ignored (whole object) rather than refused.
"""

from __future__ import annotations

from typing import Optional

import pytest

from gateway.model import ByteRange
from gateway.s3.ranges import UnsatisfiableRange, content_range, parse_range

SIZE = 1000


@pytest.mark.parametrize(
    "header, size, expected",
    [
        # a-b
        ("bytes=0-0", SIZE, ByteRange(0, 0)),
        ("bytes=0-499", SIZE, ByteRange(0, 499)),
        ("bytes=500-999", SIZE, ByteRange(500, 999)),
        ("bytes=10-10", SIZE, ByteRange(10, 10)),
        ("bytes=999-999", SIZE, ByteRange(999, 999)),
        # a-b with b past the end: clamped to the last byte
        ("bytes=500-1000", SIZE, ByteRange(500, 999)),
        ("bytes=0-99999999999999999999", SIZE, ByteRange(0, 999)),
        ("bytes=0-0", 1, ByteRange(0, 0)),
        # a-
        ("bytes=0-", SIZE, ByteRange(0, 999)),
        ("bytes=900-", SIZE, ByteRange(900, 999)),
        ("bytes=999-", SIZE, ByteRange(999, 999)),
        # -n: the last n bytes
        ("bytes=-1", SIZE, ByteRange(999, 999)),
        ("bytes=-500", SIZE, ByteRange(500, 999)),
        ("bytes=-1000", SIZE, ByteRange(0, 999)),
        # -n with n above the size: the whole object
        ("bytes=-1001", SIZE, ByteRange(0, 999)),
        ("bytes=-5000", 10, ByteRange(0, 9)),
        # 8 MiB parts as the aws cli and boto3 ask them
        ("bytes=8388608-16777215", 20_000_000, ByteRange(8388608, 16777215)),
        ("bytes=16777216-25165823", 20_000_000, ByteRange(16777216, 19999999)),
    ],
)
def test_satisfiable(header: str, size: int, expected: ByteRange) -> None:
    result = parse_range(header, size)
    assert result == expected
    assert result is not None and result.length == expected.last - expected.first + 1


@pytest.mark.parametrize(
    "header",
    [
        " bytes=0-9",
        "bytes = 0-9",
        "bytes= 0-9",
        "bytes=0-9 ",
        "bytes=0 - 9",
        "BYTES=0-9",
        "Bytes=0-9",
    ],
)
def test_whitespace_and_case(header: str) -> None:
    """
    Whitespace around the parts and the unit's case do not matter.
    """
    assert parse_range(header, SIZE) == ByteRange(0, 9)


@pytest.mark.parametrize(
    "header, size",
    [
        ("bytes=1000-", SIZE),
        ("bytes=1000-1000", SIZE),
        ("bytes=1000-2000", SIZE),
        ("bytes=5000-", SIZE),
        ("bytes=-0", SIZE),
        ("bytes=0-0", 0),
        ("bytes=0-", 0),
        ("bytes=-1", 0),
        ("bytes=-0", 0),
    ],
)
def test_unsatisfiable(header: str, size: int) -> None:
    """
    A range that starts at or past the end, a zero-length suffix, and any range of an empty
    object select no byte: 416 InvalidRange.
    """
    with pytest.raises(UnsatisfiableRange):
        parse_range(header, size)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=abc",
        "bytes=a-b",
        "bytes=1-a",
        "bytes=a-1",
        "bytes=5",
        "bytes=1-2-3",
        "bytes=+1-2",
        "bytes=1-+2",
        "bytes=-+5",
        "bytes=1.5-2",
        "bytes=0x10-0x20",
        "bytes=--5",
        "bytes=9-5",
        "0-9",
        "=0-9",
        "items=0-9",
        "none",
        "chars=0-9",
    ],
)
def test_ignored(header: Optional[str]) -> None:
    """
    No header, a malformed one, a backwards one and another unit all mean the whole object
    (RFC 9110 lets a server ignore a Range it cannot use).
    """
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize("header", ["bytes=\u00b2-5", "bytes=0-\u00b9", "bytes=-\u00b3"])
def test_superscript_digits_ignored(header: str) -> None:
    """
    A header is decoded as latin-1, where the bytes 0xB2, 0xB3, 0xB9 are superscript digits:
    not numbers, so the header is malformed and ignored.
    """
    assert parse_range(header, SIZE) is None


def test_non_ascii_digits_ignored() -> None:
    assert parse_range("bytes=\u0661-\u0662", SIZE) is None  # Arabic-Indic 1 and 2


@pytest.mark.parametrize(
    "header",
    ["bytes=0-9,20-29", "bytes=0-9, 20-29", "bytes=-5,0-1", "bytes=0-9,", "bytes=,0-9"],
)
def test_multiple_ranges_mean_whole_object(header: str) -> None:
    assert parse_range(header, SIZE) is None


def test_multiple_ranges_even_when_unsatisfiable() -> None:
    """
    Several ranges are ignored before any is checked against the size.
    """
    assert parse_range("bytes=5000-6000,7000-8000", SIZE) is None


@pytest.mark.parametrize(
    "byte_range, size, expected",
    [
        (ByteRange(0, 0), 1, "bytes 0-0/1"),
        (ByteRange(0, 499), 1000, "bytes 0-499/1000"),
        (ByteRange(500, 999), 1000, "bytes 500-999/1000"),
        (ByteRange(8388608, 16777215), 20000000, "bytes 8388608-16777215/20000000"),
    ],
)
def test_content_range(byte_range: ByteRange, size: int, expected: str) -> None:
    assert content_range(byte_range, size) == expected


@pytest.mark.parametrize(
    "header", ["bytes=0-0", "bytes=3-7", "bytes=-4", "bytes=990-", "bytes=5-5000"]
)
def test_round_trip_selects_the_right_bytes(header: str) -> None:
    """
    The range and its Content-Range agree with Python's slicing of the object.
    """
    body = bytes(range(256)) * 4  # 1024 bytes
    byte_range = parse_range(header, len(body))
    assert byte_range is not None
    selected = body[byte_range.first : byte_range.last + 1]
    assert len(selected) == byte_range.length
    first, last = header[len("bytes=") :].split("-")
    if first == "":
        assert selected == body[-int(last) :]
    else:
        assert selected == body[int(first) : (int(last) + 1 if last else None)]
    assert content_range(byte_range, len(body)) == (
        f"bytes {byte_range.first}-{byte_range.first + len(selected) - 1}/{len(body)}"
    )
