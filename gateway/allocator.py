"""
glibc's allocator, told to keep the memory a serving process frees for its next use.

A large upload arrives in reads of a quarter mebibyte (L{gateway.http.streaming.READ_SIZE}), each
a new bytes object that lives until it is hashed and written. By default glibc hands freed memory
at the top of its heap back to the kernel once more than a threshold lies free there (128 KiB,
raised as large blocks are freed, to twice the largest so far), and the upload's backlog of a few
reads went over it again and again: each read then took fresh pages, about 70,000 page faults
per GiB uploaded. Kept, the memory is reused: a 1 GiB PUT took 2.35 CPU seconds per GiB against
2.58, medians of six alternating PUTs, with no page fault left (bench/RESULTS.md).

Both thresholds are fixed here, since setting one stops glibc from adjusting the other: blocks
under L{MMAP_THRESHOLD} come from the heap, and up to L{TRIM_THRESHOLD} free at its top is kept.
The process's peak memory is unchanged (what is kept was in use at the peak); it shrinks less
after one.
"""

from __future__ import annotations

import ctypes
import platform

from gateway.libc import libc_function

#: ``M_TRIM_THRESHOLD`` and ``M_MMAP_THRESHOLD`` from glibc's ``<malloc.h>``.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Free memory at the top of the heap kept rather than given back to the kernel.
TRIM_THRESHOLD = 16 * 1024 * 1024

#: Blocks at least this large get their own mapping, freed to the kernel with them.
MMAP_THRESHOLD = 4 * 1024 * 1024


def keep_freed_memory() -> bool:
    """
    Set the thresholds for this process; whether the allocator took them (C{False} where the
    C library is not glibc).
    """
    # Another C library's allocator has other rules (and may take the same numbers for others).
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = libc_function("mallopt", ctypes.c_int, ctypes.c_int)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
