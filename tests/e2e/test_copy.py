"""
CopyObject and UploadPartCopy through boto3 against the daemon (within a bucket, between buckets
of one user, onto itself, with the copy-source conditions and the metadata directive), and reads of
one part of a multipart object (``partNumber``, ``x-amz-mp-parts-count``).
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.e2e.clients import Daemon, error_of, multipart_etag
from tests.e2e.conftest import Bucket, add_bucket, boto3_client

MiB = 1024 * 1024
HOUR = timedelta(hours=1)
WRONG_ETAG = '"' + "0" * 32 + '"'


def md5_etag(body: bytes) -> str:
    return '"' + hashlib.md5(body).hexdigest() + '"'


def status(response: dict) -> int:
    return response["ResponseMetadata"]["HTTPStatusCode"]


def stored(s3, bucket: Bucket, key: str) -> bytes:
    return s3.get_object(Bucket=bucket.name, Key=key)["Body"].read()


def source_of(bucket: Bucket, key: str) -> dict:
    return {"Bucket": bucket.name, "Key": key}


@pytest.fixture
def other_bucket(gateway: Daemon, tmp_path: Path) -> Bucket:
    return add_bucket(gateway, tmp_path / "other-buckets")


# CopyObject


def test_copy_within_bucket(s3, bucket: Bucket) -> None:
    body = os.urandom(70_000)
    s3.put_object(
        Bucket=bucket.name, Key="src.bin", Body=body, ContentType="application/x-src",
        Metadata={"colour": "blue"}, ContentDisposition='attachment; filename="src.bin"',
        CacheControl="max-age=60",
    )  # fmt: skip
    before = datetime.now(timezone.utc) - timedelta(seconds=2)
    answer = s3.copy_object(
        Bucket=bucket.name, Key="dst.bin", CopySource=source_of(bucket, "src.bin")
    )
    result = answer["CopyObjectResult"]
    assert result["ETag"] == md5_etag(body)
    assert before <= result["LastModified"] <= datetime.now(timezone.utc) + timedelta(seconds=2)
    assert stored(s3, bucket, "dst.bin") == body
    assert (bucket.path / "dst.bin").read_bytes() == body
    assert stored(s3, bucket, "src.bin") == body
    head = s3.head_object(Bucket=bucket.name, Key="dst.bin")
    # The default directive, COPY, takes the source's metadata and stored headers.
    assert head["ContentType"] == "application/x-src"
    assert head["Metadata"] == {"colour": "blue"}
    assert head["ContentDisposition"] == 'attachment; filename="src.bin"'
    assert head["CacheControl"] == "max-age=60"
    assert head["ETag"] == md5_etag(body)


def test_copy_metadata_directive_replace(s3, bucket: Bucket) -> None:
    s3.put_object(
        Bucket=bucket.name, Key="src", Body=b"payload", ContentType="text/plain",
        Metadata={"old": "1"},
    )  # fmt: skip
    s3.copy_object(
        Bucket=bucket.name, Key="dst", CopySource=source_of(bucket, "src"),
        MetadataDirective="REPLACE", ContentType="application/json", Metadata={"new": "2"},
    )  # fmt: skip
    head = s3.head_object(Bucket=bucket.name, Key="dst")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"new": "2"}
    assert stored(s3, bucket, "dst") == b"payload"
    assert s3.head_object(Bucket=bucket.name, Key="src")["Metadata"] == {"old": "1"}


def test_copy_metadata_directive_copy_ignores_given_metadata(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="src", Body=b"p", Metadata={"old": "1"})
    s3.copy_object(
        Bucket=bucket.name, Key="dst", CopySource=source_of(bucket, "src"),
        MetadataDirective="COPY", Metadata={"ignored": "x"},
    )  # fmt: skip
    assert s3.head_object(Bucket=bucket.name, Key="dst")["Metadata"] == {"old": "1"}


def test_copy_replaces_existing_destination(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="src", Body=b"new bytes")
    s3.put_object(Bucket=bucket.name, Key="dst", Body=b"old bytes, longer than the new")
    s3.copy_object(Bucket=bucket.name, Key="dst", CopySource=source_of(bucket, "src"))
    assert stored(s3, bucket, "dst") == b"new bytes"


@pytest.mark.parametrize(
    "key", ["dir/ü space+plus.txt", "100% sure?.txt", "a&b=c;d#e.bin", "~tilde/x'y\"z"]
)
def test_copy_source_url_encoded(s3, bucket: Bucket, key: str) -> None:
    body = key.encode() * 3
    s3.put_object(Bucket=bucket.name, Key=key, Body=body)
    s3.copy_object(Bucket=bucket.name, Key=key + ".copy", CopySource=source_of(bucket, key))
    assert stored(s3, bucket, key + ".copy") == body


def test_copy_source_as_string(s3, bucket: Bucket) -> None:
    """
    The ``/bucket/key`` form, with a leading slash (boto3 percent-encodes the string).
    """
    s3.put_object(Bucket=bucket.name, Key="a b/c.txt", Body=b"string form")
    s3.copy_object(Bucket=bucket.name, Key="copied", CopySource=f"/{bucket.name}/a b/c.txt")
    assert stored(s3, bucket, "copied") == b"string form"


def test_copy_between_buckets(s3, bucket: Bucket, other_bucket: Bucket) -> None:
    body = os.urandom(3 * MiB + 17)
    s3.put_object(Bucket=bucket.name, Key="from/here", Body=body, Metadata={"k": "v"})
    answer = s3.copy_object(
        Bucket=other_bucket.name, Key="to/there", CopySource=source_of(bucket, "from/here")
    )
    assert answer["CopyObjectResult"]["ETag"] == md5_etag(body)
    assert stored(s3, other_bucket, "to/there") == body
    assert (other_bucket.path / "to" / "there").read_bytes() == body
    assert s3.head_object(Bucket=other_bucket.name, Key="to/there")["Metadata"] == {"k": "v"}


def test_copy_from_another_users_bucket_refused(
    gateway: Daemon, s3, bucket: Bucket, tmp_path: Path
) -> None:
    access, secret = gateway.add_user(f"copier-{bucket.name}")
    theirs = boto3_client(gateway.endpoint, access, secret)
    their_bucket = add_bucket(gateway, tmp_path / "theirs", user=f"copier-{bucket.name}")
    theirs.put_object(Bucket=their_bucket.name, Key="secret", Body=b"not yours")
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(
            Bucket=bucket.name, Key="stolen", CopySource=source_of(their_bucket, "secret")
        )
    assert error_of(excinfo) in (("AccessDenied", 403), ("NoSuchBucket", 404))
    assert not (bucket.path / "stolen").exists()


def test_copy_onto_itself_with_replace_updates_metadata(s3, bucket: Bucket) -> None:
    body = os.urandom(5000)
    s3.put_object(
        Bucket=bucket.name, Key="self", Body=body, ContentType="text/old", Metadata={"v": "1"}
    )
    answer = s3.copy_object(
        Bucket=bucket.name, Key="self", CopySource=source_of(bucket, "self"),
        MetadataDirective="REPLACE", ContentType="text/new", Metadata={"v": "2", "extra": "x"},
    )  # fmt: skip
    assert answer["CopyObjectResult"]["ETag"] == md5_etag(body)
    head = s3.head_object(Bucket=bucket.name, Key="self")
    assert head["ContentType"] == "text/new"
    assert head["Metadata"] == {"v": "2", "extra": "x"}
    assert stored(s3, bucket, "self") == body


def test_copy_onto_itself_without_replace_refused(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="self", Body=b"same", Metadata={"v": "1"})
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket.name, Key="self", CopySource=source_of(bucket, "self"))
    assert error_of(excinfo) == ("InvalidRequest", 400)
    assert s3.head_object(Bucket=bucket.name, Key="self")["Metadata"] == {"v": "1"}


def test_copy_missing_source(s3, bucket: Bucket) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=bucket.name, Key="dst", CopySource=source_of(bucket, "absent"))
    assert error_of(excinfo) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(
            Bucket=bucket.name, Key="dst",
            CopySource={"Bucket": "e2e-no-such-bucket", "Key": "x"},
        )  # fmt: skip
    assert error_of(excinfo) == ("NoSuchBucket", 404)
    assert not (bucket.path / "dst").exists()


def test_copy_into_missing_bucket(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="src", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(
            Bucket="e2e-no-such-bucket", Key="dst", CopySource=source_of(bucket, "src")
        )
    assert error_of(excinfo) == ("NoSuchBucket", 404)


def test_copy_into_read_only_bucket(gateway: Daemon, s3, bucket: Bucket, tmp_path: Path) -> None:
    frozen = add_bucket(gateway, tmp_path / "ro", read_only=True)
    s3.put_object(Bucket=bucket.name, Key="src", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(Bucket=frozen.name, Key="dst", CopySource=source_of(bucket, "src"))
    assert error_of(excinfo) == ("AccessDenied", 403)
    assert not (frozen.path / "dst").exists()


# The x-amz-copy-source-if-* conditions


@pytest.fixture
def src(s3, bucket: Bucket):
    body = b"conditional source"
    s3.put_object(Bucket=bucket.name, Key="src", Body=body)
    head = s3.head_object(Bucket=bucket.name, Key="src")
    return head["ETag"], head["LastModified"], body


def _copy_status(s3, bucket: Bucket, **conditions) -> int:
    try:
        answer = s3.copy_object(
            Bucket=bucket.name, Key="dst", CopySource=source_of(bucket, "src"), **conditions
        )
    except ClientError as error:
        assert error.response["Error"]["Code"] == "PreconditionFailed"
        return int(error.response["ResponseMetadata"]["HTTPStatusCode"])
    return status(answer)


def test_copy_source_if_match(s3, bucket: Bucket, src) -> None:
    etag, _, body = src
    assert _copy_status(s3, bucket, CopySourceIfMatch=WRONG_ETAG) == 412
    assert not (bucket.path / "dst").exists()
    assert _copy_status(s3, bucket, CopySourceIfMatch=etag) == 200
    assert stored(s3, bucket, "dst") == body


def test_copy_source_if_none_match(s3, bucket: Bucket, src) -> None:
    etag, _, body = src
    assert _copy_status(s3, bucket, CopySourceIfNoneMatch=etag) == 412
    assert not (bucket.path / "dst").exists()
    assert _copy_status(s3, bucket, CopySourceIfNoneMatch=WRONG_ETAG) == 200
    assert stored(s3, bucket, "dst") == body


def test_copy_source_if_modified_since(s3, bucket: Bucket, src) -> None:
    _, modified, _ = src
    assert _copy_status(s3, bucket, CopySourceIfModifiedSince=modified + HOUR) == 412
    assert not (bucket.path / "dst").exists()
    assert _copy_status(s3, bucket, CopySourceIfModifiedSince=modified - HOUR) == 200


def test_copy_source_if_unmodified_since(s3, bucket: Bucket, src) -> None:
    _, modified, _ = src
    assert _copy_status(s3, bucket, CopySourceIfUnmodifiedSince=modified - HOUR) == 412
    assert not (bucket.path / "dst").exists()
    assert _copy_status(s3, bucket, CopySourceIfUnmodifiedSince=modified + HOUR) == 200


def test_copy_source_if_match_wins_over_unmodified_since(s3, bucket: Bucket, src) -> None:
    etag, modified, _ = src
    assert _copy_status(
        s3, bucket, CopySourceIfMatch=etag, CopySourceIfUnmodifiedSince=modified - HOUR
    ) == 200


def test_copy_with_destination_if_none_match(s3, bucket: Bucket, src) -> None:
    _, _, body = src
    assert status(
        s3.copy_object(
            Bucket=bucket.name, Key="dst", CopySource=source_of(bucket, "src"), IfNoneMatch="*"
        )
    ) == 200
    s3.put_object(Bucket=bucket.name, Key="src", Body=b"changed")
    with pytest.raises(ClientError) as excinfo:
        s3.copy_object(
            Bucket=bucket.name, Key="dst", CopySource=source_of(bucket, "src"), IfNoneMatch="*"
        )
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    assert stored(s3, bucket, "dst") == body


# UploadPartCopy and reads by part number


def test_upload_part_copy_with_ranges(s3, bucket: Bucket, other_bucket: Bucket) -> None:
    source = os.urandom(10 * MiB + 123)
    s3.put_object(Bucket=bucket.name, Key="big", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=other_bucket.name, Key="assembled")["UploadId"]
    first_range = (0, 5 * MiB - 1)
    second_range = (5 * MiB, len(source) - 1)
    layout = []
    for number, (first, last) in enumerate((first_range, second_range), 1):
        answer = s3.upload_part_copy(
            Bucket=other_bucket.name, Key="assembled", UploadId=upload_id, PartNumber=number,
            CopySource=source_of(bucket, "big"), CopySourceRange=f"bytes={first}-{last}",
        )  # fmt: skip
        assert answer["CopyPartResult"]["ETag"] == md5_etag(source[first : last + 1])
        layout.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
    # A part may also be uploaded the ordinary way next to copied ones.
    tail = b"uploaded tail"
    third = s3.upload_part(
        Bucket=other_bucket.name, Key="assembled", UploadId=upload_id, PartNumber=3, Body=tail
    )
    layout.append({"PartNumber": 3, "ETag": third["ETag"]})
    listed = s3.list_parts(Bucket=other_bucket.name, Key="assembled", UploadId=upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [
        (1, 5 * MiB), (2, len(source) - 5 * MiB), (3, len(tail))
    ]  # fmt: skip
    done = s3.complete_multipart_upload(
        Bucket=other_bucket.name, Key="assembled", UploadId=upload_id,
        MultipartUpload={"Parts": layout},
    )  # fmt: skip
    pieces = [source[: 5 * MiB], source[5 * MiB :], tail]
    assert done["ETag"] == '"' + multipart_etag(pieces) + '"'
    assert stored(s3, other_bucket, "assembled") == source + tail


def test_upload_part_copy_whole_object(s3, bucket: Bucket) -> None:
    source = os.urandom(5 * MiB)
    s3.put_object(Bucket=bucket.name, Key="whole", Body=source)
    upload_id = s3.create_multipart_upload(Bucket=bucket.name, Key="dup")["UploadId"]
    part = s3.upload_part_copy(
        Bucket=bucket.name, Key="dup", UploadId=upload_id, PartNumber=1,
        CopySource=source_of(bucket, "whole"),
    )  # fmt: skip
    assert part["CopyPartResult"]["ETag"] == md5_etag(source)
    s3.complete_multipart_upload(
        Bucket=bucket.name, Key="dup", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]},
    )  # fmt: skip
    assert stored(s3, bucket, "dup") == source


def test_upload_part_copy_errors(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="small", Body=b"0123456789")
    upload_id = s3.create_multipart_upload(Bucket=bucket.name, Key="mp")["UploadId"]

    def copy_part(**kwargs) -> tuple:
        arguments = dict(
            Bucket=bucket.name, Key="mp", UploadId=upload_id, PartNumber=1,
            CopySource=source_of(bucket, "small"),
        )  # fmt: skip
        arguments.update(kwargs)
        with pytest.raises(ClientError) as excinfo:
            s3.upload_part_copy(**arguments)
        return error_of(excinfo)

    assert copy_part(CopySourceRange="bytes=5-10") == ("InvalidRange", 416)
    assert copy_part(CopySourceRange="bytes=0-")[0] == "InvalidArgument"
    assert copy_part(CopySource=source_of(bucket, "absent")) == ("NoSuchKey", 404)
    assert copy_part(UploadId="no-such-upload") == ("NoSuchUpload", 404)
    assert copy_part(CopySourceIfMatch=WRONG_ETAG) == ("PreconditionFailed", 412)
    assert s3.list_parts(Bucket=bucket.name, Key="mp", UploadId=upload_id).get("Parts", []) == []


@pytest.fixture
def multipart_object(s3, bucket: Bucket):
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB + 7), b"last part"]
    upload_id = s3.create_multipart_upload(Bucket=bucket.name, Key="parts")["UploadId"]
    layout = []
    for number, data in enumerate(parts, 1):
        answer = s3.upload_part(
            Bucket=bucket.name, Key="parts", UploadId=upload_id, PartNumber=number, Body=data
        )
        layout.append({"PartNumber": number, "ETag": answer["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket.name, Key="parts", UploadId=upload_id, MultipartUpload={"Parts": layout}
    )
    return parts


def test_get_part_number(s3, bucket: Bucket, multipart_object) -> None:
    parts = multipart_object
    total = sum(map(len, parts))
    offset = 0
    for number, data in enumerate(parts, 1):
        response = s3.get_object(Bucket=bucket.name, Key="parts", PartNumber=number)
        assert status(response) == 206
        assert response["PartsCount"] == len(parts)
        assert response["ContentLength"] == len(data)
        assert response["ContentRange"] == f"bytes {offset}-{offset + len(data) - 1}/{total}"
        assert response["ETag"] == '"' + multipart_etag(parts) + '"'
        assert response["Body"].read() == data
        offset += len(data)


def test_head_part_number(s3, bucket: Bucket, multipart_object) -> None:
    parts = multipart_object
    head = s3.head_object(Bucket=bucket.name, Key="parts", PartNumber=2)
    assert head["PartsCount"] == 3
    assert head["ContentLength"] == len(parts[1])
    whole = s3.head_object(Bucket=bucket.name, Key="parts")
    assert whole["ContentLength"] == sum(map(len, parts))


def test_part_number_out_of_range(s3, bucket: Bucket, multipart_object) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket.name, Key="parts", PartNumber=4)
    assert error_of(excinfo) == ("InvalidPartNumber", 416)


def test_part_number_with_range_refused(s3, bucket: Bucket, multipart_object) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket.name, Key="parts", PartNumber=1, Range="bytes=0-9")
    assert error_of(excinfo)[1] == 400


def test_part_number_of_single_part_object(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="plain", Body=b"one piece")
    response = s3.get_object(Bucket=bucket.name, Key="plain", PartNumber=1)
    assert response["Body"].read() == b"one piece"
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket.name, Key="plain", PartNumber=2)
    assert error_of(excinfo) == ("InvalidPartNumber", 416)


def test_copy_of_multipart_object(s3, bucket: Bucket, multipart_object) -> None:
    parts = multipart_object
    s3.copy_object(Bucket=bucket.name, Key="parts.copy", CopySource=source_of(bucket, "parts"))
    assert stored(s3, bucket, "parts.copy") == b"".join(parts)
