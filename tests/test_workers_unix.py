"""
``twistd s3gateway --workers 2`` on a ``unix:`` endpoint, end to end: real daemons, requests over
the socket's path.

Which worker served a request is read from the access log (``worker=PID``), since a UNIX
connection carries no port to look up.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import signal
import socket
import stat
from pathlib import Path
from typing import Iterator, Set, Tuple

import pytest

from tests.e2e.clients import Daemon, Signer
from tests.test_workers import WAIT, two_workers, wait_for, worker_pids

_SERVED_BY = re.compile(r"worker=(\d+)\] GET /\S+ 200 .*op=GetObject")


class UnixConnection(http.client.HTTPConnection):
    """
    An HTTP connection to a UNIX socket's path.
    """

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=WAIT)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(WAIT)
        self.sock.connect(self.path)


def request(daemon: Daemon, socket_path: Path, method: str, path: str,
            body: bytes = b"") -> Tuple[int, bytes]:
    """
    One signed request on a fresh connection (which any worker may take).
    """
    headers = {"host": "localhost"}
    resource, _, query = path.partition("?")
    pairs = [tuple(item.partition("=")[::2]) for item in query.split("&") if item]
    signed, _ = Signer(daemon.access_key, daemon.secret_key).sign(
        method, resource, headers, hashlib.sha256(body).hexdigest(), pairs
    )
    connection = UnixConnection(str(socket_path))
    try:
        connection.request(method, path, body=body or None, headers=signed)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def unix_daemon(tmp_path: Path) -> Iterator[Tuple[Daemon, str, Path]]:
    """
    Two workers on ``unix:<tmp>/gw.sock`` with mode 0660, and one bucket: (daemon, bucket,
    socket path).
    """
    socket_path = tmp_path / "gw.sock"
    with two_workers(tmp_path, "unix-", listen=f"unix:{socket_path}:mode=660") as running:
        daemon, bucket, _ = running
        yield daemon, bucket, socket_path


def served_by(daemon: Daemon) -> Set[int]:
    """
    The workers that answered a GetObject with 200, from the access log.
    """
    return {int(pid) for pid in _SERVED_BY.findall(daemon.log_path.read_text())}


def test_unix_socket_shared_by_two_workers(unix_daemon) -> None:
    daemon, bucket, socket_path = unix_daemon
    assert stat.S_IMODE(socket_path.lstat().st_mode) == 0o660
    assert request(daemon, socket_path, "PUT", f"/{bucket}/hello", b"hello")[0] == 200
    pids = worker_pids(daemon)

    def both_served() -> bool:
        # A fresh connection each time: either worker may take it (the second may still be
        # starting when the first answers).
        assert request(daemon, socket_path, "GET", f"/{bucket}/hello") == (200, b"hello")
        return served_by(daemon) >= pids

    wait_for(both_served, "a GET answered by each worker")
    assert served_by(daemon) <= pids


def test_unix_socket_kept_when_a_worker_dies(unix_daemon) -> None:
    """
    A worker that dies (or stops) leaves the path: its replacement and the other worker go on
    serving it.
    """
    daemon, bucket, socket_path = unix_daemon
    assert request(daemon, socket_path, "PUT", f"/{bucket}/k", b"still here")[0] == 200
    before = worker_pids(daemon)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: (lambda pids: len(pids) == 2 and victim not in pids)(worker_pids(daemon)),
        "a replacement worker",
    )
    assert stat.S_ISSOCK(socket_path.lstat().st_mode)
    for _ in range(20):
        assert request(daemon, socket_path, "GET", f"/{bucket}/k") == (200, b"still here")
    assert stat.S_IMODE(socket_path.lstat().st_mode) == 0o660


def test_unix_socket_removed_when_the_supervisor_stops(unix_daemon) -> None:
    daemon, bucket, socket_path = unix_daemon
    assert request(daemon, socket_path, "PUT", f"/{bucket}/k", b"x")[0] == 200
    process = daemon.process
    assert process is not None
    daemon.stop(timeout=WAIT + 10)
    # twistd ends by the signal it stopped on (not by SIGKILL after a timeout).
    assert process.returncode == -signal.SIGTERM
    assert "all workers stopped" in daemon.log_path.read_text()
    assert not os.path.lexists(socket_path)
