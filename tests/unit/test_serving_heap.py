"""`freeze_startup_heap`, which `serve` and `stdio` call as they start to serve: garbage made before it is collected
first, what is alive then leaves the cyclic collector's view (so a full collection no longer walks it), and the
collector goes on collecting what is made later. The pause it saves is measured, not asserted:
`python -m bench.bench_gateway`, "slowest of"."""

from __future__ import annotations

import gc
import weakref

from lash_gateway.admin._serving import freeze_startup_heap


class Node:
    def __init__(self) -> None:
        self.peer: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A reference cycle nothing else holds: garbage only the cyclic collector frees."""
    first, second = Node(), Node()
    first.peer, second.peer = second, first
    return weakref.ref(first)


def test_the_startup_heap_is_collected_then_frozen_and_later_cycles_are_still_collected() -> None:
    alive = Node()
    before = cycle()
    try:
        freeze_startup_heap()
        assert before() is None  # not frozen in as garbage for the process's life
        assert gc.get_freeze_count() > 0
        assert id(alive) not in {id(obj) for obj in gc.get_objects()}  # full collections no longer walk it
        assert gc.isenabled()
        after = cycle()
        gc.collect()
        assert after() is None
    finally:
        gc.unfreeze()  # this test process goes on with the collector as it was
