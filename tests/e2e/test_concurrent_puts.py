"""
Many small PUTs at once from boto3, through two workers: they commit in batches on each worker's
event loop, with the kernel running their fsyncs (L{gateway.backends.reactorcommits}), while the
other worker writes the same bucket's index. Every object must come back whole, with its own
ETag, Content-Type and metadata, and nothing be left behind.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Tuple

from tests.e2e.clients import files_under
from tests.e2e.conftest import two_workers_and_bucket
from tests.test_workers import worker_pids

#: Objects, and how many PUTs are in flight at once.
OBJECTS = 300
CONCURRENCY = 32


def test_concurrent_small_puts_through_two_workers(make_daemon, tmp_path: Path) -> None:
    daemon, bucket, client = two_workers_and_bucket(make_daemon, tmp_path / "buckets", CONCURRENCY)
    # The folder exists first: PUTs that make a folder commit on the commit thread instead.
    client.put_object(Bucket=bucket.name, Key="batch/first", Body=b"first")

    def version(number: int, round_: int) -> Tuple[str, bytes, Dict[str, str], str]:
        key = f"batch/{number:04d}"
        body = os.urandom(1 + (number * 37 + round_ * 11) % 6000)
        return key, body, {"number": str(number), "round": str(round_)}, f"text/x-{number}-{round_}"

    def upload(item: Tuple[str, bytes, Dict[str, str], str]) -> str:
        key, body, metadata, content_type = item
        answer = client.put_object(
            Bucket=bucket.name, Key=key, Body=body, Metadata=metadata, ContentType=content_type
        )
        return str(answer["ETag"])

    first = [version(n, 1) for n in range(OBJECTS)]
    # Half the keys again, so that commits also replace objects.
    second = [version(n, 2) for n in range(0, OBJECTS, 2)]
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        etags: List[str] = list(pool.map(upload, first))
        etags += list(pool.map(upload, second))
    for (_, body, _, _), etag in zip(first + second, etags):
        assert etag == '"' + hashlib.md5(body).hexdigest() + '"'

    final = {key: (body, metadata, content_type) for key, body, metadata, content_type in first}
    final.update({key: (body, metadata, content_type) for key, body, metadata, content_type in second})

    def check(key: str) -> None:
        body, metadata, content_type = final[key]
        got = client.get_object(Bucket=bucket.name, Key=key)
        assert got["Body"].read() == body, key
        assert got["ETag"] == '"' + hashlib.md5(body).hexdigest() + '"', key
        assert got["ContentType"] == content_type, key
        assert got["Metadata"] == metadata, key

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(check, sorted(final)))
    # Each worker made its AIO context (the kernel maps its ring as "[aio]"), unless the gateway
    # said there is none here.
    workers = worker_pids(daemon)
    assert len(workers) == 2
    if "No native AIO" not in daemon.log_path.read_text(errors="replace"):
        for pid in workers:
            assert "[aio]" in Path(f"/proc/{pid}/maps").read_text(), pid
    listed = client.list_objects_v2(Bucket=bucket.name, Prefix="batch/", MaxKeys=1000)
    assert listed["KeyCount"] == OBJECTS + 1
    for entry in listed["Contents"]:
        if entry["Key"] in final:
            assert entry["Size"] == len(final[entry["Key"]][0])
    assert files_under(bucket.path / ".s3gateway" / "tmp") == []
