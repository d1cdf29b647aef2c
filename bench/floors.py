"""
What the machine's own kernel and filesystem allow, measured in the run beside the servers.

``hashlib.md5`` is the floor of a PUT's CPU work (L{bench.load.md5_rate}); these are the floors
of its system work, on the filesystem that holds the data: every byte of an upload is copied into
the page cache, and every small PUT makes a new file (its temporary file). Both varied by a factor
of three or more from one run to the next on the benchmark machine (bench/RESULTS.md), so each run
measures them again, next to the figures they bound.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from typing import Dict

#: Bytes of each write: the gateway writes what one socket read brings, up to 256 KiB.
WRITE_BLOCK = 256 * 1024


def page_cache_write_rate(directory: str, size: int) -> float:
    """
    Writing C{size} bytes from one buffer into a new file in C{directory}, without fsync, in MB/s
    (10**6 bytes): the copy of an upload's bytes into the page cache, alone.
    """
    block = os.urandom(WRITE_BLOCK)
    path = os.path.join(directory, "page-cache-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        started = time.perf_counter()
        done = 0
        while done < size:
            done += os.write(fd, block[: min(WRITE_BLOCK, size - done)])
        seconds = time.perf_counter() - started
    finally:
        os.close(fd)
        os.unlink(path)
    return size / seconds / 1e6


def file_creation_cost(directory: str, count: int = 300) -> float:
    """
    Microseconds to make one new empty file in a fresh folder under C{directory}: what a small
    PUT's temporary file costs the kernel before a byte is written.
    """
    folder = tempfile.mkdtemp(prefix="create-probe-", dir=directory)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        started = time.perf_counter()
        for number in range(count):
            os.close(os.open(os.path.join(folder, str(number)), flags, 0o600))
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return seconds / count * 1e6


def measure(directory: str, size: int, runs: int = 3) -> Dict[str, str]:
    """
    Both floors, medians of C{runs}, as lines of the results' machine description.
    """
    write = statistics.median(page_cache_write_rate(directory, size) for _ in range(runs))
    create = statistics.median(file_creation_cost(directory) for _ in range(runs))
    return {
        "writing into the page cache (the data's filesystem, no fsync)": f"{write:,.0f} MB/s",
        "making one empty file (the data's filesystem)": f"{create:,.0f} µs",
    }
