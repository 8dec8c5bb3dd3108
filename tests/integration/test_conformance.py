"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`), server scenarios, against the
gateway: a transparent gateway scores what its upstream scores alone, check for check.

The upstream is `tests.servers.conformance`, the server the scenarios describe. The scenarios call bare names
(`test_simple_text`), so the gateway attaches it with `prefix: false`. Each run goes twice, against the upstream
served directly over streamable HTTP and against the gateway's `/mcp`: every check must end the same through the
gateway as alone, but those a run lists with the reason; both scores are printed (`pytest -s`).

The runs:
- the stable release's active scenarios (handshake-era clients), the upstream behind the gateway over stdio;
- the scenarios a prerelease says the 2026-07-28 revision requires (stateless requests, routing headers, cache
  hints, SEP-2164, input-required rounds and the rest), which the gateway answers on its own fast path, with the
  upstream behind it on 2026-07-28 too (over streamable HTTP: `mode: auto`), so the rounds are the server's;
- the same scenarios with the upstream behind it on the handshake era, so the gateway makes the rounds itself out
  of the server's requests. Over streamable HTTP, where each request to the client rides the call it belongs to: on
  a shared stdio connection a round the suite leaves unanswered keeps its call in flight, and while two are, the
  gateway cannot tell whose a question is and refuses it (see `upstream/_asks.py`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
import httpx2
import pytest
from mcp import MCPError
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    PROTOCOL_VERSION_META_KEY,
)

from lash_gateway import GatewayConfig, McpServerConfig
from tests.integration._gateway import (
    MCP_HEADERS,
    ClientMode,
    InProcessGateway,
    connect,
    run_gateway_in_process,
    sse_messages,
    wait_servers_connected,
)
from tests.servers.launch import PROJECT_ROOT, UpstreamProcess
from tests.servers.node import CONFORMANCE, CONFORMANCE_2026, NODE, installed

pytestmark = pytest.mark.anyio

SUITE_TIMEOUT: Final = 120.0
_STAMP: Final = re.compile(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
"""The time a result directory's name ends with (`server-<scenario>-2026-12-03T22-36-54-892Z`)."""
Score = dict[str, Counter[tuple[str, str]]]
"""Scenario -> its checks, as (check id, how it ended) pairs."""
_RUNNING: Final = re.compile(r"^Running .*\((\d+) scenarios\)", re.MULTILINE)


@dataclass(frozen=True)
class Run:
    """One edition of the suite against the gateway: the package, which of its scenarios run, how the gateway reaches
    the upstream, and the checks that pass alone and end otherwise through the gateway (id -> how they end there,
    None when they do not run, and why)."""

    package: tuple[str, str, str]
    scenarios: tuple[str, ...]
    upstream: Mapping[str, Any]
    ends_otherwise: Mapping[str, tuple[str | None, str]] = field(default_factory=dict)


_STDIO: Final = {
    "command": sys.executable,
    "args": ["-m", "tests.servers.conformance", "--transport", "stdio"],
    "cwd": str(PROJECT_ROOT),
}
_MODERN: Final = ("--requirements", "2026-07-28")
RUNS: Final = {
    "handshake": Run(
        CONFORMANCE,
        ("--suite", "active"),
        _STDIO,
        {
            "server-sse-streams-functional": (
                "INFO",
                "the gateway answers tools/list with plain JSON where the upstream streams it: the scenario notes that"
                " rather than checking the stream",
            )
        },
    ),
    "2026-07-28": Run(CONFORMANCE_2026, _MODERN, {"mode": "auto"}),
    "2026-07-28, upstream on the handshake era": Run(
        CONFORMANCE_2026,
        _MODERN,
        {"mode": "legacy"},
        {
            "sep-2322-elicitation-incomplete": (
                "FAILURE",
                "a handshake-era server names no question: the gateway calls them q0, q1..., and the scenario looks"
                " for the name the server would have given",
            ),
            "sep-2322-elicitation-complete": (None, "the scenario's retry does not run once the check above failed"),
            "sep-2322-ignore-unexpected-params": (
                "WARNING",
                "answers sent ahead of any round, under the names the server would have given, name nothing a"
                " handshake-era server asks",
            ),
            "sep-2575-server-rejects-undeclared-capability": (
                "FAILURE",
                "a handshake-era server hears the gateway's capabilities (sampling among them), so it asks rather than"
                " answer -32021; the gateway refuses the question the client did not declare, and the tool fails",
            ),
            "sep-2575-missing-capability-http-400": (
                "FAILURE",
                "the same call: with no -32021 there is no 400 to check",
            ),
        },
    ),
}


def run_suite(run: Run, url: str, out: Path) -> tuple[Score, str]:
    """Run the scenarios of `run` against `url`; each scenario's checks, and the suite's own summary."""
    cli = installed(run.package)
    done = subprocess.run(
        [str(NODE), str(cli), "server", "--url", url, *run.scenarios, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
        check=False,
    )
    score: Score = {}
    for directory in out.glob("server-*"):
        scenario = _STAMP.sub("", directory.name.removeprefix("server-"))
        checks = directory / "checks.json"
        assert checks.exists(), f"scenario {scenario} ended without its checks: {done.stdout[-2000:]}"
        score[scenario] = Counter((check["id"], check["status"]) for check in json.loads(checks.read_text()))
    running = _RUNNING.search(done.stdout)
    assert running is not None and len(score) == int(running[1]), f"scenarios run: {sorted(score)}, {done.stdout[:500]}"
    summary = next((line for line in done.stdout.splitlines() if line.startswith("Total:")), done.stdout[-2000:])
    return score, summary


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", RUNS)
async def test_the_gateway_scores_what_its_upstream_scores_alone(name: str) -> None:
    run = RUNS[name]
    with tempfile.TemporaryDirectory(prefix="lash-conformance-") as workdir, ExitStack() as stack:
        with UpstreamProcess("streamable_http", module="tests.servers.conformance") as direct:
            alone, alone_summary = await anyio.to_thread.run_sync(run_suite, run, direct.url, Path(workdir) / "alone")
        behind = dict(run.upstream)
        if "command" not in behind:  # a fresh server of its own, over streamable HTTP
            behind["url"] = stack.enter_context(
                UpstreamProcess("streamable_http", module="tests.servers.conformance")
            ).url
        upstream = McpServerConfig.parse({**behind, "prefix": False})
        async with run_gateway_in_process(GatewayConfig(servers={"conformance": upstream})) as served:
            await wait_servers_connected(served.base_url, ["conformance"])
            through, through_summary = await anyio.to_thread.run_sync(
                run_suite, run, served.mcp_url, Path(workdir) / "gateway"
            )
    print(f"\nconformance ({name}), upstream alone: {alone_summary}\nthrough the gateway: {through_summary}")
    assert alone, f"the suite ran no scenario: {alone_summary}"
    assert set(through) == set(alone)
    differing = {
        scenario: (sorted(alone[scenario] - through[scenario]), sorted(through[scenario] - alone[scenario]))
        for scenario in alone
        if _kept(alone[scenario], run) != _kept(through[scenario], run)
    }
    assert not differing, f"checks that end otherwise through the gateway (alone, through): {differing}"
    for check, (there, why) in run.ends_otherwise.items():
        assert _statuses(alone, check) == {"SUCCESS"}, (check, why)
        assert _statuses(through, check) == ({there} if there else set()), (check, why)


def _kept(checks: Counter[tuple[str, str]], run: Run) -> Counter[tuple[str, str]]:
    return Counter({(check, status): n for (check, status), n in checks.items() if check not in run.ends_otherwise})


def _statuses(score: Score, check: str) -> set[str]:
    return {status for checks in score.values() for (name, status) in checks if name == check}


@asynccontextmanager
async def behind_gateway_on_2026() -> AsyncIterator[tuple[InProcessGateway, httpx2.AsyncClient]]:
    """The conformance server on 2026-07-28 (streamable HTTP, `mode: auto`) behind a gateway, and an HTTP client."""
    with UpstreamProcess("streamable_http", module="tests.servers.conformance") as behind:
        upstream = McpServerConfig.parse({"url": behind.url, "mode": "auto", "prefix": False})
        async with (
            run_gateway_in_process(GatewayConfig(servers={"conformance": upstream})) as served,
            httpx2.AsyncClient(timeout=30) as http,
        ):
            await wait_servers_connected(served.base_url, ["conformance"])
            yield served, http


def call_2026(name: str, declared: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The params and headers of a 2026-07-28 `tools/call` of `name` from a client that declared `declared`."""
    meta = {
        PROTOCOL_VERSION_META_KEY: "2026-07-28",
        CLIENT_INFO_META_KEY: {"name": "raw", "version": "0"},
        CLIENT_CAPABILITIES_META_KEY: dict(declared),
    }
    headers = {**MCP_HEADERS, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": name}
    return {"name": name, "arguments": {}, "_meta": meta}, headers


async def test_a_2026_upstream_hears_what_the_client_declared_and_asks_nothing_else() -> None:
    """A 2026-07-28 server behind the gateway asks only what the request's client takes: the gateway tells it the
    client's own capabilities, not the ones its connection declared for every client. A client that takes sampling
    alone gets a round with the sampling question, and its retry completes (the server would have asked for an
    elicitation too, which the client could not answer, and the call would have failed)."""
    params, headers = call_2026("test_input_required_result_capabilities", {"sampling": {}})
    async with behind_gateway_on_2026() as (served, http):
        url = served.mcp_url
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
        [asked] = sse_messages(await http.post(url, json=body, headers=headers))
        round_ = asked["result"]
        assert round_["resultType"] == "input_required", round_
        asked_for = {key: question["method"] for key, question in round_["inputRequests"].items()}
        assert asked_for == {"greeting": "sampling/createMessage"}
        sampled = {"role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "m"}
        retry = {**params, "inputResponses": {"greeting": sampled}, "requestState": round_["requestState"]}
        [done] = sse_messages(await http.post(url, json={**body, "id": 2, "params": retry}, headers=headers))
    assert done["result"]["content"] == [{"type": "text", "text": "answered: greeting"}], done


ASKABLE_KINDS: Final = ("sampling", "elicitation", "roots")
DECLARATIONS: Final[list[dict[str, Any]]] = [
    {"elicitation": {"form": {}}},
    {"elicitation": {}, "sampling": {"tools": {}}},
    {"elicitation": {"url": {}}, "roots": {}},
    {},
]
"""What 2026-07-28 clients declare of each kind of question: forms only (the gateway's own connection declares URLs
too), sampling with tools (it declares none), and so on."""


async def test_a_2026_upstream_hears_each_kind_of_question_as_the_client_declared_it() -> None:
    """A 2026-07-28 server behind the gateway hears, for each kind of question, what the request's client declared of
    it, not what the gateway's connection declares for every client: a client of forms only is never asked to open a
    URL, and a client whose model takes tools gets sampling with tools. The rest of the envelope is the connection's."""
    async with behind_gateway_on_2026() as (served, http):
        url = served.mcp_url
        for index, declared in enumerate(DECLARATIONS):
            params, headers = call_2026("client_capabilities", declared)
            body = {"jsonrpc": "2.0", "id": index, "method": "tools/call", "params": params}
            [answer] = sse_messages(await http.post(url, json=body, headers=headers))
            heard = json.loads(answer["result"]["content"][0]["text"]) or {}
            assert {kind: heard[kind] for kind in ASKABLE_KINDS if kind in heard} == declared, (declared, heard)


@pytest.mark.parametrize("mode", ["http-legacy", "sse-legacy"])
async def test_a_handshake_client_hears_the_2026_upstreams_missing_capability_error(mode: ClientMode) -> None:
    """A 2026-07-28 server that needs a capability the client did not declare refuses the call with -32021 and what
    it requires; the gateway answers its client so, whichever path serves it (the fast path over streamable HTTP,
    the SDK's over legacy SSE), rather than as a failed tool the client could not tell from any other."""
    async with behind_gateway_on_2026() as (served, _), connect(served.base_url, mode) as client:
        with pytest.raises(MCPError) as refused:
            await client.client.call_tool("test_missing_capability", {})
    assert refused.value.code == MISSING_REQUIRED_CLIENT_CAPABILITY, refused.value
    assert refused.value.data == {"requiredCapabilities": {"sampling": {}}}, refused.value.data


REFUSALS: Final[list[tuple[str, str, bool]]] = [
    ("auto", "sampling", True),  # it heard the client's own: the client lacks it
    ("auto", "extensions", False),  # the gateway's connection's: the client cannot change that
    ("legacy", "sampling", False),  # a handshake-era server heard the gateway's capabilities only
]


async def test_only_a_refusal_about_the_client_reaches_it_as_missing_capability() -> None:
    """A server's -32021 reaches the client as that error only when the server judged what the client itself declared:
    a 2026-07-28 server naming kinds of question (it hears them as the client declared them). Naming what only the
    gateway's connection declares (extensions), or coming from a handshake-era server (which heard the gateway's
    capabilities alone), it stays a failed tool: telling the client to declare what it may have declared would leave
    it nothing to do."""
    params, headers = call_2026("refuses_for", {"sampling": {}})
    with UpstreamProcess("streamable_http", module="tests.servers.conformance") as behind:
        servers: dict[str, Mapping[str, Any]] = {"auto": {"url": behind.url, "mode": "auto"}, "legacy": _STDIO}
        for era, capability, lacks in REFUSALS:
            upstream = McpServerConfig.parse({**servers[era], "prefix": False})
            async with (
                run_gateway_in_process(GatewayConfig(servers={"conformance": upstream})) as served,
                httpx2.AsyncClient(timeout=30) as http,
            ):
                await wait_servers_connected(served.base_url, ["conformance"])
                sent = {**params, "arguments": {"capability": capability}}
                body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": sent}
                answer = await http.post(served.mcp_url, json=body, headers=headers)
                [message] = sse_messages(answer)
                if lacks:
                    assert answer.status_code == 400, (era, capability, message)
                    assert message["error"]["code"] == MISSING_REQUIRED_CLIENT_CAPABILITY, (era, capability, message)
                    assert message["error"]["data"] == {"requiredCapabilities": {capability: {}}}
                else:
                    assert answer.status_code == 200, (era, capability, message)
                    assert message["result"]["isError"] and "-32021" in message["result"]["content"][0]["text"]
