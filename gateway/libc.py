"""
Functions of the C library that Python's C{os} module does not offer, found through ctypes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Callable, Optional


def libc_function(name: str, *argtypes: Any) -> Optional[Callable[..., int]]:
    """
    The C library's function C{name}, taking C{argtypes} and returning an C{int} (C{errno}
    kept for C{ctypes.get_errno}), or C{None} where this C library has none.
    """
    try:
        function = getattr(ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True), name)
    except (OSError, AttributeError, TypeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]
