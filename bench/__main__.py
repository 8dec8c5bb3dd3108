"""Run every benchmark module in turn: `python -m bench`. A new benchmark is one more line in `MODULES`."""

from __future__ import annotations

import importlib

MODULES = (
    "bench.bench_core",
    "bench.bench_pool",
    "bench.bench_gateway",
    "bench.bench_load",
    "bench.bench_search",
    "bench.bench_replicas",
)


def main() -> None:
    for index, name in enumerate(MODULES):
        if index:
            print()
        print(f"== {name}")
        importlib.import_module(name).main()


if __name__ == "__main__":
    main()
