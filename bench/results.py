"""
The figures of a run: what each metric is, the samples of each (metric, server) cell, and notes.
"""

from __future__ import annotations

import statistics
from typing import Dict, List, Optional, Tuple

import attr

GIB = 1 << 30


@attr.s(frozen=True, auto_attribs=True)
class Metric:
    """
    One row of the table.

    :ivar higher_is_better: whether a larger figure is the better one (speeds) or not (times,
        latencies, memory, CPU).
    :ivar peak: whether the cell is the maximum of its samples rather than their median.
    """

    key: str
    label: str
    unit: str
    higher_is_better: bool
    peak: bool = False

    def speed_ratio(self, figure: float, other: float) -> float:
        """
        C{figure} against C{other} as a speed: above 1 when C{figure} is the better of the two
        (the larger speed, or the smaller time, latency, memory or CPU).
        """
        return figure / other if self.higher_is_better else other / figure


def size_label(size: int) -> str:
    """
    C{size} bytes in the largest binary unit that divides it (``1 GiB``, ``16 MiB``).
    """
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def count_label(count: int) -> str:
    return f"{count:,}"


@attr.s(auto_attribs=True)
class Results:
    """
    Samples by (metric key, server name); a cell's figure is their median (or maximum, for peaks).
    """

    metrics: List[Metric] = attr.Factory(list)
    servers: List[str] = attr.Factory(list)
    samples: Dict[Tuple[str, str], List[float]] = attr.Factory(dict)
    notes: Dict[Tuple[str, str], str] = attr.Factory(dict)

    def metric(self, key: str) -> Metric:
        for metric in self.metrics:
            if metric.key == key:
                return metric
        raise KeyError(key)

    def add(self, key: str, server: str, value: float) -> None:
        self.samples.setdefault((key, server), []).append(value)

    def note(self, key: str, server: str, text: str) -> None:
        self.notes[(key, server)] = text

    def value(self, key: str, server: str) -> Optional[float]:
        values = self.samples.get((key, server))
        if not values:
            return None
        if self.metric(key).peak:
            return max(values)
        return statistics.median(values)

    def runs(self, key: str, server: str) -> int:
        return len(self.samples.get((key, server), []))

    def best(self, key: str) -> Optional[float]:
        """
        The best figure of the row among all servers.
        """
        values = [v for v in (self.value(key, s) for s in self.servers) if v is not None and v > 0]
        if not values:
            return None
        return max(values) if self.metric(key).higher_is_better else min(values)

    def ratio(self, key: str, server: str) -> Optional[float]:
        """
        The server's figure against the best in the row, as a speed: 1.00 is the best, 0.50 half
        as fast (or twice the time, latency, memory or CPU).
        """
        value, best = self.value(key, server), self.best(key)
        if value is None or best is None or value <= 0:
            return None
        return self.metric(key).speed_ratio(value, best)
