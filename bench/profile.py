"""
Where the gateway's time goes, by sampling it with py-spy while one kind of load runs.

py-spy's raw output is one line per distinct stack with its sample count; the summary is the
share of samples whose innermost frame is each function (self time), and the share per module.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from typing import Callable, List, Tuple

#: What samples without a Python frame are summarised as.
NATIVE = "(no Python frame)"

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def parse_raw(text: str) -> Tuple[Counter, Counter, int]:
    """
    Self samples by function and by file from py-spy's ``--format raw`` output.

    :return: (by function, by file, total samples).
    """
    functions: Counter = Counter()
    files: Counter = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        leaf = stack.split(";")[-1]
        if leaf.startswith("process "):
            # py-spy's root frame of a subprocess, alone: the thread ran no Python code.
            functions[NATIVE] += samples
            files["?"] += samples
            continue
        found = _FRAME.match(leaf)
        function, path = (found.group("function"), found.group("file")) if found else (leaf, "?")
        short = _short_path(path)
        functions[f"{function} ({short})"] += samples
        files[short] += samples
    return functions, files, total


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "lib/python3", "/gateway/"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return ("gateway/" + tail) if marker == "/gateway/" else tail.split("/", 1)[-1]
    return os.path.basename(path)


def record(
    py_spy: str, pid: int, seconds: float, load: Callable[[], None], output: str,
    max_loads: int = 50,
) -> str:
    """
    Sample C{pid} (and its subprocesses) for C{seconds} while calling C{load} over and over
    (at most C{max_loads} times); the raw profile text.
    """
    command = [
        py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250",
        "--format", "raw", "--output", output, "--nonblocking", "--subprocesses",
    ]
    with open(output + ".log", "wb") as log:
        sampler = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(0.5)
        loads = 0
        while sampler.poll() is None and loads < max_loads:
            load()
            loads += 1
        sampler.wait(timeout=seconds + 30)
    finally:
        if sampler.poll() is None:
            sampler.kill()
            sampler.wait()
    if not os.path.exists(output):
        with open(output + ".log", "rb") as log:
            raise RuntimeError("py-spy wrote no profile: " + log.read().decode(errors="replace")[-300:])
    with open(output) as raw:
        return raw.read()


def summary(title: str, text: str, top: int = 8) -> List[str]:
    """
    Markdown lines: the top self-time functions and modules of one profile.
    """
    functions, files, total = parse_raw(text)
    if not total:
        return [f"**{title}**: no samples (the gateway was idle, or py-spy could not attach)", ""]
    lines = [f"**{title}** ({total} samples of busy threads)", ""]
    lines.append("- by function (self): " + "; ".join(
        f"{name} {count * 100 / total:.0f}%" for name, count in functions.most_common(top)
    ))
    lines.append("- by module (self): " + "; ".join(
        f"{name} {count * 100 / total:.0f}%" for name, count in files.most_common(top)
    ))
    lines.append("")
    return lines
