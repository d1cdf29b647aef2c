"""
Preconditions through boto3 against the daemon: conditional reads (If-Match, If-None-Match,
If-Modified-Since, If-Unmodified-Since, alone, combined with S3's precedence and with Range) and
conditional writes (PutObject and CompleteMultipartUpload with ``If-None-Match: *`` and
``If-Match``), including the race of many create-if-absent uploads of one key.
"""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import timedelta
from typing import List, Optional, Tuple

import pytest
from botocore.exceptions import ClientError

from tests.e2e.clients import Daemon, error_of, multipart_etag
from tests.e2e.conftest import Bucket, boto3_client

MiB = 1024 * 1024
HOUR = timedelta(hours=1)


def md5_etag(body: bytes) -> str:
    return '"' + hashlib.md5(body).hexdigest() + '"'


def status(response: dict) -> int:
    return response["ResponseMetadata"]["HTTPStatusCode"]


def stored(s3, bucket: Bucket, key: str) -> bytes:
    return s3.get_object(Bucket=bucket.name, Key=key)["Body"].read()


@pytest.fixture
def obj(s3, bucket: Bucket) -> Tuple[str, str, object, bytes]:
    """
    One object: its key, quoted ETag, Last-Modified (a datetime) and bytes.
    """
    body = os.urandom(1000)
    s3.put_object(Bucket=bucket.name, Key="cond.bin", Body=body)
    head = s3.head_object(Bucket=bucket.name, Key="cond.bin")
    assert head["ETag"] == md5_etag(body)
    return "cond.bin", head["ETag"], head["LastModified"], body


def read_status(s3, bucket: Bucket, key: str, method: str = "get", **conditions) -> int:
    """
    The HTTP status of a GET or HEAD with the given boto3 condition parameters (a GET's body
    is read to the end, so that a short or broken body fails the call).
    """
    call = s3.get_object if method == "get" else s3.head_object
    try:
        response = call(Bucket=bucket.name, Key=key, **conditions)
    except ClientError as error:
        return int(error.response["ResponseMetadata"]["HTTPStatusCode"])
    if method == "get":
        response["Body"].read()
    return status(response)


# Conditional reads, one condition at a time


@pytest.mark.parametrize("method", ["get", "head"])
def test_if_match(s3, bucket: Bucket, obj, method: str) -> None:
    key, etag, _, _ = obj
    assert read_status(s3, bucket, key, method, IfMatch=etag) == 200
    assert read_status(s3, bucket, key, method, IfMatch="*") == 200
    assert read_status(s3, bucket, key, method, IfMatch=f'"{"0" * 32}", {etag}') == 200
    assert read_status(s3, bucket, key, method, IfMatch='"' + "0" * 32 + '"') == 412


def test_if_match_error_document(s3, bucket: Bucket, obj) -> None:
    key, _, _, _ = obj
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket.name, Key=key, IfMatch='"' + "0" * 32 + '"')
    assert error_of(excinfo) == ("PreconditionFailed", 412)


@pytest.mark.parametrize("method", ["get", "head"])
def test_if_none_match(s3, bucket: Bucket, obj, method: str) -> None:
    key, etag, _, _ = obj
    assert read_status(s3, bucket, key, method, IfNoneMatch=etag) == 304
    assert read_status(s3, bucket, key, method, IfNoneMatch="*") == 304
    assert read_status(s3, bucket, key, method, IfNoneMatch='"' + "0" * 32 + '"') == 200


def test_not_modified_carries_validators(s3, bucket: Bucket, obj) -> None:
    key, etag, _, _ = obj
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket.name, Key=key, IfNoneMatch=etag)
    response = excinfo.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 304
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["etag"] == etag
    assert "last-modified" in headers


@pytest.mark.parametrize("method", ["get", "head"])
def test_if_modified_since(s3, bucket: Bucket, obj, method: str) -> None:
    key, _, modified, _ = obj
    assert read_status(s3, bucket, key, method, IfModifiedSince=modified - HOUR) == 200
    assert read_status(s3, bucket, key, method, IfModifiedSince=modified) == 304
    assert read_status(s3, bucket, key, method, IfModifiedSince=modified + HOUR) == 304


@pytest.mark.parametrize("method", ["get", "head"])
def test_if_unmodified_since(s3, bucket: Bucket, obj, method: str) -> None:
    key, _, modified, _ = obj
    assert read_status(s3, bucket, key, method, IfUnmodifiedSince=modified + HOUR) == 200
    assert read_status(s3, bucket, key, method, IfUnmodifiedSince=modified) == 200
    assert read_status(s3, bucket, key, method, IfUnmodifiedSince=modified - HOUR) == 412


def test_conditions_on_missing_key(s3, bucket: Bucket) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket.name, Key="absent", IfMatch='"' + "0" * 32 + '"')
    assert error_of(excinfo) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket.name, Key="absent", IfNoneMatch="*")
    assert error_of(excinfo) == ("NoSuchKey", 404)


# S3's precedence (GetObject, "Additional considerations about request headers")


@pytest.mark.parametrize("method", ["get", "head"])
def test_if_match_true_wins_over_if_unmodified_since_false(
    s3, bucket: Bucket, obj, method: str
) -> None:
    key, etag, modified, _ = obj
    assert read_status(
        s3, bucket, key, method, IfMatch=etag, IfUnmodifiedSince=modified - HOUR
    ) == 200


@pytest.mark.parametrize("method", ["get", "head"])
def test_if_none_match_false_wins_over_if_modified_since_true(
    s3, bucket: Bucket, obj, method: str
) -> None:
    key, etag, modified, _ = obj
    assert read_status(
        s3, bucket, key, method, IfNoneMatch=etag, IfModifiedSince=modified - HOUR
    ) == 304


def test_if_none_match_true_wins_over_if_modified_since_false(s3, bucket: Bucket, obj) -> None:
    key, _, modified, body = obj
    response = s3.get_object(
        Bucket=bucket.name, Key=key, IfNoneMatch='"' + "0" * 32 + '"',
        IfModifiedSince=modified + HOUR,
    )  # fmt: skip
    assert status(response) == 200 and response["Body"].read() == body


def test_failed_if_match_wins_over_not_modified(s3, bucket: Bucket, obj) -> None:
    key, etag, _, _ = obj
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(
            Bucket=bucket.name, Key=key, IfMatch='"' + "0" * 32 + '"', IfNoneMatch=etag
        )
    assert error_of(excinfo) == ("PreconditionFailed", 412)


def test_failed_if_unmodified_since_wins_over_not_modified(s3, bucket: Bucket, obj) -> None:
    key, etag, modified, _ = obj
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(
            Bucket=bucket.name, Key=key, IfUnmodifiedSince=modified - HOUR, IfNoneMatch=etag
        )
    assert error_of(excinfo) == ("PreconditionFailed", 412)


# Conditions with Range


def test_range_with_matching_if_match(s3, bucket: Bucket, obj) -> None:
    key, etag, modified, body = obj
    response = s3.get_object(
        Bucket=bucket.name, Key=key, Range="bytes=100-199", IfMatch=etag,
        IfUnmodifiedSince=modified + HOUR,
    )  # fmt: skip
    assert status(response) == 206
    assert response["ContentRange"] == f"bytes 100-199/{len(body)}"
    assert response["Body"].read() == body[100:200]


def test_range_with_failing_if_match(s3, bucket: Bucket, obj) -> None:
    key, _, _, _ = obj
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(
            Bucket=bucket.name, Key=key, Range="bytes=0-9", IfMatch='"' + "0" * 32 + '"'
        )
    assert error_of(excinfo) == ("PreconditionFailed", 412)


def test_range_with_not_modified(s3, bucket: Bucket, obj) -> None:
    key, etag, _, _ = obj
    assert read_status(s3, bucket, key, Range="bytes=0-9", IfNoneMatch=etag) == 304


def test_range_with_modified_since_long_ago(s3, bucket: Bucket, obj) -> None:
    key, _, modified, body = obj
    response = s3.get_object(
        Bucket=bucket.name, Key=key, Range="bytes=-10", IfModifiedSince=modified - HOUR
    )
    assert status(response) == 206 and response["Body"].read() == body[-10:]


def test_object_changed_between_ranged_reads(s3, bucket: Bucket, obj) -> None:
    """
    What the aws cli relies on for large downloads: If-Match on every ranged part notices a
    replaced object.
    """
    key, etag, _, body = obj
    first = s3.get_object(Bucket=bucket.name, Key=key, Range="bytes=0-499", IfMatch=etag)
    assert first["Body"].read() == body[:500]
    s3.put_object(Bucket=bucket.name, Key=key, Body=b"replaced")
    with pytest.raises(ClientError) as excinfo:
        s3.get_object(Bucket=bucket.name, Key=key, Range="bytes=500-999", IfMatch=etag)
    assert error_of(excinfo) == ("PreconditionFailed", 412)


# Conditional writes: PutObject


def test_put_if_none_match_creates_when_absent(s3, bucket: Bucket) -> None:
    response = s3.put_object(Bucket=bucket.name, Key="new", Body=b"first", IfNoneMatch="*")
    assert status(response) == 200 and response["ETag"] == md5_etag(b"first")
    assert stored(s3, bucket, "new") == b"first"


def test_put_if_none_match_refused_when_present(s3, bucket: Bucket) -> None:
    s3.put_object(Bucket=bucket.name, Key="taken", Body=b"first")
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket.name, Key="taken", Body=b"second", IfNoneMatch="*")
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    assert stored(s3, bucket, "taken") == b"first"
    assert (bucket.path / "taken").read_bytes() == b"first"


def test_put_if_match(s3, bucket: Bucket) -> None:
    first = s3.put_object(Bucket=bucket.name, Key="doc", Body=b"v1")
    second = s3.put_object(Bucket=bucket.name, Key="doc", Body=b"v2", IfMatch=first["ETag"])
    assert status(second) == 200 and second["ETag"] == md5_etag(b"v2")
    assert stored(s3, bucket, "doc") == b"v2"
    with pytest.raises(ClientError) as excinfo:
        # The ETag of v1 no longer holds: a lost update is refused.
        s3.put_object(Bucket=bucket.name, Key="doc", Body=b"v3", IfMatch=first["ETag"])
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    assert stored(s3, bucket, "doc") == b"v2"


def test_put_if_match_on_missing_key(s3, bucket: Bucket) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket.name, Key="nothing", Body=b"x", IfMatch=md5_etag(b"x"))
    assert error_of(excinfo) == ("NoSuchKey", 404)
    assert not (bucket.path / "nothing").exists()


def test_put_if_none_match_etag_list_not_implemented(s3, bucket: Bucket) -> None:
    with pytest.raises(ClientError) as excinfo:
        s3.put_object(Bucket=bucket.name, Key="k", Body=b"x", IfNoneMatch=md5_etag(b"y"))
    assert error_of(excinfo) == ("NotImplemented", 501)
    assert not (bucket.path / "k").exists()


# Conditional writes: CompleteMultipartUpload


def _multipart(s3, bucket: Bucket, key: str, parts: List[bytes]) -> Tuple[str, list]:
    upload_id = s3.create_multipart_upload(Bucket=bucket.name, Key=key)["UploadId"]
    layout = []
    for number, data in enumerate(parts, 1):
        answer = s3.upload_part(
            Bucket=bucket.name, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        layout.append({"PartNumber": number, "ETag": answer["ETag"]})
    return upload_id, layout


def _complete(s3, bucket: Bucket, key: str, upload_id: str, layout: list, **condition) -> dict:
    return s3.complete_multipart_upload(
        Bucket=bucket.name, Key=key, UploadId=upload_id,
        MultipartUpload={"Parts": layout}, **condition,
    )  # fmt: skip


def test_complete_if_none_match(s3, bucket: Bucket) -> None:
    parts = [os.urandom(5 * MiB), b"tail"]
    upload_id, layout = _multipart(s3, bucket, "mp", parts)
    done = _complete(s3, bucket, "mp", upload_id, layout, IfNoneMatch="*")
    assert done["ETag"] == '"' + multipart_etag(parts) + '"'
    assert stored(s3, bucket, "mp") == b"".join(parts)

    again = [os.urandom(5 * MiB), b"other"]
    upload_id, layout = _multipart(s3, bucket, "mp", again)
    with pytest.raises(ClientError) as excinfo:
        _complete(s3, bucket, "mp", upload_id, layout, IfNoneMatch="*")
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    assert stored(s3, bucket, "mp") == b"".join(parts)


def test_complete_if_match(s3, bucket: Bucket) -> None:
    original = s3.put_object(Bucket=bucket.name, Key="mp", Body=b"small original")
    parts = [os.urandom(5 * MiB), b"end"]
    upload_id, layout = _multipart(s3, bucket, "mp", parts)
    with pytest.raises(ClientError) as excinfo:
        _complete(s3, bucket, "mp", upload_id, layout, IfMatch=md5_etag(b"not it"))
    assert error_of(excinfo) == ("PreconditionFailed", 412)
    assert stored(s3, bucket, "mp") == b"small original"
    # A failed condition leaves the upload in place (S3: retry with the right ETag).
    done = _complete(s3, bucket, "mp", upload_id, layout, IfMatch=original["ETag"])
    assert done["ETag"] == '"' + multipart_etag(parts) + '"'
    assert stored(s3, bucket, "mp") == b"".join(parts)


# The race: many create-if-absent uploads of one key, through the gateway at once


def test_if_none_match_race(gateway: Daemon, bucket: Bucket) -> None:
    contenders = 20
    bodies = [os.urandom(256 * 1024) + b"contender %d" % n for n in range(contenders)]
    clients = [
        boto3_client(gateway.endpoint, gateway.access_key, gateway.secret_key)
        for _ in range(contenders)
    ]
    barrier = threading.Barrier(contenders)
    outcomes: List[Optional[Tuple[int, str]]] = [None] * contenders

    def contend(n: int) -> None:
        barrier.wait(timeout=60)
        try:
            response = clients[n].put_object(
                Bucket=bucket.name, Key="race", Body=bodies[n], IfNoneMatch="*"
            )
            outcomes[n] = (status(response), response["ETag"])
        except ClientError as error:
            outcomes[n] = (
                int(error.response["ResponseMetadata"]["HTTPStatusCode"]),
                error.response["Error"]["Code"],
            )

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(outcome is not None for outcome in outcomes), outcomes
    winners = [n for n, outcome in enumerate(outcomes) if outcome[0] == 200]  # type: ignore
    assert len(winners) == 1, outcomes
    losers = [outcome for n, outcome in enumerate(outcomes) if n not in winners]
    assert losers == [(412, "PreconditionFailed")] * (contenders - 1), outcomes
    winner = winners[0]
    assert outcomes[winner] == (200, md5_etag(bodies[winner]))
    check = clients[0].get_object(Bucket=bucket.name, Key="race")
    assert check["Body"].read() == bodies[winner]
    assert check["ETag"] == md5_etag(bodies[winner])
    assert (bucket.path / "race").read_bytes() == bodies[winner]
    # No loser's temporary file is left next to the object.
    assert sorted(p.name for p in bucket.path.iterdir() if not p.name.startswith(".")) == ["race"]
