"""
``--access-log PATH`` end to end: a real daemon, with one process and with two workers, writes
its access log to PATH and no longer to twistd's log.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from tests.e2e.clients import Daemon
from tests.test_workers import (
    WAIT,
    Client,
    _access_key,
    _secret,
    clients_by_worker,
    put,
    wait_for,
    worker_pids,
)

#: The access-log line of a request: time, process, then the event's text.
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[(\d+)\] (\S+) (\S+) (\d{3}) ")


def started(tmp_path: Path, *extra_args: str) -> Tuple[Daemon, str]:
    daemon = Daemon(
        data_dir=tmp_path / "data",
        log_path=tmp_path / "gateway.log",
        access_key=_access_key(),
        secret_key=_secret(),
        extra_args=("--access-log", str(tmp_path / "access.log"), *extra_args),
    )
    daemon.start()
    bucket, directory = "access-" + secrets.token_hex(4), tmp_path / "bucket"
    directory.mkdir()
    daemon.add_connection(bucket, directory)
    return daemon, bucket


@pytest.fixture
def single(tmp_path: Path) -> Iterator[Tuple[Daemon, str]]:
    daemon, bucket = started(tmp_path)
    try:
        yield daemon, bucket
    finally:
        daemon.stop(timeout=WAIT)


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Tuple[Daemon, str]]:
    daemon, bucket = started(tmp_path, "--workers", "2")
    try:
        wait_for(lambda: len(worker_pids(daemon)) == 2, "two workers")
        yield daemon, bucket
    finally:
        daemon.stop(timeout=WAIT + 10)


def access_lines(daemon: Daemon) -> List[Tuple[int, str, str, int]]:
    """
    The access log's lines so far: (pid, method, path, status) each.
    """
    path = daemon.log_path.parent / "access.log"
    parsed = []
    for line in path.read_text().splitlines() if path.exists() else []:
        found = LINE.match(line)
        assert found, line
        parsed.append((int(found[1]), found[2], found[3], int(found[4])))
    return parsed


def test_one_process_writes_the_access_log_file(single) -> None:
    daemon, bucket = single
    put(daemon, f"/{bucket}/hello", b"hello")
    client = Client(daemon)
    assert client.request("GET", f"/{bucket}/missing")[0] == 404
    client.close()
    wait_for(lambda: len(access_lines(daemon)) == 2, "two access-log lines")
    lines = access_lines(daemon)
    assert [line[1:] for line in lines] == [
        ("PUT", f"/{bucket}/hello", 200), ("GET", f"/{bucket}/missing", 404),
    ]
    assert {line[0] for line in lines} == {daemon.pid}
    assert "op=PutObject" not in daemon.log_path.read_text()


def test_every_worker_writes_its_own_lines(two_workers) -> None:
    daemon, bucket = two_workers
    put(daemon, f"/{bucket}/hello", b"hello")
    pids = worker_pids(daemon)
    for client in clients_by_worker(daemon, f"/{bucket}/hello", pids).values():
        client.close()

    def writers() -> set:
        return {pid for pid, *rest in access_lines(daemon) if rest == ["GET", f"/{bucket}/hello", 200]}

    wait_for(lambda: writers() == pids, "a GET line from each worker")
    assert daemon.pid not in {line[0] for line in access_lines(daemon)}
    assert "op=GetObject" not in daemon.log_path.read_text()
