"""
Large objects replaced and deleted, and a multipart part sent twice, through boto3: the answers
and the bytes are right, and the old files, freed after the answers from
``.s3gateway/retired``, are all gone soon after (gateway.backends.localretire).
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import Bucket

MiB = 1024 * 1024


def retired_left(bucket: Bucket, timeout: float = 10.0) -> list:
    """
    What is still in the bucket's retired folder once it is empty, or after C{timeout} seconds.
    """
    folder = bucket.path / ".s3gateway" / "retired"
    deadline = time.monotonic() + timeout
    while True:
        left = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def test_large_object_replaced_then_deleted(s3, bucket: Bucket) -> None:
    first, second = os.urandom(5 * MiB), os.urandom(6 * MiB)
    s3.put_object(Bucket=bucket.name, Key="a/big", Body=first)
    answer = s3.put_object(Bucket=bucket.name, Key="a/big", Body=second)
    assert answer["ETag"] == f'"{hashlib.md5(second).hexdigest()}"'
    assert s3.get_object(Bucket=bucket.name, Key="a/big")["Body"].read() == second
    assert (bucket.path / "a" / "big").stat().st_nlink == 1
    deleted = s3.delete_object(Bucket=bucket.name, Key="a/big")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as caught:
        s3.head_object(Bucket=bucket.name, Key="a/big")
    assert caught.value.response["Error"]["Code"] == "404"
    assert not (bucket.path / "a").exists()
    assert retired_left(bucket) == []


def test_multipart_part_sent_twice(s3, bucket: Bucket) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket.name, Key="joined")["UploadId"]
    common = dict(Bucket=bucket.name, Key="joined", UploadId=upload)
    s3.upload_part(PartNumber=1, Body=os.urandom(5 * MiB), **common)
    retried = os.urandom(5 * MiB)
    parts = [
        {"PartNumber": 1, "ETag": s3.upload_part(PartNumber=1, Body=retried, **common)["ETag"]},
        {"PartNumber": 2, "ETag": s3.upload_part(PartNumber=2, Body=b"tail", **common)["ETag"]},
    ]
    s3.complete_multipart_upload(MultipartUpload={"Parts": parts}, **common)
    assert s3.get_object(Bucket=bucket.name, Key="joined")["Body"].read() == retried + b"tail"
    assert not (bucket.path / ".s3gateway" / "uploads" / upload).exists()
    assert retired_left(bucket) == []
