"""
The SQLite store: the store contract, plus what only a file-based store has (file modes, WAL,
migrations, several connections at once, its thread).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time

import pytest
import pytest_twisted

from gateway.model import Connection
from gateway.store import sqlite_queries as queries
from gateway.store.schema import MIGRATIONS, Migration, SchemaTooNew, current_version, migrate
from gateway.store.sqlite import DATABASE_FILENAME, connect, open_sqlite_store, transaction
from tests.store.contract import StoreContract, store_fixture


def _reactor():
    from twisted.internet import reactor

    return reactor


def _open_in(tmp_path):
    return open_sqlite_store(str(tmp_path / "data" / DATABASE_FILENAME), _reactor())


store = store_fixture(_open_in)


class TestSQLiteStoreContract(StoreContract):
    """
    The SQLite store keeps the store contract.
    """


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _raw(path) -> sqlite3.Connection:
    """
    A connection of our own beside the store's, as another process would have.
    """
    return sqlite3.connect(str(path), isolation_level=None, timeout=5, check_same_thread=False)


@pytest_twisted.ensureDeferred
async def test_new_file_and_directory_are_private(tmp_path):
    path = tmp_path / "new" / "dir" / DATABASE_FILENAME
    old_umask = os.umask(0)
    try:
        opened = await open_sqlite_store(str(path), _reactor())
    finally:
        os.umask(old_umask)
    try:
        await opened.add_user("alice")
        assert _mode(path) == 0o600
        assert _mode(path.parent) == 0o700
        wal = path.parent / (path.name + "-wal")
        assert wal.exists()
        assert _mode(wal) == 0o600
    finally:
        await opened.close()


@pytest_twisted.ensureDeferred
async def test_existing_directory_is_left_alone(tmp_path):
    tmp_path.joinpath("shared").mkdir(mode=0o755)
    os.chmod(tmp_path / "shared", 0o755)
    opened = await open_sqlite_store(str(tmp_path / "shared" / "db"), _reactor())
    await opened.close()
    assert _mode(tmp_path / "shared") == 0o755
    assert _mode(tmp_path / "shared" / "db") == 0o600


@pytest_twisted.ensureDeferred
async def test_wal_mode_and_schema_version(tmp_path):
    path = tmp_path / DATABASE_FILENAME
    opened = await open_sqlite_store(str(path), _reactor())
    await opened.close()
    raw = _raw(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert current_version(raw) == MIGRATIONS[-1].version
    raw.close()


@pytest_twisted.ensureDeferred
async def test_calls_run_off_the_reactor_thread(tmp_path):
    opened = await _open_in(tmp_path)
    try:
        pending = opened.add_user("alice")
        # The work happens on the store's thread, so the result cannot be there yet.
        assert not pending.called
        await pending
        assert opened._pool.threads and all(
            thread is not threading.current_thread() for thread in opened._pool.threads
        )
    finally:
        await opened.close()


@pytest_twisted.ensureDeferred
async def test_close_stops_the_thread_and_refuses_calls(tmp_path):
    opened = await _open_in(tmp_path)
    await opened.list_users()
    pool = opened._pool
    await opened.close()
    assert pool.joined
    assert not any(thread.is_alive() for thread in pool.threads)
    with pytest.raises(RuntimeError):
        await opened.get_user("alice")
    await opened.close()  # twice is harmless


@pytest_twisted.ensureDeferred
async def test_open_failure_is_reported(tmp_path):
    (tmp_path / "adir").mkdir()
    with pytest.raises(IsADirectoryError):
        await open_sqlite_store(str(tmp_path / "adir"), _reactor())
    (tmp_path / "text").write_bytes(b"not a database, just some text that fills a header" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        await open_sqlite_store(str(tmp_path / "text"), _reactor())


@pytest_twisted.ensureDeferred
async def test_store_sees_what_another_process_wrote(tmp_path):
    opened = await _open_in(tmp_path)
    try:
        await opened.add_user("alice")
        other = connect(str(tmp_path / "data" / DATABASE_FILENAME))
        with transaction(other):
            queries.add_user(other, "bob", 1.0)
            queries.create_key(other, "bob", 1.0, "BOBKEY", "bobsecret")
        assert (await opened.get_key("BOBKEY")).user == "bob"
        with transaction(other):
            queries.revoke_key(other, "BOBKEY")
        assert await opened.get_key("BOBKEY") is None
        other.close()
    finally:
        await opened.close()


def test_reader_is_not_blocked_by_a_writer(tmp_path):
    path = str(tmp_path / DATABASE_FILENAME)
    writer = connect(path)
    reader = connect(path)
    with transaction(writer):
        queries.add_user(writer, "alice", 1.0)
    writer.execute("BEGIN IMMEDIATE")
    queries.add_user(writer, "bob", 2.0)
    # The writer holds the write lock; the reader goes on at once and sees the last commit.
    started = time.monotonic()
    with transaction(reader, write=False):
        assert [u.name for u in queries.list_users(reader)] == ["alice"]
    assert time.monotonic() - started < 1.0
    writer.execute("COMMIT")
    with transaction(reader, write=False):
        assert [u.name for u in queries.list_users(reader)] == ["alice", "bob"]
    writer.close()
    reader.close()


def test_second_writer_waits_for_the_first(tmp_path):
    path = str(tmp_path / DATABASE_FILENAME)
    first = connect(path)
    second = connect(path)
    outcome = []

    def write_from_another_connection():
        try:
            with transaction(second):
                queries.add_user(second, "bob", 2.0)
            outcome.append("ok")
        except Exception as error:  # reported through outcome
            outcome.append(error)

    first.execute("BEGIN IMMEDIATE")
    queries.add_user(first, "alice", 1.0)
    thread = threading.Thread(target=write_from_another_connection)
    thread.start()
    time.sleep(0.3)
    assert outcome == []  # still waiting for the lock
    first.execute("COMMIT")
    thread.join(10)
    assert outcome == ["ok"]
    with transaction(first, write=False):
        assert [u.name for u in queries.list_users(first)] == ["alice", "bob"]
    first.close()
    second.close()


def test_failed_transaction_leaves_nothing(tmp_path):
    db = connect(str(tmp_path / DATABASE_FILENAME))
    with pytest.raises(ValueError):
        with transaction(db):
            queries.add_user(db, "alice", 1.0)
            queries.add_user(db, "alice", 1.0)
    with transaction(db, write=False):
        assert queries.list_users(db) == []
    db.close()


# Migrations.

_EXTRA = Migration(
    version=len(MIGRATIONS) + 1,
    description="a later column, for the test",
    statements=("ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT ''",),
)


def _database_at(path, migrations):
    raw = _raw(path)
    raw.execute("PRAGMA foreign_keys = ON")
    assert migrate(raw, migrations) == migrations[-1].version
    return raw


def _fill(raw):
    raw.execute("INSERT INTO users (name, created) VALUES ('alice', 1.0)")
    raw.execute(
        "INSERT INTO access_keys (access_key_id, secret, user, created)"
        " VALUES ('K1', 'S1', 'alice', 1.0)"
    )
    raw.execute(
        "INSERT INTO connections (user, bucket, backend, settings, read_only, created,"
        " created_by_s3) VALUES ('alice', 'b1', 'local', '{\"path\": \"/srv\"}', 1, 1.0, 0)"
    )


@pytest_twisted.ensureDeferred
async def test_old_database_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / DATABASE_FILENAME
    raw = _database_at(path, MIGRATIONS[:1])
    _fill(raw)
    raw.close()
    opened = await open_sqlite_store(str(path), _reactor())
    try:
        assert (await opened.get_key("K1")).secret_access_key == "S1"
        assert (await opened.get_connection("alice", "b1")).settings == {"path": "/srv"}
    finally:
        await opened.close()
    raw = _raw(path)
    assert current_version(raw) == MIGRATIONS[-1].version
    raw.close()


def test_later_migration_keeps_rows(tmp_path):
    path = tmp_path / DATABASE_FILENAME
    raw = _database_at(path, MIGRATIONS)
    _fill(raw)
    assert migrate(raw, MIGRATIONS + (_EXTRA,)) == _EXTRA.version
    assert current_version(raw) == _EXTRA.version
    assert raw.execute("SELECT name, display_name FROM users").fetchall() == [("alice", "")]
    assert raw.execute("SELECT secret FROM access_keys").fetchall() == [("S1",)]
    # Applying again does nothing.
    assert migrate(raw, MIGRATIONS + (_EXTRA,)) == _EXTRA.version
    raw.close()


def test_failed_migration_is_rolled_back(tmp_path):
    path = tmp_path / DATABASE_FILENAME
    raw = _database_at(path, MIGRATIONS)
    _fill(raw)
    broken = Migration(
        version=_EXTRA.version,
        description="half works",
        statements=("CREATE TABLE half (x)", "THIS IS NOT SQL"),
    )
    with pytest.raises(sqlite3.OperationalError):
        migrate(raw, MIGRATIONS + (broken,))
    assert current_version(raw) == MIGRATIONS[-1].version
    tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    assert "half" not in tables
    assert raw.execute("SELECT count(*) FROM users").fetchone()[0] == 1
    raw.close()


@pytest_twisted.ensureDeferred
async def test_newer_database_is_refused(tmp_path):
    path = tmp_path / DATABASE_FILENAME
    _database_at(path, MIGRATIONS + (_EXTRA,)).close()
    with pytest.raises(SchemaTooNew):
        await open_sqlite_store(str(path), _reactor())
    raw = _raw(path)
    assert current_version(raw) == _EXTRA.version
    raw.close()


def test_migrations_must_be_numbered_in_order(tmp_path):
    raw = _raw(tmp_path / DATABASE_FILENAME)
    misnumbered = MIGRATIONS + (Migration(len(MIGRATIONS) + 2, "gap", ("SELECT 1",)),)
    with pytest.raises(ValueError):
        migrate(raw, misnumbered)
    assert current_version(raw) == 0
    raw.close()


def test_new_database_gets_every_table(tmp_path):
    raw = _database_at(tmp_path / DATABASE_FILENAME, MIGRATIONS)
    tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "schema_version", "users", "access_keys", "connections", "multipart_uploads", "parts"
    } <= tables
    raw.close()


def test_generated_keys_use_the_whole_alphabet():
    ids = {queries.generate_access_key_id()[2:] for _ in range(200)}
    secrets_ = {queries.generate_secret_key() for _ in range(200)}
    assert len(ids) == 200 and len(secrets_) == 200
    assert set("".join(ids)) == set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    assert set("".join(secrets_)) == set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+"
    )


def test_connection_settings_round_trip_as_json(tmp_path):
    db = connect(str(tmp_path / DATABASE_FILENAME))
    with transaction(db):
        queries.add_user(db, "alice", 1.0)
        queries.add_connection(db, Connection("alice", "b", "local", {"path": "/a b/ü"}), 2.0)
    stored = db.execute("SELECT settings FROM connections").fetchone()[0]
    assert stored == '{"path": "/a b/\\u00fc"}'
    db.close()


def test_a_failed_commit_leaves_no_transaction_open() -> None:
    """
    A COMMIT that fails (here a deferred foreign key) leaves SQLite's transaction open for a
    retry; L{transaction} rolls it back, so the connection's next transaction can begin.
    """
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    db.execute(
        "CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    with pytest.raises(sqlite3.IntegrityError):
        with transaction(db):
            db.execute("INSERT INTO child VALUES (1)")
    assert not db.in_transaction
    assert db.execute("SELECT count(*) FROM child").fetchone() == (0,)
    with transaction(db):
        db.execute("INSERT INTO parent VALUES (1)")
    assert db.execute("SELECT count(*) FROM parent").fetchone() == (1,)
