"""
Log files that follow their path through rotation (L{gateway.followedfile}), as the JSON event
log (``--json-log``) uses them.
"""

from __future__ import annotations

import json
import os
import stat

from twisted.logger import Logger, LogPublisher, capturedLogs

from gateway.accesslog import json_observer
from gateway.followedfile import FollowedTextFile
from tests.test_accessfile import Clock


def test_json_log_follows_rotation_within_a_second(tmp_path) -> None:
    """
    Events logged after logrotate renamed the file (its default, ``create``) or removed it go
    to a new file at the path once a second has passed, not to the old file for ever.
    """
    path = tmp_path / "events.json"
    clock = Clock(50.0)
    output = FollowedTextFile(str(path), clock=clock)
    publisher = LogPublisher(json_observer(output))
    log = Logger(observer=publisher)
    log.info("before {n}", n=1)
    os.rename(path, tmp_path / "events.json.1")
    clock.now = 50.5
    log.info("same second {n}", n=2)
    clock.now = 51.0
    log.info("after {n}", n=3)
    log.debug("below info, not written")
    os.unlink(path)
    clock.now = 52.5
    log.info("removed {n}", n=4)
    output.close()
    log.info("closed {n}", n=5)

    def numbers(name: str) -> list:
        return [json.loads(line)["n"] for line in (tmp_path / name).read_text().splitlines()]

    assert numbers("events.json.1") == [1, 2]
    assert numbers("events.json") == [4]


def test_created_readable_by_owner_and_group_only_and_appends(tmp_path) -> None:
    path = tmp_path / "events.json"
    path.write_text("earlier\n")
    output = FollowedTextFile(str(path))
    assert output.write("line\n") == 5
    output.flush()
    output.close()
    assert path.read_text() == "earlier\nline\n"
    fresh = tmp_path / "fresh.json"
    FollowedTextFile(str(fresh)).close()
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o640


def test_write_failure_is_reported_once_and_does_not_raise() -> None:
    """
    A full disk drops the lines and says so once, until a write succeeds again; the report,
    itself logged, does not loop back into the failing file.
    """
    output = FollowedTextFile("/dev/full")
    with capturedLogs() as events:
        assert [output.write("line\n") for _ in range(3)] == [0, 0, 0]
    output.close()
    failures = [e for e in events if "cannot write the log file" in e["log_format"]]
    assert len(failures) == 1 and failures[0]["path"] == "/dev/full"
