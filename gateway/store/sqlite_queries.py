"""
The metadata store's SQL: plain functions that take a C{sqlite3.Connection} first and run inside
a transaction opened by their caller (L{gateway.store.sqlite.transaction}).

L{gateway.store.sqlite.SQLiteStore} runs each of them in its own transaction on its thread; the
admin command calls them directly and may group several in one transaction. They raise
C{KeyError} for a missing row and C{ValueError} for a duplicate one.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import string
from typing import Any, List, Optional, Tuple

from gateway.model import AccessKey, Connection, MultipartUpload, UploadedPart, User

_KEY_ID_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "/+"


def generate_access_key_id() -> str:
    """
    A new access key id: ``GW`` and 18 upper-case letters or digits, 20 in all like AWS's.
    """
    return "GW" + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(18))


def generate_secret_key() -> str:
    """
    A new secret access key: 40 characters of a base64-like alphabet, like AWS's.
    """
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


def _exists(connection: sqlite3.Connection, query: str, *params: Any) -> bool:
    return connection.execute(query, params).fetchone() is not None


def _require_user(connection: sqlite3.Connection, name: str) -> None:
    if not _exists(connection, "SELECT 1 FROM users WHERE name = ?", name):
        raise KeyError(f"no user named {name!r}")


# Users.


def add_user(connection: sqlite3.Connection, name: str, now: float) -> User:
    if _exists(connection, "SELECT 1 FROM users WHERE name = ?", name):
        raise ValueError(f"a user named {name!r} exists")
    connection.execute("INSERT INTO users (name, created) VALUES (?, ?)", (name, now))
    return User(name=name, created=now)


def get_user(connection: sqlite3.Connection, name: str) -> Optional[User]:
    row = connection.execute("SELECT name, created FROM users WHERE name = ?", (name,)).fetchone()
    return None if row is None else User(name=row[0], created=row[1])


def list_users(connection: sqlite3.Connection) -> List[User]:
    rows = connection.execute("SELECT name, created FROM users ORDER BY name COLLATE BINARY")
    return [User(name=name, created=created) for name, created in rows]


def remove_user(connection: sqlite3.Connection, name: str) -> None:
    # Keys, connections and uploads go by ON DELETE CASCADE, and parts with their uploads.
    if connection.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
        raise KeyError(f"no user named {name!r}")


# Access keys.

_KEY_COLUMNS = "access_key_id, secret, user, created"


def _key(row: Tuple[Any, ...]) -> AccessKey:
    return AccessKey(access_key_id=row[0], secret_access_key=row[1], user=row[2], created=row[3])


def create_key(
    connection: sqlite3.Connection,
    user: str,
    now: float,
    access_key_id: Optional[str] = None,
    secret_access_key: Optional[str] = None,
) -> AccessKey:
    """
    Store the given pair, or a generated one, for C{user}.
    """
    _require_user(connection, user)
    taken = "SELECT 1 FROM access_keys WHERE access_key_id = ?"
    if access_key_id is None:
        access_key_id = generate_access_key_id()
        while _exists(connection, taken, access_key_id):
            access_key_id = generate_access_key_id()  # pragma: no cover - 36**18 ids
    elif _exists(connection, taken, access_key_id):
        raise ValueError(f"access key {access_key_id!r} exists")
    if secret_access_key is None:
        secret_access_key = generate_secret_key()
    key = AccessKey(access_key_id, secret_access_key, user, now)
    connection.execute(
        f"INSERT INTO access_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?)",
        (key.access_key_id, key.secret_access_key, key.user, key.created),
    )
    return key


def get_key(connection: sqlite3.Connection, access_key_id: str) -> Optional[AccessKey]:
    row = connection.execute(
        f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE access_key_id = ?", (access_key_id,)
    ).fetchone()
    return None if row is None else _key(row)


def list_keys(connection: sqlite3.Connection, user: str) -> List[AccessKey]:
    rows = connection.execute(
        f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE user = ? ORDER BY created, access_key_id",
        (user,),
    )
    return [_key(row) for row in rows]


def revoke_key(connection: sqlite3.Connection, access_key_id: str) -> None:
    cursor = connection.execute("DELETE FROM access_keys WHERE access_key_id = ?", (access_key_id,))
    if cursor.rowcount == 0:
        raise KeyError(f"no access key {access_key_id!r}")


# Connections.

_CONNECTION_COLUMNS = "user, bucket, backend, settings, read_only, created, created_by_s3"


def _connection(row: Tuple[Any, ...]) -> Connection:
    return Connection(
        user=row[0],
        bucket=row[1],
        backend=row[2],
        settings=json.loads(row[3]),
        read_only=bool(row[4]),
        created=row[5],
        created_by_s3=bool(row[6]),
    )


def add_connection(connection: sqlite3.Connection, bucket: Connection, now: float) -> Connection:
    """
    Store C{bucket}; its C{created} time is C{now} unless it carries one.
    """
    _require_user(connection, bucket.user)
    if _exists(
        connection,
        "SELECT 1 FROM connections WHERE user = ? AND bucket = ?",
        bucket.user,
        bucket.bucket,
    ):
        raise ValueError(f"user {bucket.user!r} has a bucket named {bucket.bucket!r}")
    created = bucket.created or now
    connection.execute(
        f"INSERT INTO connections ({_CONNECTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            bucket.user,
            bucket.bucket,
            bucket.backend,
            json.dumps(dict(bucket.settings), sort_keys=True),
            int(bucket.read_only),
            created,
            int(bucket.created_by_s3),
        ),
    )
    return get_connection(connection, bucket.user, bucket.bucket)  # type: ignore[return-value]


def get_connection(connection: sqlite3.Connection, user: str, bucket: str) -> Optional[Connection]:
    row = connection.execute(
        f"SELECT {_CONNECTION_COLUMNS} FROM connections WHERE user = ? AND bucket = ?",
        (user, bucket),
    ).fetchone()
    return None if row is None else _connection(row)


def list_connections(
    connection: sqlite3.Connection, user: Optional[str] = None
) -> List[Connection]:
    query = f"SELECT {_CONNECTION_COLUMNS} FROM connections"
    params: Tuple[str, ...] = ()
    if user is not None:
        query += " WHERE user = ?"
        params = (user,)
    query += " ORDER BY user COLLATE BINARY, bucket COLLATE BINARY"
    return [_connection(row) for row in connection.execute(query, params)]


def remove_connection(connection: sqlite3.Connection, user: str, bucket: str) -> None:
    cursor = connection.execute(
        "DELETE FROM connections WHERE user = ? AND bucket = ?", (user, bucket)
    )
    if cursor.rowcount == 0:
        raise KeyError(f"user {user!r} has no bucket named {bucket!r}")
    # Uploads are tied to the user only (the protocol may start one before the bucket row is
    # read again); the parts go with them by ON DELETE CASCADE.
    connection.execute(
        "DELETE FROM multipart_uploads WHERE user = ? AND bucket = ?", (user, bucket)
    )


# Multipart uploads.

_UPLOAD_COLUMNS = (
    'upload_id, user, bucket, "key", initiated, content_type, metadata, headers, tags'
)


def _upload(row: Tuple[Any, ...]) -> MultipartUpload:
    return MultipartUpload(
        upload_id=row[0],
        user=row[1],
        bucket=row[2],
        key=row[3],
        initiated=row[4],
        content_type=row[5],
        metadata=json.loads(row[6]),
        headers=json.loads(row[7]),
        tags=json.loads(row[8]),
    )


def create_upload(connection: sqlite3.Connection, upload: MultipartUpload) -> MultipartUpload:
    _require_user(connection, upload.user)
    if _exists(connection, "SELECT 1 FROM multipart_uploads WHERE upload_id = ?", upload.upload_id):
        raise ValueError(f"upload {upload.upload_id!r} exists")
    connection.execute(
        f"INSERT INTO multipart_uploads ({_UPLOAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            upload.upload_id,
            upload.user,
            upload.bucket,
            upload.key,
            upload.initiated,
            upload.content_type,
            json.dumps(dict(upload.metadata), sort_keys=True),
            json.dumps(dict(upload.headers), sort_keys=True),
            json.dumps(dict(upload.tags), sort_keys=True),
        ),
    )
    return upload


def get_upload(connection: sqlite3.Connection, upload_id: str) -> Optional[MultipartUpload]:
    row = connection.execute(
        f"SELECT {_UPLOAD_COLUMNS} FROM multipart_uploads WHERE upload_id = ?", (upload_id,)
    ).fetchone()
    return None if row is None else _upload(row)


def list_uploads(
    connection: sqlite3.Connection,
    user: str,
    bucket: str,
    prefix: str = "",
    key_marker: str = "",
    upload_id_marker: str = "",
    max_uploads: int = 1000,
) -> Tuple[List[MultipartUpload], bool]:
    """
    A page of ListMultipartUploads. With a key marker alone the page starts at the first key
    after it. With an upload id marker too, it starts with the uploads of the marker's key that
    come after that upload in the listing's order, then the later keys; an upload id marker that
    names no upload of that key falls back to S3's documented rule, upload ids greater than it.
    Without a key marker the upload id marker is ignored, as S3 does.
    """
    query = (
        f"SELECT {_UPLOAD_COLUMNS} FROM multipart_uploads"
        ' WHERE user = ? AND bucket = ? AND substr("key", 1, ?) = ?'
    )
    params: List[Any] = [user, bucket, len(prefix), prefix]
    if key_marker:
        marker_row = None
        if upload_id_marker:
            marker_row = connection.execute(
                "SELECT initiated FROM multipart_uploads"
                ' WHERE upload_id = ? AND user = ? AND bucket = ? AND "key" = ?',
                (upload_id_marker, user, bucket, key_marker),
            ).fetchone()
        if marker_row is not None:
            query += (
                ' AND ("key" > ? OR ("key" = ? AND (initiated > ?'
                " OR (initiated = ? AND upload_id > ?))))"
            )
            params += [key_marker, key_marker, marker_row[0], marker_row[0], upload_id_marker]
        elif upload_id_marker:
            query += ' AND ("key" > ? OR ("key" = ? AND upload_id > ?))'
            params += [key_marker, key_marker, upload_id_marker]
        else:
            query += ' AND "key" > ?'
            params.append(key_marker)
    query += (
        ' ORDER BY "key" COLLATE BINARY, initiated, upload_id COLLATE BINARY LIMIT ?'
    )
    params.append(max(max_uploads, 0) + 1)
    uploads = [_upload(row) for row in connection.execute(query, params)]
    return uploads[:max_uploads], len(uploads) > max_uploads


def put_part(connection: sqlite3.Connection, part: UploadedPart) -> None:
    if get_upload(connection, part.upload_id) is None:
        raise KeyError(f"no upload {part.upload_id!r}")
    connection.execute(
        "INSERT INTO parts (upload_id, part_number, etag, size, last_modified)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (upload_id, part_number) DO UPDATE SET"
        " etag = excluded.etag, size = excluded.size, last_modified = excluded.last_modified",
        (part.upload_id, part.part_number, part.etag, part.size, part.last_modified),
    )


def list_parts(
    connection: sqlite3.Connection,
    upload_id: str,
    part_number_marker: int = 0,
    max_parts: int = 10000,
) -> Tuple[List[UploadedPart], bool]:
    rows = connection.execute(
        "SELECT upload_id, part_number, etag, size, last_modified FROM parts"
        " WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
        (upload_id, part_number_marker, max(max_parts, 0) + 1),
    )
    parts = [UploadedPart(*row) for row in rows]
    return parts[:max_parts], len(parts) > max_parts


def delete_upload(connection: sqlite3.Connection, upload_id: str) -> None:
    cursor = connection.execute("DELETE FROM multipart_uploads WHERE upload_id = ?", (upload_id,))
    if cursor.rowcount == 0:
        raise KeyError(f"no upload {upload_id!r}")
