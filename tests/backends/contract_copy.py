"""
The contract of L{IServerSideCopy}: CopyObject and UploadPartCopy done inside a backend.

A backend's test module mixes L{ServerSideCopyContract} into its contract class when the backend
provides the interface; it uses the same C{backend} and C{read_only_backend} fixtures.
"""

from __future__ import annotations

import hashlib

import pytest_twisted
from zope.interface.verify import verifyObject

from gateway.interfaces import (
    BackendError,
    InvalidObjectKey,
    IServerSideCopy,
    NoSuchObject,
    PreconditionNotMet,
    ReadOnlyConnection,
)
from gateway.model import ByteRange, WriteCondition, WriteMetadata
from tests.backends.contract_writes import write_parts
from tests.backends.support import BODY, get, metadata_for, names, put, refused


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class ServerSideCopyContract:
    """
    Copies within a backend: atomic as any write, conditional as any write, and onto the
    source itself too.
    """

    def test_provides_copy_interface(self, backend: IServerSideCopy) -> None:
        assert verifyObject(IServerSideCopy, backend)

    @pytest_twisted.ensureDeferred
    async def test_copy_object(self, backend: IServerSideCopy) -> None:
        source = await put(backend, "src/a", BODY, metadata={"old": "1"}, tags={"t": "1"})
        new = WriteMetadata(
            etag=source.etag,
            content_type="text/copied",
            metadata={"new": "2"},
            headers={"content-disposition": "inline"},
            tags={"t": "2"},
        )
        info = await backend.copy_object("src/a", "dst/b", new)
        assert (info.key, info.size, info.etag) == ("dst/b", len(BODY), md5(BODY))
        assert info.content_type == "text/copied" and dict(info.metadata) == {"new": "2"}
        assert dict(info.headers) == {"content-disposition": "inline"}
        assert dict(info.tags) == {"t": "2"}
        assert await backend.stat("dst/b") == info
        assert await get(backend, "dst/b") == BODY
        # The source is untouched.
        assert await backend.stat("src/a") == source
        assert await get(backend, "src/a") == BODY
        assert await names(backend) == (["dst/b", "src/a"], [])

    @pytest_twisted.ensureDeferred
    async def test_copy_replaces(self, backend: IServerSideCopy) -> None:
        await put(backend, "a", b"source")
        await put(backend, "b", b"old target, longer", metadata={"x": "y"})
        await backend.copy_object("a", "b", metadata_for(b"source"))
        assert await get(backend, "b") == b"source"
        assert dict((await backend.stat("b")).metadata) == {}

    @pytest_twisted.ensureDeferred
    async def test_copy_onto_itself(self, backend: IServerSideCopy) -> None:
        old = await put(backend, "k", BODY, metadata={"v": "1"})
        info = await backend.copy_object("k", "k", metadata_for(BODY, metadata={"v": "2"}))
        assert (info.size, info.etag) == (old.size, old.etag)
        assert dict((await backend.stat("k")).metadata) == {"v": "2"}
        assert await get(backend, "k") == BODY

    @pytest_twisted.ensureDeferred
    async def test_copy_missing_source(self, backend: IServerSideCopy) -> None:
        await refused(backend.copy_object("nothing", "k", metadata_for(b"")), NoSuchObject)
        await refused(backend.stat("k"), NoSuchObject)

    @pytest_twisted.ensureDeferred
    async def test_copy_conditions(self, backend: IServerSideCopy) -> None:
        await put(backend, "src", b"source")
        target = await put(backend, "dst", b"target")
        create = WriteCondition(if_none_match=True)
        await refused(
            backend.copy_object("src", "dst", metadata_for(b"source"), create), PreconditionNotMet
        )
        stale = WriteCondition(if_match=md5(b"stale"))
        await refused(
            backend.copy_object("src", "dst", metadata_for(b"source"), stale), PreconditionNotMet
        )
        assert await get(backend, "dst") == b"target"
        await backend.copy_object("src", "new", metadata_for(b"source"), create)
        assert await get(backend, "new") == b"source"
        matching = WriteCondition(if_match=target.etag)
        await backend.copy_object("src", "dst", metadata_for(b"source"), matching)
        assert await get(backend, "dst") == b"source"

    @pytest_twisted.ensureDeferred
    async def test_copy_multipart_object(self, backend: IServerSideCopy) -> None:
        await write_parts(backend, "u", b"1" * 1000, b"2" * 10)
        made = await backend.complete_upload(
            "u", "mp", [(1, 1000), (2, 10)], WriteMetadata(etag="abc-2")
        )
        info = await backend.copy_object("mp", "copy", WriteMetadata(etag=made.etag))
        assert (info.etag, info.parts_count, info.part_sizes) == ("abc-2", 2, (1000, 10))
        assert await get(backend, "copy") == b"1" * 1000 + b"2" * 10

    @pytest_twisted.ensureDeferred
    async def test_copy_folder_markers(self, backend: IServerSideCopy) -> None:
        await put(backend, "folder/", b"")
        await put(backend, "file", b"body")
        info = await backend.copy_object("folder/", "other/", metadata_for(b""))
        assert info.size == 0 and (await backend.stat("other/")).size == 0
        await backend.copy_object("folder/", "empty-file", metadata_for(b""))
        assert await get(backend, "empty-file") == b""
        await refused(backend.copy_object("file", "third/", metadata_for(b"body")), InvalidObjectKey)
        await refused(backend.stat("third/"), NoSuchObject)

    @pytest_twisted.ensureDeferred
    async def test_copy_part(self, backend: IServerSideCopy) -> None:
        await put(backend, "src", BODY)
        whole = await backend.copy_part("src", None, "u", 1)
        assert (whole.size, whole.etag) == (len(BODY), md5(BODY))
        piece = BODY[1000:500_000]
        ranged = await backend.copy_part("src", ByteRange(1000, 499_999), "u", 2)
        assert (ranged.size, ranged.etag) == (len(piece), md5(piece))
        await write_parts(backend, "u", b"written part")  # part 1, replaced by a copy below
        await backend.copy_part("src", ByteRange(0, 0), "u", 1)
        parts = [(1, 1), (2, len(piece))]
        info = await backend.complete_upload("u", "joined", parts, WriteMetadata(etag="j-2"))
        assert info.part_sizes == (1, len(piece))
        assert await get(backend, "joined") == BODY[:1] + piece

    @pytest_twisted.ensureDeferred
    async def test_copy_part_errors(self, backend: IServerSideCopy) -> None:
        await put(backend, "src", b"0123456789")
        await refused(backend.copy_part("nothing", None, "u", 1), NoSuchObject)
        await refused(backend.copy_part("src", ByteRange(5, 10), "u", 1), BackendError)
        last = await backend.copy_part("src", ByteRange(9, 9), "u", 1)
        assert (last.size, last.etag) == (1, md5(b"9"))

    @pytest_twisted.ensureDeferred
    async def test_copy_read_only(
        self, backend: IServerSideCopy, read_only_backend: IServerSideCopy
    ) -> None:
        await put(backend, "src", b"data")
        ro = read_only_backend
        await refused(ro.copy_object("src", "dst", metadata_for(b"data")), ReadOnlyConnection)
        await refused(ro.copy_part("src", None, "u", 1), ReadOnlyConnection)
        await refused(backend.stat("dst"), NoSuchObject)
