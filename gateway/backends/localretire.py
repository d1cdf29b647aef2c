"""
Replacing or deleting a large object without freeing it while the client waits.

A write that replaces an object renames its temporary file over the old one, and the kernel frees
the old file inside that C{rename}: every block and every cached page of it. For a large object
that is slow (about 250 ms per GiB on the benchmark machine, a sixth of a 1 GiB PUT), and it
happened between the body's last byte and the answer. So before the rename a large old object
gets a second name in ``<root>/.s3gateway/retired`` (a hard link: no data moves), the rename then
only drops its first name, and the file is removed for good in a thread after the answer. A
large object deleted is moved there in the same way (a rename), and so are the parts of a
multipart upload once it is completed or aborted.

A small old object is not worth a second name here; the process may keep it as a spare file
(L{gateway.backends.localspare}). If it does not, its freeing can still be dear: on the
benchmark machine's disk (ext4 without a journal, mounted with ``discard``) a rename over a 4 KiB
file took 80-98 microseconds, against 11 over a file held open elsewhere, since the freed blocks
are discarded before the rename returns. So a write first takes a hold on the small file it
replaces (L{hold}: an ``O_PATH`` descriptor, 2 microseconds), and the rename leaves an open file
without a name; the descriptor is closed in a thread (L{Retirements.close_later}), and that close
frees it. A hand-over to a thread costs more than the free it moves where the disk waits less, so
the descriptors are closed together, up to L{CLOSE_DELAY} after the first or once
L{CLOSE_BATCH} of them are held: a replaced file's space comes back that much later.

Only the gateway reaches that folder, and no listing shows it. A crash between the two steps
leaves a file there; at its first upload to the bucket each process empties the folder, and
removes the temporary files that a crash left (L{sweep_now}). An old object that cannot take a
second name (another filesystem's rules, a link count limit) is freed by the rename, as before.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import threading
import time
from typing import Callable, List, Optional, Sequence, Set, Tuple

from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger

from gateway.backends.localkeys import RESERVED
from gateway.backends.localspare import sweep_dead
from gateway.backends.localtemp import names_in, temporary_files

#: A temporary file untouched this long is a crash's leftover (see L{sweep_now}).
STALE_TEMPORARY_AGE = 24 * 3600

#: Files at least this large are freed in a thread, after the answer and off the reactor (old
#: objects and parts here, a dropped upload's temporary file in L{gateway.backends.localfs});
#: below it, freeing one costs less than the hand-over (about 0.2 ms per MiB freed, against some
#: 50 microseconds).
RETIRE_SIZE = 4 * 1024 * 1024

#: The longest a replaced small file stays held (L{hold}) before it is closed in a thread.
CLOSE_DELAY = 0.05

#: How many held files are closed at once, without waiting for L{CLOSE_DELAY}.
CLOSE_BATCH = 64

_log = Logger()


def retired_folder(root: str) -> str:
    """
    Where the old objects of the resolved C{root} wait for removal.
    """
    return os.path.join(root, RESERVED, "retired")


def _freed_with_its_name(found: os.stat_result) -> bool:
    # A plain file whose only name is the one a write or delete takes away: taking that name
    # frees it.
    return stat.S_ISREG(found.st_mode) and found.st_nlink == 1


def _retirable(found: os.stat_result) -> bool:
    # Large, and freed with its name: freeing it is then what the request would wait for.
    return _freed_with_its_name(found) and found.st_size >= RETIRE_SIZE


def _into_retired(root: str, name_it: Callable[[str], None]) -> Optional[str]:
    """
    Call C{name_it} with a new name in the retired folder (made at first use); the name, or
    C{None} when that failed.
    """
    folder = retired_folder(root)
    name = os.path.join(folder, secrets.token_hex(16))
    try:
        try:
            name_it(name)
        except FileNotFoundError:
            if os.path.isdir(folder):
                return None  # the file went meanwhile
            os.makedirs(folder, mode=0o700, exist_ok=True)
            name_it(name)
    except OSError:
        return None
    return name


def set_aside(root: str, path: str, replaced: Optional[os.stat_result]) -> Optional[str]:
    """
    Give the large regular file at C{path} a second name, so that replacing C{path} leaves its
    blocks for L{Retirements.remove_later}; blocks.

    :param replaced: what a C{stat} of C{path} gave just before (L{localfs.check_clash}), so that
        the usual write, of a new key or a small object, costs no further system call.
    :return: the second name, or C{None} when the file is small, not a plain file with a single
        name, or could not be given another.
    """
    if replaced is None or replaced.st_size < RETIRE_SIZE:
        return None
    try:
        found = os.lstat(path)
    except OSError:
        return None
    if not _retirable(found):
        return None
    return _into_retired(root, lambda name: os.link(path, name, follow_symlinks=False))


def hold(path: str, replaced: Optional[os.stat_result]) -> Optional[int]:
    """
    A descriptor that keeps the file at C{path} in being once a rename has replaced it, so that
    the rename does not free it (L{Retirements.close_later} does); does not block.

    :param replaced: what a C{stat} of C{path} gave just before (L{localfs.check_clash}).
    :return: the descriptor (``O_PATH``: it opens nothing for reading), or C{None} when there is
        nothing to hold: no file, one that another name keeps, one set aside
        (L{set_aside}), or a system without ``O_PATH``.
    """
    if replaced is None or replaced.st_size >= RETIRE_SIZE or not _freed_with_its_name(replaced):
        return None
    try:
        return os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return None


def close_all(descriptors: Sequence[int]) -> None:
    """
    Close C{descriptors}, freeing the replaced files they held (L{hold}); blocks.
    """
    for descriptor in descriptors:
        try:
            os.close(descriptor)
        except OSError:
            pass


def move_aside(root: str, path: str, found: os.stat_result) -> Optional[str]:
    """
    Take the large regular file at C{path} (as C{lstat} C{found} it) out of its folder into the
    retired folder, so that deleting it costs a rename; blocks.

    :return: its name there, or C{None} when it is small, not a plain file with a single name,
        or could not be moved: then it is still at C{path}.
    """
    if not _retirable(found):
        return None
    return _into_retired(root, lambda name: os.rename(path, name))


def move_tree_aside(root: str, directory: str) -> Optional[str]:
    """
    Take C{directory} (a multipart upload's parts) into the retired folder at once; blocks.

    :return: its name there, or C{None} when it could not be moved.
    """
    return _into_retired(root, lambda name: os.rename(directory, name))


def remove(name: str) -> None:
    """
    Remove the retired file or folder C{name} for good; blocks.
    """
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        shutil.rmtree(name, ignore_errors=True)


def sweep_now(root: str, temporary_folder: str) -> None:
    """
    Remove what crashes left behind under the resolved C{root}; blocks. That is whatever is in
    the retired folder (nothing in it is ever needed again), the spare folders of processes that
    have ended (L{gateway.backends.localspare.sweep_dead}), and the files under
    C{temporary_folder} (L{gateway.backends.localtemp.temporary_files}) untouched for
    L{STALE_TEMPORARY_AGE}: an upload in progress writes to its file, so an old one belongs to
    none, whichever process made it. The folders stay.
    """
    folder = retired_folder(root)
    for name in names_in(folder):
        remove(os.path.join(folder, name))
    sweep_dead(root)
    cutoff = time.time() - STALE_TEMPORARY_AGE
    for path in temporary_files(temporary_folder):
        try:
            stale = os.lstat(path).st_mtime < cutoff
        except OSError:
            continue
        if stale:
            remove(path)


class Retirements:
    """
    The removals of set-aside files, and sweeps, that are still running.

    :param run: runs a blocking function in the backend's thread pool, from the reactor thread.
    :param call_from_thread: hands a call to the reactor thread (C{reactor.callFromThread}).
    :param call_later: schedules a call on the reactor thread (C{reactor.callLater}).
    """

    def __init__(
        self,
        run: Callable[..., "Deferred[None]"],
        call_from_thread: Callable[..., None],
        call_later: Callable[..., object],
    ) -> None:
        self._run = run
        self._call_from_thread = call_from_thread
        self._call_later = call_later
        self.pending: Set["Deferred[None]"] = set()
        self._swept: Set[str] = set()
        self._to_close: List[int] = []
        self._to_close_lock = threading.Lock()

    def sweep(self, root: str, temporary_folder: str) -> None:
        """
        The first time it is called for C{root}: remove, in a thread, what crashes left behind
        (L{sweep_now}); callable from any thread.
        """
        if root not in self._swept:
            self._swept.add(root)
            self._call_from_thread(self._start, sweep_now, root, temporary_folder)

    def remove_later(self, name: str) -> None:
        """
        Remove the file or folder C{name} in a thread, without waiting; callable from any thread.
        """
        self._call_from_thread(self._start, remove, name)

    def close_later(self, descriptor: int) -> None:
        """
        Close C{descriptor} (from L{hold}) in a thread, without waiting, with the others held
        by then: L{CLOSE_DELAY} after the first, or at once when L{CLOSE_BATCH} are held.
        Callable from any thread.
        """
        with self._to_close_lock:
            self._to_close.append(descriptor)
            held = len(self._to_close)
        if held == 1:
            self._call_from_thread(self._call_later, CLOSE_DELAY, self._close_queued)
        elif held == CLOSE_BATCH:
            self._call_from_thread(self._close_queued)

    def _close_queued(self) -> None:
        with self._to_close_lock:
            descriptors, self._to_close = self._to_close, []
        if descriptors:
            self._start(close_all, descriptors)

    def _start(self, function: Callable[..., None], *args: object) -> None:
        removal = self._run(function, *args)
        self.pending.add(removal)

        def done(result: object) -> None:
            self.pending.discard(removal)

        removal.addErrback(
            lambda failure: _log.failure("Could not remove {what}", failure, what=args)
        )
        removal.addBoth(done)

    def wait(self) -> "Deferred[List[Tuple[bool, None]]]":
        """
        Fires once every removal started so far, and every close asked for, has ended; call it
        on the reactor thread.
        """
        self._close_queued()
        return DeferredList(list(self.pending), consumeErrors=True)
