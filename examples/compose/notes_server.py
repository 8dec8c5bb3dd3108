"""A small MCP server for the compose example: notes over streamable HTTP, built with the official SDK.

    python notes_server.py [--host 0.0.0.0] [--port 9000] [--allowed-host notes:*]...

Serves MCP (streamable HTTP) at ``/mcp`` and ``GET /healthz`` for the container healthcheck. Tools:
``add_note(text)`` stores a note and returns it with its id; ``list_notes()`` returns every note;
``clear_notes()`` removes them all. Notes live in this process's memory only.

The SDK's DNS-rebinding protection stays on: requests must carry a loopback ``Host`` or one passed with
``--allowed-host`` (in compose, the service name the gateway connects to, ``notes:*``).
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]


class Note(BaseModel):
    id: int
    text: str


class NoteList(BaseModel):
    notes: list[Note]


def build_server() -> MCPServer:
    server = MCPServer("notes", instructions="A shared notepad: add notes, list them, clear them.")
    notes: list[Note] = []
    ids = itertools.count(1)

    @server.tool()
    def add_note(text: str) -> Note:
        """Store a note and return it with its id."""
        note = Note(id=next(ids), text=text)
        notes.append(note)
        return note

    @server.tool()
    def list_notes() -> NoteList:
        """Every note stored so far, oldest first."""
        return NoteList(notes=list(notes))

    @server.tool()
    def clear_notes() -> NoteList:
        """Remove every note; returns the notes that were removed."""
        removed = NoteList(notes=list(notes))
        notes.clear()
        return removed

    return server


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST",
        help="extra Host header value to accept, e.g. notes:* (repeatable; loopback is always accepted)",
    )
    args = parser.parse_args(argv)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*LOOPBACK_HOSTS, *args.allowed_host],
        allowed_origins=[f"http://{host}" for host in [*LOOPBACK_HOSTS, *args.allowed_host]],
    )
    app = build_server().streamable_http_app(streamable_http_path="/mcp", transport_security=security, host=args.host)
    app.add_route("/healthz", healthz, methods=["GET"])
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
