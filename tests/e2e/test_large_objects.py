"""
A 1 GiB object through the gateway, as one PUT and as a multipart upload, and back: the daemon's
memory stays under 150 MB and the body is never copied beside the object's own temporary file.

Neither side holds the object: the test generates the body as it sends it and hashes what it
receives as it arrives.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Set, Tuple
from urllib.parse import urlsplit

import psutil
import pytest
from boto3.s3.transfer import TransferConfig

from tests.e2e.clients import Daemon, files_under
from tests.e2e.conftest import Bucket, _access_key, _secret, add_bucket, boto3_client

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
SIZE = 1024 * MiB
PEAK_RSS_LIMIT = 150 * 1000 * 1000
#: Files above this size that grow during an upload are copies of the body.
BIG_FILE = 4 * MiB


class Pattern:
    """
    A deterministic 1 GiB body, made 1 MiB at a time: a random block with the chunk's number in
    front, so that a chunk lost, repeated or moved changes the MD5.
    """

    def __init__(self, size: int = SIZE, part_size: int = 64 * MiB) -> None:
        self.size = size
        self.part_chunks = part_size // MiB
        self.block = os.urandom(MiB)
        self.md5 = hashlib.md5()
        self.part_md5s: List["hashlib._Hash"] = []

    def chunks(self) -> Iterator[bytes]:
        for number in range(self.size // MiB):
            chunk = number.to_bytes(8, "big") + self.block[8:]
            self.md5.update(chunk)
            if number % self.part_chunks == 0:
                self.part_md5s.append(hashlib.md5())
            self.part_md5s[-1].update(chunk)
            yield chunk

    def multipart_etag(self) -> str:
        """
        S3's ETag of the body uploaded in parts of C{part_size}, computed independently.
        """
        joined = b"".join(part.digest() for part in self.part_md5s)
        return f"{hashlib.md5(joined).hexdigest()}-{len(self.part_md5s)}"


class PatternReader(io.RawIOBase):
    """
    The pattern as a non-seekable file object, for boto3's managed upload.
    """

    def __init__(self, pattern: Pattern) -> None:
        self._chunks = pattern.chunks()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._pending:
            self._pending = next(self._chunks, b"")
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


class Md5Sink(io.RawIOBase):
    """
    A non-seekable file object that only hashes what is written to it.
    """

    def __init__(self) -> None:
        self.md5 = hashlib.md5()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.md5.update(data)
        self.size += len(data)
        return len(data)


class Watcher:
    """
    Samples the daemon while a transfer runs: its RSS every ~50 ms in one thread; in another,
    when asked, the files that grow under some directories, and the daemon's open files.

    :param roots: directories to scan, each with the size above which a growing file counts as
        a copy of the body. Only directories that nothing but the gateway writes to: on a
        shared machine other programs write big files to /tmp too, so files elsewhere are
        attributed by the descriptor scan instead (a spool file, even one unlinked at once as
        ``tempfile.TemporaryFile`` makes them, stays open while the body flows into it).
    :param allowed_open: directories under which the daemon (or a child of it) may hold files
        open.
    """

    def __init__(
        self,
        pid: int,
        roots: Sequence[Tuple[Path, int]] = (),
        allowed_open: Sequence[Path] = (),
    ) -> None:
        self.process = psutil.Process(pid)
        self.roots = list(roots)
        self.allowed_open = [str(path) for path in allowed_open]
        self.peak_rss = 0
        self.samples = 0
        self.scans = 0
        self.big_files: Dict[Tuple[str, int], int] = {}
        self.open_files: Set[str] = set()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sample_rss, daemon=True)]
        if self.roots:
            self._threads.append(threading.Thread(target=self._scan, daemon=True))
        self._baseline = self._scan_files() if self.roots else {}

    def __enter__(self) -> "Watcher":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _sample_rss(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
            self.samples += 1
            self._stop.wait(0.05)

    def _scan(self) -> None:
        while not self._stop.is_set():
            for key, size in self._scan_files().items():
                if size > self._baseline.get(key, 0):
                    self.big_files[key] = max(size, self.big_files.get(key, 0))
            self._scan_fds()
            self.scans += 1
            self._stop.wait(0.2)

    def _scan_files(self) -> Dict[Tuple[str, int], int]:
        found = {}
        for root, threshold in self.roots:
            for directory, subdirs, names in os.walk(root):
                # Other test sessions' directories; ours are scanned as roots of their own.
                subdirs[:] = [d for d in subdirs if not d.startswith("pytest-of-")]
                for name in names:
                    path = os.path.join(directory, name)
                    try:
                        stat = os.lstat(path)
                    except OSError:
                        continue
                    if stat.st_size > threshold:
                        found[(path, stat.st_ino)] = stat.st_size
        return found

    def _scan_fds(self) -> None:
        try:
            pids = [self.process.pid] + [c.pid for c in self.process.children(recursive=True)]
        except psutil.Error:
            return
        for pid in pids:
            self._scan_fds_of(pid)

    def _scan_fds_of(self, pid: int) -> None:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            return
        for fd in fds:
            if int(fd) <= 2:
                continue  # stdin, and stdout/stderr: the log file
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith(("socket:", "pipe:", "anon_inode:", "/dev/")):
                continue
            if not any(target.startswith(allowed + os.sep) for allowed in self.allowed_open):
                self.open_files.add(target)


@pytest.fixture(scope="module")
def big_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """
    A daemon of its own, so that its memory is measured from a known start, with a private
    TMPDIR (scanned too).
    """
    root = tmp_path_factory.mktemp("big-gateway")
    (root / "tmp").mkdir()
    daemon = Daemon(
        data_dir=root / "data",
        log_path=root / "gateway.log",
        access_key=_access_key("AKBIG"),
        secret_key=_secret(),
        extra_env={"TMPDIR": str(root / "tmp")},
    )
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def big_bucket(big_gateway: Daemon, tmp_path: Path) -> Bucket:
    return add_bucket(big_gateway, tmp_path)


def _presigned(client, method: str, bucket: Bucket, key: str) -> str:
    url = client.generate_presigned_url(
        method, Params={"Bucket": bucket.name, "Key": key}, ExpiresIn=3600
    )
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _stream_put(
    port: int, target: str, pattern: Pattern, expect_continue: bool
) -> http.client.HTTPResponse:
    """
    PUT the pattern as it is generated. With C{expect_continue} (as botocore and curl send large
    bodies) wait for ``100 Continue`` first; without (as s3cmd does) the body races the
    gateway's authentication and must be buffered boundedly, then flow.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.putrequest("PUT", target, skip_accept_encoding=True)
    conn.putheader("Content-Length", str(pattern.size))
    if expect_continue:
        conn.putheader("Expect", "100-continue")
    conn.endheaders()
    if expect_continue:
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            byte = conn.sock.recv(1)
            assert byte, f"connection closed before 100 Continue: {interim!r}"
            interim += byte
        assert interim.startswith(b"HTTP/1.1 100"), interim
    for chunk in pattern.chunks():
        conn.send(chunk)
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


def _stream_get(port: int, target: str) -> Md5Sink:
    sink = Md5Sink()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", target)
    response = conn.getresponse()
    assert response.status == 200, response.read()[:2000]
    while True:
        data = response.read(MiB)
        if not data:
            break
        sink.write(data)
    conn.close()
    return sink


@pytest.mark.parametrize("expect_continue", [False, True], ids=["no-expect", "expect-100"])
def test_single_put_1gib(big_gateway: Daemon, big_bucket: Bucket, expect_continue: bool) -> None:
    client = boto3_client(big_gateway.endpoint, big_gateway.access_key, big_gateway.secret_key)
    pattern = Pattern()
    key = "big/single.bin"
    scratch = big_gateway.data_dir.parent / "tmp"
    with Watcher(
        big_gateway.pid,
        roots=[
            (big_gateway.data_dir, BIG_FILE),
            (big_bucket.path, BIG_FILE),
            (scratch, BIG_FILE),
        ],
        allowed_open=[big_gateway.data_dir, big_bucket.path],
    ) as watcher:
        started = time.monotonic()
        response = _stream_put(
            big_gateway.port,
            _presigned(client, "put_object", big_bucket, key),
            pattern,
            expect_continue,
        )
        upload_seconds = time.monotonic() - started
        assert response.status == 200, response.body[:2000]
        expected = pattern.md5.hexdigest()
        assert response.getheader("ETag") == f'"{expected}"'
        sink = _stream_get(big_gateway.port, _presigned(client, "get_object", big_bucket, key))
    assert (sink.size, sink.md5.hexdigest()) == (SIZE, expected)
    print(f"gateway peak RSS {watcher.peak_rss / 1e6:.1f} MB over {watcher.samples} samples")
    assert watcher.samples > 20 and watcher.scans > 3
    assert watcher.peak_rss < PEAK_RSS_LIMIT, f"peak RSS {watcher.peak_rss / 1e6:.0f} MB"

    # The only big file that grew is the object's temporary file in .s3gateway/tmp/, and the
    # object itself, which is that same file renamed (same inode).
    final = big_bucket.path / "big" / "single.bin"
    temp_dir = str(big_bucket.path / ".s3gateway" / "tmp") + os.sep
    temps = {(p, ino) for (p, ino) in watcher.big_files if p.startswith(temp_dir)}
    others = {
        (p, ino): size for (p, ino), size in watcher.big_files.items()
        if not p.startswith(temp_dir) and p != str(final)
    }  # fmt: skip
    assert others == {}, f"copies of the body: {others}"
    assert len(temps) == 1, f"temporary files seen: {temps} (upload took {upload_seconds:.1f}s)"
    assert {ino for _, ino in temps} <= {final.stat().st_ino}
    assert watcher.open_files == set(), f"files the daemon had open: {watcher.open_files}"
    assert files_under(big_bucket.path / ".s3gateway" / "tmp") == []


def test_multipart_1gib(big_gateway: Daemon, big_bucket: Bucket) -> None:
    client = boto3_client(big_gateway.endpoint, big_gateway.access_key, big_gateway.secret_key)
    pattern = Pattern()
    config = TransferConfig(
        multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB, max_concurrency=4
    )
    key = "big/multipart.bin"
    scratch = big_gateway.data_dir.parent / "tmp"
    with Watcher(
        big_gateway.pid,
        roots=[(scratch, BIG_FILE)],
        allowed_open=[big_gateway.data_dir, big_bucket.path],
    ) as watcher:
        # Buffered, so that read(n) returns n bytes as s3transfer expects of a stream.
        source = io.BufferedReader(PatternReader(pattern), buffer_size=MiB)
        client.upload_fileobj(source, big_bucket.name, key, Config=config)
        expected = pattern.md5.hexdigest()
        head = client.head_object(Bucket=big_bucket.name, Key=key)
        sink = Md5Sink()
        client.download_fileobj(big_bucket.name, key, sink, Config=config)
    assert head["ContentLength"] == SIZE
    assert head["ETag"] == f'"{pattern.multipart_etag()}"'
    assert pattern.multipart_etag().endswith("-16")
    assert (sink.size, sink.md5.hexdigest()) == (SIZE, expected)
    print(f"gateway peak RSS {watcher.peak_rss / 1e6:.1f} MB over {watcher.samples} samples")
    assert watcher.samples > 20
    assert watcher.peak_rss < PEAK_RSS_LIMIT, f"peak RSS {watcher.peak_rss / 1e6:.0f} MB"
    # Parts live in the bucket's .s3gateway/uploads/; nothing big grows anywhere else.
    assert watcher.big_files == {}, f"copies of the body: {watcher.big_files}"
    assert watcher.open_files == set(), f"files the daemon had open: {watcher.open_files}"
    assert not (big_bucket.path / ".s3gateway" / "uploads").exists() or not any(
        (big_bucket.path / ".s3gateway" / "uploads").iterdir()
    )

