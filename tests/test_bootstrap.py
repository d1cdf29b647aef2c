"""
The first start makes ``admin`` with a key, writes it to a private file, and logs no secret.
"""

from __future__ import annotations

import configparser
import os
import re
import stat

import pytest
import pytest_twisted
from twisted.logger import formatEvent, globalLogPublisher

from gateway.bootstrap import CREDENTIALS_FILENAME, ensure_admin_user, write_credentials_file
from gateway.model import AccessKey
from gateway.store.sqlite import DATABASE_FILENAME, open_sqlite_store
from tests.store.contract import store_fixture


def _open_in(tmp_path):
    from twisted.internet import reactor

    return open_sqlite_store(str(tmp_path / "data" / DATABASE_FILENAME), reactor)


store = store_fixture(_open_in)


@pytest.fixture
def log_events():
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def _read_credentials(path):
    parser = configparser.ConfigParser()
    parser.read(path)
    section = parser["admin"]
    return section["access_key_id"], section["secret_access_key"]


def _assert_not_logged(events, secret):
    for event in events:
        assert secret not in formatEvent(event)
        assert secret not in repr(event)


@pytest_twisted.ensureDeferred
async def test_first_start_uses_the_environment_pair(store, tmp_path, log_events):
    data = tmp_path / "data"
    environ = {"S3GW_ACCESS_KEY": "AKIDFROMENV", "S3GW_SECRET_KEY": "secret/From+Env0123"}
    key = await ensure_admin_user(store, str(data), environ)
    assert (key.user, key.access_key_id, key.secret_access_key) == (
        "admin",
        "AKIDFROMENV",
        "secret/From+Env0123",
    )
    assert await store.get_key("AKIDFROMENV") == key
    assert [u.name for u in await store.list_users()] == ["admin"]
    path = data / CREDENTIALS_FILENAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _read_credentials(path) == ("AKIDFROMENV", "secret/From+Env0123")
    text = path.read_text()
    assert "access_key_id = AKIDFROMENV\n" in text
    assert "secret_access_key = secret/From+Env0123\n" in text
    messages = [formatEvent(event) for event in log_events]
    assert any("AKIDFROMENV" in m and str(path) in m for m in messages)
    _assert_not_logged(log_events, "secret/From+Env0123")


@pytest_twisted.ensureDeferred
async def test_first_start_generates_a_key(store, tmp_path, log_events):
    data = tmp_path / "data"
    key = await ensure_admin_user(store, str(data), {})
    assert re.fullmatch(r"GW[A-Z0-9]{18}", key.access_key_id)
    assert (await store.get_key(key.access_key_id)).user == "admin"
    assert _read_credentials(data / CREDENTIALS_FILENAME) == (
        key.access_key_id,
        key.secret_access_key,
    )
    _assert_not_logged(log_events, key.secret_access_key)


@pytest_twisted.ensureDeferred
async def test_one_variable_alone_is_not_used(store, tmp_path, log_events):
    key = await ensure_admin_user(store, str(tmp_path / "data"), {"S3GW_ACCESS_KEY": "ONLYID"})
    assert key.access_key_id != "ONLYID"
    assert await store.get_key("ONLYID") is None
    assert any("S3GW_SECRET_KEY" in formatEvent(event) for event in log_events)


@pytest_twisted.ensureDeferred
async def test_nothing_happens_when_users_exist(store, tmp_path):
    await store.add_user("someone")
    environ = {"S3GW_ACCESS_KEY": "AKIDFROMENV", "S3GW_SECRET_KEY": "secret"}
    assert await ensure_admin_user(store, str(tmp_path / "data"), environ) is None
    assert [u.name for u in await store.list_users()] == ["someone"]
    assert not (tmp_path / "data" / CREDENTIALS_FILENAME).exists()
    assert await store.get_key("AKIDFROMENV") is None


@pytest_twisted.ensureDeferred
async def test_second_start_keeps_the_first_key(store, tmp_path):
    data = tmp_path / "data"
    first = await ensure_admin_user(store, str(data), {})
    assert await ensure_admin_user(store, str(data), {}) is None
    assert _read_credentials(data / CREDENTIALS_FILENAME)[0] == first.access_key_id
    assert list(await store.list_keys("admin")) == [first]


@pytest_twisted.ensureDeferred
async def test_invalid_environment_pair_is_refused(store, tmp_path):
    environ = {"S3GW_ACCESS_KEY": "bad id/with slash", "S3GW_SECRET_KEY": "secret"}
    with pytest.raises(ValueError):
        await ensure_admin_user(store, str(tmp_path / "data"), environ)
    assert list(await store.list_users()) == []


@pytest_twisted.ensureDeferred
async def test_worker_that_loses_the_race_does_nothing(store, tmp_path):
    class SeesNoUsers:
        """
        A store as a second worker sees it: no users yet when it looks, one when it adds.
        """

        def __getattr__(self, name):
            return getattr(store, name)

        def list_users(self):
            from twisted.internet.defer import succeed

            return succeed([])

    await store.add_user("admin")
    assert await ensure_admin_user(SeesNoUsers(), str(tmp_path / "data"), {}) is None
    assert list(await store.list_keys("admin")) == []
    assert not (tmp_path / "data" / CREDENTIALS_FILENAME).exists()


def test_credentials_file_replaces_a_stale_one_and_is_private(tmp_path):
    stale = tmp_path / CREDENTIALS_FILENAME
    stale.write_text("old")
    os.chmod(stale, 0o644)
    old_umask = os.umask(0)
    try:
        path = write_credentials_file(str(tmp_path), AccessKey("NEWID", "NEWSECRET", "admin", 1.0))
    finally:
        os.umask(old_umask)
    assert path == str(stale)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _read_credentials(path) == ("NEWID", "NEWSECRET")
    assert sorted(os.listdir(tmp_path)) == [CREDENTIALS_FILENAME]


def test_credentials_file_makes_a_private_data_directory(tmp_path):
    data = tmp_path / "fresh"
    write_credentials_file(str(data), AccessKey("ID", "SECRET", "admin", 1.0))
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
