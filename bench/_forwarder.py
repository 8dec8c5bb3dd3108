"""An ideal forwarder: the least a Python gateway can do for a 2026-07-28 `tools/call` with a stdio upstream. The
benchmark measures it beside the gateway, so the gateway's latency can be read against what any gateway on the same
machine would add.

It is an HTTP server on the gateway's event loop and parser (uvloop, httptools), without uvicorn's ASGI layer, that
hands each POSTed request's method and params to one stdio upstream over its pipe and answers with the upstream's
result, stamped as a 2026-07-28 result; a `server/discover` it answers itself, so an SDK client in `mode="auto"`
can use it as it uses a 2026-07-28 server. Nothing else: no checks of any kind, no sessions, no plugins, no views,
no limits, no audit, no error answers (a request it cannot forward closes its client's connection).

`python -m bench._forwarder <upstream command...>` prints its port on a line of its own, then serves on 127.0.0.1
until its stdin ends (its parent closed it, or is gone), and stops its upstream then.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import threading
from typing import Any, cast

import httptools
import uvloop

from tests.integration._gateway import initialize_body

_INFO = {"name": "forwarder", "version": "0"}
_STAMP = {"io.modelcontextprotocol/serverInfo": _INFO}
_DISCOVERED = {
    "supportedVersions": ["2026-07-28"],
    "capabilities": {"tools": {}},
    "serverInfo": _INFO,
    "cacheScope": "private",
    "ttlMs": 0,
}
"""Its own answer to `server/discover`: a 2026-07-28 server with tools."""


class Upstream:
    """One stdio upstream: requests written to its stdin, answers matched by id from its stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._stdin, self._stdout = process.stdin, process.stdout
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    async def start(self) -> None:
        self._stdin.write(json.dumps(initialize_body()).encode() + b"\n")
        json.loads(await self._stdout.readline())
        self._stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    async def read(self) -> None:
        """Hand each answer to its call; the upstream's end (or a line that is no JSON) ends the forwarder."""
        while line := await self._stdout.readline():
            message = json.loads(line)
            future = self._pending.pop(message.get("id"), None)
            if future is not None:
                future.set_result(message)
        raise RuntimeError("the upstream ended")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The upstream's result for `method` with `params` (their 2026-07-28 `_meta` envelope left out)."""
        request_id = next(self._ids)
        future = self._pending[request_id] = asyncio.get_running_loop().create_future()
        params = {key: value for key, value in params.items() if key != "_meta"}
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self._stdin.write(json.dumps(request).encode() + b"\n")
        result: dict[str, Any] = (await future)["result"]
        return result


class Http(asyncio.Protocol):
    """One client connection: each request is answered when the upstream answers it (`server/discover` at once)."""

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        self._parser = httptools.HttpRequestParser(self)
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is one, without deriving from it

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body, self._body = b"".join(self._body), []
        asyncio.get_running_loop().create_task(self._answer(json.loads(body)))

    async def _answer(self, request: dict[str, Any]) -> None:
        try:
            if request["method"] == "server/discover":
                result = dict(_DISCOVERED)
            else:
                result = await self._upstream.request(request["method"], request.get("params") or {})
                if request["method"].endswith("/list"):  # this era's lists carry cache hints
                    result |= {"cacheScope": "private", "ttlMs": 0}
        except Exception:
            self._transport.close()
            raise
        result["resultType"] = "complete"
        result["_meta"] = _STAMP
        body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        self._transport.write(head + body)


async def serve(command: list[str]) -> None:
    loop = asyncio.get_running_loop()
    parent_gone = asyncio.Event()

    def watch_parent() -> None:
        while os.read(0, 4096):  # b"" once the parent closed it, or is gone (unbuffered: no lock held at exit)
            pass
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            loop.call_soon_threadsafe(parent_gone.set)

    threading.Thread(target=watch_parent, daemon=True).start()
    process = await asyncio.create_subprocess_exec(*command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        upstream = Upstream(process)
        await upstream.start()
        server = await loop.create_server(lambda: Http(upstream), "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        # Whichever ends first ends the forwarder: its parent, the upstream (an error), or the server.
        ends = [loop.create_task(parent_gone.wait()), loop.create_task(upstream.read()), server.serve_forever()]
        done, pending = await asyncio.wait(
            [asyncio.ensure_future(end) for end in ends], return_when=asyncio.FIRST_COMPLETED
        )
        for end in pending:
            end.cancel()
        for end in done:
            end.result()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


if __name__ == "__main__":
    uvloop.run(serve(sys.argv[1:]))
