"""
Resource use of a server under test, seen from outside through psutil: peak resident memory and
CPU seconds of the daemon and every process it runs (workers, restarted workers included).
"""

from __future__ import annotations

import threading
import time
from typing import Dict, Optional, Sequence

import attr
import psutil


@attr.s(frozen=True, auto_attribs=True)
class Usage:
    """
    What a server's processes used over one watched span.

    :ivar cpu_seconds: user plus system CPU time of all of them.
    :ivar peak_rss: the highest sum of their resident sizes seen, in bytes.
    :ivar peak_process_rss: the highest resident size of any single one, in bytes.
    """

    cpu_seconds: float
    peak_rss: int
    peak_process_rss: int


def process_tree(root_pid: int) -> Dict[int, psutil.Process]:
    """
    The process C{root_pid} and all its descendants, by pid (empty when it is gone).
    """
    try:
        root = psutil.Process(root_pid)
        return {p.pid: p for p in [root] + root.children(recursive=True)}
    except psutil.Error:
        return {}


def _cpu(process: psutil.Process) -> Optional[float]:
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return None


@attr.s(auto_attribs=True)
class Watch:
    """
    Samples a process tree every C{interval} seconds in a thread, between L{start} and L{stop}.

    CPU is counted per process as its time at the last sample (or at stop) less its time at the
    first sight of it; a process born during the span counts from zero.
    """

    root_pid: int
    interval: float = 0.05
    _first: Dict[int, float] = attr.Factory(dict)
    _last: Dict[int, float] = attr.Factory(dict)
    _born_before: Dict[int, bool] = attr.Factory(dict)
    _peak: int = 0
    _peak_process: int = 0
    _stopping: threading.Event = attr.Factory(threading.Event)
    _thread: Optional[threading.Thread] = None

    def _sample(self, initial: bool = False) -> None:
        total = 0
        for pid, process in process_tree(self.root_pid).items():
            cpu = _cpu(process)
            if cpu is None:
                continue
            if pid not in self._first:
                self._first[pid] = cpu if initial else 0.0
            self._last[pid] = cpu
            try:
                rss = process.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            self._peak_process = max(self._peak_process, rss)
        self._peak = max(self._peak, total)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self._sample()

    def start(self) -> "Watch":
        self._sample(initial=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Usage:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()
        cpu = sum(self._last[pid] - self._first[pid] for pid in self._last)
        return Usage(cpu_seconds=cpu, peak_rss=self._peak, peak_process_rss=self._peak_process)



def wait_until_idle(
    root_pids: Sequence[int], busy_share: float = 0.1, interval: float = 0.1, limit: float = 8.0
) -> float:
    """
    Wait until the process trees of C{root_pids} together use less than C{busy_share} of one
    core over C{interval} seconds, or C{limit} seconds have passed; the seconds waited.

    A server can go on working after its test has ended (moto went on at one full core for about
    5 s after its 8-stream GET of 1 GiB), and took that core from whichever server the next test
    measured.
    """
    started = time.monotonic()

    def total() -> float:
        seconds = 0.0
        for root in root_pids:
            for process in process_tree(root).values():
                seconds += _cpu(process) or 0.0
        return seconds

    before = total()
    while time.monotonic() - started < limit:
        time.sleep(interval)
        now = total()
        if now - before < busy_share * interval:
            break
        before = now
    return time.monotonic() - started
