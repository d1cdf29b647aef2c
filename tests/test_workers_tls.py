"""
``twistd s3gateway --workers N`` on an ``ssl:`` endpoint, end to end: every worker serves TLS with
the operator's certificate, and a stopping worker closes its idle TLS connections.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import signal
import ssl
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from tests.e2e.clients import Daemon, free_port
from tests.test_workers import (
    Client,
    clients_by_worker,
    kill_a_worker,
    two_workers,
    worker_pids,
)
from tests.tlsfiles import boto3_over_tls, make_tls_files, tls_endpoint

psutil = pytest.importorskip("psutil")


@pytest.fixture
def tls_daemon(tmp_path: Path) -> Iterator[Tuple[Daemon, str, Path, ssl.SSLContext]]:
    """
    A daemon with two workers on an ``ssl:`` endpoint and one bucket: (daemon, bucket, the files
    of its TLS, a client context that trusts its CA).
    """
    files = make_tls_files(tmp_path)
    port = free_port()
    with two_workers(tmp_path, "tls-", port=port, listen=tls_endpoint(port, files)) as running:
        daemon, bucket, _ = running
        context = ssl.create_default_context(cafile=str(files["ca"]))
        # Offered as curl and urllib3 (so boto3) offer them.
        context.set_alpn_protocols(["h2", "http/1.1"])
        yield daemon, bucket, files["ca"], context


def test_every_worker_serves_tls(tls_daemon) -> None:
    daemon, bucket, _, context = tls_daemon
    writer = Client(daemon, context)
    assert writer.request("PUT", f"/{bucket}/hello", b"hello over TLS")[0] == 200
    writer.close()
    first, second = sorted(worker_pids(daemon))
    clients = clients_by_worker(daemon, f"/{bucket}/hello", {first, second}, tls=context)
    try:
        for one, other in ((first, second), (second, first)):
            body = secrets.token_bytes(300_000)
            assert clients[one].request("PUT", f"/{bucket}/from-{one}", body)[0] == 200
            assert clients[other].request("GET", f"/{bucket}/from-{one}") == (200, body)
            assert clients[one].server_pid() == one
            assert clients[one].connection.sock.version() in ("TLSv1.2", "TLSv1.3")
            # HTTP/1.1 is all the gateway speaks, and what every worker picks over ALPN.
            assert clients[one].connection.sock.selected_alpn_protocol() == "http/1.1"
    finally:
        for client in clients.values():
            client.close()
    # The certificate is the operator's: a client that does not trust its CA refuses it.
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(daemon, ssl.create_default_context())


def test_worker_started_again_without_the_key_files_serves_tls(tls_daemon, tmp_path) -> None:
    """
    Workers are handed the key and certificates their supervisor read when twistd started: a
    worker started again once the files cannot be read any more (as after twistd's ``--uid``
    switch, for a key only root reads) still serves TLS.
    """
    daemon, bucket, _, context = tls_daemon
    (tmp_path / "key.pem").unlink()
    (tmp_path / "cert.pem").unlink()
    writer = Client(daemon, context)
    assert writer.request("PUT", f"/{bucket}/k", b"after the files went")[0] == 200
    writer.close()
    _, replacement, after = kill_a_worker(daemon)
    clients = clients_by_worker(daemon, f"/{bucket}/k", after, tls=context)
    try:
        assert replacement in clients
        assert clients[replacement].request("GET", f"/{bucket}/k") == (
            200, b"after the files went"
        )
    finally:
        for client in clients.values():
            client.close()
    assert "could not start" not in daemon.log_path.read_text()


def test_boto3_multipart_round_trip_over_tls(tls_daemon, monkeypatch) -> None:
    pytest.importorskip("boto3")
    daemon, bucket, ca, _ = tls_daemon
    for name in list(os.environ):
        if name.startswith("AWS_") or name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    client = boto3_over_tls(daemon, ca)
    body = secrets.token_bytes(20 * 1024 * 1024 + 12345)
    # 8 MiB parts: three parts, spread over both workers' connections by the client's pool.
    client.upload_fileobj(io.BytesIO(body), bucket, "big")
    head = client.head_object(Bucket=bucket, Key="big")
    assert head["ContentLength"] == len(body) and head["ETag"].endswith('-3"')
    got = client.get_object(Bucket=bucket, Key="big")["Body"].read()
    assert hashlib.md5(got).hexdigest() == hashlib.md5(body).hexdigest()
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["big"]


def test_sigterm_closes_idle_tls_connections(tls_daemon) -> None:
    daemon, bucket, _, context = tls_daemon
    idle = Client(daemon, context)
    assert idle.request("PUT", f"/{bucket}/k", b"v")[0] == 200
    process = daemon.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    # The drain closes an idle connection (cut after IDLE_CLOSE_GRACE when the client does not
    # answer TLS's close_notify) rather than waiting out its 30 s.
    assert process.wait(timeout=15) in (0, -signal.SIGTERM)
    idle.connection.sock.settimeout(5)
    try:
        assert idle.connection.sock.recv(1) == b""
    except (ssl.SSLError, ConnectionResetError):
        pass  # closed without a TLS close_notify: closed all the same
    idle.close()
