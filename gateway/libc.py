"""
Functions of the C library that Python's C{os} module does not offer, found through ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys
from typing import Any, Callable, Optional

#: The architectures where the gateway is known to run whose system call tables share the numbers
#: of every call added since Linux 5.1 (C{cachestat}'s 451, C{openat2}'s 437).
_SHARED_TABLE = frozenset({"x86_64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x"})


def libc_function(
    name: str, *argtypes: Any, restype: Any = ctypes.c_int
) -> Optional[Callable[..., Any]]:
    """
    The C library's function C{name}, taking C{argtypes} and returning C{restype} (an C{int}
    unless told; C{errno} kept for C{ctypes.get_errno}), or C{None} where this C library has
    none.
    """
    try:
        function = getattr(ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True), name)
    except (OSError, AttributeError, TypeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = restype
    return function  # type: ignore[no-any-return]


def new_syscall(*argtypes: Any) -> Optional[Callable[..., int]]:
    """
    The C library's C{syscall} for calling, by number, a Linux system call added since 5.1 (whose
    number every architecture shares) with C{argtypes} after the number; C{None} on another
    system or architecture. The call itself may still fail with C{ENOSYS} on an older kernel.
    """
    if sys.platform != "linux" or platform.machine() not in _SHARED_TABLE:
        return None
    return libc_function("syscall", ctypes.c_long, *argtypes)
