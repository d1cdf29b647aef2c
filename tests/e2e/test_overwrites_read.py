"""
Small objects overwritten again and again through two workers while boto3 reads them. Each
worker writes uploads into the files of the objects it replaced, and exchanges them with the
objects they replace (L{gateway.backends.localspare}); whatever the interleaving, every GET must
give one whole version, never a mix of two or an old version's tail, and every ETag its body's.
The workers' spare folders go when the daemon stops.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List

from tests.e2e.clients import files_under
from tests.e2e.conftest import two_workers_and_bucket
from tests.test_workers import worker_pids

KEYS = 12
WRITES = 480
WRITERS = 8
READERS = 8

#: The bytes before a version's filler: its number and length, so that a reader can check it.
HEADER = 16


def version_body(number: int) -> bytes:
    """
    Version C{number}: its number and length, then one byte repeated. Lengths differ from one
    version to the next, longer and shorter, up to 80 KB.
    """
    length = HEADER + (number * 7919) % 80_000
    return b"%08d%08d" % (number, length) + bytes([number % 251]) * (length - HEADER)


def whole(body: bytes) -> bool:
    """
    Whether C{body} is exactly one version.
    """
    if len(body) < HEADER:
        return False
    number, length = int(body[:8]), int(body[8:HEADER])
    return body == version_body(number) and len(body) == length


def test_every_read_gives_one_whole_version(make_daemon, tmp_path: Path) -> None:
    daemon, bucket, client = two_workers_and_bucket(
        make_daemon, tmp_path / "buckets", WRITERS + READERS
    )
    for key in range(KEYS):
        client.put_object(Bucket=bucket.name, Key=f"k/{key}", Body=version_body(key))
    stop = threading.Event()
    broken: List[str] = []
    reads = [0]

    def write(number: int) -> None:
        body = version_body(number)
        answer = client.put_object(Bucket=bucket.name, Key=f"k/{number % KEYS}", Body=body)
        assert answer["ETag"] == '"' + hashlib.md5(body).hexdigest() + '"'

    def read(reader: int) -> None:
        turn = reader
        while not stop.is_set():
            key = f"k/{turn % KEYS}"
            got = client.get_object(Bucket=bucket.name, Key=key)
            body = got["Body"].read()
            if not whole(body) or got["ETag"] != '"' + hashlib.md5(body).hexdigest() + '"':
                broken.append(f"{key}: {len(body)} bytes, {body[:HEADER]!r}")
            reads[0] += 1
            turn += 1

    with ThreadPoolExecutor(READERS) as readers:
        running = [readers.submit(read, n) for n in range(READERS)]
        try:
            with ThreadPoolExecutor(WRITERS) as writers:
                list(writers.map(write, range(KEYS, KEYS + WRITES)))
        finally:
            stop.set()
        for future in running:
            future.result()
    assert broken == []
    assert reads[0] >= READERS
    assert len(worker_pids(daemon)) == 2

    for key in range(KEYS):
        body = client.get_object(Bucket=bucket.name, Key=f"k/{key}")["Body"].read()
        assert whole(body), key
    assert files_under(bucket.path / ".s3gateway" / "tmp") == []
    # What the workers keep is bounded by their spare folders: one per worker at most.
    spare = bucket.path / ".s3gateway" / "spare"
    folders = [p for p in spare.iterdir()] if spare.exists() else []
    assert 1 <= len(folders) <= 2
    assert all(p.stat().st_size <= 256 * 1024 for p in files_under(spare))
    # A worker that stops cleanly removes its folder.
    daemon.stop()
    assert not daemon.alive()
    assert list(spare.iterdir()) == []
