"""The MCP reference server `@modelcontextprotocol/server-everything` (npm) behind the gateway: a third-party server
that uses the whole surface. It registers some tools only for clients that declare sampling, elicitation and
roots, so those appearing through the gateway proves the gateway declares them; a client's own callbacks answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import anyio
import mcp_types as types
import pytest
from mcp.client.context import ClientRequestContext

from lash_gateway import McpServerConfig
from tests.integration._gateway import GatewayClient, InProcessGateway, connect, connected_gateway, text_of
from tests.servers.node import EVERYTHING, NODE, installed

pytestmark = pytest.mark.anyio

WAIT: Final = 30.0
ROOT: Final = "file:///home/ann/project"


@asynccontextmanager
async def everything_gateway() -> AsyncIterator[InProcessGateway]:
    script = await anyio.to_thread.run_sync(installed, EVERYTHING)
    config = McpServerConfig.stdio(str(NODE), [str(script), "stdio"], startup_timeout=WAIT)
    async with connected_gateway({"everything": config}, wait=WAIT) as served:
        yield served


@asynccontextmanager
async def answering_client(base_url: str, asked: list[types.ElicitRequestParams]) -> AsyncIterator[GatewayClient]:
    async def sample(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="sampled by ann"), model="ann-model"
        )

    async def elicit(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        return types.ElicitResult(action="decline")

    async def roots(context: ClientRequestContext) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root.model_validate({"uri": ROOT, "name": "project"})])

    async with connect(
        base_url, "http-legacy", sampling_callback=sample, elicitation_callback=elicit, list_roots_callback=roots
    ) as handle:
        yield handle


@pytest.mark.timeout(180)
async def test_the_reference_server_works_through_the_gateway() -> None:
    asked: list[types.ElicitRequestParams] = []
    async with everything_gateway() as served, answering_client(served.base_url, asked) as handle:
        client = handle.client
        names = await handle.tool_names()
        # Offered only to clients that declare the capabilities: the gateway declares them upstream.
        assert {"everything__trigger_sampling_request", "everything__get_roots_list"} <= names
        assert "everything__trigger_elicitation_request" in names

        with anyio.fail_after(WAIT):
            sampled = await client.call_tool("everything__trigger_sampling_request", {"prompt": "hi", "maxTokens": 20})
            assert "sampled by ann" in text_of(sampled)
            rooted = await client.call_tool("everything__get_roots_list", {})
            assert ROOT in text_of(rooted)
            declined = await client.call_tool("everything__trigger_elicitation_request", {})
            assert "decline" in text_of(declined).lower()
            # URL mode: the client is asked to open a URL, and says no.
            url_args = {
                "url": "https://example.com/verify",
                "message": "Verify",
                "elicitationId": "e-1",
                "errorPath": False,
            }
            await client.call_tool("everything__trigger_url_elicitation", url_args)
            assert any(isinstance(params, types.ElicitRequestURLParams) for params in asked), asked

            resources = (await client.list_resources()).resources
            documents = [r for r in resources if str(r.uri).startswith("demo://resource/static/document/")]
            assert documents, [str(r.uri) for r in resources]
            read = await client.read_resource(str(documents[0].uri))
            assert read.contents
            templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
            assert "demo://resource/dynamic/text/{resourceId}" in templates
            dynamic = await client.read_resource("demo://resource/dynamic/text/7")
            assert dynamic.contents

            prompts = {p.name for p in (await client.list_prompts()).prompts}
            assert {"everything__simple_prompt", "everything__args_prompt"} <= prompts
            got = await client.get_prompt("everything__args_prompt", {"city": "Lyon", "state": "Rhone"})
            assert "Lyon" in json.dumps(got.model_dump(mode="json"))
