"""The rest of the MCP surface for `tests.servers.upstream`: resources, templates, prompts, completion,
subscriptions, and tools that ask the client (sampling, elicitation, roots).

Resources (``<name>`` is the server's ``--name``):

- ``test://static/text``: text ``"static text from <name>"`` (every server lists it: a conflict on purpose).
- ``test://static/blob``: the bytes ``BLOB_BYTES``, base64.
- ``test://<name>/counter``: text, the counter's value; subscribable. ``bump()`` adds one and tells subscribers.
- templates ``test://big/{size}`` (``big_text(size)``) and ``items://{kind}/{id}`` (text ``"<kind>/<id>"``).

Prompts: ``greet(name)`` (one user message ``"Hello, <name>!"``, plus ``"from <name>"`` of the server).
Completion: ``greet``'s ``name`` from ``NAMES``; the template's ``kind`` from ``KINDS`` and ``id`` from the
items of the kind given in the context.

Tools: ``bump()``; ``roots_changes()`` (how many ``notifications/roots/list_changed`` arrived);
``subscribers(uri)`` (how many connections subscribed to ``uri``); ``add_resource(name)``
(lists ``test://added/<name>`` and announces the list change);
``ask(message, mode?)`` (elicits ``{"answer": string}``, or with ``mode: "url"`` sends the user to ``OPEN_URL``,
and answers ``"<action>: <answer>"``); ``sample(prompt, tools?)`` (asks for a completion, offering a tool when
``tools`` is true, and answers with its text); ``roots()`` (answers the client's root URIs, one per line).
Questions ride the request's own stream (``related_request_id``), as the SDK's ``MCPServer`` does; to a
2026-07-28 client they go as an input-required result (one question per round, keyed by its method).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final

import anyio
import mcp_types as types
from mcp.server.session import ServerSession
from mcp.server.subscriptions import ResourcesListChanged, ResourceUpdated
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

if TYPE_CHECKING:
    from tests.servers.upstream import ServerCtx, Upstream

NAMES: Final = ("alice", "albert", "bob")
KINDS: Final = {"fruit": ("apple", "pear"), "veg": ("leek", "kale")}
BIG_TEMPLATE: Final = "test://big/{size}"
ITEMS_TEMPLATE: Final = "items://{kind}/{id}"
ELICIT_SCHEMA: Final = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
OPEN_URL: Final = "https://example.invalid/consent"
"""Where ``ask(mode="url")`` sends its user."""


class Surface:
    """Installs the handlers on `upstream.server`; state is per process, like the tools'."""

    def __init__(self, upstream: Upstream) -> None:
        from tests.servers.upstream import BLOB_BYTES, _schema, big_text

        self._upstream = upstream
        self._big_text = big_text
        self._blob = base64.b64encode(BLOB_BYTES).decode()
        self.name = upstream.options.name
        self.counter = 0
        self.added: list[str] = []
        self._subscribers: dict[str, dict[int, ServerSession]] = {}
        server = upstream.server
        server.add_request_handler("resources/list", types.PaginatedRequestParams, self.list_resources)
        if not upstream.options.no_templates:
            server.add_request_handler("resources/templates/list", types.PaginatedRequestParams, self.list_templates)
        server.add_request_handler("resources/read", types.ReadResourceRequestParams, self.read)
        server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, self.subscribe)
        server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, self.unsubscribe)
        server.add_request_handler("prompts/list", types.PaginatedRequestParams, self.list_prompts)
        server.add_request_handler("prompts/get", types.GetPromptRequestParams, self.get_prompt)
        server.add_request_handler("completion/complete", types.CompleteRequestParams, self.complete)
        server.add_notification_handler("notifications/roots/list_changed", types.NotificationParams, self._roots_moved)
        self.roots_changes = 0
        string = {"type": "string"}
        upstream.add_tool("bump", self._bump, "Add one to the counter resource.", _schema())
        upstream.add_tool("add_resource", self._add_resource, "List one more resource.", _schema({"name": string}))
        upstream.add_tool(
            "ask",
            self._ask,
            "Elicit an answer from the user (with `mode: url`, send the user to a URL; with `then_log`, log it before"
            " answering; with `then_sleep`, sleep that many seconds before answering).",
            _schema(
                {
                    "message": string,
                    "mode": {"enum": ["form", "url"]},
                    "then_log": {"type": "boolean"},
                    "then_sleep": {"type": "number"},
                }
            ),
        )
        upstream.add_tool(
            "sample",
            self._sample,
            "Ask the client's model (with `tools`, offering it a tool).",
            _schema({"prompt": string, "tools": {"type": "boolean"}}),
        )
        upstream.add_tool("roots", self._roots, "The client's roots.", _schema())
        upstream.add_tool("roots_changes", self._roots_changes, "roots/list_changed received so far.", _schema())
        upstream.add_tool(
            "subscribers", self._subscriber_count, "Connections subscribed to a URI.", _schema({"uri": string})
        )

    @property
    def counter_uri(self) -> str:
        return f"test://{self.name}/counter"

    # -- resources

    async def list_resources(
        self, ctx: ServerCtx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        many = self._upstream.options.many_resources
        if many:  # pages of 100 (the cursor is the offset), so the gateway has to walk them
            start = int(params.cursor) if params is not None and params.cursor else 0
            page = [
                types.Resource(uri=f"test://{self.name}/many/{i}", name=f"many {i}")
                for i in range(start, min(many, start + 100))
            ]
            more = str(start + 100) if start + 100 < many else None
            return types.ListResourcesResult(resources=page, next_cursor=more)
        listed = [
            types.Resource(uri="test://static/text", name="static text", mime_type="text/plain"),
            types.Resource(uri="test://static/blob", name="static blob", mime_type="application/octet-stream"),
            types.Resource(uri=self.counter_uri, name="counter", mime_type="text/plain"),
            *(types.Resource(uri=f"test://added/{name}", name=name) for name in self.added),
        ]
        return types.ListResourcesResult(resources=listed)

    async def list_templates(
        self, ctx: ServerCtx, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(
            resource_templates=[
                types.ResourceTemplate(uri_template=BIG_TEMPLATE, name="big"),
                types.ResourceTemplate(uri_template=ITEMS_TEMPLATE, name="items"),
            ]
        )

    async def read(self, ctx: ServerCtx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        contents: types.TextResourceContents | types.BlobResourceContents
        if uri == "test://static/text":
            contents = types.TextResourceContents(uri=uri, mime_type="text/plain", text=f"static text from {self.name}")
        elif uri == "test://static/blob":
            contents = types.BlobResourceContents(uri=uri, mime_type="application/octet-stream", blob=self._blob)
        elif uri == self.counter_uri:
            contents = types.TextResourceContents(uri=uri, mime_type="text/plain", text=str(self.counter))
        elif uri.startswith("test://big/") and uri.removeprefix("test://big/").isdigit():
            contents = types.TextResourceContents(uri=uri, text=self._big_text(int(uri.removeprefix("test://big/"))))
        elif uri.startswith("items://"):
            contents = types.TextResourceContents(uri=uri, text=uri.removeprefix("items://"))
        elif uri.startswith("test://added/") and uri.removeprefix("test://added/") in self.added:
            contents = types.TextResourceContents(uri=uri, text=f"added {uri.removeprefix('test://added/')}")
        else:
            from mcp.shared.exceptions import MCPError

            raise MCPError(-32002, f"no resource {uri}")
        return types.ReadResourceResult(contents=[contents])

    async def subscribe(self, ctx: ServerCtx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        connection = ctx.session._connection  # the SDK has no public connection identity (see upstream.py)
        self._subscribers.setdefault(str(params.uri), {})[id(connection)] = ctx.session
        connection.exit_stack.callback(self._subscribers.get(str(params.uri), {}).pop, id(connection), None)
        return types.EmptyResult()

    async def unsubscribe(self, ctx: ServerCtx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        self._subscribers.get(str(params.uri), {}).pop(id(ctx.session._connection), None)
        return types.EmptyResult()

    async def _roots_moved(self, ctx: ServerCtx, params: types.NotificationParams | None) -> None:
        self.roots_changes += 1

    async def _roots_changes(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=str(self.roots_changes))])

    async def _subscriber_count(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        count = len(self._subscribers.get(str(args.get("uri")), {}))
        return types.CallToolResult(content=[types.TextContent(type="text", text=str(count))])

    # -- prompts and completion

    async def list_prompts(
        self, ctx: ServerCtx, params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        argument = types.PromptArgument(name="name", description="whom to greet", required=True)
        return types.ListPromptsResult(
            prompts=[types.Prompt(name="greet", description="A greeting.", arguments=[argument])]
        )

    async def get_prompt(self, ctx: ServerCtx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        from mcp.shared.exceptions import MCPError

        if params.name != "greet":
            raise MCPError(types.INVALID_PARAMS, f"unknown prompt {params.name!r}")
        name = (params.arguments or {}).get("name", "nobody")
        text = types.TextContent(type="text", text=f"Hello, {name}! (from {self.name})")
        return types.GetPromptResult(
            description="A greeting.", messages=[types.PromptMessage(role="user", content=text)]
        )

    async def complete(self, ctx: ServerCtx, params: types.CompleteRequestParams) -> types.CompleteResult:
        value = params.argument.value
        if isinstance(params.ref, types.PromptReference):
            options: tuple[str, ...] = NAMES if params.ref.name == "greet" and params.argument.name == "name" else ()
        elif params.argument.name == "kind":
            options = tuple(KINDS)
        else:
            kind = (params.context.arguments or {}).get("kind") if params.context else None
            options = KINDS.get(kind or "", ())
        values = [option for option in options if option.startswith(value)]
        return types.CompleteResult(completion=types.Completion(values=values, total=len(values), has_more=False))

    # -- tools

    async def _bump(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        self.counter += 1
        for session in list(self._subscribers.get(self.counter_uri, {}).values()):
            await session.send_resource_updated(self.counter_uri)
        await self._upstream.bus.publish(ResourceUpdated(uri=self.counter_uri))
        return types.CallToolResult(content=[types.TextContent(type="text", text=str(self.counter))])

    async def _add_resource(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        self.added.append(str(args.get("name", "more")))
        for session in self._upstream.legacy_sessions():
            await session.send_resource_list_changed()
        await self._upstream.bus.publish(ResourcesListChanged())
        return types.CallToolResult(content=[types.TextContent(type="text", text="added")])

    async def _ask(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        message = str(args.get("message", "?"))
        params: types.ElicitRequestFormParams | types.ElicitRequestURLParams = types.ElicitRequestFormParams(
            message=message, requested_schema=ELICIT_SCHEMA
        )
        if args.get("mode") == "url":
            params = types.ElicitRequestURLParams(message=message, url=OPEN_URL, elicitation_id="open-1")
        request = types.ElicitRequest(params=params)
        result = await _ask_client(ctx, request, types.ElicitResult)
        answer = (result.content or {}).get("answer")
        if args.get("then_log") and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            await ctx.session.send_log_message(
                "info", {"answer": answer}, "upstream", related_request_id=ctx.request_id
            )
        if args.get("then_sleep"):
            await anyio.sleep(float(args["then_sleep"]))
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"{result.action}: {answer}")])

    async def _sample(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        message = types.SamplingMessage(
            role="user", content=types.TextContent(type="text", text=str(args.get("prompt")))
        )
        tools = [types.Tool(name="lookup", input_schema={"type": "object"})] if args.get("tools") else None
        params = types.CreateMessageRequestParams(messages=[message], max_tokens=50, tools=tools)
        request = types.CreateMessageRequest(params=params)
        result = await _ask_client(ctx, request, types.CreateMessageResult)
        text = result.content.text if isinstance(result.content, types.TextContent) else repr(result.content)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    async def _roots(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        result = await _ask_client(ctx, types.ListRootsRequest(), types.ListRootsResult)
        text = "\n".join(str(root.uri) for root in result.roots)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


INPUT_RESPONSES: ContextVar[Mapping[str, Any] | None] = ContextVar("input_responses", default=None)
"""The `inputResponses` of the `tools/call` being handled (2026-07-28 retries carry the answers there)."""


class NeedInput(Exception):
    """A 2026-07-28 tool asks in its result: `upstream.call_tool` answers with an input-required result."""

    def __init__(self, key: str, request: Any) -> None:
        super().__init__(key)
        self.key, self.request = key, request


async def _ask_client(ctx: ServerCtx, request: Any, result_type: Any) -> Any:
    """Ask the client: a request on the call's stream (handshake era), or an input-required round (2026-07-28)."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        key = request.method
        answer = (INPUT_RESPONSES.get() or {}).get(key)
        if answer is None:
            raise NeedInput(key, request)
        return result_type.model_validate(answer.model_dump() if hasattr(answer, "model_dump") else answer)
    metadata = ServerMessageMetadata(related_request_id=ctx.request_id)
    return await ctx.session.send_request(request, result_type, request_read_timeout_seconds=30, metadata=metadata)
