"""
Object tagging through boto3 against the daemon: Get/Put/DeleteObjectTagging, ``x-amz-tagging``
on PutObject, CreateMultipartUpload and CopyObject, and S3's limits (10 tags, keys up to 128
characters, values up to 256).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlencode

import pytest
from botocore.exceptions import ClientError

from tests.e2e.clients import Daemon, error_of
from tests.e2e.conftest import Bucket, add_bucket, boto3_client

MiB = 1024 * 1024


def tag_set(tags: dict) -> list:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tags_of(s3, bucket: Bucket, key: str) -> dict:
    answer = s3.get_object_tagging(Bucket=bucket.name, Key=key)
    return {t["Key"]: t["Value"] for t in answer["TagSet"]}


def put_tags(s3, bucket: Bucket, key: str, tags: dict) -> dict:
    return s3.put_object_tagging(Bucket=bucket.name, Key=key, Tagging={"TagSet": tag_set(tags)})


def test_put_object_with_tagging_header(s3, bucket: Bucket) -> None:
    tags = {"project": "gateway", "with space": "a&b=c", "ünï": "cödé", "empty": ""}
    s3.put_object(Bucket=bucket.name, Key="tagged", Body=b"body", Tagging=urlencode(tags))
    assert tags_of(s3, bucket, "tagged") == tags
    got = s3.get_object(Bucket=bucket.name, Key="tagged")
    assert got["TagCount"] == 4 and got["Body"].read() == b"body"


def test_untagged_object(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="plain", Body=b"x")
    assert s3.get_object_tagging(Bucket=bucket.name, Key="plain")["TagSet"] == []
    assert "TagCount" not in s3.get_object(Bucket=bucket.name, Key="plain")


def test_put_get_delete_object_tagging(s3, bucket: Bucket) -> None:
    body = b"unchanged by tagging"
    s3.put_object(Bucket=bucket.name, Key="obj", Body=body, Metadata={"m": "1"}, Tagging="old=1")
    answer = put_tags(s3, bucket, "obj", {"a": "1", "b": "2"})
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    # PutObjectTagging replaces the whole set.
    assert tags_of(s3, bucket, "obj") == {"a": "1", "b": "2"}
    head = s3.head_object(Bucket=bucket.name, Key="obj")
    assert head["ETag"] == '"' + hashlib.md5(body).hexdigest() + '"'
    assert head["Metadata"] == {"m": "1"}
    assert s3.get_object(Bucket=bucket.name, Key="obj")["Body"].read() == body
    deleted = s3.delete_object_tagging(Bucket=bucket.name, Key="obj")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert tags_of(s3, bucket, "obj") == {}
    assert s3.get_object(Bucket=bucket.name, Key="obj")["Body"].read() == body


def test_tags_replaced_with_the_object(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="obj", Body=b"1", Tagging="v=1")
    s3.put_object(Bucket=bucket.name, Key="obj", Body=b"2")
    assert tags_of(s3, bucket, "obj") == {}


def test_tags_on_multipart_upload(s3, bucket: Bucket) -> None:
    upload_id = s3.create_multipart_upload(
        Bucket=bucket.name, Key="mp", Tagging="kind=multipart"
    )["UploadId"]
    part = s3.upload_part(
        Bucket=bucket.name, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"only part"
    )
    s3.complete_multipart_upload(
        Bucket=bucket.name, Key="mp", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )  # fmt: skip
    assert tags_of(s3, bucket, "mp") == {"kind": "multipart"}


def test_tags_follow_copy_unless_replaced(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="src", Body=b"x", Tagging="from=source")
    source = {"Bucket": bucket.name, "Key": "src"}
    s3.copy_object(Bucket=bucket.name, Key="copied", CopySource=source)
    assert tags_of(s3, bucket, "copied") == {"from": "source"}
    s3.copy_object(
        Bucket=bucket.name, Key="retagged", CopySource=source,
        TaggingDirective="REPLACE", Tagging="from=copy",
    )  # fmt: skip
    assert tags_of(s3, bucket, "retagged") == {"from": "copy"}
    assert tags_of(s3, bucket, "src") == {"from": "source"}


def test_tags_survive_restart(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon()
    daemon.start()
    own = add_bucket(daemon, tmp_path / "restart")
    client = boto3_client(daemon.endpoint, daemon.access_key, daemon.secret_key)
    client.put_object(Bucket=own.name, Key="a/b", Body=b"x")
    put_tags(client, own, "a/b", {"k": "v", "other": "w"})
    daemon.stop()
    daemon.start()
    assert tags_of(client, own, "a/b") == {"k": "v", "other": "w"}


# Limits


def test_limits_at_the_edge_accepted(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="edge", Body=b"x")
    tags = {("k%d" % n).ljust(128, "k"): "v" * 256 for n in range(10)}
    put_tags(s3, bucket, "edge", tags)
    assert tags_of(s3, bucket, "edge") == tags


def test_too_many_tags(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="obj", Body=b"x", Tagging="keep=1")
    with pytest.raises(ClientError) as excinfo:
        put_tags(s3, bucket, "obj", {f"k{n}": "v" for n in range(11)})
    assert error_of(excinfo) == ("BadRequest", 400)
    assert tags_of(s3, bucket, "obj") == {"keep": "1"}


@pytest.mark.parametrize(
    "tags",
    [{"k" * 129: "v"}, {"k": "v" * 257}, {"aws:reserved": "v"}],
    ids=["key-129", "value-257", "aws-prefix"],
)
def test_invalid_tag(s3, bucket: Bucket, tags: dict) -> None:
    s3.put_object(Bucket=bucket.name, Key="obj", Body=b"x", Tagging="keep=1")
    with pytest.raises(ClientError) as excinfo:
        put_tags(s3, bucket, "obj", tags)
    assert error_of(excinfo) == ("InvalidTag", 400)
    assert tags_of(s3, bucket, "obj") == {"keep": "1"}


def test_duplicate_tag_keys(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="obj", Body=b"x")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object_tagging(
            Bucket=bucket.name, Key="obj",
            Tagging={"TagSet": [{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}]},
        )  # fmt: skip
    assert error_of(excinfo) == ("InvalidTag", 400)


@pytest.mark.parametrize(
    "header, code",
    [
        (urlencode({f"k{n}": "v" for n in range(11)}), "BadRequest"),
        (urlencode({"k" * 129: "v"}), "InvalidTag"),
        (urlencode({"k": "v" * 257}), "InvalidTag"),
        ("=no-key", "InvalidTag"),
    ],
    ids=["11-tags", "key-129", "value-257", "key-empty"],
)
def test_invalid_tagging_header_refuses_put(s3, bucket: Bucket, header: str, code: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket.name, Key="refused", Body=b"x", Tagging=header)
    assert error_of(excinfo) == (code, 400)
    assert not (bucket.path / "refused").exists()


def test_tagging_missing_object(s3, bucket: Bucket) -> None:
    for call in (
        lambda: s3.get_object_tagging(Bucket=bucket.name, Key="absent"),
        lambda: put_tags(s3, bucket, "absent", {"k": "v"}),
        lambda: s3.delete_object_tagging(Bucket=bucket.name, Key="absent"),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_of(excinfo) == ("NoSuchKey", 404)
    assert not (bucket.path / "absent").exists()


def test_tagging_read_only_bucket(gateway: Daemon, s3, tmp_path: Path) -> None:
    frozen = add_bucket(gateway, tmp_path / "ro", read_only=True)
    (frozen.path / "file").write_bytes(b"x")
    assert tags_of(s3, frozen, "file") == {}
    with pytest.raises(ClientError) as excinfo:
        put_tags(s3, frozen, "file", {"k": "v"})
    assert error_of(excinfo) == ("AccessDenied", 403)


def test_bucket_tagging_not_implemented(s3, bucket: Bucket) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_bucket_tagging(Bucket=bucket.name)
    assert error_of(excinfo) == ("NotImplemented", 501)
