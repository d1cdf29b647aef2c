"""
The gateway's settings: defaults, then the config file, then the command line.

The config file is INI with one ``[gateway]`` section; ``etc/s3gateway.conf`` documents every
setting. Keys use the command line's option names with ``_`` for ``-``.
"""

from __future__ import annotations

import configparser
import os
from typing import Dict, Mapping, Optional

#: Every setting with its default. ``listen`` is a Twisted server endpoint string.
DEFAULTS: Dict[str, Optional[str]] = {
    "data": "/var/lib/s3gateway",
    "listen": "tcp:8333:interface=127.0.0.1",
    "region": "us-east-1",
    "create_bucket_root": None,
    "json_log": None,
    "workers": "1",
}


class ConfigError(Exception):
    """
    The config file cannot be used; the message says why.
    """


def read_config_file(path: str) -> Dict[str, str]:
    """
    The settings of a config file; unknown keys are an error, so a typo is not silently ignored.
    """
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as config_file:
            parser.read_file(config_file)
    except (OSError, configparser.Error) as error:
        raise ConfigError(f"cannot read {path}: {error}")
    if not parser.has_section("gateway"):
        raise ConfigError(f"{path} has no [gateway] section")
    settings = dict(parser.items("gateway"))
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(sorted(unknown))}")
    return {name: value for name, value in settings.items() if value != ""}


def merge_settings(
    file_settings: Mapping[str, str], command_line: Mapping[str, Optional[str]]
) -> Dict[str, Optional[str]]:
    """
    Defaults, overridden by the file, overridden by options given on the command line.
    """
    settings = dict(DEFAULTS)
    settings.update(file_settings)
    settings.update({k: v for k, v in command_line.items() if v is not None})
    return settings


def parse_workers(value: Optional[str]) -> int:
    """
    The number of worker processes a ``workers`` setting asks for: a positive integer, or
    ``auto`` for one per core.

    :raise ConfigError: for anything else.
    """
    text = (value or "1").strip().lower()
    if text == "auto":
        return os.cpu_count() or 1
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"workers must be a positive integer or 'auto', not {value!r}")
    return count
