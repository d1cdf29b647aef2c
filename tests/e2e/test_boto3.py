"""
Every operation of the supported-operations table, driven by boto3 against the daemon.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import unquote, unquote_plus

import pytest
from botocore.exceptions import ClientError

from tests.e2e.clients import Daemon, Signer, error_of, files_under, multipart_etag
from tests.e2e.clients import signed_request, uri_encode
from tests.e2e.conftest import Bucket, add_bucket, boto3_client

MiB = 1024 * 1024


def md5_etag(body: bytes) -> str:
    return '"' + hashlib.md5(body).hexdigest() + '"'


def put(s3, bucket: Bucket, key: str, body: bytes, **kwargs) -> dict:
    return s3.put_object(Bucket=bucket.name, Key=key, Body=body, **kwargs)


def status(response: dict) -> int:
    return response["ResponseMetadata"]["HTTPStatusCode"]


# Buckets


def test_list_buckets(s3, bucket: Bucket) -> None:
    response = s3.list_buckets()
    assert bucket.name in [b["Name"] for b in response["Buckets"]]
    assert response["Owner"]["ID"]


def test_head_bucket(s3, bucket: Bucket) -> None:
    assert status(s3.head_bucket(Bucket=bucket.name)) == 200
    with pytest.raises(ClientError) as excinfo:
        s3.head_bucket(Bucket="e2e-no-such-bucket")
    assert error_of(excinfo)[1] == 404
    with pytest.raises(ClientError) as excinfo:
        s3.list_objects_v2(Bucket="e2e-no-such-bucket")
    assert error_of(excinfo) == ("NoSuchBucket", 404)


def test_create_and_delete_bucket_are_no_ops(s3, bucket: Bucket) -> None:
    put(s3, bucket, "kept", b"kept")
    assert status(s3.create_bucket(Bucket=bucket.name)) == 200
    assert status(s3.delete_bucket(Bucket=bucket.name)) == 204
    assert bucket.name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.get_object(Bucket=bucket.name, Key="kept")["Body"].read() == b"kept"


def test_get_bucket_location(s3, bucket: Bucket) -> None:
    # S3 answers an empty LocationConstraint for us-east-1; boto3 makes that None.
    assert s3.get_bucket_location(Bucket=bucket.name)["LocationConstraint"] in (None, "us-east-1")


def test_get_bucket_location_configured_region(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon(region="eu-central-1")
    daemon.start()
    own = add_bucket(daemon, tmp_path)
    regional = boto3_client(
        daemon.endpoint, daemon.access_key, daemon.secret_key, region_name="eu-central-1"
    )
    assert regional.get_bucket_location(Bucket=own.name)["LocationConstraint"] == "eu-central-1"


def test_get_bucket_acl(s3, bucket: Bucket) -> None:
    acl = s3.get_bucket_acl(Bucket=bucket.name)
    owner = acl["Owner"]["ID"]
    assert owner
    assert [(g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]] == [
        (owner, "FULL_CONTROL")
    ]


def test_get_bucket_versioning(s3, bucket: Bucket) -> None:
    assert s3.get_bucket_versioning(Bucket=bucket.name)["Status"] == "Suspended"


def test_list_object_versions_is_empty(s3, bucket: Bucket) -> None:
    put(s3, bucket, "one", b"1")
    response = s3.list_object_versions(Bucket=bucket.name)
    assert status(response) == 200
    assert response.get("Versions", []) == []
    assert response.get("DeleteMarkers", []) == []
    assert response["IsTruncated"] is False


# Objects


def test_put_object_etag_type_and_metadata(s3, bucket: Bucket) -> None:
    body = os.urandom(12345)
    response = put(
        s3, bucket, "docs/report.bin", body,
        ContentType="application/x-e2e", Metadata={"color": "blue", "Two-Words": "a b"},
    )  # fmt: skip
    assert response["ETag"] == md5_etag(body)
    head = s3.head_object(Bucket=bucket.name, Key="docs/report.bin")
    got = s3.get_object(Bucket=bucket.name, Key="docs/report.bin")
    for answer in (head, got):
        assert answer["ETag"] == md5_etag(body)
        assert answer["ContentLength"] == len(body)
        assert answer["ContentType"] == "application/x-e2e"
        assert answer["Metadata"] == {"color": "blue", "two-words": "a b"}
        assert answer["LastModified"]
    assert got["Body"].read() == body
    assert (bucket.path / "docs" / "report.bin").read_bytes() == body


def test_put_object_default_content_type(s3, bucket: Bucket) -> None:
    put(s3, bucket, "plain", b"x")
    assert s3.head_object(Bucket=bucket.name, Key="plain")["ContentType"] in (
        "binary/octet-stream",
        "application/octet-stream",
    )


def test_folder_marker(s3, bucket: Bucket) -> None:
    response = put(s3, bucket, "dir/", b"")
    assert response["ETag"] == md5_etag(b"")
    assert (bucket.path / "dir").is_dir()
    head = s3.head_object(Bucket=bucket.name, Key="dir/")
    assert head["ContentLength"] == 0
    listing = s3.list_objects_v2(Bucket=bucket.name)
    assert [(o["Key"], o["Size"]) for o in listing["Contents"]] == [("dir/", 0)]
    rolled = s3.list_objects_v2(Bucket=bucket.name, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["dir/"]
    assert "Contents" not in rolled


@pytest.mark.parametrize(
    "header, first, last",
    [
        ("bytes=10-19", 10, 19),
        ("bytes=990-", 990, 999),
        ("bytes=-25", 975, 999),
        ("bytes=995-5000", 995, 999),
        ("bytes=0-0", 0, 0),
    ],
)
def test_get_object_range(s3, bucket: Bucket, header: str, first: int, last: int) -> None:
    body = os.urandom(1000)
    put(s3, bucket, "ranged", body)
    got = s3.get_object(Bucket=bucket.name, Key="ranged", Range=header)
    assert status(got) == 206
    assert got["ContentRange"] == f"bytes {first}-{last}/1000"
    assert got["ContentLength"] == last - first + 1
    assert got["Body"].read() == body[first : last + 1]


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000"])
def test_get_object_range_unsatisfiable(s3, bucket: Bucket, header: str) -> None:
    put(s3, bucket, "ranged", os.urandom(1000))
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket.name, Key="ranged", Range=header)
    assert error_of(excinfo) == ("InvalidRange", 416)


def test_head_object_missing(s3, bucket: Bucket) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=bucket.name, Key="missing")
    assert error_of(excinfo)[1] == 404


def test_get_object_missing(s3, bucket: Bucket) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket.name, Key="missing")
    assert error_of(excinfo) == ("NoSuchKey", 404)


def test_delete_object(s3, bucket: Bucket) -> None:
    put(s3, bucket, "doomed", b"bye")
    assert status(s3.delete_object(Bucket=bucket.name, Key="doomed")) == 204
    assert not (bucket.path / "doomed").exists()
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket.name)
    assert status(s3.delete_object(Bucket=bucket.name, Key="doomed")) == 204
    assert status(s3.delete_object(Bucket=bucket.name, Key="never/was")) == 204


# Listings

LISTED_KEYS = [
    "Z", "a b/c", "a+b", "a-b", "a.b", "a/b", "a/c/d", "a0", "aB", "b", "~tilde", "é.txt",
]  # fmt: skip


def s3_order(keys):
    return sorted(keys, key=lambda key: key.encode("utf-8"))


@pytest.fixture
def listed(s3, bucket: Bucket) -> Bucket:
    for key in reversed(LISTED_KEYS):
        put(s3, bucket, key, key.encode("utf-8"))
    return bucket


def test_list_v2_everything_in_s3_order(s3, listed: Bucket) -> None:
    response = s3.list_objects_v2(Bucket=listed.name)
    assert [o["Key"] for o in response["Contents"]] == s3_order(LISTED_KEYS)
    assert response["KeyCount"] == len(LISTED_KEYS)
    assert response["IsTruncated"] is False
    for entry in response["Contents"]:
        assert entry["Size"] == len(entry["Key"].encode("utf-8"))
        assert entry["ETag"] == md5_etag(entry["Key"].encode("utf-8"))
        assert "Owner" not in entry


def test_list_v2_delimiter_and_prefix(s3, listed: Bucket) -> None:
    root = s3.list_objects_v2(Bucket=listed.name, Delimiter="/")
    assert [o["Key"] for o in root["Contents"]] == s3_order(k for k in LISTED_KEYS if "/" not in k)
    assert [p["Prefix"] for p in root["CommonPrefixes"]] == ["a b/", "a/"]
    inner = s3.list_objects_v2(Bucket=listed.name, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in inner["Contents"]] == ["a/b"]
    assert [p["Prefix"] for p in inner["CommonPrefixes"]] == ["a/c/"]
    assert inner["Prefix"] == "a/"
    flat = s3.list_objects_v2(Bucket=listed.name, Prefix="a")
    assert [o["Key"] for o in flat["Contents"]] == s3_order(
        k for k in LISTED_KEYS if k.startswith("a")
    )


def test_list_v2_pagination(s3, listed: Bucket) -> None:
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=listed.name, MaxKeys=5, **kwargs)
        pages += 1
        keys = [o["Key"] for o in page.get("Contents", [])]
        assert len(keys) <= 5 and page["KeyCount"] == len(keys)
        seen += keys
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        token = page["NextContinuationToken"]
        assert pages < 10
    assert seen == s3_order(LISTED_KEYS)
    assert pages == 3


def test_list_v2_pagination_with_delimiter(s3, listed: Bucket) -> None:
    entries, token = [], None
    for _ in range(10):
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=listed.name, Delimiter="/", MaxKeys=2, **kwargs)
        here = [o["Key"] for o in page.get("Contents", [])]
        here += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert 1 <= len(here) <= 2 and page["KeyCount"] == len(here)
        entries += s3_order(here)
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    expected = s3_order({k if "/" not in k else k.split("/")[0] + "/" for k in LISTED_KEYS})
    assert entries == expected


def test_list_v2_start_after(s3, listed: Bucket) -> None:
    response = s3.list_objects_v2(Bucket=listed.name, StartAfter="a.b")
    assert [o["Key"] for o in response["Contents"]] == [
        k for k in s3_order(LISTED_KEYS) if k.encode() > b"a.b"
    ]
    assert response["StartAfter"] == "a.b"


def test_list_v2_fetch_owner(s3, listed: Bucket) -> None:
    response = s3.list_objects_v2(Bucket=listed.name, FetchOwner=True, MaxKeys=2)
    owner = s3.list_buckets()["Owner"]["ID"]
    assert [o["Owner"]["ID"] for o in response["Contents"]] == [owner, owner]


def test_list_v2_encoding_type_url(s3, listed: Bucket) -> None:
    # botocore decodes keys itself only when it added EncodingType; asked for explicitly, the
    # raw encoded keys come back.
    response = s3.list_objects_v2(Bucket=listed.name, EncodingType="url", Prefix="a")
    assert response["EncodingType"] == "url"
    raw = [o["Key"] for o in response["Contents"]]
    assert all(key.isascii() and " " not in key and "+" not in key.replace("%2B", "") for key in raw)
    assert [unquote_plus(k) for k in raw] == s3_order(k for k in LISTED_KEYS if k[0] == "a")
    unicode = s3.list_objects_v2(Bucket=listed.name, EncodingType="url", StartAfter="~tilde")
    assert [o["Key"] for o in unicode["Contents"]] == ["%C3%A9.txt"]


def test_list_v1_marker(s3, listed: Bucket) -> None:
    entries, marker = [], ""
    for _ in range(10):
        page = s3.list_objects(Bucket=listed.name, Delimiter="/", MaxKeys=3, Marker=marker)
        here = [o["Key"] for o in page.get("Contents", [])]
        here += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert 1 <= len(here) <= 3
        entries += s3_order(here)
        if not page["IsTruncated"]:
            break
        marker = page["NextMarker"]
        assert marker == s3_order(here)[-1]
    expected = s3_order({k if "/" not in k else k.split("/")[0] + "/" for k in LISTED_KEYS})
    assert entries == expected
    plain = s3.list_objects(Bucket=listed.name, Marker="a/b")
    assert [o["Key"] for o in plain["Contents"]] == [
        k for k in s3_order(LISTED_KEYS) if k.encode() > b"a/b"
    ]
    assert plain["Marker"] == "a/b"


# Multipart


def _parts(count_full: int, last: int) -> list:
    return [os.urandom(5 * MiB) for _ in range(count_full)] + [os.urandom(last)]


def _upload(s3, bucket: Bucket, key: str, parts: list, **create) -> tuple:
    upload_id = s3.create_multipart_upload(Bucket=bucket.name, Key=key, **create)["UploadId"]
    etags = []
    for number, body in enumerate(parts, 1):
        answer = s3.upload_part(
            Bucket=bucket.name, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        assert answer["ETag"] == md5_etag(body)
        etags.append(answer["ETag"])
    return upload_id, etags


def _complete(s3, bucket: Bucket, key: str, upload_id: str, numbered) -> dict:
    return s3.complete_multipart_upload(
        Bucket=bucket.name, Key=key, UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in numbered]},
    )  # fmt: skip


def test_multipart_upload(s3, bucket: Bucket) -> None:
    parts = _parts(2, 1000)
    upload_id, etags = _upload(
        s3, bucket, "big/object", parts, ContentType="text/x-parts", Metadata={"k": "v"}
    )
    uploads = s3.list_multipart_uploads(Bucket=bucket.name)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("big/object", upload_id)]

    first = s3.list_parts(Bucket=bucket.name, Key="big/object", UploadId=upload_id, MaxParts=2)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in first["Parts"]] == [
        (1, etags[0], 5 * MiB), (2, etags[1], 5 * MiB)
    ]  # fmt: skip
    assert first["IsTruncated"] is True and first["NextPartNumberMarker"] == 2
    rest = s3.list_parts(
        Bucket=bucket.name, Key="big/object", UploadId=upload_id, PartNumberMarker=2
    )
    assert [(p["PartNumber"], p["Size"]) for p in rest["Parts"]] == [(3, 1000)]
    assert rest["IsTruncated"] is False

    done = _complete(s3, bucket, "big/object", upload_id, zip((1, 2, 3), etags))
    expected_etag = '"' + multipart_etag(parts) + '"'
    assert done["ETag"] == expected_etag
    head = s3.head_object(Bucket=bucket.name, Key="big/object")
    assert head["ETag"] == expected_etag
    assert head["ContentLength"] == sum(map(len, parts))
    assert head["ContentType"] == "text/x-parts" and head["Metadata"] == {"k": "v"}
    body = s3.get_object(Bucket=bucket.name, Key="big/object")["Body"].read()
    assert body == b"".join(parts)
    assert (bucket.path / "big" / "object").read_bytes() == body
    assert not (bucket.path / ".s3gateway" / "uploads" / upload_id).exists()
    assert s3.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []) == []


def test_multipart_abort(s3, bucket: Bucket) -> None:
    upload_id, _ = _upload(s3, bucket, "aborted", _parts(1, 100))
    assert status(s3.abort_multipart_upload(Bucket=bucket.name, Key="aborted", UploadId=upload_id)) == 204
    assert not (bucket.path / ".s3gateway" / "uploads" / upload_id).exists()
    leftovers = [p for p in files_under(bucket.path) if upload_id in str(p)]
    assert leftovers == []
    with pytest.raises(ClientError) as excinfo:
        s3.list_parts(Bucket=bucket.name, Key="aborted", UploadId=upload_id)
    assert error_of(excinfo) == ("NoSuchUpload", 404)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket.name)


def test_multipart_invalid_part(s3, bucket: Bucket) -> None:
    upload_id, etags = _upload(s3, bucket, "k", _parts(1, 10))
    for numbered in ([(1, etags[0]), (2, md5_etag(b"other"))], [(1, etags[0]), (3, etags[1])]):
        with pytest.raises(ClientError) as excinfo:
            _complete(s3, bucket, "k", upload_id, numbered)
        assert error_of(excinfo) == ("InvalidPart", 400)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket.name, Key="k")


def test_multipart_invalid_part_order(s3, bucket: Bucket) -> None:
    upload_id, etags = _upload(s3, bucket, "k", _parts(1, 10))
    with pytest.raises(ClientError) as excinfo:
        _complete(s3, bucket, "k", upload_id, [(2, etags[1]), (1, etags[0])])
    assert error_of(excinfo) == ("InvalidPartOrder", 400)


def test_multipart_entity_too_small(s3, bucket: Bucket) -> None:
    parts = [os.urandom(1024), os.urandom(1024)]
    upload_id, etags = _upload(s3, bucket, "k", parts)
    with pytest.raises(ClientError) as excinfo:
        _complete(s3, bucket, "k", upload_id, zip((1, 2), etags))
    assert error_of(excinfo) == ("EntityTooSmall", 400)


def test_multipart_no_such_upload(s3, bucket: Bucket) -> None:
    bogus = "no-such-upload-id"
    calls = [
        lambda: s3.upload_part(Bucket=bucket.name, Key="k", UploadId=bogus, PartNumber=1, Body=b"x"),
        lambda: _complete(s3, bucket, "k", bogus, [(1, md5_etag(b"x"))]),
        lambda: s3.list_parts(Bucket=bucket.name, Key="k", UploadId=bogus),
        lambda: s3.abort_multipart_upload(Bucket=bucket.name, Key="k", UploadId=bogus),
    ]
    for call in calls:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_of(excinfo) == ("NoSuchUpload", 404)


# Keys and safety


@pytest.mark.parametrize(
    "key",
    [
        "with space.txt",
        "a+b=c.txt",
        "100%.txt",
        "%2F not a slash",
        "ünïcödé/日本語 ファイル.txt",
        "/".join(f"level{n}" for n in range(40)) + "/deep.txt",
        "sp ace/+plus/%pct/~tilde/file",
        "trailing.dot.",
        "semi;colon,comma&amp=eq?q#hash",
    ],
)
def test_key_round_trip(s3, bucket: Bucket, key: str) -> None:
    body = os.urandom(100) + key.encode("utf-8")
    put(s3, bucket, key, body)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket.name)["Contents"]] == [key]
    assert s3.get_object(Bucket=bucket.name, Key=key)["Body"].read() == body
    assert s3.head_object(Bucket=bucket.name, Key=key)["ContentLength"] == len(body)
    # Objects are plain files that other programs can read.
    assert (bucket.path / key).read_bytes() == body
    assert status(s3.delete_object(Bucket=bucket.name, Key=key)) == 204
    assert not (bucket.path / key).exists()


def _outside_snapshot(root: Path, bucket: Bucket) -> dict:
    return {
        str(p): p.stat().st_size
        for p in files_under(root)
        if bucket.path not in p.parents
    }


@pytest.mark.parametrize("key", ["../x", "a/../../x", "a/b/../../../x", "..", "./../x"])
def test_traversal_keys_refused_by_boto3(s3, bucket: Bucket, tmp_path: Path, key: str) -> None:
    before = _outside_snapshot(tmp_path, bucket)
    with pytest.raises(ClientError) as excinfo:
        put(s3, bucket, key, b"escaped")
    assert error_of(excinfo) == ("InvalidArgument", 400)
    assert _outside_snapshot(tmp_path, bucket) == before
    assert not any(p.name == "x" for p in files_under(tmp_path))


@pytest.mark.parametrize("size", [4096, 2 * 1024 * 1024])
def test_keys_the_folder_cannot_hold_refused(
    s3, bucket: Bucket, tmp_path: Path, size: int
) -> None:
    """
    A key below an object, or through a link to outside the bucket, is refused, whether the
    gateway finds out before the body (a large one) or at the commit (a small one, which the
    client has sent already): the object stays, nothing is written outside.
    """
    put(s3, bucket, "file", b"kept")
    outside = tmp_path / "outside-link-target"
    outside.mkdir()
    (bucket.path / "link").symlink_to(outside)
    before = _outside_snapshot(tmp_path, bucket)
    for key in ["file/under", "link/x"]:
        with pytest.raises(ClientError) as excinfo:
            put(s3, bucket, key, os.urandom(size))
        assert error_of(excinfo) == ("InvalidArgument", 400)
    assert _outside_snapshot(tmp_path, bucket) == before
    assert list(outside.iterdir()) == []
    assert s3.get_object(Bucket=bucket.name, Key="file")["Body"].read() == b"kept"


@pytest.mark.parametrize(
    "path",
    [
        "/{bucket}/../x",
        "/{bucket}/..%2Fx",
        "/{bucket}/a%2F..%2F..%2Fx",
        "/{bucket}/%2E%2E/x",
        "/{bucket}/a/%00b",
    ],
)
def test_traversal_keys_refused_raw(
    gateway: Daemon, signer: Signer, bucket: Bucket, tmp_path: Path, path: str
) -> None:
    """
    The same, sent exactly as written (no client normalises the dots away). The signature covers
    the canonical URI: the decoded key encoded again with ``/`` left as is, as botocore sends it.
    """
    before = _outside_snapshot(tmp_path, bucket)
    target = path.format(bucket=bucket.name)
    response = signed_request(
        gateway.port, signer, "PUT", target, body=b"escaped",
        canonical_path=uri_encode(unquote(target), safe="/"),
    )  # fmt: skip
    assert (response.status, response.error_code) == (400, "InvalidArgument"), response.body
    assert _outside_snapshot(tmp_path, bucket) == before
    assert not any(p.name == "x" for p in files_under(tmp_path))


def test_backslash_key_stays_inside(
    gateway: Daemon, signer: Signer, s3, bucket: Bucket, tmp_path: Path
) -> None:
    """
    A backslash is no separator on POSIX: the key is refused or stored as one plain file name,
    never followed out of the directory.
    """
    before = _outside_snapshot(tmp_path, bucket)
    response = signed_request(
        gateway.port, signer, "PUT", f"/{bucket.name}/a%5C..%5C..%5Cx", body=b"inside"
    )
    assert _outside_snapshot(tmp_path, bucket) == before
    if response.status == 200:
        got = s3.get_object(Bucket=bucket.name, Key="a\\..\\..\\x")
        assert got["Body"].read() == b"inside"
    else:
        assert (response.status, response.error_code) == (400, "InvalidArgument")


@pytest.mark.parametrize("key", ["k" * 1025, "long/" + "s" * 300 + "/segment"])
def test_overlong_keys_refused(s3, bucket: Bucket, key: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        put(s3, bucket, key, b"x")
    assert error_of(excinfo) == ("KeyTooLongError", 400)
    assert files_under(bucket.path) == [] or all(
        ".s3gateway" in p.parts for p in files_under(bucket.path)
    )


def test_read_only_connection(gateway: Daemon, s3, tmp_path: Path) -> None:
    ro = add_bucket(gateway, tmp_path, read_only=True)
    (ro.path / "existing.txt").write_bytes(b"readable")
    assert s3.get_object(Bucket=ro.name, Key="existing.txt")["Body"].read() == b"readable"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=ro.name)["Contents"]] == ["existing.txt"]
    writes = [
        lambda: s3.put_object(Bucket=ro.name, Key="new.txt", Body=b"no"),
        lambda: s3.put_object(Bucket=ro.name, Key="existing.txt", Body=b"no"),
        lambda: s3.delete_object(Bucket=ro.name, Key="existing.txt"),
        lambda: s3.create_multipart_upload(Bucket=ro.name, Key="new.txt"),
    ]
    for write in writes:
        with pytest.raises(ClientError) as excinfo:
            write()
        assert error_of(excinfo) == ("AccessDenied", 403)
    assert (ro.path / "existing.txt").read_bytes() == b"readable"
    assert not (ro.path / "new.txt").exists()


# Users


def test_second_user_sees_only_their_buckets(
    gateway: Daemon, s3, bucket: Bucket, tmp_path: Path
) -> None:
    name = f"bob{os.getpid()}{os.urandom(3).hex()}"
    key_id, secret = gateway.add_user(name)
    bobs = add_bucket(gateway, tmp_path / "bob", user=name)
    put(s3, bucket, "admin-only", b"secret")
    bob = boto3_client(gateway.endpoint, key_id, secret)
    assert [b["Name"] for b in bob.list_buckets()["Buckets"]] == [bobs.name]
    assert bobs.name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    bob.put_object(Bucket=bobs.name, Key="mine", Body=b"bob's")
    assert (bobs.path / "mine").read_bytes() == b"bob's"
    for call in (
        lambda: bob.head_bucket(Bucket=bucket.name),
        lambda: bob.get_object(Bucket=bucket.name, Key="admin-only"),
        lambda: bob.list_objects_v2(Bucket=bucket.name),
        lambda: bob.put_object(Bucket=bucket.name, Key="intruder", Body=b"x"),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_of(excinfo)[1] in (403, 404)
    assert not (bucket.path / "intruder").exists()


# The directory is the bucket


def test_file_put_by_other_means(s3, bucket: Bucket) -> None:
    external = bucket.path / "from" / "elsewhere.bin"
    external.parent.mkdir()
    first = os.urandom(4096)
    external.write_bytes(first)
    listing = s3.list_objects_v2(Bucket=bucket.name)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listing] == [
        ("from/elsewhere.bin", 4096, md5_etag(first))
    ]
    got = s3.get_object(Bucket=bucket.name, Key="from/elsewhere.bin")
    assert got["ETag"] == md5_etag(first) and got["Body"].read() == first
    # Same size, new content and mtime: the ETag follows the file.
    second = os.urandom(4096)
    external.write_bytes(second)
    stat = external.stat()
    os.utime(external, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert s3.head_object(Bucket=bucket.name, Key="from/elsewhere.bin")["ETag"] == md5_etag(second)
    got = s3.get_object(Bucket=bucket.name, Key="from/elsewhere.bin")
    assert got["ETag"] == md5_etag(second) and got["Body"].read() == second
    external.unlink()
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket.name, Prefix="from/")


def test_metadata_survives_restart(make_daemon, tmp_path: Path) -> None:
    daemon = make_daemon()
    daemon.start()
    own = add_bucket(daemon, tmp_path)
    client = boto3_client(daemon.endpoint, daemon.access_key, daemon.secret_key)
    body = os.urandom(2048)
    client.put_object(
        Bucket=own.name, Key="kept/meta.bin", Body=body,
        ContentType="image/x-e2e", Metadata={"origin": "before-restart"},
        ContentDisposition='attachment; filename="meta.bin"',
    )  # fmt: skip
    daemon.stop()
    daemon.start()
    client = boto3_client(daemon.endpoint, daemon.access_key, daemon.secret_key)
    head = client.head_object(Bucket=own.name, Key="kept/meta.bin")
    assert head["ETag"] == md5_etag(body)
    assert head["ContentType"] == "image/x-e2e"
    assert head["Metadata"] == {"origin": "before-restart"}
    assert head["ContentDisposition"] == 'attachment; filename="meta.bin"'
    assert client.get_object(Bucket=own.name, Key="kept/meta.bin")["Body"].read() == body


def test_create_bucket_root(make_daemon, tmp_path: Path) -> None:
    root = tmp_path / "made-by-s3"
    root.mkdir()
    daemon = make_daemon("--create-bucket-root", str(root))
    daemon.start()
    operator_made = add_bucket(daemon, tmp_path / "operator")
    client = boto3_client(daemon.endpoint, daemon.access_key, daemon.secret_key)
    assert status(client.create_bucket(Bucket="fresh-bucket")) == 200
    assert "fresh-bucket" in [b["Name"] for b in client.list_buckets()["Buckets"]]
    made = [p for p in root.rglob("fresh-bucket") if p.is_dir()]
    assert len(made) == 1, made
    client.put_object(Bucket="fresh-bucket", Key="k", Body=b"v")
    assert (made[0] / "k").read_bytes() == b"v"
    with pytest.raises(ClientError) as excinfo:
        client.delete_bucket(Bucket="fresh-bucket")
    assert error_of(excinfo) == ("BucketNotEmpty", 409)
    client.delete_object(Bucket="fresh-bucket", Key="k")
    assert status(client.delete_bucket(Bucket="fresh-bucket")) == 204
    assert "fresh-bucket" not in [b["Name"] for b in client.list_buckets()["Buckets"]]
    try:
        client.delete_bucket(Bucket=operator_made.name)
    except ClientError:
        pass
    assert operator_made.name in [b["Name"] for b in client.list_buckets()["Buckets"]]
