"""
Pure pieces of the multipart family: upload ids, part lists, the multipart ETag.
"""

from __future__ import annotations

import hashlib

import pytest

from gateway.model import UploadedPart
from gateway.s3.errors import S3Error
from gateway.s3.multipart import (
    MIN_PART_SIZE,
    check_parts,
    multipart_etag,
    new_upload_id,
    parse_part_list,
)


def test_upload_ids_are_letters_and_digits() -> None:
    ids = {new_upload_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 48 and i.isascii() and i.isalnum() for i in ids)


def part(number: int, size: int, body: bytes = b"") -> UploadedPart:
    return UploadedPart("u", number, hashlib.md5(body or bytes([number])).hexdigest(), size, 0.0)


def test_part_list_is_parsed_in_document_order() -> None:
    document = (
        b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b'<Part><PartNumber>1</PartNumber><ETag>"aa"</ETag></Part>'
        b"<Part><PartNumber>3</PartNumber><ETag>bb</ETag></Part>"
        b"</CompleteMultipartUpload>"
    )
    assert parse_part_list(document) == [(1, "aa"), (3, "bb")]


def test_empty_part_list_is_malformed() -> None:
    with pytest.raises(S3Error) as caught:
        parse_part_list(b"<CompleteMultipartUpload></CompleteMultipartUpload>")
    assert caught.value.code == "MalformedXML"


def test_parts_are_checked_as_s3_checks_them() -> None:
    uploaded = [part(1, MIN_PART_SIZE), part(2, 10), part(3, 10)]
    chosen = check_parts([(1, uploaded[0].etag), (3, uploaded[2].etag)], uploaded)
    assert [p.part_number for p in chosen] == [1, 3]
    for requested, code in [
        ([(2, uploaded[1].etag), (1, uploaded[0].etag)], "InvalidPartOrder"),
        ([(1, uploaded[0].etag), (1, uploaded[0].etag)], "InvalidPartOrder"),
        ([(1, "0" * 32)], "InvalidPart"),
        ([(4, uploaded[0].etag)], "InvalidPart"),
        ([(2, uploaded[1].etag), (3, uploaded[2].etag)], "EntityTooSmall"),
    ]:
        with pytest.raises(S3Error) as caught:
            check_parts(requested, uploaded)
        assert caught.value.code == code, requested


def test_multipart_etag_is_md5_of_part_md5s() -> None:
    parts = [part(1, 1, b"one"), part(2, 1, b"two")]
    expected = hashlib.md5(hashlib.md5(b"one").digest() + hashlib.md5(b"two").digest())
    assert multipart_etag(parts) == expected.hexdigest() + "-2"
