"""
Load generation: nothing here signs, parses XML or copies bodies in a loop that is being timed.

- 4 KiB requests run under ``wrk`` (C, epoll) with ``cycle.lua`` cycling through presigned targets.
- Large bodies go through raw ``http.client`` connections, one thread a stream: downloads land in
  one reused buffer with ``readinto``, uploads leave the page cache with ``socket.sendfile``.
- Listings are walked page by page; each page's target is signed just before it is sent (about
  70 microseconds, small beside any server's answer).
"""

from __future__ import annotations

import hashlib
import html
import http.client
import json
import os
import re
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import attr

from bench.presign import Endpoint, Signer

CYCLE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cycle.lua")

#: Every socket operation of the raw clients gives up after this many seconds without progress
#: (a server that stops reading an upload fails its cell instead of stalling the run).
SOCKET_TIMEOUT = float(os.environ.get("BENCH_SOCKET_TIMEOUT", "20"))
_READ_BUFFER = 1 << 20


class LoadError(Exception):
    """
    A request of the load generator failed (bad status, short body, no answer).
    """


@attr.s(frozen=True, auto_attribs=True)
class WrkResult:
    """
    What one ``wrk`` run measured.
    """

    ops_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def wrk_command(
    wrk: str, endpoint: Endpoint, targets_file: str, method: str, connections: int,
    duration: float, body_file: Optional[str] = None, threads: Optional[int] = None,
) -> List[str]:
    """
    The ``wrk`` command line of one run: as many threads as cores (never more than connections).
    """
    if threads is None:
        threads = max(1, min(connections, os.cpu_count() or 1))
    return [
        wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
        "--timeout", "10s", "-s", CYCLE_SCRIPT, endpoint.base_url, "--",
        targets_file, method, body_file or "", str(threads),
    ]


def parse_wrk_output(output: str) -> WrkResult:
    """
    The figures of the ``BENCHJSON`` line that ``cycle.lua`` prints when ``wrk`` is done.
    """
    for line in output.splitlines():
        if line.startswith("BENCHJSON "):
            data = json.loads(line[len("BENCHJSON "):])
            break
    else:
        raise LoadError("wrk printed no result: " + output[-500:])
    seconds = data["duration_us"] / 1e6
    errors = sum(
        data[name]
        for name in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return WrkResult(
        ops_per_s=(data["requests"] - errors) / seconds if seconds else 0.0,
        p50_ms=data["p50_us"] / 1000.0,
        p99_ms=data["p99_us"] / 1000.0,
        requests=data["requests"],
        errors=errors,
    )


def run_wrk(
    wrk: str, endpoint: Endpoint, targets_file: str, method: str, connections: int,
    duration: float, body_file: Optional[str] = None,
) -> WrkResult:
    """
    Run ``wrk`` for C{duration} seconds against C{endpoint} and return what it measured.
    """
    command = wrk_command(wrk, endpoint, targets_file, method, connections, duration, body_file)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    return parse_wrk_output(done.stdout + done.stderr)


def write_targets(path: str, targets: Iterable[str]) -> str:
    """
    Write request targets one a line, for ``cycle.lua``.
    """
    with open(path, "w", encoding="ascii") as out:
        for target in targets:
            out.write(target + "\n")
    return path


def connect(endpoint: Endpoint) -> http.client.HTTPConnection:
    """
    A keep-alive connection with Nagle off, as every client of the benchmark uses.
    """
    connection = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=SOCKET_TIMEOUT)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def fetch(
    connection: http.client.HTTPConnection, target: str,
    byte_range: Optional[Tuple[int, int]] = None, buffer: Optional[bytearray] = None,
) -> Tuple[int, int]:
    """
    GET C{target}, reading the body into C{buffer} over and over (no allocation per read).

    :return: the status and the number of body bytes received.
    """
    headers = {}
    if byte_range is not None:
        headers["Range"] = "bytes=%d-%d" % byte_range
    connection.request("GET", target, headers=headers)
    response = connection.getresponse()
    view = memoryview(buffer if buffer is not None else bytearray(_READ_BUFFER))
    received = 0
    while True:
        count = response.readinto(view)
        if not count:
            break
        received += count
    return response.status, received


def send_file(
    connection: http.client.HTTPConnection, method: str, target: str, source: str,
    offset: int, length: int,
) -> Tuple[int, str, bytes]:
    """
    Send C{length} bytes of file C{source} from C{offset} as the body of a request, by
    ``sendfile`` (the kernel copies from the page cache; this process touches no byte of it).

    :return: the status, the ETag header and the response body.
    """
    connection.putrequest(method, target, skip_accept_encoding=True)
    connection.putheader("Content-Length", str(length))
    connection.endheaders()
    with open(source, "rb") as body:
        sent = 0
        while sent < length:
            count = connection.sock.sendfile(body, offset + sent, length - sent)
            if not count:
                raise LoadError("sendfile sent nothing")
            sent += count
    response = connection.getresponse()
    data = response.read()
    return response.status, response.getheader("ETag") or "", data


def send_bytes(
    connection: http.client.HTTPConnection, method: str, target: str, body: bytes
) -> Tuple[int, bytes]:
    """
    A request with a small body held in memory; the status and the response body.
    """
    connection.request(method, target, body=body, headers={"Content-Length": str(len(body))})
    response = connection.getresponse()
    return response.status, response.read()


def split(size: int, streams: int) -> List[Tuple[int, int]]:
    """
    C{size} bytes cut into C{streams} contiguous (offset, length) pieces.
    """
    base, extra = divmod(size, streams)
    pieces, offset = [], 0
    for index in range(streams):
        length = base + (1 if index < extra else 0)
        pieces.append((offset, length))
        offset += length
    return [piece for piece in pieces if piece[1]]


def _in_threads(calls: Sequence[Callable[[], object]]) -> Tuple[float, list]:
    """
    Run the calls at once, one thread each; the wall-clock seconds from first start to last end.
    """
    barrier = threading.Barrier(len(calls) + 1)

    def wrapped(call: Callable[[], object]) -> object:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(wrapped, call) for call in calls]
        barrier.wait()
        started = time.perf_counter()
        results = [future.result() for future in futures]
        return time.perf_counter() - started, results


def big_get(endpoint: Endpoint, target: str, size: int, streams: int) -> float:
    """
    Download an object of C{size} bytes, whole or in C{streams} concurrent ranges.

    :return: the seconds it took.
    """
    connections = [connect(endpoint) for _ in range(streams)]

    def stream(connection: http.client.HTTPConnection, piece: Tuple[int, int]) -> None:
        byte_range = None if streams == 1 else (piece[0], piece[0] + piece[1] - 1)
        status, received = fetch(connection, target, byte_range)
        if status not in (200, 206) or received != piece[1]:
            raise LoadError(f"GET answered {status} with {received} of {piece[1]} bytes")

    try:
        seconds, _ = _in_threads([
            (lambda c=c, p=p: stream(c, p))
            for c, p in zip(connections, split(size, streams))
        ])
    finally:
        for connection in connections:
            connection.close()
    return seconds


def big_put(
    endpoint: Endpoint, targets: Sequence[str], source: str, size: int
) -> float:
    """
    Upload C{size} bytes of C{source} as len(C{targets}) objects at once, one stream each.

    :return: the seconds it took.
    """
    connections = [connect(endpoint) for _ in targets]

    def stream(connection: http.client.HTTPConnection, target: str, piece: Tuple[int, int]) -> None:
        status, _, data = send_file(connection, "PUT", target, source, piece[0], piece[1])
        if status not in (200, 201, 204):
            raise LoadError(f"PUT answered {status}: {data[:300]!r}")

    try:
        seconds, _ = _in_threads([
            (lambda c=c, t=t, p=p: stream(c, t, p))
            for c, t, p in zip(connections, targets, split(size, len(targets)))
        ])
    finally:
        for connection in connections:
            connection.close()
    return seconds


_KEY = re.compile(rb"<Key>([^<]*)</Key>")
_PREFIX = re.compile(rb"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>")
_TOKEN = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")


def list_pages(
    connection: http.client.HTTPConnection, signer: Signer, prefix: str, delimiter: str = "",
    stop_at: float = float("inf"),
) -> Tuple[int, List[str], int, bool]:
    """
    Walk every page of ListObjectsV2 under C{prefix}, or the pages until C{stop_at} (a
    ``time.perf_counter`` value).

    :return: the number of keys, the common prefixes, the number of requests, and whether the
        walk reached the last page.
    """
    keys, prefixes, requests, token = 0, [], 0, None
    while True:
        if time.perf_counter() > stop_at:
            return keys, prefixes, requests, False
        query = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
        if delimiter:
            query["delimiter"] = delimiter
        if token is not None:
            query["continuation-token"] = token
        status, body = send_bytes(connection, "GET", signer.target("GET", "", query), b"")
        requests += 1
        if status != 200:
            raise LoadError(f"ListObjectsV2 answered {status}: {body[:300]!r}")
        keys += len(_KEY.findall(body))
        prefixes.extend(html.unescape(p.decode()) for p in _PREFIX.findall(body))
        found = _TOKEN.search(body)
        if not found or b"<IsTruncated>true</IsTruncated>" not in body:
            return keys, prefixes, requests, True
        token = html.unescape(found.group(1).decode())


@attr.s(frozen=True, auto_attribs=True)
class Walk:
    """
    One listing walk: its seconds, the keys and requests it saw, and whether it was complete
    (a walk stops at its time limit).
    """

    seconds: float
    keys: int
    requests: int
    complete: bool


def list_walk(
    endpoint: Endpoint, signer: Signer, prefix: str, delimiter: str = "",
    time_limit: float = float("inf"),
) -> Walk:
    """
    A full walk of the keys under C{prefix}: flat without a delimiter; with one, folder by
    folder (each common prefix listed in turn, as a file browser does), one level deep. It
    stops after C{time_limit} seconds, incomplete.
    """
    connection = connect(endpoint)
    try:
        started = time.perf_counter()
        stop_at = started + time_limit
        keys, folders, requests, complete = list_pages(connection, signer, prefix, delimiter, stop_at)
        for folder in folders:
            if not complete:
                break
            more, _, count, complete = list_pages(connection, signer, folder, delimiter, stop_at)
            keys += more
            requests += count
        return Walk(time.perf_counter() - started, keys, requests, complete)
    finally:
        connection.close()


def bulk_put(
    endpoint: Endpoint, targets: Sequence[str], body: bytes, streams: int = 8,
    deadline: Optional[float] = None,
) -> int:
    """
    PUT the same small body to every target, C{streams} keep-alive connections at once (setup,
    not a measurement). Stops at C{deadline} (a ``time.monotonic`` value) if one is given.

    :return: how many objects were stored.
    """
    shares = [targets[index::streams] for index in range(streams)]

    def stream(share: Sequence[str]) -> int:
        stored = 0
        connection = connect(endpoint)
        try:
            for target in share:
                if deadline is not None and time.monotonic() > deadline:
                    break
                status, data = send_bytes(connection, "PUT", target, body)
                if status != 200:
                    raise LoadError(f"PUT answered {status}: {data[:300]!r}")
                stored += 1
        finally:
            connection.close()
        return stored

    with ThreadPoolExecutor(max_workers=streams) as pool:
        return sum(pool.map(stream, [share for share in shares if share]))


def md5_rate(size: int, chunk: int = 1 << 20) -> float:
    """
    ``hashlib.md5`` alone over C{size} bytes in memory, in MB/s (10**6 bytes): the floor of a
    PUT's work, since every PUT hashes its body for the ETag.
    """
    block = os.urandom(16 << 20)
    view = memoryview(block)
    digest = hashlib.md5()
    started = time.perf_counter()
    done = 0
    while done < size:
        step = min(chunk, size - done)
        offset = done % len(block)
        if offset + step > len(block):
            offset = 0
        digest.update(view[offset:offset + step])
        done += step
    digest.hexdigest()
    return size / (time.perf_counter() - started) / 1e6
