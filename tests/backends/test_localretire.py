"""
A large object replaced by a write, or deleted, is freed after the answer, from its name in
``.s3gateway/retired`` (L{gateway.backends.localretire}); a small one replaced, unless kept as a
spare file (L{gateway.backends.localspare}), is held open across the rename and freed when that
hold is closed, in a thread.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import List, Tuple

import pytest
import pytest_twisted

from gateway.backends import localretire, localspare
from gateway.backends.local import LocalBackend
from gateway.model import WriteMetadata
from tests.backends.contract_writes import write_parts
from tests.backends.support import get, leftover_temporary_files, put
from tests.backends.test_local import backend, root  # noqa: F401 (fixtures)


def retired(root: Path) -> List[str]:
    folder = root / ".s3gateway" / "retired"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def watch_removals(backend: LocalBackend) -> List[Tuple[object, object]]:
    """
    The inode and bytes of every file handed for removal, or C{"folder"} and the names in it,
    read when it is handed over.
    """
    seen: List[Tuple[object, object]] = []
    remove_later = backend.retirements.remove_later

    def watching(name: str) -> None:
        if os.path.isdir(name):
            seen.append(("folder", sorted(os.listdir(name))))
        else:
            with open(name, "rb") as file:
                seen.append((os.fstat(file.fileno()).st_ino, file.read()))
        remove_later(name)

    backend.retirements.remove_later = watching  # type: ignore[method-assign]
    return seen


async def all_removed(backend: LocalBackend, root: Path) -> None:
    """
    Wait for the removals under way, then check that the retired folder is empty.
    """
    await backend.retirements.wait()
    assert retired(root) == []


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localretire, "RETIRE_SIZE", 16)


@pytest_twisted.ensureDeferred
async def test_large_object_freed_after_the_answer(
    backend: LocalBackend, root: Path, small_threshold: None
) -> None:
    await put(backend, "a/k", b"the first version, large enough")
    old_inode = os.stat(root / "a" / "k").st_ino
    seen = watch_removals(backend)
    await put(backend, "a/k", b"the second version")
    assert await get(backend, "a/k") == b"the second version"
    assert seen == [(old_inode, b"the first version, large enough")]
    await all_removed(backend, root)
    assert leftover_temporary_files(root) == []


def held_deleted(path: Path) -> List[str]:
    """
    This process's descriptors that still hold a file once named C{path}, now without a name.
    """
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target == f"{path} (deleted)":
            found.append(fd)
    return found


@pytest_twisted.ensureDeferred
async def test_small_object_held_by_the_rename_and_closed_after(
    backend: LocalBackend, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A small object replaced and not kept as a spare file (the process keeps enough of those) is
    not set aside: the write holds it open across the rename, so that the rename does not free
    it, and it is freed when that hold is closed, in a thread.
    """
    monkeypatch.setattr(localspare, "SPARE_COUNT", 0)
    # Long enough that the hold is still there when looked for: waiting closes it.
    monkeypatch.setattr(localretire, "CLOSE_DELAY", 30.0)
    seen = watch_removals(backend)
    closes: List[Tuple[int, int]] = []
    close_later = backend.retirements.close_later

    def watching(descriptor: int) -> None:
        found = os.fstat(descriptor)
        closes.append((found.st_ino, found.st_nlink))
        close_later(descriptor)

    backend.retirements.close_later = watching  # type: ignore[method-assign]
    await put(backend, "k", b"small")
    assert closes == []
    old_inode = os.stat(root / "k").st_ino
    await put(backend, "k", b"smaller")
    assert closes == [(old_inode, 0)]
    assert held_deleted(root / "k") != []
    await backend.retirements.wait()
    assert held_deleted(root / "k") == []
    assert seen == []
    assert retired(root) == []
    assert await get(backend, "k") == b"smaller"


def test_only_a_small_plain_file_with_one_name_is_held(tmp_path: Path) -> None:
    small, large, linked = tmp_path / "small", tmp_path / "large", tmp_path / "linked"
    small.write_bytes(b"x")
    large.write_bytes(b"x" * localretire.RETIRE_SIZE)
    linked.write_bytes(b"x")
    os.link(linked, tmp_path / "other name")
    descriptor = localretire.hold(str(small), os.stat(small))
    assert descriptor is not None
    try:
        assert os.fstat(descriptor).st_ino == os.stat(small).st_ino
    finally:
        os.close(descriptor)
    assert localretire.hold(str(tmp_path / "none"), None) is None
    assert localretire.hold(str(large), os.stat(large)) is None
    assert localretire.hold(str(linked), os.stat(linked)) is None
    assert localretire.hold(str(tmp_path), os.stat(tmp_path)) is None


def test_held_files_are_closed_together(tmp_path: Path) -> None:
    """
    The held files are closed in one hand-over: L{localretire.CLOSE_DELAY} after the first, at
    once when L{localretire.CLOSE_BATCH} are held, or when the backend waits for its removals.
    """
    from twisted.internet.defer import succeed
    from twisted.internet.task import Clock

    clock = Clock()
    batches: List[List[int]] = []

    def run(function, *args):  # type: ignore[no-untyped-def]
        if function is localretire.close_all:
            batches.append(list(args[0]))
        function(*args)
        return succeed(None)

    retirements = localretire.Retirements(run, lambda f, *a: f(*a), clock.callLater)
    (tmp_path / "f").write_bytes(b"x")

    def opened() -> int:
        return os.open(tmp_path / "f", os.O_RDONLY)

    first = [opened(), opened()]
    for descriptor in first:
        retirements.close_later(descriptor)
    assert batches == []
    clock.advance(localretire.CLOSE_DELAY)
    assert batches == [first]
    full = [opened() for _ in range(localretire.CLOSE_BATCH)]
    for descriptor in full:
        retirements.close_later(descriptor)
    assert batches == [first, full]
    last = [opened()]
    retirements.close_later(last[0])
    retirements.wait()
    assert batches == [first, full, last]
    clock.advance(localretire.CLOSE_DELAY)
    assert batches == [first, full, last]


@pytest_twisted.ensureDeferred
async def test_object_with_other_names_not_set_aside(
    backend: LocalBackend, root: Path, tmp_path: Path, small_threshold: None
) -> None:
    await put(backend, "k", b"the first version, large enough")
    os.link(root / "k", tmp_path / "elsewhere")
    seen = watch_removals(backend)
    await put(backend, "k", b"the second version")
    assert seen == []
    assert retired(root) == []
    assert (tmp_path / "elsewhere").read_bytes() == b"the first version, large enough"


@pytest_twisted.ensureDeferred
async def test_link_replaced_without_touching_its_target(
    backend: LocalBackend, root: Path, small_threshold: None
) -> None:
    (root / "target").write_bytes(b"a file put there by other means, large")
    (root / "k").symlink_to(root / "target")
    seen = watch_removals(backend)
    await put(backend, "k", b"new")
    assert seen == []
    assert (root / "target").read_bytes() == b"a file put there by other means, large"
    assert (root / "k").read_bytes() == b"new" and not (root / "k").is_symlink()


@pytest_twisted.ensureDeferred
async def test_failed_rename_keeps_the_old_object(
    backend: LocalBackend, root: Path, small_threshold: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put(backend, "k", b"the first version, large enough")

    def refuse(source: str, target: str) -> None:
        raise PermissionError(13, "refused", target)

    seen = watch_removals(backend)
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        await put(backend, "k", b"the second version")
    monkeypatch.undo()
    assert seen == []  # the second name went at once, not after the answer
    assert await get(backend, "k") == b"the first version, large enough"
    assert os.stat(root / "k").st_nlink == 1
    assert retired(root) == []
    assert leftover_temporary_files(root) == []


@pytest_twisted.ensureDeferred
async def test_close_waits_for_removals(
    backend: LocalBackend, root: Path, small_threshold: None
) -> None:
    await put(backend, "k", b"the first version, large enough")
    await put(backend, "k", b"the second version")
    await backend.close()
    assert retired(root) == []


@pytest_twisted.ensureDeferred
async def test_deleted_large_object_freed_after_the_answer(
    backend: LocalBackend, root: Path, small_threshold: None
) -> None:
    await put(backend, "a/big", b"a large object, large enough")
    await put(backend, "a/small", b"small")
    inode = os.stat(root / "a" / "big").st_ino
    seen = watch_removals(backend)
    await backend.delete("a/big")
    assert seen == [(inode, b"a large object, large enough")]
    await backend.delete("a/small")
    assert len(seen) == 1
    assert not (root / "a").exists()  # both gone, and their folder pruned
    await all_removed(backend, root)


@pytest_twisted.ensureDeferred
async def test_parts_gone_at_once_and_freed_after_the_answer(
    backend: LocalBackend, root: Path
) -> None:
    uploads = root / ".s3gateway" / "uploads"
    seen = watch_removals(backend)
    await write_parts(backend, "u", b"first part", b"second")
    await backend.complete_upload("u", "k", [(1, 10), (2, 6)], WriteMetadata(etag="e-2"))
    assert await get(backend, "k") == b"first partsecond"
    assert not (uploads / "u").exists()
    await write_parts(backend, "v", b"x")
    await backend.abort_upload("v")
    assert not (uploads / "v").exists()
    assert seen == [("folder", ["1", "2"]), ("folder", ["1"])]
    await all_removed(backend, root)
    await backend.abort_upload("never-made")
    assert retired(root) == [] and seen[2:] == []


@pytest_twisted.ensureDeferred
async def test_part_uploaded_again_freed_after_the_answer(
    backend: LocalBackend, root: Path, small_threshold: None
) -> None:
    part = root / ".s3gateway" / "uploads" / "u" / "1"
    await write_parts(backend, "u", b"the first try, large enough")
    inode = os.stat(part).st_ino
    seen = watch_removals(backend)
    await write_parts(backend, "u", b"the retry, also large enough")
    assert part.read_bytes() == b"the retry, also large enough"
    assert seen == [(inode, b"the first try, large enough")]
    await all_removed(backend, root)


@pytest_twisted.ensureDeferred
async def test_crash_leftovers_removed_before_the_first_upload(
    backend: LocalBackend, root: Path
) -> None:
    folder = root / ".s3gateway" / "retired"
    (folder / "folder-of-parts").mkdir(parents=True)
    (folder / "folder-of-parts" / "1").write_bytes(b"part")
    (folder / "old-object").write_bytes(b"old")
    temporary = root / ".s3gateway" / "tmp"
    temporary.mkdir()
    (temporary / "crashed").write_bytes(b"crashed upload")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(temporary / "crashed", (two_days_ago, two_days_ago))
    (temporary / "in-progress").write_bytes(b"another process's upload")
    # Where uploads put their files now: in subfolders (gateway.backends.localtemp).
    (temporary / "7").mkdir()
    (temporary / "7" / "crashed").write_bytes(b"crashed upload")
    os.utime(temporary / "7" / "crashed", (two_days_ago, two_days_ago))
    (temporary / "7" / "in-progress").write_bytes(b"another process's upload")
    await put(backend, "k", b"first")
    await all_removed(backend, root)
    assert sorted(os.path.relpath(path, temporary) for path in leftover_temporary_files(root)) == [
        "7/in-progress", "in-progress"
    ]
    assert (temporary / "7").is_dir()
    # Once per process and bucket, not at every upload.
    (folder / "left-later").write_bytes(b"old")
    await put(backend, "j", b"second")
    await backend.retirements.wait()
    assert retired(root) == ["left-later"]


def test_set_aside_needs_a_large_plain_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    big = root / "big"
    big.write_bytes(b"x" * localretire.RETIRE_SIZE)
    small = root / "small"
    small.write_bytes(b"x")
    assert localretire.set_aside(str(root), str(small), os.stat(small)) is None
    assert localretire.set_aside(str(root), str(big), None) is None
    name = localretire.set_aside(str(root), str(big), os.stat(big))
    assert name is not None and os.path.samefile(name, big)
    assert os.path.dirname(name) == localretire.retired_folder(str(root))
    assert os.stat(localretire.retired_folder(str(root))).st_mode & 0o777 == 0o700


@pytest_twisted.ensureDeferred
async def test_abort_of_an_unknown_upload_makes_nothing(backend: LocalBackend, root: Path) -> None:
    await put(backend, "k", b"x")
    await backend.abort_upload("never-started")
    assert not (root / ".s3gateway" / "retired").exists()
    assert not (root / ".s3gateway" / "uploads").exists()
