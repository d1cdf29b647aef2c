"""
The access log written to a file of its own (L{gateway.accessfile}): its lines, its mode, how it
follows rotation, and what it does when the disk refuses a write.
"""

from __future__ import annotations

import os
import stat
from typing import List

from twisted.logger import globalLogPublisher

from gateway.accessfile import AccessLogFile
from gateway.accesslog import AccessRecord


class Clock:
    """
    A settable C{time.time}.
    """

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def request(log: AccessLogFile, key: str = "photos/cat.jpg", status: int = 200) -> None:
    log(AccessRecord("GET", "GetObject", "pics", key, status, 4096, 0, 0.00125, "AKIDEXAMPLE",
                     False))


def test_one_line_per_request_with_time_and_process(tmp_path) -> None:
    path = tmp_path / "access.log"
    log = AccessLogFile(str(path), clock=Clock(1764094261.25))
    request(log)
    log(AccessRecord("PUT", "PutObject", "pics", "a", 200, 0, 10, 0.5, "AKIDEXAMPLE", True))
    log.close()
    assert path.read_text().splitlines() == [
        f"2025-11-25T18:11:01.250Z [{os.getpid()}] GET /pics/photos/cat.jpg 200 4096B out "
        "0B in 1.2ms key=AKIDEXAMPLE op=GetObject",
        f"2025-11-25T18:11:01.250Z [{os.getpid()}] PUT /pics/a 200 0B out 10B in 500.0ms "
        "key=AKIDEXAMPLE op=PutObject (client disconnected)",
    ]


def test_a_key_cannot_forge_a_line(tmp_path) -> None:
    path = tmp_path / "access.log"
    log = AccessLogFile(str(path))
    request(log, key="x\n2025-01-01T00:00:00.000Z [1] GET /pics/forged 200")
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    assert "x\\n2025" in lines[0]


def test_file_is_not_readable_by_others_and_appends(tmp_path) -> None:
    path = tmp_path / "access.log"
    path.write_text("earlier line\n")
    os.chmod(path, 0o600)
    log = AccessLogFile(str(path))
    request(log)
    log.close()
    earlier, line = path.read_text().splitlines()
    assert earlier == "earlier line" and " GET /pics/photos/cat.jpg 200 " in line
    fresh = tmp_path / "fresh.log"
    AccessLogFile(str(fresh)).close()
    assert stat.S_IMODE(os.stat(fresh).st_mode) & 0o007 == 0


def test_rotation_is_followed_within_a_second(tmp_path) -> None:
    path = tmp_path / "access.log"
    clock = Clock(1000.0)
    log = AccessLogFile(str(path), clock=clock)
    request(log, key="before")
    os.rename(path, tmp_path / "access.log.1")
    clock.now = 1000.5
    # Within the same second the open file is kept: the line goes to the rotated file.
    request(log, key="same-second")
    clock.now = 1001.0
    request(log, key="after")
    os.unlink(path)
    clock.now = 1002.0
    request(log, key="deleted")
    log.close()
    rotated = (tmp_path / "access.log.1").read_text()
    assert "/pics/before " in rotated and "/pics/same-second " in rotated
    assert "/pics/after " not in rotated
    assert "/pics/deleted " in path.read_text()


def test_write_failure_is_reported_once_and_does_not_raise(tmp_path) -> None:
    events: List[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        log = AccessLogFile("/dev/full")
        for _ in range(3):
            request(log)
        log.close()
    finally:
        globalLogPublisher.removeObserver(events.append)
    failures = [e for e in events if "cannot write the access log" in e.get("log_format", "")]
    assert len(failures) == 1
    assert failures[0]["path"] == "/dev/full"


def test_closed_log_writes_nothing(tmp_path) -> None:
    path = tmp_path / "access.log"
    log = AccessLogFile(str(path))
    log.close()
    request(log)
    assert path.read_text() == ""


def test_with_a_reactor_lines_are_gathered_and_written_together(tmp_path) -> None:
    from twisted.internet.task import Clock as ReactorClock

    from gateway.accessfile import FLUSH_SECONDS

    path = tmp_path / "access.log"
    reactor = ReactorClock()
    log = AccessLogFile(str(path), reactor=reactor)
    request(log, key="first")
    request(log, key="second")
    assert path.read_text() == ""
    reactor.advance(FLUSH_SECONDS)
    lines = path.read_text().splitlines()
    assert [line.split()[3] for line in lines] == ["/pics/first", "/pics/second"]
    assert reactor.getDelayedCalls() == []
    request(log, key="third")
    log.close()
    assert path.read_text().splitlines()[2].split()[3] == "/pics/third"
    assert reactor.getDelayedCalls() == []


def test_gathered_lines_are_written_once_they_fill_the_buffer(tmp_path) -> None:
    from twisted.internet.task import Clock as ReactorClock

    from gateway.accessfile import BUFFER_BYTES

    path = tmp_path / "access.log"
    reactor = ReactorClock()
    log = AccessLogFile(str(path), reactor=reactor)
    written = 0
    while not path.read_text():
        request(log, key="k" * 200)
        written += 1
        assert written * 200 < BUFFER_BYTES + 400
    assert len(path.read_text().splitlines()) == written
    assert reactor.getDelayedCalls() == []
    log.close()
