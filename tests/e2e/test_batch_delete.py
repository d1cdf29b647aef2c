"""
DeleteObjects (``POST /<bucket>?delete``) through boto3 and, for what boto3 will not send (no
integrity header, a wrong Content-MD5, too many keys), through the independent signer; then the
clients that delete in batches of 1,000 (s3cmd's ``del --recursive``, boto3's collection
``delete()``) over 2,500 keys, counting their requests in the daemon's access log.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from pathlib import Path
from typing import Dict, Iterable, List
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.e2e.clients import Daemon, S3cmd, Signer, error_of, signed_request
from tests.e2e.conftest import Bucket, add_bucket, boto3

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
MANY = 2500


class AccessLog:
    """
    The access-log lines the daemon writes after a mark, for one bucket.
    """

    def __init__(self, daemon: Daemon, bucket: str) -> None:
        self._path = daemon.log_path
        self._bucket = bucket
        self._offset = 0
        self.mark()

    def mark(self) -> None:
        self._offset = self._path.stat().st_size

    def lines(self) -> List[str]:
        # The line of the last request is written as its response finishes: give it a moment.
        time.sleep(0.3)
        with open(self._path, "rb") as log:
            log.seek(self._offset)
            text = log.read().decode("utf-8", "replace")
        pattern = re.compile(
            r"\[s3gateway\.access#info\] [A-Z]+ /" + re.escape(self._bucket) + r"[/ ]"
        )
        return [line for line in text.splitlines() if pattern.search(line)]

    def operations(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for line in self.lines():
            match = re.search(r" op=(\w+)", line)
            assert match, line
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
        return counts


def listed_keys(s3, bucket: Bucket) -> list:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket.name)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def fill(s3, bucket: Bucket, keys: Iterable[str]) -> None:
    for key in keys:
        s3.put_object(Bucket=bucket.name, Key=key, Body=key.encode())


def delete_document(keys: Iterable[str], quiet: bool = False) -> bytes:
    objects = "".join(f"<Object><Key>{escape(key)}</Key></Object>" for key in keys)
    quiet_element = "<Quiet>true</Quiet>" if quiet else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{quiet_element}{objects}</Delete>'
    ).encode("utf-8")


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode("ascii")


def test_delete_objects(s3, bucket: Bucket) -> None:
    fill(s3, bucket, ["a", "dir/b", "dir/sub/c", "keep"])
    answer = s3.delete_objects(
        Bucket=bucket.name,
        Delete={"Objects": [{"Key": k} for k in ("a", "dir/b", "dir/sub/c", "never-was")]},
    )
    assert sorted(d["Key"] for d in answer["Deleted"]) == ["a", "dir/b", "dir/sub/c", "never-was"]
    assert answer.get("Errors", []) == []
    assert listed_keys(s3, bucket) == ["keep"]
    assert not (bucket.path / "a").exists()
    assert not (bucket.path / "dir").exists(), "emptied folders are pruned from disk"
    assert (bucket.path / "keep").read_bytes() == b"keep"


def test_delete_objects_quiet(s3, bucket: Bucket) -> None:
    fill(s3, bucket, ["x", "y", "z"])
    answer = s3.delete_objects(
        Bucket=bucket.name, Delete={"Objects": [{"Key": "x"}, {"Key": "y"}], "Quiet": True}
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer.get("Deleted", []) == [] and answer.get("Errors", []) == []
    assert listed_keys(s3, bucket) == ["z"]


@pytest.mark.parametrize(
    "key",
    ["a&b<c>.txt", "ünïcödé/ключ", "quote\"apos'.bin", "spaces  and\ttab", "100%+plus"],
)
def test_delete_objects_keys_needing_escapes(s3, bucket: Bucket, key: str) -> None:
    fill(s3, bucket, [key, "other"])
    answer = s3.delete_objects(Bucket=bucket.name, Delete={"Objects": [{"Key": key}]})
    assert [d["Key"] for d in answer["Deleted"]] == [key]
    assert listed_keys(s3, bucket) == ["other"]


def test_delete_objects_per_key_errors(gateway: Daemon, s3, tmp_path: Path) -> None:
    frozen = add_bucket(gateway, tmp_path / "ro", read_only=True)
    (frozen.path / "one").write_bytes(b"1")
    (frozen.path / "two").write_bytes(b"2")
    answer = s3.delete_objects(
        Bucket=frozen.name, Delete={"Objects": [{"Key": "one"}, {"Key": "two"}], "Quiet": True}
    )
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert sorted((e["Key"], e["Code"]) for e in answer["Errors"]) == [
        ("one", "AccessDenied"), ("two", "AccessDenied")
    ]  # fmt: skip
    assert all(e["Message"] for e in answer["Errors"])
    assert answer.get("Deleted", []) == []
    assert (frozen.path / "one").exists() and (frozen.path / "two").exists()


def test_delete_objects_thousand_keys(s3, bucket: Bucket) -> None:
    keys = [f"k/{n:04d}" for n in range(1000)]
    for key in keys:
        path = bucket.path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    answer = s3.delete_objects(
        Bucket=bucket.name, Delete={"Objects": [{"Key": k} for k in keys]}
    )
    assert sorted(d["Key"] for d in answer["Deleted"]) == keys
    assert listed_keys(s3, bucket) == []


def test_delete_objects_missing_bucket(s3) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.delete_objects(Bucket="e2e-no-such-bucket", Delete={"Objects": [{"Key": "k"}]})
    assert error_of(excinfo) == ("NoSuchBucket", 404)


# What boto3 will not send


def post_delete(gateway: Daemon, signer: Signer, bucket: Bucket, body: bytes, **headers: str):
    return signed_request(
        gateway.port, signer, "POST", f"/{bucket.name}", query=[("delete", "")],
        headers=headers, body=body,
    )  # fmt: skip


def test_delete_objects_with_content_md5(
    gateway: Daemon, s3, signer: Signer, bucket: Bucket
) -> None:
    fill(s3, bucket, ["gone", "kept"])
    body = delete_document(["gone"])
    response = post_delete(gateway, signer, bucket, body, **{"Content-MD5": content_md5(body)})
    assert response.status == 200, response.body
    root = ElementTree.fromstring(response.body)
    assert root.tag == NS + "DeleteResult"
    assert [e.findtext(NS + "Key") for e in root.findall(NS + "Deleted")] == ["gone"]
    assert listed_keys(s3, bucket) == ["kept"]


def test_delete_objects_without_integrity_header(
    gateway: Daemon, s3, signer: Signer, bucket: Bucket
) -> None:
    fill(s3, bucket, ["kept"])
    response = post_delete(gateway, signer, bucket, delete_document(["kept"]))
    assert (response.status, response.error_code) == (400, "InvalidRequest")
    assert listed_keys(s3, bucket) == ["kept"]


def test_delete_objects_wrong_content_md5(
    gateway: Daemon, s3, signer: Signer, bucket: Bucket
) -> None:
    fill(s3, bucket, ["kept", "also kept"])
    sent = delete_document(["kept", "also kept"])
    # The digest of another key list: as if the list had been corrupted on the way.
    response = post_delete(
        gateway, signer, bucket, sent, **{"Content-MD5": content_md5(delete_document(["kept"]))}
    )
    assert (response.status, response.error_code) == (400, "BadDigest")
    assert listed_keys(s3, bucket) == ["also kept", "kept"]


def test_delete_objects_too_many_keys(
    gateway: Daemon, s3, signer: Signer, bucket: Bucket
) -> None:
    fill(s3, bucket, ["kept"])
    body = delete_document(["kept"] + [f"k{n}" for n in range(1000)])
    response = post_delete(gateway, signer, bucket, body, **{"Content-MD5": content_md5(body)})
    assert (response.status, response.error_code) == (400, "MalformedXML")
    assert listed_keys(s3, bucket) == ["kept"]


def test_delete_objects_malformed_xml(
    gateway: Daemon, s3, signer: Signer, bucket: Bucket
) -> None:
    body = b"<Delete><Object><Key>unclosed</Object></Delete>"
    response = post_delete(gateway, signer, bucket, body, **{"Content-MD5": content_md5(body)})
    assert (response.status, response.error_code) == (400, "MalformedXML")


# Clients that delete in batches


def write_many(bucket: Bucket, prefix: str) -> List[str]:
    """
    C{MANY} small files put straight into the bucket's directory (the local backend serves them).
    """
    keys = [f"{prefix}{n // 100:02d}/{n:05d}" for n in range(MANY)]
    for key in keys:
        path = bucket.path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(key.encode())
    return keys


def test_s3cmd_del_recursive_in_batches(
    gateway: Daemon, s3cmd: S3cmd, s3, bucket: Bucket
) -> None:
    write_many(bucket, "many/")
    (bucket.path / "kept").write_bytes(b"kept")
    log = AccessLog(gateway, bucket.name)
    removed = s3cmd("del", "--recursive", f"s3://{bucket.name}/many/")
    assert removed.stdout.count("delete: ") == MANY, removed.stdout[-2000:]
    assert listed_keys(s3, bucket) == ["kept"]
    assert not (bucket.path / "many").exists()
    operations = log.operations()
    assert operations.get("DeleteObjects") == 3, operations
    assert "DeleteObject" not in operations, operations
    statuses = [line.split()[4] for line in log.lines() if "op=DeleteObjects" in line]
    assert statuses == ["200"] * 3


def test_boto3_collection_delete_in_batches(gateway: Daemon, bucket: Bucket) -> None:
    keys = write_many(bucket, "batch/")
    (bucket.path / "kept").write_bytes(b"kept")
    resource = boto3.session.Session().resource(
        "s3", endpoint_url=gateway.endpoint, region_name="us-east-1",
        aws_access_key_id=gateway.access_key, aws_secret_access_key=gateway.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )  # fmt: skip
    log = AccessLog(gateway, bucket.name)
    answers = resource.Bucket(bucket.name).objects.filter(Prefix="batch/").delete()
    assert len(answers) == 3
    assert sorted(d["Key"] for a in answers for d in a["Deleted"]) == keys
    assert all(not a.get("Errors") for a in answers)
    assert [o.key for o in resource.Bucket(bucket.name).objects.all()] == ["kept"]
    operations = log.operations()
    assert operations.get("DeleteObjects") == 3 and "DeleteObject" not in operations, operations
