"""
The aws cli's high-level commands that lean on issue 3's operations, v1 and v2: ``aws s3 sync``
run twice (the second run must send nothing), ``aws s3 mv`` (CopyObject then DeleteObject between
keys) and ``aws s3 rm --recursive`` over 2,500 keys. What the gateway received is read back from
its access log, one line per request.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Dict

from tests.e2e.clients import AwsCli, Daemon, tree_bytes
from tests.e2e.conftest import Bucket, add_bucket
from tests.e2e.test_batch_delete import AccessLog

MANY = 2500


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def listed_keys(s3, bucket: Bucket) -> list:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket.name)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def make_tree(root: Path) -> Dict[str, bytes]:
    files = {
        "readme.txt": b"top level",
        "docs/a.md": os.urandom(2048),
        "docs/deep/er/b.bin": os.urandom(70_000),
        "docs/deep/c.bin": b"",
        "space dir/ü file.txt": "ünïcödé".encode(),
        "odd/100%+&=.txt": b"odd characters",
        "big/large.bin": os.urandom(9 * 1024 * 1024),
    }
    for name, data in files.items():
        write(root / name, data)
    return files


def mtimes(root: Path) -> Dict[str, int]:
    return {
        path.relative_to(root).as_posix(): path.stat().st_mtime_ns
        for path in root.rglob("*")
        if path.is_file() and ".s3gateway" not in path.relative_to(root).parts
    }


def test_sync_twice_uploads_nothing_the_second_time(
    aws: AwsCli, gateway: Daemon, s3, bucket: Bucket, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "tree")
    log = AccessLog(gateway, bucket.name)
    first = aws("s3", "sync", str(tmp_path / "tree"), f"s3://{bucket.name}/backup")
    assert first.stdout.count("upload:") == len(files), first.stdout
    assert tree_bytes(bucket.path / "backup") == files
    assert sorted(listed_keys(s3, bucket)) == sorted(f"backup/{name}" for name in files)
    operations = log.operations()
    assert operations.get("PutObject", 0) + operations.get("CreateMultipartUpload", 0) == len(files)

    on_disk = mtimes(bucket.path)
    log.mark()
    second = aws("s3", "sync", str(tmp_path / "tree"), f"s3://{bucket.name}/backup")
    assert second.stdout.strip() == "", second.stdout
    writes = [line for line in log.lines() if re.search(r"\] (PUT|POST|DELETE) ", line)]
    assert writes == [], writes
    assert mtimes(bucket.path) == on_disk


def test_sync_down_twice_downloads_nothing_the_second_time(
    aws: AwsCli, gateway: Daemon, s3, bucket: Bucket, tmp_path: Path
) -> None:
    files = make_tree(bucket.path / "served")
    target = tmp_path / "down"
    first = aws("s3", "sync", f"s3://{bucket.name}/served", str(target))
    assert first.stdout.count("download:") == len(files), first.stdout
    assert tree_bytes(target) == files
    local = mtimes(target)
    log = AccessLog(gateway, bucket.name)
    second = aws("s3", "sync", f"s3://{bucket.name}/served", str(target))
    assert second.stdout.strip() == "", second.stdout
    assert set(log.operations()) <= {"ListObjectsV2", "ListObjects"}, log.lines()
    assert mtimes(target) == local


def test_sync_after_a_change_uploads_only_the_change(
    aws: AwsCli, s3, bucket: Bucket, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "tree")
    aws("s3", "sync", str(tmp_path / "tree"), f"s3://{bucket.name}")
    write(tmp_path / "tree" / "docs" / "a.md", b"changed size")
    (tmp_path / "tree" / "readme.txt").unlink()
    again = aws(
        "s3", "sync", "--delete", "--no-progress", str(tmp_path / "tree"), f"s3://{bucket.name}"
    )
    lines = sorted(line.strip() for line in again.stdout.splitlines() if line.strip())
    assert len(lines) == 2, again.stdout
    assert lines[0].startswith("delete: ") and lines[0].endswith("/readme.txt")
    assert lines[1].startswith("upload: ") and lines[1].endswith("/docs/a.md")
    files.pop("readme.txt")
    files["docs/a.md"] = b"changed size"
    assert tree_bytes(bucket.path) == files


def test_mv_up_across_and_down(
    aws: AwsCli, gateway: Daemon, s3, bucket: Bucket, tmp_path: Path
) -> None:
    data = os.urandom(5000)
    source = write(tmp_path / "moving.bin", data)
    aws("s3", "mv", str(source), f"s3://{bucket.name}/in/moving.bin")
    assert not source.exists()
    assert listed_keys(s3, bucket) == ["in/moving.bin"]

    log = AccessLog(gateway, bucket.name)
    aws("s3", "mv", f"s3://{bucket.name}/in/moving.bin", f"s3://{bucket.name}/out/moved.bin")
    assert listed_keys(s3, bucket) == ["out/moved.bin"]
    assert (bucket.path / "out" / "moved.bin").read_bytes() == data
    assert not (bucket.path / "in").exists()
    operations = log.operations()
    assert operations.get("CopyObject") == 1 and operations.get("DeleteObject") == 1, operations
    assert "PutObject" not in operations, operations

    other = add_bucket(gateway, tmp_path / "other")
    aws("s3", "mv", f"s3://{bucket.name}/out/moved.bin", f"s3://{other.name}/arrived.bin")
    assert listed_keys(s3, bucket) == []
    assert (other.path / "arrived.bin").read_bytes() == data

    target = tmp_path / "back" / "home.bin"
    aws("s3", "mv", f"s3://{other.name}/arrived.bin", str(target))
    assert target.read_bytes() == data
    assert listed_keys(s3, other) == []


def test_mv_recursive_large_object(aws: AwsCli, s3, bucket: Bucket, tmp_path: Path) -> None:
    """
    A prefix moved within the bucket; the aws cli copies a large object part by part
    (UploadPartCopy with ranges).
    """
    big = os.urandom(10 * 1024 * 1024 + 5)
    write(bucket.path / "from" / "big.bin", big)
    write(bucket.path / "from" / "small.txt", b"small")
    moved = aws(
        "s3", "mv", "--recursive", "--metadata-directive", "COPY",
        f"s3://{bucket.name}/from/", f"s3://{bucket.name}/to/",
    )  # fmt: skip
    assert moved.stdout.count("move:") == 2, moved.stdout
    assert sorted(listed_keys(s3, bucket)) == ["to/big.bin", "to/small.txt"]
    assert (bucket.path / "to" / "big.bin").read_bytes() == big
    assert (bucket.path / "to" / "small.txt").read_bytes() == b"small"


def test_rm_recursive_many_keys(
    aws: AwsCli, gateway: Daemon, s3, bucket: Bucket
) -> None:
    keys = [f"many/{n // 100:02d}/{n:05d}.txt" for n in range(MANY)]
    for key in keys:
        write(bucket.path / key, key.encode())
    write(bucket.path / "other" / "kept.txt", b"kept")
    assert len(listed_keys(s3, bucket)) == MANY + 1
    log = AccessLog(gateway, bucket.name)
    removed = aws("s3", "rm", "--recursive", f"s3://{bucket.name}/many/")
    assert removed.stdout.count("delete:") == MANY
    assert listed_keys(s3, bucket) == ["other/kept.txt"]
    assert not (bucket.path / "many").exists()
    operations = log.operations()
    print(f"aws cli v{aws.major} rm --recursive sent: {operations}")
    # The aws cli (v1 and v2 alike) deletes key by key through s3transfer, not with
    # DeleteObjects; a batch-deleting client is driven in test_batch_delete.py.
    deleted_singly = operations.get("DeleteObject", 0)
    batches = operations.get("DeleteObjects", 0)
    assert deleted_singly == MANY or (deleted_singly == 0 and batches >= MANY // 1000), operations
    statuses = [line.split()[4] for line in log.lines() if "op=DeleteObject" in line]
    assert set(statuses) <= {"200", "204"}, statuses


def test_empty_file_then_another_upload_on_one_connection(
    aws: AwsCli, s3, bucket: Bucket, tmp_path: Path
) -> None:
    """
    One connection (max_concurrent_requests = 1) carries the upload of an empty file, then of
    a small one: both with ``Expect: 100-continue``. See test_expect_continue's
    test_empty_body_with_expect_leaves_connection_usable for what goes wrong when the server
    skips the ``100 Continue`` of the empty upload and keeps the connection.
    """
    Path(aws.env["AWS_CONFIG_FILE"]).write_text("[default]\ns3 =\n  max_concurrent_requests = 1\n")
    write(tmp_path / "up" / "a" / "0-empty", b"")
    write(tmp_path / "up" / "a" / "1-small", b"small body")
    write(tmp_path / "up" / "a" / "2-large", os.urandom(9 * 1024 * 1024))
    started = time.monotonic()
    aws("s3", "cp", "--recursive", "--no-progress", str(tmp_path / "up"), f"s3://{bucket.name}/")
    elapsed = time.monotonic() - started
    assert tree_bytes(bucket.path) == tree_bytes(tmp_path / "up")
    assert elapsed < 30, f"took {elapsed:.0f}s: a response was misread and waited for a timeout"
