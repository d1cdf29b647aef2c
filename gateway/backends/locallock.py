"""
Per-key locks of the local backend that every process on the same directory respects.

Several gateway worker processes may serve one bucket directory; a conditional write must check
the key and rename its file into place as one step against all of them. An in-process lock cannot
do that, so the step holds C{flock} on a lock file under ``<root>/.s3gateway/locks``. The key's
hash picks one of L{LOCK_FILES} files, so they never accumulate (two keys may share a file: they
then merely wait for each other).

Each acquisition opens the lock file afresh: C{flock} locks belong to an open file description,
so two threads of one process, each with its own description, exclude each other as two
processes do. The lock goes when the descriptor is closed, also when a process dies holding it.
Blocks: take it in a worker thread; on the reactor, only without waiting.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from typing import Iterator

from gateway.backends.localkeys import RESERVED

#: How many lock files a root has at most.
LOCK_FILES = 256


def lock_path(root: str, key: str) -> str:
    """
    The lock file that guards C{key} under the resolved C{root}.
    """
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    number = int.from_bytes(digest[:4], "big") % LOCK_FILES
    return os.path.join(root, RESERVED, "locks", f"{number:03d}")


class KeyBusy(BlockingIOError):
    """
    Another writer holds the key's lock, and the caller would not wait for it.
    """


@contextmanager
def locked(root: str, key: str, wait: bool = True) -> Iterator[None]:
    """
    Hold the exclusive lock of C{key} for the duration of the block: waiting for it, or, if
    C{wait} is false, raising L{KeyBusy} at once when another writer holds it.
    """
    path = lock_path(root, key)
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        # The root's first lock: its folder is made once, not checked at every write.
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, flags, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise KeyBusy(f"the lock of {key!r} is held") from None
        yield
    finally:
        os.close(fd)
