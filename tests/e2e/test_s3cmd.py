"""
s3cmd against the daemon (path-style, plain HTTP, SigV4), bytes compared every time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.e2e.clients import S3cmd, multipart_etag, tree_bytes
from tests.e2e.conftest import Bucket

MiB = 1024 * 1024


def listed_keys(s3, bucket: Bucket) -> list:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket.name)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_ls(s3cmd: S3cmd, s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="file.txt", Body=b"12345")
    s3.put_object(Bucket=bucket.name, Key="dir/inner.txt", Body=b"x")
    buckets = s3cmd("ls").stdout
    assert f"s3://{bucket.name}" in [line.split()[-1] for line in buckets.splitlines()]
    top = s3cmd("ls", f"s3://{bucket.name}/").stdout.splitlines()
    assert [line.split()[-1] for line in top] == [f"s3://{bucket.name}/dir/", f"s3://{bucket.name}/file.txt"]
    assert top[0].split()[0] == "DIR"
    assert top[1].split()[2] == "5"
    recursive = s3cmd("ls", "--recursive", f"s3://{bucket.name}").stdout.splitlines()
    assert [line.split()[-1] for line in recursive] == [
        f"s3://{bucket.name}/dir/inner.txt", f"s3://{bucket.name}/file.txt"
    ]  # fmt: skip


def test_put_get_info_del(s3cmd: S3cmd, s3, bucket: Bucket, tmp_path: Path) -> None:
    data = os.urandom(70_000)
    source = tmp_path / "up load.bin"
    source.write_bytes(data)
    s3cmd("put", "--mime-type=application/x-s3cmd", str(source), f"s3://{bucket.name}/a dir/up load.bin")
    got = s3.get_object(Bucket=bucket.name, Key="a dir/up load.bin")
    assert got["Body"].read() == data
    assert got["ETag"] == '"' + hashlib.md5(data).hexdigest() + '"'
    assert got["ContentType"] == "application/x-s3cmd"

    info = s3cmd("info", f"s3://{bucket.name}/a dir/up load.bin").stdout
    fields = {k.strip(): v.strip() for k, _, v in (l.partition(":") for l in info.splitlines()[1:])}
    assert fields["File size"] == str(len(data))
    assert fields["MD5 sum"] == hashlib.md5(data).hexdigest()
    assert fields["MIME type"] == "application/x-s3cmd"

    target = tmp_path / "down.bin"
    s3cmd("get", f"s3://{bucket.name}/a dir/up load.bin", str(target))
    assert target.read_bytes() == data

    s3cmd("del", f"s3://{bucket.name}/a dir/up load.bin")
    assert listed_keys(s3, bucket) == []
    assert not (bucket.path / "a dir" / "up load.bin").exists()


def test_sync_up_and_down(s3cmd: S3cmd, s3, bucket: Bucket, tmp_path: Path) -> None:
    files = {
        "one.txt": b"one",
        "sub/two.bin": os.urandom(5000),
        "sub/deeper/three ü.txt": "drei".encode(),
    }
    for name, data in files.items():
        (tmp_path / "up" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "up" / name).write_bytes(data)
    s3cmd("sync", f"{tmp_path / 'up'}/", f"s3://{bucket.name}/mirror/")
    assert sorted(listed_keys(s3, bucket)) == sorted(f"mirror/{name}" for name in files)
    again = s3cmd("sync", f"{tmp_path / 'up'}/", f"s3://{bucket.name}/mirror/")
    assert "upload:" not in again.stdout, again.stdout
    (tmp_path / "down").mkdir()
    s3cmd("sync", f"s3://{bucket.name}/mirror/", f"{tmp_path / 'down'}/")
    assert tree_bytes(tmp_path / "down") == files


def test_multipart_put(s3cmd: S3cmd, s3, bucket: Bucket, tmp_path: Path) -> None:
    data = os.urandom(12 * MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    s3cmd("put", "--multipart-chunk-size-mb=5", str(source), f"s3://{bucket.name}/big.bin")
    head = s3.head_object(Bucket=bucket.name, Key="big.bin")
    chunks = [data[i : i + 5 * MiB] for i in range(0, len(data), 5 * MiB)]
    assert head["ETag"] == '"' + multipart_etag(chunks) + '"'
    assert head["ContentLength"] == len(data)
    assert (bucket.path / "big.bin").read_bytes() == data
    target = tmp_path / "big.down"
    s3cmd("get", f"s3://{bucket.name}/big.bin", str(target))
    assert hashlib.md5(target.read_bytes()).digest() == hashlib.md5(data).digest()
