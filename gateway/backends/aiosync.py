"""
fsyncs that the kernel runs on its own, with no thread of ours: Linux native AIO
(``io_submit`` with ``IOCB_CMD_FSYNC``), its completions read on the reactor through an eventfd.

Why not a thread: a small PUT's commit waits on fsyncs, and the commit thread that waited for them
traded the GIL with the reactor at each of its dozen system calls. With the fsyncs submitted
from the reactor and the rest of the commit done there (L{gateway.backends.reactorcommits}),
4 KiB PUTs at c=64 on two workers cost 420-445 us of CPU each instead of 600-735, and 3,180-3,310
were served a second instead of 2,000-2,390 (bench/README.md). The kernel also runs the submitted
fsyncs side by side: 32 new 4 KiB files took 84 us each so, against 107-150 one after another.

Nothing here blocks: a submission the kernel cannot take (its queue full, AIO refused) fails at
once with L{NotSubmitted}, and the caller does that fsync another way. Where there is no native
AIO at all (not Linux, an architecture whose call numbers we do not know, a sandbox that forbids
it, C{fs.aio-max-nr} used up), L{KernelSyncs.start} gives C{None}.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from typing import Any, Dict, List, Optional, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFDSet, IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from gateway.libc import libc_function

#: The numbers of io_setup, io_destroy, io_getevents and io_submit, by architecture.
_CALLS = {
    "x86_64": (206, 207, 208, 209),
    # The generic table (include/uapi/asm-generic/unistd.h).
    "aarch64": (0, 1, 4, 2),
    "arm64": (0, 1, 4, 2),
    "riscv64": (0, 1, 4, 2),
}

#: ``IOCB_CMD_FSYNC`` and ``IOCB_FLAG_RESFD`` from ``<linux/aio_abi.h>``.
_CMD_FSYNC = 2
_FLAG_RESFD = 1

#: How many fsyncs one process may have in flight; more wait for the caller's other way.
CAPACITY = 256


class _Iocb(ctypes.Structure):
    # struct iocb, little-endian 64-bit layout (aio_key before aio_rw_flags).
    _fields_ = [
        ("data", ctypes.c_uint64),
        ("key", ctypes.c_uint32),
        ("rw_flags", ctypes.c_int32),
        ("opcode", ctypes.c_uint16),
        ("reqprio", ctypes.c_int16),
        ("fildes", ctypes.c_uint32),
        ("buf", ctypes.c_uint64),
        ("nbytes", ctypes.c_uint64),
        ("offset", ctypes.c_int64),
        ("reserved2", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("resfd", ctypes.c_uint32),
    ]


class _Event(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_uint64),
        ("obj", ctypes.c_uint64),
        ("res", ctypes.c_int64),
        ("res2", ctypes.c_int64),
    ]


class NotSubmitted(Exception):
    """
    The kernel did not take this fsync (queue full, AIO refused, closed): nothing was done.
    """


def _syscall() -> Optional[Any]:
    if sys.platform != "linux" or sys.byteorder != "little" or not hasattr(os, "eventfd"):
        return None
    if platform.machine() not in _CALLS:
        return None
    return libc_function("syscall", ctypes.c_long)


@implementer(IReadDescriptor)
class KernelSyncs:
    """
    Submits fsyncs to the kernel and fires their L{Deferred}s on the reactor as they complete.
    Used from the reactor thread only.
    """

    def __init__(self, reactor: IReactorFDSet, context: int, eventfd: int, call: Any) -> None:
        self._reactor = reactor
        self._context = context
        self._eventfd = eventfd
        self._call = call
        self._numbers = _CALLS[platform.machine()]
        self._waiting: Dict[int, "Deferred[None]"] = {}
        self._tags = 0
        self._events = (_Event * CAPACITY)()
        self._closed = False
        reactor.addReader(self)

    @classmethod
    def start(cls, reactor: IReactorFDSet) -> Optional["KernelSyncs"]:
        """
        A new AIO context watched by C{reactor}, or C{None} where this system has none to give.
        """
        call = _syscall()
        if call is None:
            return None
        setup = _CALLS[platform.machine()][0]
        context = ctypes.c_ulong(0)
        if call(setup, ctypes.c_long(CAPACITY), ctypes.byref(context)) != 0:
            return None
        try:
            # os.eventfd is Python 3.10's; _syscall found it there.
            eventfd = getattr(os, "eventfd")(
                0, getattr(os, "EFD_NONBLOCK") | getattr(os, "EFD_CLOEXEC")
            )
        except OSError:
            call(_CALLS[platform.machine()][1], context)
            return None
        return cls(reactor, context.value, eventfd, call)

    @property
    def in_flight(self) -> int:
        """
        How many submitted fsyncs have not completed.
        """
        return len(self._waiting)

    def fsync_many(self, fds: Sequence[int]) -> List["Deferred[None]"]:
        """
        Submit an fsync of each of C{fds}; one L{Deferred} each, in order, firing with C{None}
        once that fsync succeeded, or failing with its L{OSError}, or at once with
        L{NotSubmitted}. The descriptors must stay open until theirs fires.
        """
        results: List[Deferred[None]] = [Deferred() for _ in fds]
        room = CAPACITY - len(self._waiting)
        wanted = 0 if self._closed else min(len(fds), room)
        taken = 0
        if wanted:
            blocks = (_Iocb * wanted)()
            pointers = (ctypes.POINTER(_Iocb) * wanted)()
            for index in range(wanted):
                self._tags += 1
                block = blocks[index]
                block.data = self._tags
                block.opcode = _CMD_FSYNC
                block.fildes = fds[index]
                block.flags = _FLAG_RESFD
                block.resfd = self._eventfd
                pointers[index] = ctypes.pointer(block)
            submitted = self._call(
                self._numbers[3], ctypes.c_ulong(self._context), ctypes.c_long(wanted), pointers
            )
            taken = max(submitted, 0)
            for index in range(taken):
                self._waiting[blocks[index].data] = results[index]
        for result in results[taken:]:
            result.errback(NotSubmitted("the kernel did not take this fsync"))
        return results

    # IReadDescriptor

    def fileno(self) -> int:
        return self._eventfd

    def doRead(self) -> None:
        try:
            os.read(self._eventfd, 8)
        except BlockingIOError:
            return
        while self._waiting:
            count = self._call(
                self._numbers[2], ctypes.c_ulong(self._context), ctypes.c_long(0),
                ctypes.c_long(CAPACITY), self._events, None,
            )
            if count <= 0:
                return
            done = [(self._events[i].data, self._events[i].res) for i in range(count)]
            for tag, result in done:
                waiting = self._waiting.pop(tag, None)
                if waiting is None:
                    continue
                if result < 0:
                    waiting.errback(OSError(-result, os.strerror(-result)))
                else:
                    waiting.callback(None)
            if count < CAPACITY:
                return

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return "KernelSyncs"

    def close(self) -> None:
        """
        Stop watching and free the context. C{io_destroy} waits for the fsyncs in flight; their
        L{Deferred}s then fail with L{NotSubmitted} (their outcome is unknown).
        """
        if self._closed:
            return
        self._closed = True
        self._reactor.removeReader(self)
        self._call(self._numbers[1], ctypes.c_ulong(self._context))
        os.close(self._eventfd)
        waiting, self._waiting = self._waiting, {}
        for result in waiting.values():
            result.errback(NotSubmitted("closed before the fsync was known to complete"))

