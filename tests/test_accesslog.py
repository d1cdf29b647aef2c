"""
The access-log event: its text line, its structured fields, and the JSON observer.
"""

from __future__ import annotations

import io
import json
from typing import List

import pytest
from twisted.logger import formatEvent, globalLogPublisher

from gateway.accesslog import ACCESS_NAMESPACE, AccessRecord, json_observer, log_access


@pytest.fixture
def events():
    captured: List[dict] = []
    observer = captured.append
    globalLogPublisher.addObserver(observer)
    yield captured
    globalLogPublisher.removeObserver(observer)


def emit(**overrides) -> None:
    fields = dict(
        method="PUT", operation="PutObject", bucket="photos", key="2024/cat.jpg", status=200,
        bytes_sent=0, bytes_received=4096, duration=0.01234, access_key_id="AKIDEXAMPLE",
        disconnected=False,
    )
    fields.update(overrides)
    log_access(AccessRecord(**fields))


def access_events(events: List[dict]) -> List[dict]:
    return [event for event in events if event.get("log_namespace") == ACCESS_NAMESPACE]


def test_line_names_the_request(events) -> None:
    emit()
    [event] = access_events(events)
    assert formatEvent(event) == (
        "PUT /photos/2024/cat.jpg 200 0B out 4096B in 12.3ms key=AKIDEXAMPLE op=PutObject"
    )


def test_bucket_only_and_disconnected(events) -> None:
    emit(key="", method="GET", operation="ListObjectsV2", status=499, disconnected=True)
    [event] = access_events(events)
    text = formatEvent(event)
    assert text.startswith("GET /photos 499 ")
    assert text.endswith("op=ListObjectsV2 (client disconnected)")


def test_fields_are_structured(events) -> None:
    emit(key="a{b}\nc")
    [event] = access_events(events)
    assert event["key"] == "a{b}\nc"
    assert event["status"] == 200 and event["bytes_received"] == 4096
    assert event["access_key_id"] == "AKIDEXAMPLE"
    assert event["duration_ms"] == pytest.approx(12.34)
    assert event["disconnected"] is False


def test_control_characters_cannot_forge_a_line(events) -> None:
    emit(key="x\n2026-01-01 GET /other 200")
    [event] = access_events(events)
    text = formatEvent(event)
    assert "\n" not in text
    assert "/photos/x\\n2026-01-01 GET /other 200 " in text


def test_json_observer_writes_one_object_per_line() -> None:
    output = io.StringIO()
    observer = json_observer(output)
    globalLogPublisher.addObserver(observer)
    try:
        emit()
        emit(key="b")
    finally:
        globalLogPublisher.removeObserver(observer)
    records = [json.loads(line) for line in output.getvalue().splitlines() if line]
    access = [r for r in records if r.get("log_namespace") == ACCESS_NAMESPACE]
    assert [r["key"] for r in access] == ["2024/cat.jpg", "b"]
    assert access[0]["operation"] == "PutObject"
    assert "secret" not in output.getvalue().lower()
