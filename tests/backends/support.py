"""
Helpers of the backend contract suites: a collecting consumer, uploads and reads in one call,
listings in one call, and the keys and bodies the suites use.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, List, Optional, Tuple

import pytest
from twisted.internet.interfaces import IConsumer, IPushProducer
from zope.interface import implementer

from gateway.backends.localtemp import temporary_files
from gateway.interfaces import BackendError, IBackend
from gateway.model import ByteRange, ObjectInfo, WriteMetadata


@implementer(IConsumer)
class Consumer:
    """
    Collects what a reader delivers; can pause or stop the producer on a given write.
    """

    def __init__(self, pause_on: Optional[int] = None, stop_on: Optional[int] = None) -> None:
        self.chunks: List[bytes] = []
        self.producer: Optional[IPushProducer] = None
        self.streaming: Optional[bool] = None
        self.unregistered = False
        self._pause_on = pause_on
        self._stop_on = stop_on

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        assert self.producer is None
        self.producer = producer
        self.streaming = streaming

    def unregisterProducer(self) -> None:
        assert self.producer is not None
        self.producer = None
        self.unregistered = True

    def write(self, data: bytes) -> None:
        self.chunks.append(bytes(data))
        if self.producer is None:
            # A body of at most one block may be written at once, without a producer.
            assert not self.unregistered and len(self.chunks) == 1
            return
        if len(self.chunks) == self._pause_on:
            self.producer.pauseProducing()
        if len(self.chunks) == self._stop_on:
            self.producer.stopProducing()

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def metadata_for(body: bytes, **kwargs: object) -> WriteMetadata:
    return WriteMetadata(etag=hashlib.md5(body).hexdigest(), **kwargs)  # type: ignore[arg-type]


async def put(
    backend: IBackend, key: str, body: bytes, chunk: int = 100_000, **kwargs: object
) -> ObjectInfo:
    """
    Upload C{body} under C{key} in chunks, as the protocol does.
    """
    writer = await backend.start_write(key)
    for start in range(0, len(body), chunk):
        writer.write(body[start : start + chunk])
    return await writer.commit(metadata_for(body, **kwargs))


async def get(backend: IBackend, key: str, byte_range: Optional[ByteRange] = None) -> bytes:
    reader = await backend.open(key)
    consumer = Consumer()
    await reader.deliver(consumer, byte_range)
    # Streamed through a producer, since unregistered; or a small body written at once.
    assert consumer.producer is None and (consumer.unregistered or len(consumer.chunks) <= 1)
    return consumer.body


async def names(
    backend: IBackend,
    prefix: str = "",
    delimiter: Optional[str] = None,
    start_after: str = "",
    max_keys: int = 1000,
) -> Tuple[List[str], List[str]]:
    page = await backend.list_objects(prefix, delimiter, start_after, max_keys)
    return [o.key for o in page.objects], list(page.common_prefixes)


async def list_all(
    backend: IBackend, prefix: str, delimiter: Optional[str], page_size: int
) -> Tuple[List[str], List[str]]:
    """
    Every key and common prefix, paging with C{next_marker} as the protocol does.
    """
    keys: List[str] = []
    prefixes: List[str] = []
    marker = ""
    while True:
        page = await backend.list_objects(prefix, delimiter, marker, page_size)
        assert len(page.objects) + len(page.common_prefixes) <= page_size
        keys += [o.key for o in page.objects]
        prefixes += page.common_prefixes
        if not page.is_truncated:
            return keys, prefixes
        assert page.next_marker is not None
        marker = page.next_marker


async def refused(deferred, error: type) -> BackendError:  # type: ignore[no-untyped-def]
    with pytest.raises(error) as caught:
        await deferred
    return caught.value  # type: ignore[no-any-return]


BODY = bytes(range(256)) * 6000  # 1.5 MiB, not a multiple of any block size

LISTING_KEYS = [
    "asdf",
    "boo/bar",
    "boo/baz/xyzzy",
    "cquux/bla",
    "cquux/thud",
    "photos/2006/feb.jpg",
    "photos/2006/jan.jpg",
    "photos/2007/x.jpg",
    "photos-extra",
    "z\u00e9",
]

SPECIAL_KEYS = [
    "with space.txt",
    "plus+sign",
    "per%25cent%",
    "q?uery&amp=1",
    "\u00fcn\u00efc\u00f6d\u00e9/\u65e5\u672c\u8a9e/\U0001f600.bin",
    "/".join(["deep"] * 60) + "/file",
    "~tilde/'quote\"/#hash",
]


def leftover_temporary_files(root: Any) -> List[str]:
    """
    The temporary upload files left under the bucket directory C{root} (in any of the
    temporary folder's subfolders, L{gateway.backends.localtemp}).
    """
    return list(temporary_files(os.path.join(str(root), ".s3gateway", "tmp")))
