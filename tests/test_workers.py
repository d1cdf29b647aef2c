"""
``twistd s3gateway --workers N``, end to end: real daemons on loopback.

Which worker served a connection is read from the kernel, not from the gateway: the worker
process that holds the server end of the client's socket (psutil, from /proc). Every wait is
bounded; a daemon left running is stopped by the fixture.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import secrets
import signal
import socket
import ssl
import string
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Set, Tuple

import pytest

from tests.e2e.clients import Daemon, Signer

psutil = pytest.importorskip("psutil")

#: The longest any single wait in these tests may take, in seconds.
WAIT = 30.0


def _secret() -> str:
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(secrets.choice(alphabet) for _ in range(40))


def _access_key() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "AKWK" + "".join(secrets.choice(alphabet) for _ in range(16))


def wait_for(condition: Callable[[], object], what: str, timeout: float = WAIT) -> object:
    """
    Poll C{condition} until it returns something true; fail after C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def worker_pids(daemon: Daemon) -> Set[int]:
    """
    The running worker processes of C{daemon} (its children that run ``gateway.worker``).
    """
    pids = set()
    try:
        children = psutil.Process(daemon.pid).children()
    except psutil.NoSuchProcess:
        return pids
    for child in children:
        try:
            if "gateway.worker" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                pids.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return pids


class Client:
    """
    One keep-alive HTTP connection to the daemon that sends SigV4-signed requests.
    """

    def __init__(self, daemon: Daemon, tls: Optional[ssl.SSLContext] = None) -> None:
        self.daemon = daemon
        self.signer = Signer(daemon.access_key, daemon.secret_key)
        if tls is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=WAIT)
        else:
            self.connection = http.client.HTTPSConnection(
                "127.0.0.1", daemon.port, timeout=WAIT, context=tls
            )
        self.connection.connect()

    def send(self, method: str, path: str, body: bytes = b"", length: Optional[int] = None,
             payload_hash: Optional[str] = None) -> None:
        """
        Send a request line and headers, and C{body} (which may be only the start of it).
        """
        headers = {"host": f"127.0.0.1:{self.daemon.port}"}
        if payload_hash is None:
            payload_hash = hashlib.sha256(body).hexdigest()
        resource, _, query = path.partition("?")
        pairs = [tuple(item.partition("=")[::2]) for item in query.split("&") if item]
        signed, _ = self.signer.sign(method, resource, headers, payload_hash, pairs)
        if method == "PUT":
            signed["Content-Length"] = str(len(body) if length is None else length)
            signed["Expect"] = "100-continue"
        self.connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in signed.items():
            self.connection.putheader(name, value)
        self.connection.endheaders()
        if method == "PUT":
            self._await_continue()
        if body:
            self.connection.send(body)

    def _await_continue(self) -> None:
        # Read the interim response byte by byte, so that nothing after it is taken from the
        # socket before http.client reads the final response.
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = self.connection.sock.recv(1)
            if not byte:
                raise ConnectionError(f"closed while waiting for 100 Continue: {head!r}")
            head += byte
        assert head.startswith(b"HTTP/1.1 100 "), head

    def request(self, method: str, path: str, body: bytes = b"") -> Tuple[int, bytes]:
        self.send(method, path, body)
        response = self.connection.getresponse()
        return response.status, response.read()

    def server_pid(self) -> int:
        """
        The worker process that holds the server end of this connection.
        """
        client_port = self.connection.sock.getsockname()[1]

        def find() -> Optional[int]:
            for pid in worker_pids(self.daemon):
                try:
                    connections = psutil.Process(pid).net_connections(kind="tcp")
                except psutil.NoSuchProcess:
                    continue
                for conn in connections:
                    if conn.raddr and conn.laddr.port == self.daemon.port and (
                        conn.raddr.port == client_port
                    ):
                        return pid
            return None

        return int(wait_for(find, "the worker holding the connection", timeout=5))  # type: ignore[arg-type]

    def close(self) -> None:
        self.connection.close()


@contextlib.contextmanager
def two_workers(
    tmp_path: Path, bucket_prefix: str, **options: Any
) -> Iterator[Tuple[Daemon, str, Path]]:
    """
    A daemon with two workers (and C{options} for its L{Daemon}) and one bucket on the local
    backend: (daemon, bucket, directory). Stopped on the way out.
    """
    daemon = Daemon(
        data_dir=tmp_path / "data",
        log_path=tmp_path / "gateway.log",
        access_key=_access_key(),
        secret_key=_secret(),
        extra_args=("--workers", "2"),
        **options,
    )
    daemon.start()
    try:
        wait_for(lambda: len(worker_pids(daemon)) == 2, "two workers")
        bucket, directory = bucket_prefix + secrets.token_hex(4), tmp_path / "bucket"
        directory.mkdir()
        daemon.add_connection(bucket, directory)
        yield daemon, bucket, directory
    except BaseException:
        print(daemon.log_tail(200))
        raise
    finally:
        daemon.stop(timeout=WAIT + 10)


@pytest.fixture
def workers_daemon(tmp_path: Path) -> Iterator[Tuple[Daemon, str, Path]]:
    """
    A daemon with two workers and one bucket on the local backend: (daemon, bucket, directory).
    """
    with two_workers(tmp_path, "workers-") as running:
        yield running


def kill_a_worker(daemon: Daemon) -> Tuple[int, int, Set[int]]:
    """
    Kill one of C{daemon}'s two workers and wait for the supervisor to start another: the
    killed worker's pid, the new one's, and the pids of the two running then.
    """
    before = worker_pids(daemon)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    after: Set[int] = wait_for(  # type: ignore[assignment]
        lambda: (lambda pids: pids if len(pids) == 2 and victim not in pids else None)(
            worker_pids(daemon)
        ),
        "a replacement worker",
    )
    (replacement,) = after - before
    return victim, replacement, after


def clients_by_worker(daemon: Daemon, path: str, wanted: Set[int],
                      attempts: int = 200, tls: Optional[ssl.SSLContext] = None) -> dict:
    """
    Open fresh connections (over TLS with C{tls}), each making one request (C{GET path}, which
    must succeed), until one connection served by each pid of C{wanted} is found; the others are
    closed.

    :return: C{{pid: open Client}}.
    """
    found: dict = {}
    for _ in range(attempts):
        client = Client(daemon, tls)
        status, _ = client.request("GET", path)
        assert status == 200
        pid = client.server_pid()
        if pid in wanted and pid not in found:
            found[pid] = client
        else:
            client.close()
        if set(found) == wanted:
            return found
    for client in found.values():
        client.close()
    raise AssertionError(f"after {attempts} connections, only {sorted(found)} of "
                         f"{sorted(wanted)} served")


def put(daemon: Daemon, path: str, body: bytes) -> None:
    client = Client(daemon)
    try:
        status, answer = client.request("PUT", path, body)
        assert status == 200, answer
    finally:
        client.close()


def test_two_workers_both_serve(workers_daemon) -> None:
    daemon, bucket, _ = workers_daemon
    put(daemon, f"/{bucket}/hello", b"hello")
    pids = worker_pids(daemon)
    assert len(pids) == 2 and daemon.pid not in pids
    clients = clients_by_worker(daemon, f"/{bucket}/hello", pids)
    for pid, client in clients.items():
        status, body = client.request("GET", f"/{bucket}/hello")
        assert (status, body) == (200, b"hello")
        assert client.server_pid() == pid
        client.close()
    # The supervisor itself serves nothing: it holds no connection on the port.
    supervisor = psutil.Process(daemon.pid).net_connections(kind="tcp")
    assert [c for c in supervisor if c.raddr] == []


def test_put_through_one_worker_is_visible_through_the_other(workers_daemon) -> None:
    daemon, bucket, directory = workers_daemon
    put(daemon, f"/{bucket}/seed", b"seed")
    first, second = sorted(worker_pids(daemon))
    clients = clients_by_worker(daemon, f"/{bucket}/seed", {first, second})
    try:
        for writer, reader in ((first, second), (second, first)):
            body = secrets.token_bytes(100_000)
            key = f"/{bucket}/from-{writer}"
            status, _ = clients[writer].request("PUT", key, body)
            assert status == 200
            assert clients[reader].request("GET", key) == (200, body)
            status, listing = clients[reader].request("GET", f"/{bucket}?list-type=2")
            assert status == 200 and f"<Key>from-{writer}</Key>".encode() in listing
            # An overwrite through the reader is seen by the writer.
            status, _ = clients[reader].request("PUT", key, b"rewritten")
            assert status == 200
            assert clients[writer].request("GET", key) == (200, b"rewritten")
        assert clients[first].server_pid() == first
        assert clients[second].server_pid() == second
    finally:
        for client in clients.values():
            client.close()


def test_killed_worker_is_replaced(workers_daemon) -> None:
    daemon, bucket, _ = workers_daemon
    put(daemon, f"/{bucket}/k", b"still here")
    victim, replacement, after = kill_a_worker(daemon)
    assert daemon.alive()
    clients = clients_by_worker(daemon, f"/{bucket}/k", after)
    for client in clients.values():
        assert client.request("GET", f"/{bucket}/k") == (200, b"still here")
        client.close()
    assert replacement in clients
    log = daemon.log_path.read_text()
    assert f"worker {victim} exited" in log


def test_sigterm_drains_requests_in_flight(workers_daemon) -> None:
    daemon, bucket, directory = workers_daemon
    size = 64 * 1024 * 1024
    download = secrets.token_bytes(size)
    put(daemon, f"/{bucket}/big", download)
    put(daemon, f"/{bucket}/small", b"small")
    pids = worker_pids(daemon)

    # On one worker, a download that has read 1 MiB of 64; on the other, an upload that has sent
    # half of its body.
    first, second = sorted(pids)
    clients = clients_by_worker(daemon, f"/{bucket}/small", pids)
    reader, writer = clients[first], clients[second]
    reader.send("GET", f"/{bucket}/big")
    response = reader.connection.getresponse()
    assert response.status == 200
    received = [response.read(1024 * 1024)]
    upload = secrets.token_bytes(16 * 1024 * 1024)
    writer.send("PUT", f"/{bucket}/uploaded", upload[: len(upload) // 2], length=len(upload),
                payload_hash="UNSIGNED-PAYLOAD")
    idle = Client(daemon)
    assert idle.request("GET", f"/{bucket}/small") == (200, b"small")

    os.kill(daemon.pid, signal.SIGTERM)

    # New connections are refused once every process has closed the listening socket...
    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", daemon.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    wait_for(refused, "the port to close")
    # ...an idle keep-alive connection is closed...
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        idle.request("GET", f"/{bucket}/small")
    # ...but the requests in flight go on, and the processes wait for them.
    time.sleep(2)
    assert daemon.alive()
    assert worker_pids(daemon) == pids
    writer.connection.send(upload[len(upload) // 2:])
    put_response = writer.connection.getresponse()
    assert put_response.status == 200, put_response.read()
    while True:
        chunk = response.read(1024 * 1024)
        if not chunk:
            break
        received.append(chunk)
        time.sleep(0.005)
    assert hashlib.sha256(b"".join(received)).digest() == hashlib.sha256(download).digest()

    process = daemon.process
    assert process is not None
    # twistd ends by re-raising the signal that stopped it (twisted.application.app
    # _exitWithSignal), as the single-process gateway does; not -9: nothing had to be killed.
    assert process.wait(WAIT) in (0, -signal.SIGTERM)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in pids), "a worker outlived its supervisor"
    assert (directory / "uploaded").read_bytes() == upload
    assert "all workers stopped" in daemon.log_path.read_text()


def test_workers_exit_when_the_supervisor_is_killed(workers_daemon) -> None:
    daemon, _, _ = workers_daemon
    pids = worker_pids(daemon)
    process = daemon.process
    assert process is not None
    process.kill()
    process.wait(WAIT)

    def gone() -> bool:
        return not any(
            psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
            for pid in pids
        )

    wait_for(gone, "the orphaned workers to exit", timeout=10)
