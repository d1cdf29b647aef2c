"""
The serving process's heap, as CPython's cyclic garbage collector sees it.

What a gateway process makes before it serves (the modules, Twisted, the site, the store) lives
as long as the process, yet every full collection scanned it all. With one worker serving 4 KiB
GETs there were 4 full collections per 10,000 requests, 27 ms each: about 11 µs per GET, some 5%
of its CPU (bench/RESULTS.md). L{freeze_startup_heap} moves those objects to the permanent
generation, which collections skip (C{gc.freeze}, as CPython's documentation of the C{gc} module
suggests for long-running servers); what is made later, per request or in caches, is collected
as before.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """
    Collect what start-up left as garbage (frozen, it would never be freed), then exempt every
    object that remains from later collections. Call once the process is ready to serve.
    """
    gc.collect()
    gc.freeze()
