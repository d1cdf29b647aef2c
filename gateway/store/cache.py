"""
A short-lived cache in front of the metadata store for the two lookups every request makes: the
caller's access key and the addressed connection.

Each is a database round trip through a thread, which cost more than the rest of a small GET
(bench/RESULTS.md). Found entries are kept for C{ttl} seconds (1 by default): a key revoked or a
connection removed with ``s3gateway-admin`` (another process) stops working within that time;
changes made through this gateway (CreateBucket, DeleteBucket) take effect at once. Absent
entries are never cached, so a key or connection just added works immediately.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, TypeVar

from twisted.internet.interfaces import IReactorTime

from gateway.interfaces import IMetadataStore
from gateway.model import AccessKey, Connection

T = TypeVar("T")


class CachingStore:
    """
    An L{IMetadataStore} whose C{get_key} and C{get_connection} answers are reused briefly.
    Every other method goes straight to the wrapped store.
    """

    def __init__(self, store: IMetadataStore, clock: IReactorTime, ttl: float = 1.0) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._keys: Dict[str, Tuple[float, AccessKey]] = {}
        self._connections: Dict[Tuple[str, str], Tuple[float, Connection]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _fresh(self, cache: Dict[Any, Tuple[float, T]], key: Any) -> Optional[T]:
        entry = cache.get(key)
        if entry is None:
            return None
        if entry[0] < self._clock.seconds():
            del cache[key]
            return None
        return entry[1]

    def _remember(self, cache: Dict[Any, Tuple[float, T]], key: Any, value: T) -> None:
        if len(cache) > 10000:
            cache.clear()
        cache[key] = (self._clock.seconds() + self._ttl, value)

    async def get_key(self, access_key_id: str) -> Optional[AccessKey]:
        key = self._fresh(self._keys, access_key_id)
        if key is None:
            key = await self._store.get_key(access_key_id)
            if key is not None:
                self._remember(self._keys, access_key_id, key)
        return key

    async def get_connection(self, user: str, bucket: str) -> Optional[Connection]:
        connection = self._fresh(self._connections, (user, bucket))
        if connection is None:
            connection = await self._store.get_connection(user, bucket)
            if connection is not None:
                self._remember(self._connections, (user, bucket), connection)
        return connection

    async def remove_connection(self, user: str, bucket: str) -> None:
        self._connections.pop((user, bucket), None)
        await self._store.remove_connection(user, bucket)

    async def revoke_key(self, access_key_id: str) -> None:
        self._keys.pop(access_key_id, None)
        await self._store.revoke_key(access_key_id)

    async def remove_user(self, name: str) -> None:
        self._keys.clear()
        self._connections.clear()
        await self._store.remove_user(name)
