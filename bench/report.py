"""
The results as one table (every server side by side, each figure with its ratio to the best in
its row), the issue's targets checked against them, and ``bench/RESULTS.md``.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Dict, List, Optional, Sequence

import attr
import psutil

from bench.results import Results


def number(value: float) -> str:
    """
    A figure with as many digits as it deserves.
    """
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def machine_description() -> Dict[str, str]:
    """
    Cores, processor, memory, kernel, distribution and Python of this machine.
    """
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    distribution = platform.system()
    try:
        with open("/etc/os-release") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    distribution = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {
        "cores": str(os.cpu_count()),
        "processor": model,
        "memory": f"{psutil.virtual_memory().total / (1 << 30):.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "distribution": distribution,
        "python": sys.version.split()[0] + f" ({sys.executable})",
    }


def table(results: Results) -> str:
    """
    The markdown table: a row per metric, a column per server, ``figure (ratio)`` in each cell;
    notes as numbered footnotes under it.
    """
    header = ["Metric", "Unit"] + results.servers
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    footnotes: List[str] = []
    for metric in results.metrics:
        cells = [metric.label, metric.unit]
        for server in results.servers:
            value = results.value(metric.key, server)
            cell = "—"
            if value is not None:
                ratio = results.ratio(metric.key, server)
                cell = number(value) + (f" ({ratio:.2f})" if ratio is not None else "")
                if results.runs(metric.key, server) == 1 and not metric.peak:
                    cell += " ¹"
            note = results.notes.get((metric.key, server))
            if note:
                if note not in footnotes:
                    footnotes.append(note)
                cell += f" [{footnotes.index(note) + 1}]"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("¹ one run only (a single run took too long to repeat, or the time budget ended).")
    for index, note in enumerate(footnotes, start=1):
        lines.append(f"[{index}] {note}")
    return "\n".join(lines)


@attr.s(frozen=True, auto_attribs=True)
class Target:
    """
    One target of issue 4, checked: C{ratio} against C{threshold} (met when at least it).

    :ivar rounds: the same ratio round by round, when both sides ran every round. The rounds
        are interleaved, so round I{i} of both servers met the same state of the machine; on a
        noisy machine the medians can fall on one side of the threshold while some rounds fall
        on the other, and the verdict says so.
    """

    text: str
    ratio: Optional[float]
    threshold: float
    detail: str
    rounds: Sequence[float] = ()

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "not measured"
        if self.ratio >= self.threshold:
            verdict = f"met ({self.ratio:.2f} against {self.threshold:g} needed"
        else:
            short = (1 - self.ratio / self.threshold) * 100
            verdict = (f"MISSED ({self.ratio:.2f} against {self.threshold:g} needed, "
                       f"short by {short:.0f}%")
        if len(self.rounds) < 2:
            return verdict + ")"
        low, high = min(self.rounds), max(self.rounds)
        verdict += f"; round by round {low:.2f} to {high:.2f})"
        if low < self.threshold <= high:
            verdict += ", not settled by this run: some rounds met it and some did not"
        return verdict


def _div(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return a / b


def round_ratios(
    results: Results, key: str, ours: str, theirs: Optional[str] = None,
    floor: Optional[float] = None, their_key: Optional[str] = None,
) -> List[float]:
    """
    C{ours}'s figure against server C{theirs}'s (or against the constant C{floor}, or against
    C{ours}'s own figures of C{their_key}) round by round, as speeds
    (L{bench.results.Metric.speed_ratio}); empty unless both sides have a figure from every
    round, in the same number.
    """
    mine = results.samples.get((key, ours), [])
    if floor is not None:
        other: Sequence[float] = [floor] * len(mine)
    elif their_key is not None:
        other = results.samples.get((their_key, theirs or ours), [])
    elif theirs is not None:
        other = results.samples.get((key, theirs), [])
    else:
        return []
    if len(mine) < 2 or len(mine) != len(other) or not all(mine) or not all(other):
        return []
    metric = results.metric(key)
    return [metric.speed_ratio(a, b) for a, b in zip(mine, other)]


def _md5_target(results: Results, md5_rate: float, single: str) -> Target:
    """
    The 1 GiB PUT against ``hashlib.md5`` alone: against the MD5 figures measured just before
    each of the gateway's PUTs when there are some (the machine in the same state), else against
    C{md5_rate}, measured once at the start of the run.
    """
    text = "1 GiB PUT, one stream: at least 0.8 of hashlib.md5 alone"
    put, beside = results.value("put_big_1", single), results.value("md5_beside", single)
    if beside is None:
        return Target(
            text, _div(put, md5_rate), 0.8,
            f"gateway {_fmt(put)} MB/s, md5 {_fmt(md5_rate)} MB/s",
            round_ratios(results, "put_big_1", single, floor=md5_rate),
        )
    return Target(
        text, _div(put, beside), 0.8,
        f"gateway {_fmt(put)} MB/s, md5 {_fmt(beside)} MB/s just before each of its PUTs "
        f"({_fmt(md5_rate)} MB/s at the start of the run)",
        round_ratios(results, "put_big_1", single, their_key="md5_beside"),
    )


def targets(results: Results, md5_rate: float, single: str, multi: str) -> List[Target]:
    """
    The targets of issue 4 from this run's figures; C{single} and C{multi} are the gateway's
    columns with one worker and with one worker per core (the latter may have no figures).
    """
    v = results.value
    checks = [Target(
        "1 GiB GET, one stream: at least 0.5 of nginx",
        _div(v("get_big_1", single), v("get_big_1", "nginx")), 0.5,
        f"gateway {_fmt(v('get_big_1', single))} MB/s, nginx {_fmt(v('get_big_1', 'nginx'))} MB/s",
        round_ratios(results, "get_big_1", single, "nginx"),
    ), _md5_target(results, md5_rate, single)]
    column = multi if v("get_small_64_ops", multi) is not None else single
    for method in ("get", "put"):
        key = f"{method}_small_64_ops"
        ours = v(key, column)
        for peer, factor in (("rclone", 1.0), ("seaweedfs", 1.0), ("moto", 3.0)):
            checks.append(Target(
                f"4 KiB {method.upper()} at c=64 ({column}): "
                + (f"at least {factor:g}x {peer}" if factor > 1 else f"ahead of {peer}"),
                _div(ours, v(key, peer)), factor,
                f"{column} {_fmt(ours)} ops/s, {peer} {_fmt(v(key, peer))} ops/s",
                round_ratios(results, key, column, peer),
            ))
    for layout in ("flat", "tree"):
        ours, theirs = v(f"list_{layout}", single), v(f"list_{layout}", "rclone")
        checks.append(Target(
            "ListObjectsV2 walk ("
            + ("one folder" if layout == "flat" else "folders, delimiter /")
            + "): no slower than rclone",
            _div(theirs, ours), 1.0, f"gateway {_fmt(ours)} s, rclone {_fmt(theirs)} s",
            round_ratios(results, f"list_{layout}", single, "rclone"),
        ))
    for column_name in (single, multi):
        rss = v("rss_process", column_name)
        if rss is not None:
            checks.append(Target(
                f"Peak RSS of a gateway process under 150 MB ({column_name})",
                _div(150.0, rss), 1.0, f"{_fmt(rss)} MB",
            ))
    return checks


def _fmt(value: Optional[float]) -> str:
    return "—" if value is None else number(value)


def markdown(
    results: Results, machine: Dict[str, str], versions: Dict[str, str],
    checks: Sequence[Target], md5_rate: float, notes: Sequence[str], profile: str,
    command: str, when: str,
) -> str:
    """
    The whole ``RESULTS.md``.
    """
    out = [
        "# s3gateway benchmark results", "",
        f"Made by `{command}` on {when}; the method is in `bench/README.md`.", "",
        "## Machine", "",
    ]
    out += [f"- {name}: {value}" for name, value in machine.items()]
    out += ["", "## Servers", ""]
    out += [f"- **{name}**: {value}" for name, value in versions.items()]
    out += [
        "", "## Results", "",
        "Each cell: the median of the runs, then in brackets its ratio to the best figure of the row "
        "(1.00 = best; 0.50 = half as fast, or twice the time, latency, memory or CPU). "
        "nginx serves the same files statically and is the ceiling for reads; its figures are "
        "also the load generator's own ceiling. MB = 10^6 bytes.", "",
        table(results), "",
        f"`hashlib.md5` alone on this machine (the floor of a PUT's work): **{number(md5_rate)} MB/s**.",
        "", "## Targets (issue 4)", "",
    ]
    out += [f"- {t.text}: **{t.verdict}** — {t.detail}" for t in checks]
    if notes:
        out += ["", "## Notes on this run", ""] + [f"- {note}" for note in notes]
    if profile:
        out += ["", "## Where the gateway's time goes (py-spy)", "", profile]
    return "\n".join(out) + "\n"
