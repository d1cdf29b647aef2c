"""
A single-process gateway on an ``ssl:`` endpoint, driven by boto3 over TLS.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from tests.e2e.clients import Daemon, free_port
from tests.tlsfiles import boto3_over_tls, make_tls_files, tls_endpoint

pytest.importorskip("boto3")


def test_boto3_over_tls(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path)
    port = free_port()
    daemon = Daemon(
        data_dir=tmp_path / "data",
        log_path=tmp_path / "gateway.log",
        access_key="AKIDTLS0000000000000",
        secret_key="tls-secret-" + "x" * 29,
        port=port,
        listen=tls_endpoint(port, files),
    )
    daemon.start()
    try:
        (tmp_path / "bucket").mkdir()
        daemon.add_connection("tls-bucket", tmp_path / "bucket")
        client = boto3_over_tls(daemon, files["ca"])
        client.put_object(Bucket="tls-bucket", Key="a/b.txt", Body=b"over TLS")
        assert client.get_object(Bucket="tls-bucket", Key="a/b.txt")["Body"].read() == b"over TLS"
        assert (tmp_path / "bucket" / "a" / "b.txt").read_bytes() == b"over TLS"
        # A client that offers HTTP/2 over ALPN (curl, browsers) is given HTTP/1.1, which is all
        # the gateway speaks.
        context = ssl.create_default_context(cafile=str(files["ca"]))
        context.set_alpn_protocols(["h2", "http/1.1"])
        with context.wrap_socket(
            socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
        ) as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
    except BaseException:
        print(daemon.log_tail(100))
        raise
    finally:
        daemon.stop()
