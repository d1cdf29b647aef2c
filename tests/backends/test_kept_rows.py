"""
Tests for L{gateway.backends.walmark} and the rows L{ObjectIndex.get} keeps between commits.

Other processes' writes are made through a connection of their own (and, once, by a separate
process): a kept row must never outlive a commit, whoever made it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from gateway.backends.keptrows import KeptRowsBudget
from gateway.backends.localindex import IndexRow, ObjectIndex
from gateway.backends.walmark import HEADER_SIZE, CommitMark


def wal_database(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (k PRIMARY KEY, v)")
    return db


def test_mark_changes_with_each_commit(tmp_path: Path) -> None:
    """
    The mark stays while nothing is committed, reads included, and changes with a commit of
    any connection and with a checkpoint that empties the log; a rolled-back write leaves it.
    """
    path = tmp_path / "db.sqlite3"
    first = wal_database(path)
    second = sqlite3.connect(str(path), isolation_level=None)
    mark = CommitMark.open_for(str(path))
    assert mark is not None
    seen = [mark.current()]
    second.execute("SELECT * FROM t").fetchall()
    assert mark.current() == seen[-1]
    second.execute("INSERT INTO t VALUES (1, 1)")
    assert mark.current() not in seen
    seen.append(mark.current())
    first.execute("INSERT INTO t VALUES (2, 2)")
    assert mark.current() not in seen
    seen.append(mark.current())
    second.execute("BEGIN")
    second.execute("INSERT INTO t VALUES (3, 3)")
    assert mark.current() == seen[-1]
    second.execute("ROLLBACK")
    assert mark.current() == seen[-1]
    first.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert mark.current() not in seen
    assert len(mark.current()) == HEADER_SIZE


def test_no_mark_without_a_wal_index(tmp_path: Path) -> None:
    """
    A database in rollback-journal mode has no -shm file, and so no mark.
    """
    path = tmp_path / "db.sqlite3"
    sqlite3.connect(str(path)).execute("CREATE TABLE t (k)")
    assert CommitMark.open_for(str(path)) is None


def test_no_mark_for_another_format(tmp_path: Path) -> None:
    """
    A wal-index of another version, or not yet initialised, or too short, gives no mark; nor
    does one that no descriptor of this process holds open.
    """
    path = tmp_path / "db.sqlite3"
    shm = tmp_path / "db.sqlite3-shm"
    version = (3007000).to_bytes(4, sys.byteorder)
    shm.write_bytes(version + bytes(8) + b"\x01" + bytes(200))
    assert CommitMark.open_for(str(path)) is None
    held = os.open(shm, os.O_RDONLY)
    try:
        assert CommitMark.open_for(str(path)) is not None
        for content in (
            (3007001).to_bytes(4, sys.byteorder) + bytes(8) + b"\x01" + bytes(200),
            version + bytes(8) + b"\x00" + bytes(200),
            version + bytes(8) + b"\x01" + bytes(20),
        ):
            shm.write_bytes(content)
            assert CommitMark.open_for(str(path)) is None
    finally:
        os.close(held)


def posix_locks_on(path: Path) -> List[str]:
    """
    The POSIX locks this process holds on the file at C{path} (from C{/proc/locks}).
    """
    inode = os.stat(path).st_ino
    return [
        line for line in Path("/proc/locks").read_text().splitlines()
        if "POSIX" in line and f" {os.getpid()} " in line and line.split()[-3].endswith(
            f":{inode}"
        )
    ]


def test_mark_keeps_sqlite_locks(tmp_path: Path) -> None:
    """
    Opening a mark, and dropping it, leaves SQLite's locks on the -shm file as they were: a
    descriptor of the file opened and closed would drop them all, and another process would
    then rebuild the wal-index while this one uses it.
    """
    path = tmp_path / "db.sqlite3"
    db = wal_database(path)
    db.execute("SELECT * FROM t").fetchall()
    shm = tmp_path / "db.sqlite3-shm"
    before = posix_locks_on(shm)
    assert before
    mark = CommitMark.open_for(str(path))
    assert mark is not None
    mark.current()
    del mark
    assert posix_locks_on(shm) == before
    index = ObjectIndex(str(tmp_path / "index.sqlite3"))
    index.get("a")
    held = posix_locks_on(tmp_path / "index.sqlite3-shm")
    assert held and index._mark is not None
    index.get("a")
    assert posix_locks_on(tmp_path / "index.sqlite3-shm") == held


def queries_of(index: ObjectIndex) -> List[str]:
    """
    The statements the index's connection runs from now on (filled in as it runs them).
    """
    statements: List[str] = []
    index._connect().set_trace_callback(statements.append)
    return statements


def selects(statements: List[str]) -> int:
    return sum(1 for s in statements if s.lstrip().upper().startswith("SELECT"))


def row(key: str, etag: str = "e" * 32, size: int = 1) -> IndexRow:
    return IndexRow(key, size, 1000, etag)


@pytest.fixture
def index(tmp_path: Path) -> ObjectIndex:
    made = ObjectIndex(str(tmp_path / "index.sqlite3"))
    made.get("")  # opens the database, and with it the mark
    return made


def other_process(index: ObjectIndex) -> sqlite3.Connection:
    """
    A connection of its own to the index's database, as another process (or another program)
    has.
    """
    return sqlite3.connect(index._path, isolation_level=None)


def test_kept_row_costs_no_query(index: ObjectIndex) -> None:
    """
    A key asked for again, with no commit in between, is answered without a query; so is a key
    that has no row.
    """
    index.put(row("a"))
    statements = queries_of(index)
    assert index.get("a") == row("a")
    assert index.get("none") is None
    assert selects(statements) == 2
    assert index.get("a") == row("a")
    assert index.get("none") is None
    assert selects(statements) == 2


def test_other_connections_commits_are_seen(index: ObjectIndex) -> None:
    """
    A row written, changed or removed by another connection is what the next get returns, for
    kept rows and kept absences alike.
    """
    index.put(row("a"))
    assert index.get("a") == row("a")
    assert index.get("b") is None
    other = other_process(index)
    other.execute("UPDATE objects SET etag = ? WHERE key = 'a'", ("f" * 32,))
    assert index.get("a") == row("a", "f" * 32)
    other.execute("INSERT INTO objects (key, size, mtime_ns, etag, content_type, metadata, "
                  "headers) VALUES ('b', 2, 1000, ?, 'x/y', '{}', '{}')", ("0" * 32,))
    assert index.get("b") == IndexRow("b", 2, 1000, "0" * 32, "x/y")
    other.execute("DELETE FROM objects WHERE key = 'a'")
    assert index.get("a") is None


def test_another_process_commits_are_seen(index: ObjectIndex) -> None:
    """
    The same, with the write made by a separate process.
    """
    index.put(row("a"))
    assert index.get("a") == row("a")
    subprocess.run(
        [sys.executable, "-c",
         "import sqlite3, sys; sqlite3.connect(sys.argv[1], isolation_level=None).execute("
         "\"UPDATE objects SET size = 7 WHERE key = 'a'\")", index._path],
        check=True,
    )
    assert index.get("a") == row("a", size=7)


def test_own_transaction_is_not_kept(index: ObjectIndex) -> None:
    """
    Inside a transaction of this process, get sees the transaction's own rows, and keeps none
    of them: a rolled-back row is never returned after.
    """
    index.put(row("a"))
    assert index.get("a") == row("a")
    with pytest.raises(RuntimeError):
        with index.writing_now():
            index.put(row("a", "f" * 32))
            assert index.get("a") == row("a", "f" * 32)
            index.put(row("c"))
            assert index.get("c") == row("c")
            raise RuntimeError("roll back")
    assert index.get("a") == row("a")
    assert index.get("c") is None
    with index.writing_now():
        index.put(row("c"))
    assert index.get("c") == row("c")


def test_kept_rows_are_bounded(tmp_path: Path) -> None:
    """
    No more rows are kept than the budget allows, counted over every index that shares it:
    the others are asked for each time. A commit, or closing an index, gives its rows back.
    """
    budget = KeptRowsBudget(3)
    first = ObjectIndex(str(tmp_path / "first.sqlite3"), kept_rows=budget)
    second = ObjectIndex(str(tmp_path / "second.sqlite3"), kept_rows=budget)
    for key in "ab":
        first.put(row(key))
        second.put(row(key))
    for key in "ab":
        first.get(key)
        second.get(key)
    assert budget.left == 0
    statements = queries_of(second)
    for key in "ab":
        assert second.get(key) == row(key)
    assert selects(statements) == 1  # one of the two was kept
    first.put(row("c"))  # a commit: the rows kept as of before are dropped at the next get
    first.get("c")
    assert budget.left == 3 - 1 - 1
    first.close()
    assert budget.left == 3 - 1


def test_without_a_mark_every_get_queries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Where the mark cannot be read, no row is kept.
    """
    monkeypatch.setattr(CommitMark, "open_for", classmethod(lambda cls, path: None))
    index = ObjectIndex(str(tmp_path / "index.sqlite3"))
    index.put(row("a"))
    statements = queries_of(index)
    for _ in range(3):
        assert index.get("a") == row("a")
    assert selects(statements) == 3


def test_row_info_made_once_per_kept_row(index: ObjectIndex) -> None:
    """
    The info of a kept row is made once; a row read again after a commit gets its own.
    """
    index.put(IndexRow("a", 1, 1000, "e" * 32, metadata='{"colour": "blue"}'))
    first = index.row_info(index.get("a"))  # type: ignore[arg-type]
    assert first.metadata == {"colour": "blue"}
    assert index.row_info(index.get("a")) is first  # type: ignore[arg-type]
    index.put(IndexRow("a", 1, 1000, "e" * 32, metadata='{"colour": "red"}'))
    again = index.row_info(index.get("a"))  # type: ignore[arg-type]
    assert again.metadata == {"colour": "red"}


def test_closed_index_forgets_kept_rows(index: ObjectIndex) -> None:
    """
    Closing drops the kept rows and the mark; the index opens again on next use.
    """
    index.put(row("a"))
    index.get("a")
    index.close()
    other = sqlite3.connect(index._path, isolation_level=None)
    other.execute("DELETE FROM objects")
    other.close()
    assert index.get("a") is None
