"""lash_core benchmarks: what building a session costs, and what reading a large tool surface costs.

`python -m bench.bench_core` prints one table. Each figure is the median of many samples (each sample
the mean of a batch of calls, after a warm-up), printed beside a baseline measured in the same run
with samples interleaved, so the ratio holds on a loaded or slow machine. Targets come from the
contract that `build()` runs for every session, subagent, fork and compaction child.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from bench._report import duration, median_pair, table, verdict_of
from lash_core import (
    LashCore,
    PluginFactory,
    PluginRegistrar,
    PluginSessionContext,
    PluginStack,
    SessionPlugin,
    ToolCall,
    ToolDefinition,
    ToolProvider,
    ToolResult,
    TurnContext,
)
from lash_core.testing import StaticToolProvider, simple_tool

PLUGINS = 10
MANY_TOOLS = 10_000
FEW_TOOLS = 10
BUILD_TARGET_NS = 50_000
"""A session build must stay under 50 µs with the runtime stack and 10 plugins."""
INDEPENDENCE_RATIO = 1.25
"""Build time with 10,000 tools may exceed build time with 10 by this factor (timer noise), no more."""
DEFINITIONS_TARGET_NS = 1_000
"""A cached definitions() hands back a sequence: under 1 µs, whatever the tool count."""
SURFACE_TARGET_NS = 10_000
"""A warm tools() does one definitions() call and one identity check per provider, no per-tool work;
any per-tool step over 10,000 tools would cost 100 µs or more, so 10 µs separates the two."""


# -- what is measured ------------------------------------------------------------------------------


class Settings(BaseModel):
    level: int = 1


async def _answer(call: ToolCall) -> ToolResult:
    return ToolResult.ok("ok")


class BenchPlugin(SessionPlugin):
    """A typical plugin: one shared provider plus one registration in another category."""

    def __init__(self, index: int, provider: ToolProvider) -> None:
        self._index = index
        self._provider = provider

    def register(self, reg: PluginRegistrar) -> None:
        reg.tools().provider(self._provider)
        match self._index % 5:
            case 0:
                reg.tool_calls().before(self._before)
            case 1:
                reg.tool_calls().after(self._after)
            case 2:
                reg.prompt().contribution(self._prompt)
                reg.turn().on_start(self._turn)
            case 3:
                reg.actions().register(f"configure_{self._index}", self._action, input_model=Settings)
            case _:
                reg.session().on_close(self._close)
                reg.monitors().add(self._provider)

    async def _before(self, call: ToolCall) -> None:
        return None

    async def _after(self, call: ToolCall, result: ToolResult) -> None:
        return None

    async def _prompt(self, ctx: PluginSessionContext) -> str:
        return "text"

    async def _turn(self, turn: TurnContext) -> None:
        return None

    async def _action(self, args: object) -> object:
        return args

    async def _close(self, ctx: PluginSessionContext) -> None:
        return None


class BenchPluginFactory(PluginFactory):
    """Owns its provider (the expensive, shared part); `build` hands out a reference to it."""

    def __init__(self, index: int) -> None:
        self._index = index
        self._provider = StaticToolProvider([simple_tool(f"p{index}_tool{t}") for t in range(3)], _answer)

    def id(self) -> str:
        return f"plugin_{self._index}"

    def build(self, ctx: PluginSessionContext) -> SessionPlugin:
        return BenchPlugin(self._index, self._provider)


class PrebuiltListProvider(ToolProvider):
    """The cheapest provider possible: returns a list it was given. The baseline for reads."""

    def __init__(self, definitions: list[ToolDefinition]) -> None:
        self._definitions = definitions

    def definitions(self) -> Sequence[ToolDefinition]:
        return self._definitions

    async def execute(self, call: ToolCall) -> ToolResult:
        return ToolResult.ok("ok")


def tools(count: int) -> list[ToolDefinition]:
    return [simple_tool(f"tool_{i:05d}", query="string", limit="integer") for i in range(count)]


def core_with_plugins(*providers: ToolProvider) -> LashCore:
    builder = LashCore.builder()  # starts from the runtime stack
    for index in range(PLUGINS):
        builder.plugin(BenchPluginFactory(index))
    for provider in providers:
        builder.tools(provider)
    return builder.build()


# -- measuring -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value_ns: float
    baseline_ns: float
    baseline_is: str
    target: str
    passed: bool | None
    """None: informational, no target."""

    @property
    def ratio(self) -> float:
        return self.value_ns / self.baseline_ns if self.baseline_ns else float("inf")

    @property
    def verdict(self) -> str:
        return verdict_of(self.passed)


# -- the figures -----------------------------------------------------------------------------------


def session_build() -> Figure:
    core = core_with_plugins()
    empty = LashCore.builder().plugins(PluginStack()).build()
    value, baseline = median_pair(core.session, empty.session, batch=20, samples=400)
    return Figure(
        f"session build: runtime stack + {PLUGINS} plugins",
        value,
        baseline,
        "empty stack",
        f"< {duration(BUILD_TARGET_NS)}",
        value < BUILD_TARGET_NS,
    )


def build_independent_of_tool_count() -> Figure:
    many = core_with_plugins(PrebuiltListProvider(tools(MANY_TOOLS)))
    few = core_with_plugins(PrebuiltListProvider(tools(FEW_TOOLS)))
    value, baseline = median_pair(many.session, few.session, batch=20, samples=400)
    return Figure(
        f"session build, host provider with {MANY_TOOLS:,} tools",
        value,
        baseline,
        f"same, {FEW_TOOLS} tools",
        f"ratio < {INDEPENDENCE_RATIO}",
        value / baseline < INDEPENDENCE_RATIO,
    )


def definitions_read() -> Figure:
    definitions = tools(MANY_TOOLS)
    provider = StaticToolProvider(definitions)
    prebuilt = PrebuiltListProvider(definitions)
    value, baseline = median_pair(provider.definitions, prebuilt.definitions, batch=1_000, samples=200)
    return Figure(
        f"definitions(), StaticToolProvider, {MANY_TOOLS:,} tools",
        value,
        baseline,
        "prebuilt list provider",
        f"< {duration(DEFINITIONS_TARGET_NS)}",
        value < DEFINITIONS_TARGET_NS,
    )


def warm_surface_read() -> Figure:
    definitions = tools(MANY_TOOLS)
    session = core_with_plugins(PrebuiltListProvider(definitions)).session()
    session.tools()  # the first read builds the surface; later reads reuse it
    prebuilt = PrebuiltListProvider(definitions)
    value, baseline = median_pair(session.tools, prebuilt.definitions, batch=1_000, samples=200)
    return Figure(
        f"session.tools(), warm, {MANY_TOOLS:,} + {3 * PLUGINS} tools",
        value,
        baseline,
        "prebuilt list provider",
        f"< {duration(SURFACE_TARGET_NS)}",
        value < SURFACE_TARGET_NS,
    )


def first_surface_read() -> Figure:
    many = core_with_plugins(PrebuiltListProvider(tools(MANY_TOOLS)))
    few = core_with_plugins(PrebuiltListProvider(tools(FEW_TOOLS)))
    value, baseline = median_pair(
        lambda: many.session().tools(), lambda: few.session().tools(), batch=1, samples=60, warmup=5
    )
    return Figure(
        f"new session + first tools(), {MANY_TOOLS:,} tools",
        value,
        baseline,
        f"same, {FEW_TOOLS} tools",
        "-",
        None,
    )


FIGURES: tuple[Callable[[], Figure], ...] = (
    session_build,
    build_independent_of_tool_count,
    definitions_read,
    warm_surface_read,
    first_surface_read,
)


def render(figures: Sequence[Figure]) -> str:
    header = ("figure", "value", "baseline", "baseline is", "ratio", "target", "verdict")
    rows = [
        (
            f.name,
            duration(f.value_ns),
            duration(f.baseline_ns),
            f.baseline_is,
            f"{f.ratio:.2f}x",
            f.target,
            f.verdict,
        )
        for f in figures
    ]
    return table(header, rows)


NOTES = f"""\
notes:
  plugins: each of the {PLUGINS} shares one provider (3 tools) and adds a hook, prompt, turn, action or close/monitor
    registration; the runtime stack adds the tool output budget (the result projector).
  warm tools(): one definitions() call and one identity check per provider ({PLUGINS + 1} here), no per-tool work.
  first tools(): sessions with the same providers share one surface (the core caches it), so a new
    session's first read does not grow with the tool count either."""


def main() -> None:
    started = time.perf_counter()
    figures = [measure() for measure in FIGURES]
    print("lash_core: median per call; baseline measured in the same run, samples interleaved")
    print(render(figures))
    print(NOTES)
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
