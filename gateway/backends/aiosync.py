"""
fsyncs that the kernel runs on its own, with no thread of ours: Linux native AIO
(``io_submit`` with ``IOCB_CMD_FSYNC``), its completions read on the reactor through an eventfd.

Why not a thread: a small PUT's commit waits on fsyncs, and the commit thread that waited for them
traded the GIL with the reactor at each of its dozen system calls. With the fsyncs submitted
from the reactor and the rest of the commit done there (L{gateway.backends.reactorcommits}),
4 KiB PUTs at c=64 on two workers cost 391-514 us of CPU each instead of 593-735, and 2,815-3,566
were served a second instead of 1,824-2,371 (three alternating pairs of runs, bench/README.md).
The kernel also runs the submitted fsyncs side by side: 32 new 4 KiB files took 84 us each so,
against 107-150 one after another.

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
from typing import Any, Dict, List, Optional, Sequence, Tuple

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


class _Submitted:
    """
    The fsyncs of one L{KernelSyncs.fsync_all} call: their errors so far, how many are still
    running, and what fires once none is.
    """

    def __init__(self, count: int) -> None:
        self.errors: List[Optional[BaseException]] = [None] * count
        self.running = 0
        self.done: Deferred[List[Optional[BaseException]]] = Deferred()

    def ended(self, index: int, error: Optional[BaseException]) -> None:
        self.errors[index] = error
        self.running -= 1
        if self.running == 0:
            self.done.callback(self.errors)


@implementer(IReadDescriptor)
class KernelSyncs:
    """
    Submits fsyncs to the kernel, and reads on the reactor which have ended. Used from the
    reactor thread only.
    """

    def __init__(self, reactor: IReactorFDSet, context: int, eventfd: int, call: Any) -> None:
        self._reactor = reactor
        self._context = ctypes.c_ulong(context)
        self._eventfd = eventfd
        self._call = call
        self._numbers = _CALLS[platform.machine()]
        #: The fsyncs running, by tag: their call's record, and their place in it.
        self._running: Dict[int, Tuple[_Submitted, int]] = {}
        self._tags = 0
        self._events = (_Event * CAPACITY)()
        # The kernel copies each iocb when it is submitted: one set of them serves every call.
        self._blocks = (_Iocb * CAPACITY)()
        for block in self._blocks:
            block.opcode = _CMD_FSYNC
            block.flags = _FLAG_RESFD
            block.resfd = eventfd
        self._pointers = (ctypes.POINTER(_Iocb) * CAPACITY)(
            *[ctypes.pointer(block) for block in self._blocks]
        )
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
        return len(self._running)

    def fsync_all(self, fds: Sequence[int]) -> "Deferred[List[Optional[BaseException]]]":
        """
        Submit an fsync of each of C{fds}; fires once all have ended, with what each ended in,
        in order: C{None} if it succeeded, its L{OSError}, or L{NotSubmitted} (the kernel did
        not take it: its queue was full, or it refused the descriptor). The descriptors must
        stay open until then.
        """
        submitted = _Submitted(len(fds))
        wanted = 0 if self._closed else min(len(fds), CAPACITY - len(self._running))
        taken = 0
        if wanted:
            blocks = self._blocks
            for index in range(wanted):
                self._tags += 1
                block = blocks[index]
                block.data = self._tags
                block.fildes = fds[index]
            taken = max(
                self._call(self._numbers[3], self._context, ctypes.c_long(wanted), self._pointers),
                0,
            )
            first = self._tags - wanted + 1
            for index in range(taken):
                self._running[first + index] = (submitted, index)
        submitted.running = taken
        refused = NotSubmitted("the kernel did not take this fsync")
        for index in range(taken, len(fds)):
            submitted.errors[index] = refused
        if taken == 0:
            submitted.done.callback(submitted.errors)
        return submitted.done

    # IReadDescriptor

    def fileno(self) -> int:
        return self._eventfd

    def doRead(self) -> None:
        try:
            os.read(self._eventfd, 8)
        except BlockingIOError:
            return
        while self._running:
            count = self._call(
                self._numbers[2], self._context, ctypes.c_long(0),
                ctypes.c_long(CAPACITY), self._events, None,
            )
            if count <= 0:
                return
            done = [(self._events[i].data, self._events[i].res) for i in range(count)]
            for tag, result in done:
                found = self._running.pop(tag, None)
                if found is not None:
                    error = OSError(-result, os.strerror(-result)) if result < 0 else None
                    found[0].ended(found[1], error)
            if count < CAPACITY:
                return

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return "KernelSyncs"

    def close(self) -> None:
        """
        Stop watching and free the context. C{io_destroy} waits for the fsyncs in flight; they
        end in L{NotSubmitted} (their outcome is unknown).
        """
        if self._closed:
            return
        self._closed = True
        self._reactor.removeReader(self)
        self._call(self._numbers[1], self._context)
        os.close(self._eventfd)
        running, self._running = self._running, {}
        for submitted, index in running.values():
            submitted.ended(index, NotSubmitted("closed before the fsync was known to end"))
