"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`), server scenarios, against the
gateway: a transparent gateway scores what its upstream scores alone.

The upstream is `tests.servers.conformance`, the server the scenarios describe. The scenarios call bare names
(`test_simple_text`), so the gateway attaches it with `prefix: false`. The suite runs twice, against the
upstream served directly over streamable HTTP and against the gateway's `/mcp`, and each scenario must fail no
more checks through the gateway than alone, and warn of no more; both scores are printed (`pytest -s` shows them).
It runs in two editions: the stable release's active scenarios (handshake-era clients), and the scenarios a
prerelease says the 2026-07-28 revision requires (stateless requests, routing headers, cache hints, SEP-2164 and
the rest), which the gateway answers on its own fast path while its upstream speaks the handshake era over stdio.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Final

import anyio
import pytest

from lash_gateway import GatewayConfig, McpServerConfig
from tests.integration._gateway import run_gateway_in_process, wait_servers_connected
from tests.servers.launch import PROJECT_ROOT, UpstreamProcess
from tests.servers.node import CONFORMANCE, CONFORMANCE_2026, NODE, installed

pytestmark = pytest.mark.anyio

SUITE_TIMEOUT: Final = 120.0
Score = dict[str, Counter[str]]
"""Scenario -> how many of its checks ended SUCCESS, FAILURE, WARNING..."""


SUITES: Final = {
    "handshake": (CONFORMANCE, ("--suite", "active")),
    "2026-07-28": (CONFORMANCE_2026, ("--requirements", "2026-07-28")),
}
"""Each edition of the suite: its package, and which of its server scenarios run."""


def run_suite(suite: str, url: str, out: Path) -> tuple[Score, str]:
    """Run the server scenarios of `suite` against `url`; each scenario's checks, and the suite's own summary."""
    package, scenarios = SUITES[suite]
    cli = installed(package)
    done = subprocess.run(
        [str(NODE), str(cli), "server", "--url", url, *scenarios, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
        check=False,
    )
    score: Score = {}
    for checks in out.glob("server-*/checks.json"):
        scenario = checks.parent.name.removeprefix("server-").rsplit("-", 7)[0]
        score[scenario] = Counter(check["status"] for check in json.loads(checks.read_text()))
    summary = next((line for line in done.stdout.splitlines() if line.startswith("Total:")), done.stdout[-2000:])
    return score, summary


def totals(score: Score) -> Counter[str]:
    total: Counter[str] = Counter()
    for counts in score.values():
        total.update(counts)
    return total


@pytest.mark.timeout(300)
@pytest.mark.parametrize("suite", SUITES)
async def test_the_gateway_scores_what_its_upstream_scores_alone(suite: str) -> None:
    with tempfile.TemporaryDirectory(prefix="lash-conformance-") as workdir:
        with UpstreamProcess("streamable_http", module="tests.servers.conformance") as direct:
            alone, alone_summary = await anyio.to_thread.run_sync(
                run_suite, suite, direct.url, Path(workdir) / "direct"
            )
        upstream = McpServerConfig.parse(
            {
                "command": sys.executable,
                "args": ["-m", "tests.servers.conformance", "--transport", "stdio"],
                "cwd": str(PROJECT_ROOT),
                "prefix": False,
            }
        )
        async with run_gateway_in_process(GatewayConfig(servers={"conformance": upstream})) as served:
            await wait_servers_connected(served.base_url, ["conformance"])
            through, through_summary = await anyio.to_thread.run_sync(
                run_suite, suite, served.mcp_url, Path(workdir) / "gateway"
            )
    print(f"\nconformance {suite}, upstream alone: {alone_summary}\nthrough the gateway: {through_summary}")
    assert alone, f"the suite ran no scenario: {alone_summary}"
    assert set(through) == set(alone)
    # INFO is no verdict: the gateway answers `tools/list` with plain JSON where the upstream streams it, which
    # the multiple-streams scenario notes as INFO instead of checking the stream.
    differing = {s: (dict(alone[s]), dict(through[s])) for s in alone if verdicts(alone[s]) != verdicts(through[s])}
    assert not differing, f"scenarios that end differently through the gateway (alone, through): {differing}"
    assert verdicts(totals(through)) == verdicts(totals(alone))


def verdicts(counts: Counter[str]) -> tuple[int, int]:
    """The checks that failed, and those that passed with a warning (a SHOULD the server does not keep)."""
    return counts["FAILURE"], counts["WARNING"]
