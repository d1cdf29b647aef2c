"""
The contract of L{IMetadataStore}, as one suite that every implementation runs.

To run it on an implementation, a test module makes a C{store} fixture with L{store_fixture} and
subclasses L{StoreContract}::

    store = store_fixture(lambda tmp_path: open_my_store(tmp_path))

    class TestMyStore(StoreContract):
        pass

Each test gets a new, empty store. The tests use only the interface, and times only through the
values the store hands back, so they hold for a store on a server database as well.
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable, List, Sequence, Tuple

import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

from gateway.interfaces import IMetadataStore
from gateway.model import Connection, MultipartUpload, UploadedPart


def store_fixture(factory: Callable[[Any], Awaitable[IMetadataStore]]) -> Any:
    """
    A C{store} fixture: C{factory(tmp_path)} opens a new, empty store; it is closed after the
    test.
    """

    @pytest_twisted.async_yield_fixture
    async def store(tmp_path: Any) -> Any:
        opened = await factory(tmp_path)
        try:
            yield opened
        finally:
            await opened.close()

    return store


def _upload(upload_id: str, key: str, initiated: float, user: str = "alice", bucket: str = "b1"):
    return MultipartUpload(
        upload_id=upload_id, user=user, bucket=bucket, key=key, initiated=initiated
    )


def _listing_order(uploads: Sequence[MultipartUpload]) -> List[str]:
    ordered = sorted(uploads, key=lambda u: (u.key.encode("utf-8"), u.initiated, u.upload_id))
    return [upload.upload_id for upload in ordered]


def _upload_id(upload: MultipartUpload) -> str:
    return upload.upload_id


def _ids(page: Tuple[Sequence[MultipartUpload], bool]) -> Tuple[List[str], bool]:
    uploads, truncated = page
    return [upload.upload_id for upload in uploads], truncated


class StoreContract:
    """
    Tests that every L{IMetadataStore} passes. Needs a C{store} fixture (see L{store_fixture}).
    """

    @pytest_twisted.ensureDeferred
    async def test_provides_interface(self, store):
        assert verifyObject(IMetadataStore, store)

    # Users.

    @pytest_twisted.ensureDeferred
    async def test_add_and_get_user(self, store):
        user = await store.add_user("alice")
        assert user.name == "alice"
        assert user.created > 0
        assert await store.get_user("alice") == user
        assert await store.get_user("bob") is None

    @pytest_twisted.ensureDeferred
    async def test_add_existing_user_fails(self, store):
        await store.add_user("alice")
        with pytest.raises(ValueError):
            await store.add_user("alice")
        assert [u.name for u in await store.list_users()] == ["alice"]

    @pytest_twisted.ensureDeferred
    async def test_list_users_in_binary_order(self, store):
        assert list(await store.list_users()) == []
        names = ["bob", "Zed", "alice", "_x", "al", "9"]
        for name in names:
            await store.add_user(name)
        assert [u.name for u in await store.list_users()] == sorted(names)

    @pytest_twisted.ensureDeferred
    async def test_remove_unknown_user_fails(self, store):
        with pytest.raises(KeyError):
            await store.remove_user("nobody")

    @pytest_twisted.ensureDeferred
    async def test_remove_user_takes_everything_of_theirs(self, store):
        for name in ("alice", "bob"):
            await store.add_user(name)
            await store.add_connection(Connection(name, "b1", "local", {"path": "/" + name}))
        alice_key = await store.create_key("alice")
        bob_key = await store.create_key("bob")
        await store.create_upload(_upload("up-a", "k", 1.0, user="alice"))
        await store.create_upload(_upload("up-b", "k", 1.0, user="bob"))
        await store.put_part(UploadedPart("up-a", 1, "e", 5, 2.0))
        await store.put_part(UploadedPart("up-b", 1, "e", 5, 2.0))

        await store.remove_user("alice")

        assert await store.get_user("alice") is None
        assert await store.get_key(alice_key.access_key_id) is None
        assert list(await store.list_keys("alice")) == []
        assert await store.get_connection("alice", "b1") is None
        assert await store.get_upload("up-a") is None
        assert await store.list_parts("up-a") == ([], False)
        # Bob keeps all of his.
        assert await store.get_key(bob_key.access_key_id) == bob_key
        assert (await store.get_connection("bob", "b1")).settings == {"path": "/bob"}
        assert (await store.get_upload("up-b")).user == "bob"
        assert len((await store.list_parts("up-b"))[0]) == 1
        # The name can be used again, afresh.
        await store.add_user("alice")
        assert list(await store.list_connections("alice")) == []

    # Access keys.

    @pytest_twisted.ensureDeferred
    async def test_generated_keys_look_like_aws_keys(self, store):
        await store.add_user("alice")
        first = await store.create_key("alice")
        second = await store.create_key("alice")
        for key in (first, second):
            assert re.fullmatch(r"GW[A-Z0-9]{18}", key.access_key_id)
            assert re.fullmatch(r"[A-Za-z0-9/+]{40}", key.secret_access_key)
            assert key.user == "alice"
            assert key.created > 0
        assert first.access_key_id != second.access_key_id
        assert first.secret_access_key != second.secret_access_key

    @pytest_twisted.ensureDeferred
    async def test_given_key_pair_is_kept_exactly(self, store):
        await store.add_user("alice")
        key = await store.create_key("alice", "AKIAEXAMPLE", "s3cr3t/with+odd=chars")
        assert key.access_key_id == "AKIAEXAMPLE"
        assert key.secret_access_key == "s3cr3t/with+odd=chars"
        looked_up = await store.get_key("AKIAEXAMPLE")
        assert looked_up == key
        assert looked_up.secret_access_key == "s3cr3t/with+odd=chars"

    @pytest_twisted.ensureDeferred
    async def test_get_unknown_key(self, store):
        assert await store.get_key("GWNOSUCHKEY") is None

    @pytest_twisted.ensureDeferred
    async def test_key_for_unknown_user_fails(self, store):
        with pytest.raises(KeyError):
            await store.create_key("nobody")
        with pytest.raises(KeyError):
            await store.create_key("nobody", "ID", "SECRET")
        assert await store.get_key("ID") is None

    @pytest_twisted.ensureDeferred
    async def test_duplicate_key_id_fails_even_for_another_user(self, store):
        await store.add_user("alice")
        await store.add_user("bob")
        await store.create_key("alice", "SAMEID", "one")
        with pytest.raises(ValueError):
            await store.create_key("bob", "SAMEID", "two")
        key = await store.get_key("SAMEID")
        assert (key.user, key.secret_access_key) == ("alice", "one")

    @pytest_twisted.ensureDeferred
    async def test_list_keys_of_one_user(self, store):
        await store.add_user("alice")
        await store.add_user("bob")
        made = [await store.create_key("alice") for _ in range(3)]
        await store.create_key("bob")
        listed = await store.list_keys("alice")
        assert sorted(k.access_key_id for k in listed) == sorted(k.access_key_id for k in made)
        assert all(k.user == "alice" for k in listed)
        assert list(await store.list_keys("nobody")) == []

    @pytest_twisted.ensureDeferred
    async def test_revoke_key(self, store):
        await store.add_user("alice")
        kept = await store.create_key("alice")
        revoked = await store.create_key("alice")
        await store.revoke_key(revoked.access_key_id)
        assert await store.get_key(revoked.access_key_id) is None
        assert list(await store.list_keys("alice")) == [kept]
        with pytest.raises(KeyError):
            await store.revoke_key(revoked.access_key_id)

    # Connections.

    @pytest_twisted.ensureDeferred
    async def test_add_and_get_connection(self, store):
        await store.add_user("alice")
        given = Connection(
            "alice", "photos", "local", {"path": "/srv/p", "x": "y"}, read_only=True,
            created_by_s3=True,
        )
        added = await store.add_connection(given)
        assert added.created > 0
        assert added == Connection(
            "alice", "photos", "local", {"path": "/srv/p", "x": "y"}, True, added.created, True
        )
        assert await store.get_connection("alice", "photos") == added
        assert await store.get_connection("alice", "other") is None
        assert await store.get_connection("bob", "photos") is None

    @pytest_twisted.ensureDeferred
    async def test_connection_keeps_given_creation_time(self, store):
        await store.add_user("alice")
        added = await store.add_connection(Connection("alice", "b1", "local", created=1234.5))
        assert added.created == 1234.5
        assert (await store.get_connection("alice", "b1")).created == 1234.5

    @pytest_twisted.ensureDeferred
    async def test_duplicate_bucket_of_a_user_fails(self, store):
        await store.add_user("alice")
        await store.add_user("bob")
        await store.add_connection(Connection("alice", "b1", "local", {"path": "/one"}))
        with pytest.raises(ValueError):
            await store.add_connection(Connection("alice", "b1", "local", {"path": "/two"}))
        assert (await store.get_connection("alice", "b1")).settings == {"path": "/one"}
        # Bucket names are per user.
        await store.add_connection(Connection("bob", "b1", "local", {"path": "/three"}))

    @pytest_twisted.ensureDeferred
    async def test_connection_of_unknown_user_fails(self, store):
        with pytest.raises(KeyError):
            await store.add_connection(Connection("nobody", "b1", "local"))
        assert list(await store.list_connections()) == []

    @pytest_twisted.ensureDeferred
    async def test_list_connections_by_user_then_bucket(self, store):
        pairs = [("bob", "b2"), ("alice", "zz"), ("bob", "a1"), ("alice", "a.b"), ("Carl", "c")]
        for user in {user for user, _ in pairs}:
            await store.add_user(user)
        for user, bucket in pairs:
            await store.add_connection(Connection(user, bucket, "local"))
        listed = [(c.user, c.bucket) for c in await store.list_connections()]
        assert listed == sorted(pairs)
        bobs = [(c.user, c.bucket) for c in await store.list_connections("bob")]
        assert bobs == [("bob", "a1"), ("bob", "b2")]
        assert list(await store.list_connections("nobody")) == []

    @pytest_twisted.ensureDeferred
    async def test_remove_connection_takes_its_uploads(self, store):
        await store.add_user("alice")
        await store.add_connection(Connection("alice", "b1", "local"))
        await store.add_connection(Connection("alice", "b2", "local"))
        await store.create_upload(_upload("u1", "k", 1.0, bucket="b1"))
        await store.create_upload(_upload("u2", "k", 1.0, bucket="b2"))
        await store.put_part(UploadedPart("u1", 1, "e", 1, 1.0))

        await store.remove_connection("alice", "b1")

        assert await store.get_connection("alice", "b1") is None
        assert await store.get_upload("u1") is None
        assert await store.list_parts("u1") == ([], False)
        assert await store.get_connection("alice", "b2") is not None
        assert await store.get_upload("u2") is not None
        with pytest.raises(KeyError):
            await store.remove_connection("alice", "b1")
        with pytest.raises(KeyError):
            await store.remove_connection("nobody", "b2")

    # Multipart uploads.

    @pytest_twisted.ensureDeferred
    async def test_create_and_get_upload(self, store):
        await store.add_user("alice")
        upload = MultipartUpload(
            upload_id="u1",
            user="alice",
            bucket="b1",
            key="dir/ünïcode key+%.bin",
            initiated=1700000000.25,
            content_type="image/png",
            metadata={"colour": "blue", "x": ""},
            headers={"content-disposition": "attachment", "cache-control": "no-cache"},
        )
        assert await store.create_upload(upload) == upload
        assert await store.get_upload("u1") == upload
        assert await store.get_upload("u2") is None

    @pytest_twisted.ensureDeferred
    async def test_duplicate_upload_fails(self, store):
        await store.add_user("alice")
        await store.create_upload(_upload("u1", "first", 1.0))
        with pytest.raises(ValueError):
            await store.create_upload(_upload("u1", "second", 2.0))
        assert (await store.get_upload("u1")).key == "first"

    @pytest_twisted.ensureDeferred
    async def test_upload_of_unknown_user_fails(self, store):
        with pytest.raises(KeyError):
            await store.create_upload(_upload("u1", "k", 1.0, user="nobody"))
        assert await store.get_upload("u1") is None

    async def _many_uploads(self, store) -> List[MultipartUpload]:
        await store.add_user("alice")
        await store.add_user("bob")
        uploads = [
            _upload("u05", "b", 3.0),
            _upload("u01", "b", 1.0),
            _upload("u03", "b", 1.0),  # same time as u01: ordered by id
            _upload("u00", "b", 2.0),  # the first id, but later than u01 and u03
            _upload("u02", "a", 9.0),
            _upload("u04", "B", 5.0),  # upper case sorts first in binary order
            _upload("u06", "é/x", 1.0),
            _upload("u07", "z", 1.0),
            _upload("u08", "\U0001f600", 1.0),  # beyond the BMP: after é in UTF-8
            _upload("u09", "éa", 2.0),
            _upload("u10", "e", 2.0),
        ]
        for upload in uploads:
            await store.create_upload(upload)
        # Not in the listed bucket:
        await store.create_upload(_upload("x1", "a", 1.0, bucket="b2"))
        await store.create_upload(_upload("x2", "a", 1.0, user="bob"))
        return uploads

    @pytest_twisted.ensureDeferred
    async def test_list_uploads_order(self, store):
        uploads = await self._many_uploads(store)
        page = await store.list_uploads("alice", "b1")
        assert _ids(page) == (_listing_order(uploads), False)
        assert _ids(page)[0][:6] == ["u04", "u02", "u01", "u03", "u00", "u05"]
        # Every field comes back as it was given.
        assert sorted(page[0], key=_upload_id) == sorted(uploads, key=_upload_id)

    @pytest_twisted.ensureDeferred
    async def test_list_uploads_prefix(self, store):
        uploads = await self._many_uploads(store)
        for prefix in ("b", "é", "éa", "e", "B", "nothing", ""):
            expected = _listing_order([u for u in uploads if u.key.startswith(prefix)])
            assert _ids(await store.list_uploads("alice", "b1", prefix=prefix)) == (
                expected,
                False,
            ), prefix

    @pytest_twisted.ensureDeferred
    async def test_list_uploads_key_marker_alone(self, store):
        uploads = await self._many_uploads(store)
        for marker in ("b", "a", "é", "0", "\U0001f600"):
            expected = _listing_order([u for u in uploads if u.key.encode() > marker.encode()])
            assert _ids(await store.list_uploads("alice", "b1", key_marker=marker)) == (
                expected,
                False,
            ), marker

    @pytest_twisted.ensureDeferred
    async def test_list_uploads_key_and_upload_id_markers(self, store):
        await self._many_uploads(store)
        # Key "b" holds u01 (t=1), u03 (t=1), u00 (t=2), u05 (t=3), listed in that order; after
        # one of them come the rest of them, then the later keys.
        page = await store.list_uploads("alice", "b1", key_marker="b", upload_id_marker="u01")
        assert _ids(page)[0][:4] == ["u03", "u00", "u05", "u10"]
        page = await store.list_uploads("alice", "b1", key_marker="b", upload_id_marker="u03")
        assert _ids(page)[0][:3] == ["u00", "u05", "u10"]
        page = await store.list_uploads("alice", "b1", key_marker="b", upload_id_marker="u00")
        assert _ids(page)[0][:2] == ["u05", "u10"]
        page = await store.list_uploads("alice", "b1", key_marker="b", upload_id_marker="u05")
        assert _ids(page)[0][0] == "u10"
        # An id that names no upload of the key: ids greater than it, as S3 documents.
        page = await store.list_uploads("alice", "b1", key_marker="b", upload_id_marker="u02")
        assert _ids(page)[0][:3] == ["u03", "u05", "u10"]
        # Without a key marker the upload id marker is ignored.
        whole = await store.list_uploads("alice", "b1")
        assert await store.list_uploads("alice", "b1", upload_id_marker="u05") == whole

    @pytest_twisted.ensureDeferred
    async def test_list_uploads_in_pages(self, store):
        uploads = await self._many_uploads(store)
        expected = _listing_order(uploads)
        for size in (1, 2, 3, 9, 10, 11):
            seen: List[str] = []
            key_marker = upload_id_marker = ""
            while True:
                page, truncated = await store.list_uploads(
                    "alice", "b1", "", key_marker, upload_id_marker, size
                )
                assert len(page) <= size
                seen += [u.upload_id for u in page]
                if not truncated:
                    break
                key_marker, upload_id_marker = page[-1].key, page[-1].upload_id
            assert seen == expected, size
        assert await store.list_uploads("alice", "b1", max_uploads=0) == ([], True)
        assert await store.list_uploads("alice", "empty") == ([], False)

    @pytest_twisted.ensureDeferred
    async def test_parts(self, store):
        await store.add_user("alice")
        await store.create_upload(_upload("u1", "k", 1.0))
        await store.create_upload(_upload("u2", "k", 1.0))
        for number in (3, 1, 10000, 2):
            await store.put_part(UploadedPart("u1", number, f"etag{number}", number * 10, 5.0))
        await store.put_part(UploadedPart("u2", 1, "other", 1, 5.0))
        parts, truncated = await store.list_parts("u1")
        assert [p.part_number for p in parts] == [1, 2, 3, 10000]
        assert parts[2] == UploadedPart("u1", 3, "etag3", 30, 5.0)
        assert not truncated
        # Writing a part again replaces it.
        await store.put_part(UploadedPart("u1", 2, "again", 99, 6.0))
        parts, _ = await store.list_parts("u1")
        assert parts[1] == UploadedPart("u1", 2, "again", 99, 6.0)
        assert len(parts) == 4
        assert _numbers(await store.list_parts("u1", 1, 2)) == ([2, 3], True)
        assert _numbers(await store.list_parts("u1", 3, 1)) == ([10000], False)
        assert _numbers(await store.list_parts("u1", 10000)) == ([], False)
        assert _numbers(await store.list_parts("u1", 0, 4)) == ([1, 2, 3, 10000], False)
        assert await store.list_parts("unknown") == ([], False)

    @pytest_twisted.ensureDeferred
    async def test_part_of_unknown_upload_fails(self, store):
        with pytest.raises(KeyError):
            await store.put_part(UploadedPart("gone", 1, "e", 1, 1.0))
        assert await store.list_parts("gone") == ([], False)

    @pytest_twisted.ensureDeferred
    async def test_delete_upload(self, store):
        await store.add_user("alice")
        await store.create_upload(_upload("u1", "k", 1.0))
        await store.create_upload(_upload("u2", "k", 2.0))
        await store.put_part(UploadedPart("u1", 1, "e", 1, 1.0))
        await store.put_part(UploadedPart("u2", 1, "e", 1, 1.0))
        await store.delete_upload("u1")
        assert await store.get_upload("u1") is None
        assert await store.list_parts("u1") == ([], False)
        with pytest.raises(KeyError):
            await store.put_part(UploadedPart("u1", 2, "e", 1, 1.0))
        with pytest.raises(KeyError):
            await store.delete_upload("u1")
        assert _numbers(await store.list_parts("u2")) == ([1], False)
        assert _ids(await store.list_uploads("alice", "b1")) == (["u2"], False)


def _numbers(page: Tuple[Sequence[UploadedPart], bool]) -> Tuple[List[int], bool]:
    parts, truncated = page
    return [part.part_number for part in parts], truncated
