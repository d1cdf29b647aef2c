"""
What Twisted itself allows for a small GET, measured in the run beside the servers.

The gateway runs on Twisted: its reactor and twisted.web's HTTP server. The 4 KiB GET targets
compare it with servers written in Go, so each run also measures, with the same ``wrk`` load,
what one process of Twisted answers when nothing else is done per request:

- ``twisted.web``: a leaf resource answering every GET with 4 KiB and the headers a GetObject
  answer carries; the ceiling of one gateway worker, whose every request goes through the same
  HTTP server;
- the reactor alone: a protocol that finds the end of each request's headers and writes a canned
  answer; the ceiling of anything built on the reactor with an HTTP parser of its own.

The gap between the first and the gateway is the gateway's own work per request. Run as
``python -m bench.framework web|reactor PORT`` it is the server; it prints ``ready`` once
listening.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from typing import Dict, Optional

from bench.load import run_wrk, write_targets
from bench.presign import Endpoint
from bench.servers import LOOPBACK, free_port

#: Bytes of each answer's body, as the small-object tests of the benchmark.
BODY_SIZE = 4096

#: The headers of the gateway's GetObject answer, besides Content-Length, Date and Server.
HEADERS = (
    (b"x-amz-request-id", b"0123456789ABCDEF"),
    (b"x-amz-id-2", b"0123456789ABCDEF"),
    (b"content-type", b"binary/octet-stream"),
    (b"etag", b'"0123456789abcdef0123456789abcdef"'),
    (b"last-modified", b"Thu, 26 Nov 2026 04:00:00 GMT"),
    (b"accept-ranges", b"bytes"),
)

KINDS = {
    "web": "twisted.web alone, 4 KiB GET, c=64, one process",
    "reactor": "Twisted's reactor alone (no HTTP parsing), 4 KiB GET, c=64, one process",
}


def serve(kind: str, port: int) -> None:
    """
    Listen on loopback C{port} and answer every request with C{BODY_SIZE} bytes until killed.
    """
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory, Protocol
    from twisted.web import resource, server

    body = os.urandom(BODY_SIZE)

    class Leaf(resource.Resource):
        isLeaf = True

        def render_GET(self, request):  # type: ignore[no-untyped-def]
            for name, value in HEADERS:
                request.setHeader(name, value)
            return body

    canned = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (
        BODY_SIZE, b"".join(b"%s: %s\r\n" % header for header in HEADERS), body)

    class Canned(Protocol):
        pending = b""

        def dataReceived(self, data: bytes) -> None:
            self.pending += data
            end = self.pending.find(b"\r\n\r\n")
            while end >= 0:
                self.pending = self.pending[end + 4:]
                self.transport.write(canned)
                end = self.pending.find(b"\r\n\r\n")

    if kind == "web":
        site = server.Site(Leaf())
        site.log = lambda request: None  # the gateway's access log is measured with it
        factory = site
    else:
        factory = Factory.forProtocol(Canned)
    reactor.listenTCP(port, factory, backlog=1024, interface=LOOPBACK)
    reactor.callWhenRunning(lambda: print("ready", flush=True))
    reactor.run()


def measure(wrk: Optional[str], workdir: str, duration: float, runs: int = 3,
            connections: int = 64) -> Dict[str, str]:
    """
    Both ceilings, medians of C{runs} ``wrk`` runs each, as lines of the results' machine
    description; nothing when there is no ``wrk``.
    """
    if not wrk:
        return {}
    folder = tempfile.mkdtemp(prefix="framework-", dir=workdir)
    # Request lines as long as the benchmark's presigned GETs, so that wrk sends the same bytes.
    targets = write_targets(os.path.join(folder, "targets"), (
        f"/bench/small/{number:04d}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
        f"{'A' * 20}%2F20261126%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261126T000000Z"
        f"&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature={'0' * 64}"
        for number in range(1000)))
    figures: Dict[str, str] = {}
    for kind, label in KINDS.items():
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.framework", kind, str(port)],
            stdout=subprocess.PIPE, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            if process.stdout.readline().strip() != b"ready":
                figures[label] = "did not start"
                continue
            endpoint = Endpoint(LOOPBACK, port)
            run_wrk(wrk, endpoint, targets, "GET", connections, 1)
            rates = sorted(
                run_wrk(wrk, endpoint, targets, "GET", connections, duration).ops_per_s
                for _ in range(runs))
            figures[label] = f"{rates[len(rates) // 2]:,.0f} ops/s"
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return figures


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    serve(sys.argv[1], int(sys.argv[2]))
