"""
The gateway's settings: defaults, then the config file, then the command line.

The config file is INI with one ``[gateway]`` section; ``etc/s3gateway.conf`` documents every
setting. Keys use the command line's option names with ``_`` for ``-``.
"""

from __future__ import annotations

import configparser
import os
from typing import Any, Dict, List, Mapping, Optional

from gateway.s3.cors import parse_origins

#: Every setting with its default. ``listen`` is a Twisted server endpoint string.
DEFAULTS: Dict[str, Optional[str]] = {
    "data": "/var/lib/s3gateway",
    "listen": "tcp:8333:interface=127.0.0.1",
    "region": "us-east-1",
    "create_bucket_root": None,
    "json_log": None,
    "access_log": None,
    "workers": "1",
    "domains": None,
    "signature_v2": "true",
}

#: Settings made from other sections than [gateway]: ``cors`` from the [cors] section.
SECTION_SETTINGS = ("cors",)


class ConfigError(Exception):
    """
    The config file cannot be used; the message says why.
    """


def read_config_file(path: str) -> Dict[str, str]:
    """
    The settings of a config file; unknown keys are an error, so a typo is not silently ignored.
    """
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # bucket names keep case
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
    unknown_sections = set(parser.sections()) - {"gateway", "cors"}
    if unknown_sections:
        raise ConfigError(f"{path}: unknown section(s): {', '.join(sorted(unknown_sections))}")
    result: Dict[str, Any] = {name: value for name, value in settings.items() if value != ""}
    if parser.has_section("cors"):
        result["cors"] = {
            bucket: list(parse_origins(origins)) for bucket, origins in parser.items("cors")
        }
    return result


def parse_boolean(name: str, value: Optional[str]) -> bool:
    """
    A yes/no setting: true/false, yes/no, on/off, 1/0.
    """
    text = (value or "").strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def parse_domains(value: Optional[str]) -> List[str]:
    """
    Base domains for virtual-host-style addressing: names separated by commas or white space.
    """
    return [d.strip().lower().rstrip(".") for d in (value or "").replace(",", " ").split() if d]


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
