"""
The SQLite schema as a list of numbered migrations.

A database records the number of the last migration applied to it in ``schema_version``. Opening
a database applies the later ones in order, each in its own transaction together with the bump of
the version, so an upgraded package finds the rows of the old one and a failed migration leaves
the database as it was. Migrations are only ever appended: a released one is never edited.

Each migration runs with foreign keys enforced (they are switched on per connection, and SQLite
ignores the switch inside a transaction); one that rebuilds a referenced table must take that into
account.
"""

from __future__ import annotations

import sqlite3
from typing import Sequence, Tuple

from attrs import frozen


@frozen
class Migration:
    """
    One step of the schema.

    :ivar version: the schema version once this step is applied; the first is 1.
    :ivar statements: SQL statements, run in order inside one transaction.
    """

    version: int
    description: str
    statements: Tuple[str, ...]


class SchemaTooNew(Exception):
    """
    The database was written by a newer version of the gateway than this one: opening it could
    lose what the newer version stores, so it is refused.
    """


MIGRATIONS: Tuple[Migration, ...] = (
    Migration(
        version=1,
        description="users, access keys, connections and multipart uploads",
        statements=(
            """
            CREATE TABLE users (
                name TEXT COLLATE BINARY PRIMARY KEY,
                created REAL NOT NULL
            )
            """,
            """
            CREATE TABLE access_keys (
                access_key_id TEXT COLLATE BINARY PRIMARY KEY,
                secret TEXT NOT NULL,
                user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
                created REAL NOT NULL
            )
            """,
            "CREATE INDEX access_keys_by_user ON access_keys (user)",
            """
            CREATE TABLE connections (
                user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
                bucket TEXT COLLATE BINARY NOT NULL,
                backend TEXT NOT NULL,
                settings TEXT NOT NULL DEFAULT '{}',
                read_only INTEGER NOT NULL DEFAULT 0,
                created REAL NOT NULL,
                created_by_s3 INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (user, bucket)
            )
            """,
            """
            CREATE TABLE multipart_uploads (
                upload_id TEXT COLLATE BINARY PRIMARY KEY,
                user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
                bucket TEXT NOT NULL,
                "key" TEXT COLLATE BINARY NOT NULL,
                initiated REAL NOT NULL,
                content_type TEXT NOT NULL,
                metadata TEXT NOT NULL DEFAULT '{}',
                headers TEXT NOT NULL DEFAULT '{}'
            )
            """,
            """
            CREATE INDEX multipart_uploads_by_bucket
            ON multipart_uploads (user, bucket, "key" COLLATE BINARY, initiated, upload_id)
            """,
            """
            CREATE TABLE parts (
                upload_id TEXT NOT NULL
                    REFERENCES multipart_uploads (upload_id) ON DELETE CASCADE,
                part_number INTEGER NOT NULL,
                etag TEXT NOT NULL,
                size INTEGER NOT NULL,
                last_modified REAL NOT NULL,
                PRIMARY KEY (upload_id, part_number)
            )
            """,
        ),
    ),
    Migration(
        version=2,
        description="tag sets of multipart uploads (x-amz-tagging on CreateMultipartUpload)",
        statements=(
            "ALTER TABLE multipart_uploads ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'",
        ),
    ),
)


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """
    The version a database has once every migration is applied.
    """
    return migrations[-1].version if migrations else 0


def current_version(connection: sqlite3.Connection) -> int:
    """
    The version of the database behind C{connection}: 0 for a new, empty one.
    """
    row = connection.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if not row[0]:
        return 0
    row = connection.execute("SELECT version FROM schema_version").fetchone()
    return row[0] if row else 0


def migrate(
    connection: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS
) -> int:
    """
    Apply, in order, every migration that the database lacks, each in one transaction.

    The transactions start with ``BEGIN IMMEDIATE``, which takes SQLite's write lock before the
    version is read: when several gateway workers open a new database at once, one migrates and
    the others then see the new version and apply nothing.

    :param connection: a connection in autocommit mode (``isolation_level=None``), outside any
        transaction.
    :return: the version the database has now.
    :raise SchemaTooNew: when the database is newer than C{migrations}.
    :raise ValueError: when C{migrations} are not numbered 1, 2, 3...
    """
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError(f"migration {migration.version} should be numbered {expected}")
    while True:
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = _locked_version(connection)
            if version > latest_version(migrations):
                raise SchemaTooNew(
                    f"the database has schema version {version}; this gateway knows versions "
                    f"up to {latest_version(migrations)}"
                )
            if version == latest_version(migrations):
                connection.execute("COMMIT")
                return version
            migration = migrations[version]
            for statement in migration.statements:
                connection.execute(statement)
            connection.execute("UPDATE schema_version SET version = ?", (migration.version,))
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


def _locked_version(connection: sqlite3.Connection) -> int:
    """
    The version, making the ``schema_version`` table (with one row, 0) when it is missing; to be
    called inside the migration's transaction.
    """
    connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = connection.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        connection.execute("INSERT INTO schema_version (version) VALUES (0)")
        return 0
    return int(row[0])
