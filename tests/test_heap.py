"""
Tests of L{gateway.heap}, in a process of their own: freezing the test runner's heap would
exempt every test's objects from collection.
"""

from __future__ import annotations

import os
import subprocess
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = """
import gc, weakref
from gateway.heap import freeze_startup_heap

class Node:
    pass

def cycle():
    node = Node()
    node.self = node
    return weakref.ref(node)

before = cycle()
freeze_startup_heap()
print(before() is None, gc.get_freeze_count() > 0)
after = cycle()
gc.collect()
print(after() is None)
"""


def test_startup_garbage_is_freed_and_the_rest_frozen() -> None:
    """
    Garbage left by start-up is collected, not frozen; what remains is frozen; garbage made
    afterwards is still collected.
    """
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPOSITORY, capture_output=True, text=True,
        check=True, env=dict(os.environ, PYTHONPATH=REPOSITORY),
    )
    assert done.stdout.split() == ["True", "True", "True"]
