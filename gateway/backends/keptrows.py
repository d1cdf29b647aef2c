"""
How many index rows a process keeps in memory, all its buckets together.

Each bucket's index keeps the rows it read until the next commit to it
(L{gateway.backends.localindex.ObjectIndex.get}): about 1.1 kB a key, its row and the info made
of it. A bound per bucket would let a gateway with many buckets read often and written rarely
keep that many times over; one budget per process (L{gateway.backends.BackendRegistry}) bounds
them all, as the kept names of large folders are (L{gateway.backends.localnames}).
"""

from __future__ import annotations

import threading

#: Keys kept by a process, all buckets together: about 9 MB.
PROCESS_KEYS = 8192


class KeptRowsBudget:
    """
    Keys that may still be kept; taken one at a time, given back when a bucket drops its kept
    rows. Used from the reactor thread and pool threads alike.
    """

    def __init__(self, keys: int = PROCESS_KEYS) -> None:
        self._left = keys
        self._lock = threading.Lock()

    @property
    def left(self) -> int:
        return self._left

    def take(self) -> bool:
        """
        Take one key, if any is left.
        """
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True

    def give_back(self, keys: int) -> None:
        with self._lock:
            self._left += keys
