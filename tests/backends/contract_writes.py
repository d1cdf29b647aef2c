"""
The contract of conditional writes (S3's If-None-Match and If-Match on PutObject and
CompleteMultipartUpload) and of the metadata a backend stores beside a body: tags, part sizes,
and metadata replaced in place (L{IBackend.update_metadata}).

Mixed into L{tests.backends.contract.BackendContract}, so every backend runs it.
"""

from __future__ import annotations

import hashlib
import time

import pytest_twisted

from gateway.interfaces import (
    BackendError,
    IBackend,
    NoSuchObject,
    PreconditionNotMet,
    ReadOnlyConnection,
)
from gateway.model import ObjectInfo, WriteCondition, WriteMetadata
from tests.backends.support import get, metadata_for, names, put, refused

CREATE = WriteCondition(if_none_match=True)

BODY_SMALL = bytes(range(256)) * 40


def if_match(etag: str) -> WriteCondition:
    return WriteCondition(if_match=etag)


async def conditional_put(
    backend: IBackend, key: str, body: bytes, condition: WriteCondition
) -> ObjectInfo:
    writer = await backend.start_write(key)
    writer.write(body)
    return await writer.commit(metadata_for(body), condition)


async def write_parts(backend: IBackend, upload_id: str, *bodies: bytes) -> None:
    for number, body in enumerate(bodies, 1):
        writer = await backend.start_part_write(upload_id, number)
        writer.write(body)
        await writer.commit(metadata_for(body))


class ConditionalWriteContract:
    """
    A write with a condition happens only when the condition holds, and a failed one leaves
    what is stored untouched.
    """

    @pytest_twisted.ensureDeferred
    async def test_if_none_match_absent(self, backend: IBackend) -> None:
        info = await conditional_put(backend, "k", b"first", CREATE)
        assert info.etag == hashlib.md5(b"first").hexdigest()
        assert await get(backend, "k") == b"first"

    @pytest_twisted.ensureDeferred
    async def test_if_none_match_present(self, backend: IBackend) -> None:
        await put(backend, "k", b"first", metadata={"v": "1"})
        writer = await backend.start_write("k")
        writer.write(b"second")
        await refused(writer.commit(metadata_for(b"second"), CREATE), PreconditionNotMet)
        assert await get(backend, "k") == b"first"
        assert dict((await backend.stat("k")).metadata) == {"v": "1"}
        # The writer is aborted: it cannot be committed again, and aborting is harmless.
        await refused(writer.commit(metadata_for(b"second")), BackendError)
        await writer.abort()
        assert await get(backend, "k") == b"first"

    @pytest_twisted.ensureDeferred
    async def test_if_none_match_after_delete(self, backend: IBackend) -> None:
        await put(backend, "k", b"first")
        await backend.delete("k")
        await conditional_put(backend, "k", b"again", CREATE)
        assert await get(backend, "k") == b"again"

    @pytest_twisted.ensureDeferred
    async def test_if_match_matching(self, backend: IBackend) -> None:
        old = await put(backend, "k", b"first")
        await conditional_put(backend, "k", b"second", if_match(old.etag))
        assert await get(backend, "k") == b"second"
        # Quoted as in the header, and '*' for any object, match too.
        etag = hashlib.md5(b"second").hexdigest()
        await conditional_put(backend, "k", b"third", if_match(f'"{etag}"'))
        await conditional_put(backend, "k", b"fourth", if_match("*"))
        assert await get(backend, "k") == b"fourth"

    @pytest_twisted.ensureDeferred
    async def test_if_match_not_matching(self, backend: IBackend) -> None:
        await put(backend, "k", b"first")
        stale = if_match(hashlib.md5(b"something else").hexdigest())
        await refused(conditional_put(backend, "k", b"second", stale), PreconditionNotMet)
        assert await get(backend, "k") == b"first"

    @pytest_twisted.ensureDeferred
    async def test_if_match_absent(self, backend: IBackend) -> None:
        for condition in (if_match(hashlib.md5(b"x").hexdigest()), if_match("*")):
            await refused(conditional_put(backend, "k", b"x", condition), PreconditionNotMet)
        await refused(backend.stat("k"), NoSuchObject)
        assert await names(backend) == ([], [])

    @pytest_twisted.ensureDeferred
    async def test_conditional_folder_marker(self, backend: IBackend) -> None:
        await conditional_put(backend, "folder/", b"", CREATE)
        await refused(conditional_put(backend, "folder/", b"", CREATE), PreconditionNotMet)
        empty = hashlib.md5(b"").hexdigest()
        await conditional_put(backend, "folder/", b"", if_match(empty))
        assert (await backend.stat("folder/")).size == 0

    @pytest_twisted.ensureDeferred
    async def test_complete_if_none_match(self, backend: IBackend) -> None:
        await put(backend, "k", b"old")
        await write_parts(backend, "u", b"new")
        done = backend.complete_upload("u", "k", [(1, 3)], WriteMetadata(etag="e-1"), CREATE)
        await refused(done, PreconditionNotMet)
        assert await get(backend, "k") == b"old"
        # The parts are kept: the client may complete again, and so it does without condition.
        info = await backend.complete_upload("u", "k", [(1, 3)], WriteMetadata(etag="e-1"))
        assert info.etag == "e-1"
        assert await get(backend, "k") == b"new"
        await write_parts(backend, "v", b"fresh")
        meta = WriteMetadata(etag="f-1")
        await backend.complete_upload("v", "fresh", [(1, 5)], meta, CREATE)
        assert await get(backend, "fresh") == b"fresh"

    @pytest_twisted.ensureDeferred
    async def test_complete_if_match(self, backend: IBackend) -> None:
        old = await put(backend, "k", b"old")
        await write_parts(backend, "u", b"new")
        meta = WriteMetadata(etag="e-1")
        wrong = if_match(hashlib.md5(b"not it").hexdigest())
        await refused(backend.complete_upload("u", "k", [(1, 3)], meta, wrong), PreconditionNotMet)
        await refused(
            backend.complete_upload("u", "absent", [(1, 3)], meta, if_match(old.etag)),
            PreconditionNotMet,
        )
        await backend.complete_upload("u", "k", [(1, 3)], meta, if_match(old.etag))
        assert await get(backend, "k") == b"new"
        await refused(backend.stat("absent"), NoSuchObject)


class MetadataContract:
    """
    Tags and part sizes are stored with the object and come back from stat, open and listings;
    L{IBackend.update_metadata} replaces the metadata and keeps the body.
    """

    @pytest_twisted.ensureDeferred
    async def test_tags_stored(self, backend: IBackend) -> None:
        tags = {"project": "blue", "empty": ""}
        info = await put(backend, "dir/k", b"body", tags=tags)
        assert dict(info.tags) == tags
        assert dict((await backend.stat("dir/k")).tags) == tags
        reader = await backend.open("dir/k")
        assert dict(reader.info.tags) == tags
        reader.close()
        (listed,) = (await backend.list_objects("", None, "", 10)).objects
        assert dict(listed.tags) == tags
        (listed,) = (await backend.list_objects("dir/", "/", "", 10)).objects
        assert dict(listed.tags) == tags
        await put(backend, "dir/k", b"body")
        assert dict((await backend.stat("dir/k")).tags) == {}

    @pytest_twisted.ensureDeferred
    async def test_part_sizes_stored(self, backend: IBackend) -> None:
        bodies = [b"a" * 1000, b"b" * 700, b"c" * 5]
        await write_parts(backend, "u", *bodies)
        parts = [(number, len(body)) for number, body in enumerate(bodies, 1)]
        info = await backend.complete_upload("u", "k", parts, WriteMetadata(etag="x-3"))
        assert info.parts_count == 3 and info.part_sizes == (1000, 700, 5)
        assert await backend.stat("k") == info
        reader = await backend.open("k")
        assert reader.info.part_sizes == (1000, 700, 5)
        reader.close()
        (listed,) = (await backend.list_objects("", None, "", 10)).objects
        assert listed.part_sizes == (1000, 700, 5) and listed.parts_count == 3
        # A plain upload has none.
        assert (await put(backend, "plain", b"x")).part_sizes == ()
        assert (await backend.stat("plain")).part_sizes == ()

    @pytest_twisted.ensureDeferred
    async def test_update_metadata(self, backend: IBackend) -> None:
        old = await put(
            backend, "k", BODY_SMALL, content_type="text/old", metadata={"a": "1"}, tags={"t": "1"}
        )
        time.sleep(0.05)
        new = WriteMetadata(
            etag="ignored",
            content_type="text/new",
            metadata={"b": "2"},
            headers={"cache-control": "max-age=5"},
            tags={"t": "2", "u": "3"},
        )
        info = await backend.update_metadata("k", new)
        assert (info.key, info.size, info.etag) == ("k", old.size, old.etag)
        assert info.content_type == "text/new" and dict(info.metadata) == {"b": "2"}
        assert dict(info.headers) == {"cache-control": "max-age=5"}
        assert dict(info.tags) == {"t": "2", "u": "3"}
        assert info.last_modified > old.last_modified
        assert await backend.stat("k") == info
        assert await get(backend, "k") == BODY_SMALL
        (listed,) = (await backend.list_objects("", None, "", 10)).objects
        assert listed == info

    @pytest_twisted.ensureDeferred
    async def test_update_metadata_keeps_parts(self, backend: IBackend) -> None:
        await write_parts(backend, "u", b"1" * 10, b"2" * 4)
        meta = WriteMetadata(etag="m-2")
        await backend.complete_upload("u", "k", [(1, 10), (2, 4)], meta)
        info = await backend.update_metadata("k", WriteMetadata(etag="", tags={"x": "y"}))
        assert (info.etag, info.parts_count, info.part_sizes) == ("m-2", 2, (10, 4))
        assert await backend.stat("k") == info

    @pytest_twisted.ensureDeferred
    async def test_update_metadata_conditions(self, backend: IBackend) -> None:
        old = await put(backend, "k", b"body", metadata={"v": "1"})
        wrong = if_match(hashlib.md5(b"other").hexdigest())
        new = WriteMetadata(etag="", metadata={"v": "2"})
        await refused(backend.update_metadata("k", new, wrong), PreconditionNotMet)
        assert dict((await backend.stat("k")).metadata) == {"v": "1"}
        await backend.update_metadata("k", new, if_match(old.etag))
        assert dict((await backend.stat("k")).metadata) == {"v": "2"}

    @pytest_twisted.ensureDeferred
    async def test_update_metadata_missing(self, backend: IBackend) -> None:
        await refused(backend.update_metadata("nothing", WriteMetadata(etag="")), NoSuchObject)
        await refused(backend.update_metadata("no/such/k", WriteMetadata(etag="")), NoSuchObject)
        await refused(backend.stat("nothing"), NoSuchObject)

    @pytest_twisted.ensureDeferred
    async def test_update_metadata_folder_marker(self, backend: IBackend) -> None:
        await put(backend, "folder/", b"")
        info = await backend.update_metadata("folder/", WriteMetadata(etag="", tags={"a": "b"}))
        assert dict(info.tags) == {"a": "b"} and info.size == 0
        assert await backend.stat("folder/") == info

    @pytest_twisted.ensureDeferred
    async def test_update_metadata_read_only(
        self, backend: IBackend, read_only_backend: IBackend
    ) -> None:
        await put(backend, "k", b"body", metadata={"v": "1"})
        new = WriteMetadata(etag="", metadata={"v": "2"})
        await refused(read_only_backend.update_metadata("k", new), ReadOnlyConnection)
        assert dict((await backend.stat("k")).metadata) == {"v": "1"}

