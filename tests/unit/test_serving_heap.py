"""`freeze_startup_heap`, which `serve` and `stdio` call as they start to serve: what is alive then leaves the cyclic
collector's view (so a full collection no longer walks it), and garbage made later is still collected. The pause it
saves is measured, not asserted: `python -m bench.bench_gateway`, "slowest of"."""

from __future__ import annotations

import gc
import weakref

from lash_gateway.admin._serving import freeze_startup_heap


class Node:
    def __init__(self) -> None:
        self.peer: Node | None = None


def test_the_startup_heap_leaves_the_collectors_view_and_later_cycles_are_still_collected() -> None:
    alive = Node()  # alive before the freeze: it may never be collected again
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 0
        tracked = {id(obj) for obj in gc.get_objects()}
        assert id(alive) not in tracked  # full collections no longer walk it

        first, second = Node(), Node()  # a reference cycle made after the freeze, then dropped
        first.peer, second.peer = second, first
        gone = weakref.ref(first)
        del first, second
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()  # this test process goes on with the collector as it was
