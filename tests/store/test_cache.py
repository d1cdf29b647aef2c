"""
The short-lived lookup cache in front of the metadata store.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from twisted.internet.defer import ensureDeferred, succeed
from twisted.internet.task import Clock

from gateway.model import AccessKey, Connection
from gateway.store.cache import CachingStore


class CountingStore:
    def __init__(self) -> None:
        self.keys: Dict[str, AccessKey] = {}
        self.connections: Dict[Any, Connection] = {}
        self.calls: List[str] = []

    def get_key(self, access_key_id: str):  # type: ignore[no-untyped-def]
        self.calls.append("get_key")
        return succeed(self.keys.get(access_key_id))

    def get_connection(self, user: str, bucket: str):  # type: ignore[no-untyped-def]
        self.calls.append("get_connection")
        return succeed(self.connections.get((user, bucket)))

    def remove_connection(self, user: str, bucket: str):  # type: ignore[no-untyped-def]
        self.connections.pop((user, bucket), None)
        return succeed(None)

    def list_users(self):  # type: ignore[no-untyped-def]
        return succeed(["passed through"])


def result(coroutine: Any) -> Optional[Any]:
    results: List[Any] = []
    ensureDeferred(coroutine).addBoth(results.append)
    return results[0]


def test_found_key_is_reused_until_ttl() -> None:
    store, clock = CountingStore(), Clock()
    store.keys["AK"] = AccessKey("AK", "secret", "alice", 0.0)
    cache = CachingStore(store, clock, ttl=1.0)
    assert result(cache.get_key("AK")).user == "alice"
    del store.keys["AK"]
    assert result(cache.get_key("AK")).user == "alice"
    assert store.calls == ["get_key"]
    clock.advance(1.5)
    assert result(cache.get_key("AK")) is None
    assert store.calls == ["get_key", "get_key"]


def test_absent_entries_are_not_cached() -> None:
    store, clock = CountingStore(), Clock()
    cache = CachingStore(store, clock)
    assert result(cache.get_connection("alice", "b")) is None
    store.connections[("alice", "b")] = Connection("alice", "b", "local")
    assert result(cache.get_connection("alice", "b")).bucket == "b"


def test_removal_through_the_cache_takes_effect_at_once() -> None:
    store, clock = CountingStore(), Clock()
    store.connections[("alice", "b")] = Connection("alice", "b", "local")
    cache = CachingStore(store, clock)
    assert result(cache.get_connection("alice", "b")) is not None
    result(cache.remove_connection("alice", "b"))
    assert result(cache.get_connection("alice", "b")) is None


def test_other_methods_pass_through() -> None:
    cache = CachingStore(CountingStore(), Clock())
    assert result(cache.list_users()) == ["passed through"]
