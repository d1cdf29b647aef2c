"""
Small GETs from one gateway worker while another client downloads an object that is not in the
page cache: how much the cold reads hold up everyone else.

    python bench/coldread.py [--size-mib 1024] [--seconds 4] [--rounds 2]
                             [--throttle 20:30]    # root: the gateway's disk reads, MB/s:IOPS

Without C{--throttle} the disk is this machine's (a fast one hides the effect). With it, the
gateway runs in a cgroup (v1 blkio) whose reads of the data's disk are held to that many MB/s and
operations a second, standing for a slow or busy disk. Each round prints 4 KiB GETs a second (16
connections, wrk) and their p50 and p99, alone and during the cold download, which is evicted
from the page cache again each time it ends.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.load import big_get, run_wrk, write_targets  # noqa: E402
from bench.presign import BUCKET, Signer  # noqa: E402
from bench.servers import Gateway  # noqa: E402

SMALL_OBJECTS = 1000
CGROUP = "/sys/fs/cgroup/blkio/s3gateway-bench-coldread"


def evict(path: str) -> None:
    """
    Drop the clean pages of C{path} from the page cache.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def whole_disk(device: int) -> str:
    """
    The ``MAJOR:MINOR`` of the disk that holds C{device} (itself, or the disk of a partition):
    blkio limits apply to whole disks.
    """
    node = f"/sys/dev/block/{os.major(device)}:{os.minor(device)}"
    if os.path.exists(os.path.join(node, "partition")):
        with open(os.path.join(os.path.realpath(node), "..", "dev")) as parent:
            return parent.read().strip()
    return f"{os.major(device)}:{os.minor(device)}"


def throttle(pid: int, directory: str, spec: str) -> None:
    """
    Hold the disk reads of process C{pid} (and its threads) from the disk of C{directory} to
    C{spec}, ``MBPS:IOPS``.
    """
    mbps, iops = (int(part) for part in spec.split(":"))
    target = whole_disk(os.stat(directory).st_dev)
    os.makedirs(CGROUP, exist_ok=True)
    with open(os.path.join(CGROUP, "blkio.throttle.read_bps_device"), "w") as limit:
        limit.write(f"{target} {mbps * 1024 * 1024}")
    with open(os.path.join(CGROUP, "blkio.throttle.read_iops_device"), "w") as limit:
        limit.write(f"{target} {iops}")
    with open(os.path.join(CGROUP, "cgroup.procs"), "w") as procs:
        procs.write(str(pid))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--throttle", default=None, help="MBPS:IOPS (root, cgroup v1 blkio)")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    parser.add_argument("--workdir", default=None)
    arguments = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="s3gw-coldread-", dir=arguments.workdir)
    root = os.path.join(work, "root")
    os.makedirs(os.path.join(root, BUCKET, "small"))
    for number in range(SMALL_OBJECTS):
        with open(os.path.join(root, BUCKET, "small", "%04d" % number), "wb") as out:
            out.write(os.urandom(4096))
    size = arguments.size_mib << 20
    big = os.path.join(root, BUCKET, "big")
    with open(big, "wb") as out:
        for _ in range(arguments.size_mib):
            out.write(os.urandom(1 << 20))
    source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    gateway = Gateway(name="gateway", source=source, python=sys.executable)
    endpoint = gateway.start(work, root)
    try:
        if arguments.throttle:
            assert gateway.process is not None
            throttle(gateway.process.pid, root, arguments.throttle)
        signer = Signer(endpoint)
        big_target = signer.targets("GET", ["big"])[0]
        big_get(endpoint, big_target, size, 1)  # the first read indexes it (its ETag)
        keys = ["small/%04d" % number for number in range(SMALL_OBJECTS)]
        targets = write_targets(os.path.join(work, "targets"), signer.targets("GET", keys))
        run_wrk(arguments.wrk, endpoint, targets, "GET", 16, 1)
        for _ in range(arguments.rounds):
            alone = run_wrk(arguments.wrk, endpoint, targets, "GET", 16, arguments.seconds)
            stop = threading.Event()
            speeds: List[float] = []

            def cold_downloads() -> None:
                while not stop.is_set():
                    evict(big)
                    speeds.append(size / big_get(endpoint, big_target, size, 1) / 1e6)

            downloader = threading.Thread(target=cold_downloads)
            downloader.start()
            time.sleep(0.3)
            during = run_wrk(arguments.wrk, endpoint, targets, "GET", 16, arguments.seconds)
            stop.set()
            downloader.join()
            print(
                f"4 KiB GET, c=16: alone {alone.ops_per_s:,.0f}/s (p50 {alone.p50_ms:.2f} ms, "
                f"p99 {alone.p99_ms:.2f} ms); during a cold download {during.ops_per_s:,.0f}/s "
                f"(p50 {during.p50_ms:.2f} ms, p99 {during.p99_ms:.2f} ms); cold download "
                + ", ".join(f"{speed:,.0f}" for speed in speeds) + " MB/s",
                flush=True,
            )
    finally:
        gateway.stop()
        shutil.rmtree(work, ignore_errors=True)
        if arguments.throttle and os.path.isdir(CGROUP):
            os.rmdir(CGROUP)
    return 0


if __name__ == "__main__":
    sys.exit(main())
