"""
``s3gateway-admin`` through L{gateway.admin.run}, one real run of the console script, and its use
of the database while a store (as the daemon has) holds it open.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys

import pytest
import pytest_twisted

from gateway import admin
from gateway.store import sqlite_queries as queries
from gateway.store.sqlite import DATABASE_FILENAME, connect, open_sqlite_store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Admin:
    """
    Runs commands on one data directory and keeps what they printed.
    """

    def __init__(self, data):
        self.data = str(data)

    def __call__(self, *argv, environ=None):
        stdout, stderr = io.StringIO(), io.StringIO()
        status = admin.run(
            ["--data", self.data, *argv], stdout, stderr, {} if environ is None else environ
        )
        self.stdout, self.stderr = stdout.getvalue(), stderr.getvalue()
        return status

    def json(self, *argv):
        assert self("--json", *argv) == 0, self.stderr
        assert self.stderr == ""
        return json.loads(self.stdout)

    def fails(self, *argv, message):
        """
        Run a command that must fail on bad input: status 2, one line naming the problem.
        """
        assert self(*argv) == 2
        assert self.stdout == ""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("s3gateway-admin: error: ")
        assert message in lines[0], lines[0]

    def database(self):
        return connect(os.path.join(self.data, DATABASE_FILENAME))


@pytest.fixture
def cli(tmp_path):
    return Admin(tmp_path / "data")


@pytest.fixture
def bucket_dir(tmp_path):
    path = tmp_path / "photos"
    path.mkdir()
    return path


# Users.


def test_user_add_prints_a_working_key(cli):
    assert cli("user", "add", "alice") == 0
    lines = cli.stdout.splitlines()
    assert lines[0] == "user: alice"
    key_id = re.fullmatch(r"access_key_id: (GW[A-Z0-9]{18})", lines[1]).group(1)
    secret = re.fullmatch(r"secret_access_key: ([A-Za-z0-9/+]{40})", lines[2]).group(1)
    db = cli.database()
    key = queries.get_key(db, key_id)
    assert (key.user, key.secret_access_key) == ("alice", secret)
    db.close()


def test_user_add_json_with_a_given_pair(cli):
    given = ("--access-key", "AKIAOLD", "--secret-key", "old/sec+ret")
    printed = cli.json("user", "add", "bob", *given)
    assert printed == {
        "user": "bob",
        "access_key_id": "AKIAOLD",
        "secret_access_key": "old/sec+ret",
    }
    db = cli.database()
    assert queries.get_key(db, "AKIAOLD").secret_access_key == "old/sec+ret"
    db.close()


def test_user_add_errors(cli):
    cli.fails("user", "add", "alice", "--access-key", "ID", message="--secret-key")
    cli.fails("user", "add", "alice", "--secret-key", "SECRET", message="--access-key")
    cli.fails("user", "add", "bad name", message="user name")
    cli.fails("user", "add", "x" * 65, message="user name")
    cli.fails("user", "add", "alice", "--access-key", "a/b", "--secret-key", "s", message="a/b")
    assert cli("user", "add", "alice", "--access-key", "TAKEN", "--secret-key", "s") == 0
    cli.fails("user", "add", "alice", message="'alice' exists")
    cli.fails("user", "add", "bob", "--access-key", "TAKEN", "--secret-key", "s", message="TAKEN")
    # The failed command made no user.
    assert [entry["user"] for entry in cli.json("user", "list")] == ["alice"]


def test_user_list(cli):
    assert cli("user", "list") == 0 and cli.stdout == ""
    assert cli.json("user", "list") == []
    for name in ("carol", "Bob", "alice"):
        assert cli("user", "add", name) == 0
    assert cli("user", "list") == 0
    assert cli.stdout == "Bob\nalice\ncarol\n"
    listed = cli.json("user", "list")
    assert [entry["user"] for entry in listed] == ["Bob", "alice", "carol"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", e["created"]) for e in listed)


def test_user_remove_takes_keys_and_buckets(cli, bucket_dir):
    key_id = cli.json("user", "add", "alice")["access_key_id"]
    path = ("--backend", "local", "--path", str(bucket_dir))
    assert cli("connection", "add", "alice", "photos", *path) == 0
    assert cli("user", "remove", "alice") == 0
    assert cli.stdout == "removed user alice\n"
    assert cli.json("user", "list") == []
    assert cli.json("connection", "list") == []
    db = cli.database()
    assert queries.get_key(db, key_id) is None
    db.close()
    cli.fails("user", "remove", "alice", message="no user named 'alice'")
    assert cli.json("user", "add", "bob")["user"] == "bob"
    assert cli.json("user", "remove", "bob") == {"user": "bob", "removed": True}


# Keys.


def test_key_create_list_revoke(cli):
    first = cli.json("user", "add", "alice")
    assert cli("key", "create", "alice") == 0
    second_id = re.search(r"^access_key_id: (\S+)$", cli.stdout, re.M).group(1)
    second_secret = re.search(r"^secret_access_key: (\S+)$", cli.stdout, re.M).group(1)
    third = cli.json("key", "create", "alice")
    assert set(third) == {"user", "access_key_id", "secret_access_key"}

    assert cli("key", "list", "alice") == 0
    ids = [line.split("\t")[0] for line in cli.stdout.splitlines()]
    assert sorted(ids) == sorted([first["access_key_id"], second_id, third["access_key_id"]])
    for secret in (first["secret_access_key"], second_secret, third["secret_access_key"]):
        assert secret not in cli.stdout
    listed = cli.json("key", "list", "alice")
    assert sorted(k["access_key_id"] for k in listed) == sorted(ids)
    assert all(set(k) == {"access_key_id", "user", "created"} for k in listed)
    assert first["secret_access_key"] not in cli.stdout

    assert cli("key", "revoke", second_id) == 0
    assert cli.stdout == f"revoked key {second_id}\n"
    assert cli.json("key", "revoke", third["access_key_id"]) == {
        "access_key_id": third["access_key_id"],
        "revoked": True,
    }
    remaining = cli.json("key", "list", "alice")
    assert [k["access_key_id"] for k in remaining] == [first["access_key_id"]]


def test_key_errors(cli):
    cli.fails("key", "create", "nobody", message="no user named 'nobody'")
    cli.fails("key", "list", "nobody", message="no user named 'nobody'")
    cli.fails("key", "revoke", "GWNOSUCHKEY", message="no access key 'GWNOSUCHKEY'")


# Connections.


def test_connection_add_stores_an_absolute_path(cli, tmp_path, bucket_dir, monkeypatch):
    cli("user", "add", "alice")
    monkeypatch.chdir(tmp_path)
    relative = ("--backend", "local", "--path", "photos")
    assert cli("connection", "add", "alice", "photos", *relative) == 0
    assert cli.stdout == f"alice\tphotos\tlocal\t{bucket_dir}\tread-write\n"
    added = cli.json(
        "connection", "add", "alice", "archive", "--backend", "local", "--path", "photos/",
        "--read-only",
    )
    assert added["settings"] == {"path": str(bucket_dir)}
    assert (added["user"], added["bucket"], added["backend"]) == ("alice", "archive", "local")
    assert (added["read_only"], added["created_by_s3"]) == (True, False)
    db = cli.database()
    stored = queries.get_connection(db, "alice", "archive")
    assert stored.read_only and stored.settings == {"path": str(bucket_dir)}
    db.close()


def test_connection_add_errors(cli, tmp_path, bucket_dir):
    cli("user", "add", "alice")
    add = ("connection", "add", "alice")
    path = ("--backend", "local", "--path", str(bucket_dir))
    cli.fails("connection", "add", "nobody", "photos", *path, message="no user named 'nobody'")
    cli.fails(*add, "Photos", *path, message="bucket name 'Photos'")
    cli.fails(*add, "ab", *path, message="3 to 63")
    cli.fails(*add, "192.168.1.1", *path, message="IP address")
    cli.fails(*add, "photos", "--backend", "local", "--path", str(tmp_path / "missing"),
              message="not an existing directory")
    (tmp_path / "file").write_text("x")
    cli.fails(*add, "photos", "--backend", "local", "--path", str(tmp_path / "file"),
              message="not an existing directory")
    cli.fails(*add, "photos", "--backend", "sftp", "--path", str(bucket_dir), message="sftp")
    cli.fails(*add, "photos", "--backend", "local", message="--path")
    assert cli(*add, "photos", *path) == 0
    cli.fails(*add, "photos", *path, message="has a bucket named 'photos'")
    assert len(cli.json("connection", "list")) == 1


def test_connection_list_and_remove(cli, bucket_dir):
    for user in ("bob", "alice"):
        cli("user", "add", user)
    path = ("--backend", "local", "--path", str(bucket_dir))
    for user, bucket in (("bob", "bb2"), ("alice", "zzz"), ("bob", "aa1")):
        assert cli("connection", "add", user, bucket, *path) == 0
    assert cli("connection", "list") == 0
    assert [line.split("\t")[:2] for line in cli.stdout.splitlines()] == [
        ["alice", "zzz"], ["bob", "aa1"], ["bob", "bb2"],
    ]
    assert [c["bucket"] for c in cli.json("connection", "list", "bob")] == ["aa1", "bb2"]
    cli.fails("connection", "list", "nobody", message="no user named 'nobody'")

    assert cli("connection", "remove", "bob", "aa1") == 0
    assert cli.stdout == "removed bucket aa1 of user bob\n"
    assert [c["bucket"] for c in cli.json("connection", "list", "bob")] == ["bb2"]
    cli.fails("connection", "remove", "bob", "aa1", message="has no bucket named 'aa1'")
    assert cli.json("connection", "remove", "alice", "zzz") == {
        "user": "alice", "bucket": "zzz", "removed": True,
    }


# The command line itself.


def test_usage_errors_are_one_line(cli):
    cli.fails(message="required")
    cli.fails("user", message="required")
    cli.fails("frobnicate", message="invalid choice")
    cli.fails("user", "add", message="required")
    cli.fails("user", "list", "extra", message="unrecognized arguments")


def test_help_goes_to_stdout(cli):
    assert cli("connection", "add", "--help") == 0
    assert "--read-only" in cli.stdout


def test_data_directory_from_the_environment_is_made_private(tmp_path):
    data = tmp_path / "from-env"
    stdout, stderr = io.StringIO(), io.StringIO()
    status = admin.run(["user", "add", "alice"], stdout, stderr, {"S3GW_DATA": str(data)})
    assert status == 0, stderr.getvalue()
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(data / DATABASE_FILENAME).st_mode) == 0o600


def test_default_data_directory():
    assert admin.build_parser({}).parse_args(["user", "list"]).data == "/var/lib/s3gateway"


def test_unusable_data_directory_is_status_1(tmp_path):
    (tmp_path / "file").write_text("x")
    cli = Admin(tmp_path / "file")
    assert cli("user", "list") == 1
    assert len(cli.stderr.splitlines()) == 1
    assert cli.stderr.startswith("s3gateway-admin: error: cannot open the database")


@pytest_twisted.ensureDeferred
async def test_works_while_the_daemon_holds_the_store(cli, bucket_dir):
    from twisted.internet import reactor

    store = await open_sqlite_store(os.path.join(cli.data, DATABASE_FILENAME), reactor)
    try:
        await store.add_user("alice")
        key_id = cli.json("key", "create", "alice")["access_key_id"]
        assert (await store.get_key(key_id)).user == "alice"
        assert cli("connection", "add", "alice", "photos", "--backend", "local",
                   "--path", str(bucket_dir)) == 0
        assert (await store.get_connection("alice", "photos")).settings == {
            "path": str(bucket_dir)
        }
        assert cli("key", "revoke", key_id) == 0
        assert await store.get_key(key_id) is None
    finally:
        await store.close()


def test_console_script(tmp_path):
    data = tmp_path / "data"
    environ = dict(os.environ, PYTHONPATH=ROOT)
    command = [sys.executable, "-m", "gateway.admin", "--data", str(data)]
    options = dict(capture_output=True, text=True, env=environ, cwd=str(tmp_path), timeout=60)
    run = subprocess.run([*command, "--json", "user", "add", "zoe"], **options)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["user"] == "zoe"
    run = subprocess.run([*command, "key", "list", "nobody"], **options)
    assert run.returncode == 2
    assert run.stderr == "s3gateway-admin: error: no user named 'nobody'\n"
