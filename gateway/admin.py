"""
``s3gateway-admin``: the operator's command for users, access keys and connections.

It opens the gateway's SQLite file directly and runs the store's own SQL functions
(L{gateway.store.sqlite_queries}) in the calling thread, without a reactor: the command is
short-lived, may run many times in one process (the tests do), and WAL mode lets it work while the
daemon's workers hold the same file open. Each command is one transaction.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from contextlib import redirect_stdout
from datetime import datetime, timezone
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    NoReturn,
    Optional,
    Sequence,
    TextIO,
    Tuple,
)

from gateway.model import AccessKey, Connection
from gateway.store import sqlite_queries as queries
from gateway.store.names import (
    validate_access_key_id,
    validate_bucket_name,
    validate_secret_key,
    validate_user_name,
)
from gateway.store.schema import SchemaTooNew
from gateway.store.sqlite import DATABASE_FILENAME, connect, transaction

PROGRAM = "s3gateway-admin"
DEFAULT_DATA_DIR = "/var/lib/s3gateway"

#: What a command returns: the value printed with ``--json``, and the lines printed without.
Output = Tuple[Any, List[str]]


class UsageError(Exception):
    """
    Bad input from the operator: reported on one line, with exit status 2.
    """


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _key_output(key: AccessKey) -> Output:
    value = {
        "user": key.user,
        "access_key_id": key.access_key_id,
        "secret_access_key": key.secret_access_key,
    }
    return value, [f"{name}: {item}" for name, item in value.items()]


def _connection_value(connection: Connection) -> Dict[str, Any]:
    return {
        "user": connection.user,
        "bucket": connection.bucket,
        "backend": connection.backend,
        "settings": dict(connection.settings),
        "read_only": connection.read_only,
        "created_by_s3": connection.created_by_s3,
        "created": _timestamp(connection.created),
    }


def _connection_line(connection: Connection) -> str:
    where = connection.settings.get("path", json.dumps(dict(connection.settings), sort_keys=True))
    flags = ["read-only" if connection.read_only else "read-write"]
    if connection.created_by_s3:
        flags.append("created-by-s3")
    return "\t".join([connection.user, connection.bucket, connection.backend, where, *flags])


def _require_user(db: sqlite3.Connection, name: str) -> None:
    if queries.get_user(db, name) is None:
        raise UsageError(f"no user named {name!r}")


def _user_add(db: sqlite3.Connection, args: argparse.Namespace) -> Output:
    validate_user_name(args.name)
    if (args.access_key is None) != (args.secret_key is None):
        raise UsageError("--access-key and --secret-key must be given together")
    if args.access_key is not None:
        validate_access_key_id(args.access_key)
        validate_secret_key(args.secret_key)
    if queries.get_user(db, args.name) is not None:
        raise UsageError(f"a user named {args.name!r} exists")
    if args.access_key is not None and queries.get_key(db, args.access_key) is not None:
        raise UsageError(f"access key {args.access_key!r} exists")
    now = time.time()
    queries.add_user(db, args.name, now)
    return _key_output(queries.create_key(db, args.name, now, args.access_key, args.secret_key))


def _user_list(db: sqlite3.Connection, args: argparse.Namespace) -> Output:
    users = queries.list_users(db)
    value = [{"user": user.name, "created": _timestamp(user.created)} for user in users]
    return value, [user.name for user in users]


def _user_remove(db: sqlite3.Connection, args: argparse.Namespace) -> Output:
    _require_user(db, args.name)
    queries.remove_user(db, args.name)
    return {"user": args.name, "removed": True}, [f"removed user {args.name}"]


def _key_create(db: sqlite3.Connection, args: argparse.Namespace) -> Output:
    _require_user(db, args.user)
    return _key_output(queries.create_key(db, args.user, time.time()))


def _key_list(db: sqlite3.Connection, args: argparse.Namespace) -> Output:
    _require_user(db, args.user)
    keys = queries.list_keys(db, args.user)
    value = [
        {"access_key_id": key.access_key_id, "user": key.user, "created": _timestamp(key.created)}
        for key in keys
    ]
    return value, [f"{key.access_key_id}\t{_timestamp(key.created)}" for key in keys]


def _key_revoke(db: sqlite3.Connection, args: argparse.Namespace) -> Output:
    if queries.get_key(db, args.key_id) is None:
        raise UsageError(f"no access key {args.key_id!r}")
    queries.revoke_key(db, args.key_id)
    return {"access_key_id": args.key_id, "revoked": True}, [f"revoked key {args.key_id}"]


def _connection_add(db: sqlite3.Connection, args: argparse.Namespace) -> Output:
    validate_bucket_name(args.bucket)
    if not os.path.isdir(args.path):
        raise UsageError(f"{args.path!r} is not an existing directory")
    _require_user(db, args.user)
    if queries.get_connection(db, args.user, args.bucket) is not None:
        raise UsageError(f"user {args.user!r} has a bucket named {args.bucket!r}")
    added = queries.add_connection(
        db,
        Connection(
            user=args.user,
            bucket=args.bucket,
            backend=args.backend,
            settings={"path": os.path.abspath(args.path)},
            read_only=args.read_only,
        ),
        time.time(),
    )
    return _connection_value(added), [_connection_line(added)]


def _connection_list(db: sqlite3.Connection, args: argparse.Namespace) -> Output:
    if args.user is not None:
        _require_user(db, args.user)
    connections = queries.list_connections(db, args.user)
    return [_connection_value(c) for c in connections], [_connection_line(c) for c in connections]


def _connection_remove(db: sqlite3.Connection, args: argparse.Namespace) -> Output:
    if queries.get_connection(db, args.user, args.bucket) is None:
        raise UsageError(f"user {args.user!r} has no bucket named {args.bucket!r}")
    queries.remove_connection(db, args.user, args.bucket)
    return (
        {"user": args.user, "bucket": args.bucket, "removed": True},
        [f"removed bucket {args.bucket} of user {args.user}"],
    )


def _command(
    group: "argparse._SubParsersAction[_Parser]",
    name: str,
    handler: Callable[[sqlite3.Connection, argparse.Namespace], Output],
    summary: str,
) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=summary, description=summary)
    parser.set_defaults(handler=handler)
    return parser


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """
    The command line: global options, then a noun (user, key, connection) and a verb.
    """
    parser = _Parser(prog=PROGRAM, description="Manage the users, keys and buckets of s3gateway.")
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=environ.get("S3GW_DATA") or DEFAULT_DATA_DIR,
        help="the gateway's data directory (default: $S3GW_DATA, else %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    nouns = parser.add_subparsers(dest="noun", metavar="{user,key,connection}", required=True)

    users = nouns.add_parser("user", help="users").add_subparsers(dest="verb", required=True)
    add = _command(users, "add", _user_add, "make a user and a first access key")
    add.add_argument("name")
    add.add_argument("--access-key", metavar="ID", help="the key id to use instead of a new one")
    add.add_argument("--secret-key", metavar="SECRET", help="the secret that goes with it")
    _command(users, "list", _user_list, "list the users")
    _command(users, "remove", _user_remove, "remove a user, its keys and buckets").add_argument(
        "name"
    )

    keys = nouns.add_parser("key", help="access keys").add_subparsers(dest="verb", required=True)
    _command(keys, "create", _key_create, "make an access key for a user").add_argument("user")
    _command(keys, "list", _key_list, "list a user's key ids").add_argument("user")
    _command(keys, "revoke", _key_revoke, "remove an access key").add_argument("key_id")

    connections = nouns.add_parser("connection", help="buckets").add_subparsers(
        dest="verb", required=True
    )
    add = _command(connections, "add", _connection_add, "bind a bucket of a user to storage")
    add.add_argument("user")
    add.add_argument("bucket")
    add.add_argument("--backend", choices=["local"], required=True)
    add.add_argument("--path", required=True, help="the directory that holds the bucket")
    add.add_argument("--read-only", action="store_true", help="refuse writes through S3")
    _command(connections, "list", _connection_list, "list buckets").add_argument(
        "user", nargs="?"
    )
    remove = _command(connections, "remove", _connection_remove, "unbind a bucket")
    remove.add_argument("user")
    remove.add_argument("bucket")
    return parser


def run(
    argv: Sequence[str],
    stdout: TextIO,
    stderr: TextIO,
    environ: Optional[Mapping[str, str]] = None,
) -> int:
    """
    Run one command.

    :return: the exit status: 0 on success, 2 for bad input (one line on C{stderr}), 1 when the
        database cannot be used.
    """
    parser = build_parser(os.environ if environ is None else environ)
    try:
        with redirect_stdout(stdout):  # --help prints through sys.stdout
            args = parser.parse_args(list(argv))
    except UsageError as error:
        stderr.write(f"{PROGRAM}: error: {error}\n")
        return 2
    except SystemExit as leaving:  # --help
        return leaving.code if isinstance(leaving.code, int) else 0
    try:
        db = connect(os.path.join(args.data, DATABASE_FILENAME))
    except (OSError, sqlite3.Error, SchemaTooNew) as error:
        stderr.write(f"{PROGRAM}: error: cannot open the database in {args.data}: {error}\n")
        return 1
    try:
        with transaction(db):
            value, lines = args.handler(db, args)
    except (UsageError, ValueError) as error:
        stderr.write(f"{PROGRAM}: error: {error}\n")
        return 2
    except KeyError as error:
        stderr.write(f"{PROGRAM}: error: {error.args[0] if error.args else error}\n")
        return 2
    except sqlite3.Error as error:
        stderr.write(f"{PROGRAM}: error: database error: {error}\n")
        return 1
    finally:
        db.close()
    if args.json:
        stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
    else:
        stdout.write("".join(line + "\n" for line in lines))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """
    The console script's entry point.
    """
    return run(sys.argv[1:] if argv is None else argv, sys.stdout, sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
