"""
An in-memory backend: the reference implementation of L{IBackend} for the protocol's tests.

It ships in the package (as txaws shipped its in-memory S3) so that every layer above the storage
can be tested without a disk. Its writers can pause their producer on demand, which lets a test
watch the protocol's backpressure work.
"""

from __future__ import annotations

import hashlib
import io
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, cast

from attrs import evolve
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IProducer, IPushProducer, IReactorTime
from zope.interface import implementer

from gateway.backends.conditions import check_condition
from gateway.backends.producer import FileReader
from gateway.interfaces import (
    BackendError,
    IBackend,
    IObjectReader,
    IObjectWriter,
    IServerSideCopy,
    InvalidObjectKey,
    NoSuchObject,
    NoSuchUpload,
    ObjectKeyTooLong,
    PreconditionNotMet,
    ReadOnlyConnection,
)
from gateway.listing import paginate
from gateway.model import ByteRange, ListingPage, ObjectInfo, WriteCondition, WriteMetadata

#: A writer's store step: (key, body, metadata, condition) to the stored info.
Store = Callable[[str, bytes, WriteMetadata, Optional[WriteCondition]], ObjectInfo]

#: S3's limit on a key's length, in UTF-8 bytes.
MAX_KEY_BYTES = 1024


@implementer(IBackend, IServerSideCopy)
class MemoryBackend:
    """
    Objects in a dict. Every method runs to its end on the reactor thread, so each write,
    its condition included, is atomic without locks.

    :param read_only: refuse every write with L{ReadOnlyConnection}.
    :param clock: gives the objects' times, and with C{pause_every} resumes paused writers one
        reactor turn later; the wall clock and manual resumption without it.
    :param pause_every: make every writer pause its registered producer after each
        C{pause_every} writes; L{resume_writers} (or the clock) resumes them.
    :param block_size: the readers' write size, small by default so that tests see many writes.
    """

    def __init__(
        self,
        read_only: bool = False,
        clock: Optional[IReactorTime] = None,
        pause_every: Optional[int] = None,
        block_size: int = 64 * 1024,
    ) -> None:
        self.read_only = read_only
        self.objects: Dict[str, Tuple[bytes, ObjectInfo]] = {}
        self.uploads: Dict[str, Dict[int, bytes]] = {}
        self.paused_writers: List["MemoryWriter"] = []
        self.pauses = 0
        self._clock = clock
        self._pause_every = pause_every
        self._block_size = block_size

    def now(self) -> float:
        return self._clock.seconds() if self._clock is not None else time.time()

    def resume_writers(self) -> None:
        """
        Resume every writer that paused its producer.
        """
        writers, self.paused_writers = self.paused_writers, []
        for writer in writers:
            writer.resume()

    def stat(self, key: str) -> "Deferred[ObjectInfo]":
        if key not in self.objects:
            return fail(NoSuchObject(key))
        return succeed(self.objects[key][1])

    def open(self, key: str) -> "Deferred[IObjectReader]":
        if key not in self.objects:
            return fail(NoSuchObject(key))
        body, info = self.objects[key]
        return succeed(FileReader(info, io.BytesIO(body), self._clock, self._block_size))

    def list_objects(
        self, prefix: str, delimiter: Optional[str], start_after: str, max_keys: int
    ) -> "Deferred[ListingPage]":
        entries = (self.objects[key][1] for key in sorted(self.objects) if key > start_after)
        return succeed(paginate(entries, prefix, delimiter, start_after, max_keys))

    def start_write(self, key: str, size: Optional[int] = None) -> "Deferred[IObjectWriter]":
        try:
            self._check_writable()
            _check_key(key)
        except BackendError as e:
            return fail(e)
        return succeed(MemoryWriter(self, key, self._store_object))

    def delete(self, key: str) -> "Deferred[None]":
        try:
            self._check_writable()
        except BackendError as e:
            return fail(e)
        self.objects.pop(key, None)
        return succeed(None)

    def start_part_write(self, upload_id: str, part_number: int) -> "Deferred[IObjectWriter]":
        try:
            self._check_writable()
        except BackendError as e:
            return fail(e)

        def store(
            _: str, body: bytes, metadata: WriteMetadata, condition: Optional[WriteCondition]
        ) -> ObjectInfo:
            return self._store_part(upload_id, part_number, body, metadata.etag)

        return succeed(MemoryWriter(self, f"{upload_id}/{part_number}", store))

    def _store_part(self, upload_id: str, part_number: int, body: bytes, etag: str) -> ObjectInfo:
        self.uploads.setdefault(upload_id, {})[part_number] = body
        return ObjectInfo(f"{upload_id}/{part_number}", len(body), etag, self.now())

    def complete_upload(
        self,
        upload_id: str,
        key: str,
        parts: Sequence[Tuple[int, int]],
        metadata: WriteMetadata,
        condition: Optional[WriteCondition] = None,
    ) -> "Deferred[ObjectInfo]":
        try:
            self._check_writable()
            _check_key(key)
            if upload_id not in self.uploads:
                raise NoSuchUpload(upload_id)
            stored = self.uploads[upload_id]
            for number, size in parts:
                if number not in stored or len(stored[number]) != size:
                    raise BackendError(f"part {number} of {size} bytes is not stored")
            body = b"".join(stored[number] for number, _ in parts)
            sizes = [size for _, size in parts]
            info = self._store_object(key, body, metadata, condition, len(parts), sizes)
        except BackendError as e:
            return fail(e)
        del self.uploads[upload_id]
        return succeed(info)

    def update_metadata(
        self, key: str, metadata: WriteMetadata, condition: Optional[WriteCondition] = None
    ) -> "Deferred[ObjectInfo]":
        try:
            self._check_writable()
            if key not in self.objects:
                raise NoSuchObject(key)
            self._check_condition(key, condition)
        except BackendError as e:
            return fail(e)
        body, current = self.objects[key]
        info = evolve(
            current,
            last_modified=self.now(),
            content_type=metadata.content_type,
            metadata=metadata.metadata,
            headers=metadata.headers,
            tags=metadata.tags,
        )
        self.objects[key] = (body, info)
        return succeed(info)

    def copy_object(
        self,
        source_key: str,
        key: str,
        metadata: WriteMetadata,
        condition: Optional[WriteCondition] = None,
    ) -> "Deferred[ObjectInfo]":
        """
        Copy as L{gateway.backends.localcopy.copy_object} does: the copy keeps the source's
        ETag and part sizes.
        """
        try:
            self._check_writable()
            _check_key(key)
            if source_key not in self.objects:
                raise NoSuchObject(source_key)
            body, source = self.objects[source_key]
            metadata = evolve(metadata, etag=source.etag)
            info = self._store_object(
                key, body, metadata, condition, source.parts_count, source.part_sizes
            )
        except BackendError as e:
            return fail(e)
        return succeed(info)

    def copy_part(
        self, source_key: str, byte_range: Optional[ByteRange], upload_id: str, part_number: int
    ) -> "Deferred[ObjectInfo]":
        try:
            self._check_writable()
            if source_key not in self.objects:
                raise NoSuchObject(source_key)
            body = self.objects[source_key][0]
            if byte_range is not None:
                if byte_range.first < 0 or byte_range.last >= len(body):
                    raise BackendError(f"the range is outside the {len(body)} bytes")
                body = body[byte_range.first : byte_range.last + 1]
        except BackendError as e:
            return fail(e)
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
        return succeed(self._store_part(upload_id, part_number, body, etag))

    def abort_upload(self, upload_id: str) -> "Deferred[None]":
        try:
            self._check_writable()
        except BackendError as e:
            return fail(e)
        self.uploads.pop(upload_id, None)
        return succeed(None)

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyConnection("the connection is read-only")

    def _check_condition(self, key: str, condition: Optional[WriteCondition]) -> None:
        exists = key in self.objects
        check_condition(condition, key, exists, lambda: self.objects[key][1].etag)

    def _store_object(
        self,
        key: str,
        body: bytes,
        metadata: WriteMetadata,
        condition: Optional[WriteCondition] = None,
        parts_count: Optional[int] = None,
        part_sizes: Sequence[int] = (),
    ) -> ObjectInfo:
        if key.endswith("/") and body:
            raise InvalidObjectKey(f"folder marker {key!r} must have an empty body")
        self._check_condition(key, condition)
        info = ObjectInfo(
            key=key,
            size=len(body),
            etag=metadata.etag,
            last_modified=self.now(),
            content_type=metadata.content_type,
            metadata=metadata.metadata,
            headers=metadata.headers,
            parts_count=parts_count,
            tags=metadata.tags,
            part_sizes=part_sizes,
        )
        self.objects[key] = (body, info)
        return info


def _check_key(key: str) -> None:
    if not key:
        raise InvalidObjectKey("the key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ObjectKeyTooLong(f"keys are at most {MAX_KEY_BYTES} bytes long")


@implementer(IObjectWriter)
class MemoryWriter:
    """
    Collects an upload's bytes; pauses its producer as the backend's C{pause_every} says.
    """

    def __init__(
        self,
        backend: MemoryBackend,
        key: str,
        store: Store,
    ) -> None:
        self.key = key
        self.chunks: List[bytes] = []
        self.producer: Optional[IPushProducer] = None
        self.paused = False
        self.aborted = False
        self.committed = False
        self._backend = backend
        self._store = store
        self._writes = 0

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        # Request bodies are push producers (gateway.http.body.RequestBody).
        self.producer = cast(IPushProducer, producer)

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        if self.aborted or self.committed:
            return
        self.chunks.append(bytes(data))
        self._writes += 1
        every = self._backend._pause_every
        if every and self._writes % every == 0 and self.producer is not None and not self.paused:
            self.paused = True
            self._backend.pauses += 1
            self._backend.paused_writers.append(self)
            self.producer.pauseProducing()
            if self._backend._clock is not None:
                self._backend._clock.callLater(0, self._backend.resume_writers)

    def resume(self) -> None:
        """
        Resume the producer this writer paused.
        """
        if self.paused:
            self.paused = False
            if self.producer is not None:
                self.producer.resumeProducing()

    def commit(
        self, metadata: WriteMetadata, condition: Optional[WriteCondition] = None
    ) -> "Deferred[ObjectInfo]":
        if self.aborted or self.committed:
            return fail(BackendError("the write is over"))
        try:
            info = self._store(self.key, b"".join(self.chunks), metadata, condition)
        except PreconditionNotMet as e:
            self.abort()
            return fail(e)
        except BackendError as e:
            return fail(e)
        self.committed = True
        self.chunks = []
        return succeed(info)

    def abort(self) -> "Deferred[None]":
        if not self.committed:
            self.aborted = True
            self.chunks = []
        return succeed(None)
