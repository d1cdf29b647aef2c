"""
Tests of L{gateway.allocator}, in processes of their own: the allocator's thresholds hold for the
whole process, and each run must start from glibc's defaults.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: An upload's pattern: a backlog of eight reads of 256 KiB alive at once, all freed, again and
#: again; prints the minor page faults of the rounds after the first.
SCRIPT = """
import resource, sys
from gateway.allocator import keep_freed_memory

if sys.argv[1] == "keep":
    assert keep_freed_memory()

def backlog():
    reads = [bytes(range(256)) * 1024 for _ in range(8)]
    del reads

backlog()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    backlog()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        env={key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")},
    )
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_freed_reads_are_reused_without_new_pages() -> None:
    """
    With glibc's defaults each round of reads takes fresh pages (the test shows that it can
    tell); with the thresholds set, the memory freed is reused and no page is taken anew.
    """
    default = page_faults("default")
    assert default > 50 * 8 * 32  # at least half of every read's 64 pages, every round
    assert page_faults("keep") < 100
