"""
The aws cli, v1 from PyPI and v2 from Debian, against the daemon: ``aws s3`` for daily file
management and a few ``aws s3api`` calls, bytes compared every time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


from tests.e2e.clients import AwsCli, multipart_etag, tree_bytes
from tests.e2e.conftest import Bucket

MiB = 1024 * 1024


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def object_bytes(s3, bucket: Bucket, key: str) -> bytes:
    return s3.get_object(Bucket=bucket.name, Key=key)["Body"].read()


def listed_keys(s3, bucket: Bucket) -> list:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket.name)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_cp_small(aws: AwsCli, s3, bucket: Bucket, tmp_path: Path) -> None:
    data = os.urandom(1234)
    source = write(tmp_path / "small file.bin", data)
    aws("s3", "cp", str(source), f"s3://{bucket.name}/dir/small file.bin")
    assert object_bytes(s3, bucket, "dir/small file.bin") == data
    head = s3.head_object(Bucket=bucket.name, Key="dir/small file.bin")
    assert head["ETag"] == '"' + hashlib.md5(data).hexdigest() + '"'
    target = tmp_path / "down" / "small.bin"
    aws("s3", "cp", f"s3://{bucket.name}/dir/small file.bin", str(target))
    assert target.read_bytes() == data


def test_cp_large_goes_multipart_and_ranged(
    aws: AwsCli, s3, bucket: Bucket, tmp_path: Path
) -> None:
    data = os.urandom(20 * MiB)
    source = write(tmp_path / "large.bin", data)
    aws("s3", "cp", str(source), f"s3://{bucket.name}/large.bin")
    head = s3.head_object(Bucket=bucket.name, Key="large.bin")
    chunks = [data[i : i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]
    assert head["ETag"] == '"' + multipart_etag(chunks) + '"'
    assert head["ContentLength"] == len(data)
    assert (bucket.path / "large.bin").read_bytes() == data
    target = tmp_path / "large.down"
    aws("s3", "cp", f"s3://{bucket.name}/large.bin", str(target))
    assert hashlib.md5(target.read_bytes()).hexdigest() == hashlib.md5(data).hexdigest()


def _tree(root: Path) -> dict:
    files = {
        "top.txt": b"top",
        "nested/a.bin": os.urandom(3000),
        "nested/deeper/b.bin": os.urandom(10),
        "with space/ü.txt": "ünïcödé".encode(),
        "plus+sign/100%.txt": b"percent",
        "empty.txt": b"",
    }
    for name, data in files.items():
        write(root / name, data)
    return files


def test_sync_up_twice_and_down(aws: AwsCli, s3, bucket: Bucket, tmp_path: Path) -> None:
    files = _tree(tmp_path / "up")
    first = aws("s3", "sync", str(tmp_path / "up"), f"s3://{bucket.name}/synced")
    assert first.stdout.count("upload:") == len(files), first.stdout
    assert sorted(listed_keys(s3, bucket)) == sorted(f"synced/{name}" for name in files)
    for name, data in files.items():
        assert object_bytes(s3, bucket, f"synced/{name}") == data
    second = aws("s3", "sync", str(tmp_path / "up"), f"s3://{bucket.name}/synced")
    assert "upload:" not in second.stdout, second.stdout
    aws("s3", "sync", f"s3://{bucket.name}/synced", str(tmp_path / "down"))
    assert tree_bytes(tmp_path / "down") == files


def test_ls(aws: AwsCli, s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="one.txt", Body=b"1")
    s3.put_object(Bucket=bucket.name, Key="dir/two.txt", Body=b"22")
    s3.put_object(Bucket=bucket.name, Key="dir/sub/three.txt", Body=b"333")
    buckets = aws("s3", "ls").stdout
    assert bucket.name in [line.split()[-1] for line in buckets.splitlines()]
    top = aws("s3", "ls", f"s3://{bucket.name}/").stdout.splitlines()
    assert sorted(line.split()[-1] for line in top) == ["dir/", "one.txt"]
    assert any(line.split() == ["PRE", "dir/"] for line in top)
    recursive = aws("s3", "ls", "--recursive", f"s3://{bucket.name}").stdout.splitlines()
    assert [(line.split()[2], line.split()[3]) for line in recursive] == [
        ("3", "dir/sub/three.txt"), ("2", "dir/two.txt"), ("1", "one.txt")
    ]  # fmt: skip


def test_rm(aws: AwsCli, s3, bucket: Bucket) -> None:
    for key in ("keep.txt", "gone.txt", "tree/a", "tree/b/c", "treeish"):
        s3.put_object(Bucket=bucket.name, Key=key, Body=key.encode())
    aws("s3", "rm", f"s3://{bucket.name}/gone.txt")
    assert listed_keys(s3, bucket) == ["keep.txt", "tree/a", "tree/b/c", "treeish"]
    removed = aws("s3", "rm", "--recursive", f"s3://{bucket.name}/tree/")
    assert removed.stdout.count("delete:") == 2
    assert listed_keys(s3, bucket) == ["keep.txt", "treeish"]
    assert not (bucket.path / "tree" / "b" / "c").exists()


def test_s3api_objects(aws: AwsCli, s3, bucket: Bucket, tmp_path: Path) -> None:
    data = os.urandom(4000)
    source = write(tmp_path / "body.bin", data)
    put = aws.api(
        "put-object", "--bucket", bucket.name, "--key", "api/obj.bin", "--body", str(source),
        "--content-type", "application/x-cli", "--metadata", "origin=cli",
    )  # fmt: skip
    assert put["ETag"] == '"' + hashlib.md5(data).hexdigest() + '"'
    head = aws.api("head-object", "--bucket", bucket.name, "--key", "api/obj.bin")
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "application/x-cli"
    assert head["Metadata"] == {"origin": "cli"}
    target = tmp_path / "got.bin"
    got = aws.api("get-object", "--bucket", bucket.name, "--key", "api/obj.bin", str(target))
    assert got["ETag"] == put["ETag"] and target.read_bytes() == data
    ranged = aws.api(
        "get-object", "--bucket", bucket.name, "--key", "api/obj.bin",
        "--range", "bytes=100-199", str(tmp_path / "range.bin"),
    )  # fmt: skip
    assert ranged["ContentRange"] == f"bytes 100-199/{len(data)}"
    assert (tmp_path / "range.bin").read_bytes() == data[100:200]
    listing = aws.api("list-objects-v2", "--bucket", bucket.name, "--prefix", "api/")
    assert [(o["Key"], o["Size"]) for o in listing["Contents"]] == [("api/obj.bin", len(data))]
    aws.api("delete-object", "--bucket", bucket.name, "--key", "api/obj.bin")
    assert listed_keys(s3, bucket) == []


def test_s3api_multipart(aws: AwsCli, s3, bucket: Bucket, tmp_path: Path) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(1000)]
    created = aws.api("create-multipart-upload", "--bucket", bucket.name, "--key", "mp.bin")
    upload_id = created["UploadId"]
    etags = []
    for number, data in enumerate(parts, 1):
        source = write(tmp_path / f"part{number}", data)
        answer = aws.api(
            "upload-part", "--bucket", bucket.name, "--key", "mp.bin", "--upload-id", upload_id,
            "--part-number", str(number), "--body", str(source),
        )  # fmt: skip
        assert answer["ETag"] == '"' + hashlib.md5(data).hexdigest() + '"'
        etags.append(answer["ETag"])
    listed = aws.api("list-parts", "--bucket", bucket.name, "--key", "mp.bin", "--upload-id", upload_id)
    assert [(p["PartNumber"], p["Size"]) for p in listed["Parts"]] == [(1, 5 * MiB), (2, 1000)]
    layout = tmp_path / "parts.json"
    layout.write_text(
        json.dumps({"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    )
    done = aws.api(
        "complete-multipart-upload", "--bucket", bucket.name, "--key", "mp.bin",
        "--upload-id", upload_id, "--multipart-upload", f"file://{layout}",
    )  # fmt: skip
    assert done["ETag"] == '"' + multipart_etag(parts) + '"'
    assert object_bytes(s3, bucket, "mp.bin") == b"".join(parts)

    aborted = aws.api("create-multipart-upload", "--bucket", bucket.name, "--key", "ab.bin")
    uploads = aws.api("list-multipart-uploads", "--bucket", bucket.name)
    assert [u["UploadId"] for u in uploads["Uploads"]] == [aborted["UploadId"]]
    aws.api(
        "abort-multipart-upload", "--bucket", bucket.name, "--key", "ab.bin",
        "--upload-id", aborted["UploadId"],
    )  # fmt: skip
    assert aws.api("list-multipart-uploads", "--bucket", bucket.name).get("Uploads", []) == []
    assert listed_keys(s3, bucket) == ["mp.bin"]


def test_bucket_calls(aws: AwsCli, bucket: Bucket) -> None:
    aws.api("head-bucket", "--bucket", bucket.name)
    assert aws.api("get-bucket-versioning", "--bucket", bucket.name)["Status"] == "Suspended"
    location = aws.api("get-bucket-location", "--bucket", bucket.name)
    assert location.get("LocationConstraint") in (None, "us-east-1")
    missing = aws("s3api", "head-bucket", "--bucket", "e2e-no-such-bucket", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr
