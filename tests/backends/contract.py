"""
The contract every L{IBackend} keeps, written once.

A backend's test module subclasses L{BackendContract} and provides two fixtures: C{backend}, a
writable backend on empty storage, and C{read_only_backend}, a read-only backend on the same
storage. Keys used here are ones every backend can store (no ``a`` beside ``a/b``, which a
filesystem cannot hold). A backend that provides L{IServerSideCopy} also subclasses
L{tests.backends.contract_copy.ServerSideCopyContract}.
"""

from __future__ import annotations

import hashlib
import time

import pytest_twisted
from zope.interface.verify import verifyObject

from gateway.backends.producer import ConsumerStopped
from gateway.interfaces import (
    BackendError,
    IBackend,
    IObjectReader,
    IObjectWriter,
    InvalidObjectKey,
    NoSuchObject,
    NoSuchUpload,
    ObjectKeyTooLong,
    ReadOnlyConnection,
)
from gateway.model import ByteRange, WriteMetadata
from tests.backends.contract_writes import ConditionalWriteContract, MetadataContract
from tests.backends.support import (  # noqa: F401 (re-exported for the backends' test modules)
    BODY,
    LISTING_KEYS,
    SPECIAL_KEYS,
    Consumer,
    get,
    list_all,
    metadata_for,
    names,
    put,
    refused,
)


class BackendContract(ConditionalWriteContract, MetadataContract):
    """
    The tests every backend passes (with those of conditional writes and stored metadata).
    """

    def test_provides_interface(self, backend: IBackend) -> None:
        assert verifyObject(IBackend, backend)

    @pytest_twisted.ensureDeferred
    async def test_writer_and_reader_provide_interfaces(self, backend: IBackend) -> None:
        writer = await backend.start_write("k")
        assert verifyObject(IObjectWriter, writer)
        await writer.commit(metadata_for(b""))
        reader = await backend.open("k")
        assert verifyObject(IObjectReader, reader)
        reader.close()

    @pytest_twisted.ensureDeferred
    async def test_put_stat(self, backend: IBackend) -> None:
        before = time.time()
        info = await put(
            backend,
            "dir/object.bin",
            BODY,
            content_type="application/x-test",
            metadata={"colour": "blue"},
            headers={"content-disposition": "attachment"},
        )
        assert info.key == "dir/object.bin"
        assert info.size == len(BODY)
        assert info.etag == hashlib.md5(BODY).hexdigest()
        assert before - 2 <= info.last_modified <= time.time() + 2
        assert info.parts_count is None
        stat = await backend.stat("dir/object.bin")
        assert stat == info
        assert stat.content_type == "application/x-test"
        assert stat.metadata == {"colour": "blue"}
        assert stat.headers == {"content-disposition": "attachment"}

    @pytest_twisted.ensureDeferred
    async def test_read_whole(self, backend: IBackend) -> None:
        await put(backend, "k", BODY, chunk=7777)
        assert await get(backend, "k") == BODY
        reader = await backend.open("k")
        assert reader.info == await backend.stat("k")
        reader.close()

    @pytest_twisted.ensureDeferred
    async def test_read_ranges(self, backend: IBackend) -> None:
        await put(backend, "k", BODY)
        last = len(BODY) - 1
        for first, end in [(0, 0), (0, last), (1, 1000), (last, last), (70_000, 900_000)]:
            assert await get(backend, "k", ByteRange(first, end)) == BODY[first : end + 1]

    @pytest_twisted.ensureDeferred
    async def test_empty_object(self, backend: IBackend) -> None:
        info = await put(backend, "empty", b"")
        assert info.size == 0 and info.etag == hashlib.md5(b"").hexdigest()
        assert await get(backend, "empty") == b""

    @pytest_twisted.ensureDeferred
    async def test_missing(self, backend: IBackend) -> None:
        await refused(backend.stat("nothing"), NoSuchObject)
        await refused(backend.open("nothing"), NoSuchObject)
        await refused(backend.stat("no/such/folder/key"), NoSuchObject)

    @pytest_twisted.ensureDeferred
    async def test_overwrite(self, backend: IBackend) -> None:
        await put(backend, "k", b"first", metadata={"v": "1"})
        await put(backend, "k", b"second!", content_type="text/plain")
        info = await backend.stat("k")
        assert (info.size, info.content_type, dict(info.metadata)) == (7, "text/plain", {})
        assert await get(backend, "k") == b"second!"

    @pytest_twisted.ensureDeferred
    async def test_nothing_visible_before_commit(self, backend: IBackend) -> None:
        writer = await backend.start_write("pending")
        writer.write(b"partial")
        await refused(backend.stat("pending"), NoSuchObject)
        assert await names(backend) == ([], [])
        await writer.commit(metadata_for(b"partial"))
        assert await names(backend) == (["pending"], [])

    @pytest_twisted.ensureDeferred
    async def test_abort_keeps_previous(self, backend: IBackend) -> None:
        await put(backend, "k", b"old")
        writer = await backend.start_write("k")
        writer.write(b"new and longer")
        await writer.abort()
        await writer.abort()
        assert await get(backend, "k") == b"old"
        writer = await backend.start_write("fresh")
        writer.write(b"x")
        await writer.abort()
        await refused(backend.stat("fresh"), NoSuchObject)
        assert await names(backend) == (["k"], [])

    @pytest_twisted.ensureDeferred
    async def test_commit_twice_fails(self, backend: IBackend) -> None:
        writer = await backend.start_write("k")
        await writer.commit(metadata_for(b""))
        await refused(writer.commit(metadata_for(b"")), BackendError)

    @pytest_twisted.ensureDeferred
    async def test_delete(self, backend: IBackend) -> None:
        await put(backend, "a/b/c", b"1")
        await put(backend, "a/d", b"2")
        await backend.delete("a/b/c")
        await refused(backend.stat("a/b/c"), NoSuchObject)
        assert await names(backend) == (["a/d"], [])
        await backend.delete("a/b/c")
        await backend.delete("never/was")
        await backend.delete("a/d")
        assert await names(backend, delimiter="/") == ([], [])

    @pytest_twisted.ensureDeferred
    async def test_listing(self, backend: IBackend) -> None:
        for key in reversed(LISTING_KEYS):
            await put(backend, key, key.encode("utf-8"))
        keys, prefixes = await names(backend)
        assert keys == sorted(LISTING_KEYS) and prefixes == []
        page = await backend.list_objects("", None, "", 1000)
        assert [o.size for o in page.objects] == [
            len(k.encode("utf-8")) for k in sorted(LISTING_KEYS)
        ]
        assert await names(backend, "photos") == (
            ["photos-extra", "photos/2006/feb.jpg", "photos/2006/jan.jpg", "photos/2007/x.jpg"],
            [],
        )
        assert await names(backend, delimiter="/") == (
            ["asdf", "photos-extra", "z\u00e9"],
            ["boo/", "cquux/", "photos/"],
        )
        assert await names(backend, "photos/", "/") == ([], ["photos/2006/", "photos/2007/"])
        assert await names(backend, "photos/20", "/") == ([], ["photos/2006/", "photos/2007/"])
        assert await names(backend, "boo/", "/") == (["boo/bar"], ["boo/baz/"])
        assert await names(backend, "nothing/") == ([], [])

    @pytest_twisted.ensureDeferred
    async def test_listing_start_after(self, backend: IBackend) -> None:
        for key in LISTING_KEYS:
            await put(backend, key, b"")
        assert await names(backend, start_after="cquux/bla") == (
            sorted(LISTING_KEYS)[4:],
            [],
        )
        assert await names(backend, start_after="photos/2006/") == (
            ["photos/2006/feb.jpg", "photos/2006/jan.jpg", "photos/2007/x.jpg", "z\u00e9"],
            [],
        )
        assert await names(backend, delimiter="/", start_after="boo/") == (
            ["photos-extra", "z\u00e9"],
            ["cquux/", "photos/"],
        )
        # A marker inside a common prefix: that prefix counts as listed already.
        assert await names(backend, delimiter="/", start_after="cquux/a") == (
            ["photos-extra", "z\u00e9"],
            ["photos/"],
        )
        assert await names(backend, start_after="\uffff") == ([], [])

    @pytest_twisted.ensureDeferred
    async def test_listing_pages(self, backend: IBackend) -> None:
        for key in LISTING_KEYS:
            await put(backend, key, b"")
        for size in (1, 2, 3, 100):
            assert await list_all(backend, "", None, size) == (sorted(LISTING_KEYS), [])
            assert await list_all(backend, "", "/", size) == (
                ["asdf", "photos-extra", "z\u00e9"],
                ["boo/", "cquux/", "photos/"],
            )
            assert await list_all(backend, "photos/", "/", size) == (
                [],
                ["photos/2006/", "photos/2007/"],
            )
        page = await backend.list_objects("", None, "", 3)
        assert page.is_truncated and page.next_marker == "boo/baz/xyzzy"
        page = await backend.list_objects("", "/", "", 2)
        assert page.is_truncated and page.next_marker == "boo/"
        page = await backend.list_objects("", None, "", 0)
        assert not page.is_truncated and page.objects == () and page.common_prefixes == ()

    @pytest_twisted.ensureDeferred
    async def test_folder_marker(self, backend: IBackend) -> None:
        info = await put(backend, "folder/", b"")
        assert info.key == "folder/" and info.size == 0
        assert (await backend.stat("folder/")).size == 0
        assert await get(backend, "folder/") == b""
        assert await names(backend) == (["folder/"], [])
        assert await names(backend, delimiter="/") == ([], ["folder/"])
        assert await names(backend, "folder/", "/") == (["folder/"], [])
        await put(backend, "folder/inside", b"x")
        assert await names(backend) == (["folder/", "folder/inside"], [])
        await backend.delete("folder/inside")
        assert await names(backend) == (["folder/"], [])
        await backend.delete("folder/")
        await refused(backend.stat("folder/"), NoSuchObject)
        assert await names(backend, delimiter="/") == ([], [])

    @pytest_twisted.ensureDeferred
    async def test_folder_marker_with_body(self, backend: IBackend) -> None:
        writer = await backend.start_write("folder/")
        writer.write(b"not empty")
        await refused(writer.commit(metadata_for(b"not empty")), InvalidObjectKey)
        await refused(backend.stat("folder/"), NoSuchObject)

    @pytest_twisted.ensureDeferred
    async def test_special_keys(self, backend: IBackend) -> None:
        for key in SPECIAL_KEYS:
            await put(backend, key, key.encode("utf-8"))
        for key in SPECIAL_KEYS:
            assert (await backend.stat(key)).key == key
            assert await get(backend, key) == key.encode("utf-8")
        assert await list_all(backend, "", None, 2) == (sorted(SPECIAL_KEYS), [])
        deep = SPECIAL_KEYS[5]
        assert await names(backend, deep[:200]) == ([deep], [])

    @pytest_twisted.ensureDeferred
    async def test_key_too_long(self, backend: IBackend) -> None:
        await refused(backend.start_write("k" * 1025), ObjectKeyTooLong)
        await refused(backend.start_write("\u00e9" * 513), ObjectKeyTooLong)

    @pytest_twisted.ensureDeferred
    async def test_deliver_backpressure(self, backend: IBackend) -> None:
        await put(backend, "k", BODY)
        reader = await backend.open("k")
        consumer = Consumer(pause_on=1)
        done = reader.deliver(consumer, None)
        assert len(consumer.chunks) == 1 and not done.called
        producer = consumer.producer
        assert producer is not None and consumer.streaming is True
        resumes = 0
        while not done.called:
            count = len(consumer.chunks)
            consumer._pause_on = count + 1
            producer.resumeProducing()
            assert len(consumer.chunks) == count + 1
            resumes += 1
        await done
        assert consumer.body == BODY and consumer.unregistered
        assert resumes == len(consumer.chunks) - 1

    @pytest_twisted.ensureDeferred
    async def test_deliver_stopped(self, backend: IBackend) -> None:
        await put(backend, "k", BODY)
        reader = await backend.open("k")
        consumer = Consumer(stop_on=1)
        await refused(reader.deliver(consumer, None), ConsumerStopped)
        assert len(consumer.chunks) == 1

    @pytest_twisted.ensureDeferred
    async def test_multipart(self, backend: IBackend) -> None:
        one, two, three = b"1" * 300_000, b"2" * 200_000, b"3" * 10
        for number, body in [(2, two), (1, b"replaced"), (1, one), (3, three)]:
            writer = await backend.start_part_write("upload-1", number)
            writer.write(body)
            info = await writer.commit(metadata_for(body))
            assert info.size == len(body) and info.etag == hashlib.md5(body).hexdigest()
        assert await names(backend) == ([], [])
        info = await backend.complete_upload(
            "upload-1",
            "big/object",
            [(1, len(one)), (2, len(two))],
            WriteMetadata(etag="abc-2", content_type="text/x-parts", metadata={"m": "1"}),
        )
        assert (info.key, info.size, info.etag, info.parts_count) == (
            "big/object",
            len(one) + len(two),
            "abc-2",
            2,
        )
        assert await backend.stat("big/object") == info
        assert await get(backend, "big/object") == one + two
        assert await names(backend) == (["big/object"], [])
        # The upload is gone, unlisted parts with it.
        again = backend.complete_upload("upload-1", "x", [(3, 10)], metadata_for(b""))
        await refused(again, NoSuchUpload)
        await backend.abort_upload("upload-1")

    @pytest_twisted.ensureDeferred
    async def test_multipart_replaces_object(self, backend: IBackend) -> None:
        await put(backend, "k", b"old", metadata={"old": "yes"})
        writer = await backend.start_part_write("u", 1)
        writer.write(b"new")
        await writer.commit(metadata_for(b"new"))
        await backend.complete_upload("u", "k", [(1, 3)], WriteMetadata(etag="e-1"))
        assert await get(backend, "k") == b"new"
        assert dict((await backend.stat("k")).metadata) == {}

    @pytest_twisted.ensureDeferred
    async def test_multipart_abort(self, backend: IBackend) -> None:
        writer = await backend.start_part_write("upload-2", 1)
        writer.write(b"data")
        await writer.commit(metadata_for(b"data"))
        await backend.abort_upload("upload-2")
        await backend.abort_upload("upload-2")
        await backend.abort_upload("never-existed")
        await refused(
            backend.complete_upload("upload-2", "k", [(1, 4)], metadata_for(b"data")),
            NoSuchUpload,
        )
        await refused(backend.stat("k"), NoSuchObject)

    @pytest_twisted.ensureDeferred
    async def test_multipart_wrong_size(self, backend: IBackend) -> None:
        writer = await backend.start_part_write("u", 1)
        writer.write(b"data")
        await writer.commit(metadata_for(b"data"))
        for parts in ([(1, 5)], [(2, 4)], [(1, 4), (2, 4)]):
            done = backend.complete_upload("u", "k", parts, WriteMetadata(etag="e"))
            await refused(done, BackendError)
        await refused(backend.stat("k"), NoSuchObject)

    @pytest_twisted.ensureDeferred
    async def test_part_abort(self, backend: IBackend) -> None:
        writer = await backend.start_part_write("u", 1)
        writer.write(b"data")
        await writer.commit(metadata_for(b"data"))
        writer = await backend.start_part_write("u", 1)
        writer.write(b"other")
        await writer.abort()
        info = await backend.complete_upload("u", "k", [(1, 4)], WriteMetadata(etag="e"))
        assert info.size == 4
        assert await get(backend, "k") == b"data"

    @pytest_twisted.ensureDeferred
    async def test_read_only(self, backend: IBackend, read_only_backend: IBackend) -> None:
        await put(backend, "k", b"data")
        writer = await backend.start_part_write("u", 1)
        writer.write(b"part")
        await writer.commit(metadata_for(b"part"))
        ro = read_only_backend
        assert ro.read_only is True and backend.read_only is False
        await refused(ro.start_write("new"), ReadOnlyConnection)
        await refused(ro.start_write("k"), ReadOnlyConnection)
        await refused(ro.delete("k"), ReadOnlyConnection)
        await refused(ro.start_part_write("u", 2), ReadOnlyConnection)
        completed = ro.complete_upload("u", "x", [(1, 4)], metadata_for(b"part"))
        await refused(completed, ReadOnlyConnection)
        await refused(ro.abort_upload("u"), ReadOnlyConnection)
        # Reads work, and nothing changed.
        assert await get(ro, "k") == b"data"
        assert (await ro.stat("k")).size == 4
        assert await names(ro) == (["k"], [])
        info = await backend.complete_upload("u", "x", [(1, 4)], WriteMetadata(etag="e"))
        assert info.size == 4
