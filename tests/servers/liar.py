"""An MCP server over stdio that breaks the protocol on purpose, written by hand (stdlib only).

The SDK validates what its servers send, so it cannot play a server that lies; this one speaks newline-delimited
JSON-RPC itself. `python -m tests.servers.liar`. It answers `initialize` (echoing the client's protocol version),
`tools/list` and `ping` correctly; each tool answers `tools/call` its own way:

- ``no_answer_fields``: a response with neither ``result`` nor ``error``.
- ``error_not_an_object``: ``"error": "nope"``.
- ``result_not_an_object``: ``"result": [1, 2]``.
- ``refuse``: a well-formed JSON-RPC error, code ``REFUSE_CODE``, message ``REFUSE_MESSAGE``.
- ``noise_then_answer``: a non-JSON line, a response to an id nobody sent, a progress notification for a token
  nobody holds, then the right answer (text ``"answered"``).
- ``log_then_answer``: a ``notifications/message`` (logger ``liar``, data ``{"before": "answer"}``), then the answer.
- ``bad_log_then_answer``: a ``notifications/message`` at level ``"loud"`` (no such level), then the answer.
- ``deaf``: a ``notifications/message`` (data ``"deaf"``), then never answers and never reads its stdin again (what
  the gateway writes then piles up in the pipe).
- ``unterminated(size)``: ``size`` bytes of ``x`` with no newline, then nothing; the call is never answered.
- ``flood(count, read)``: ``count`` ``ping`` requests, each with a fresh id. With ``read`` it goes on reading its
  stdin and answers ``{"answered": count}`` (structured) once every ping is answered; without, it never reads its
  stdin again, so the gateway's answers pile up in the pipe.

It exits when its stdin closes (unless it stopped reading).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any, Final

REFUSE_CODE: Final = -32042
REFUSE_MESSAGE: Final = "the liar refuses"
TOOLS: Final = (
    "no_answer_fields",
    "error_not_an_object",
    "result_not_an_object",
    "refuse",
    "noise_then_answer",
    "log_then_answer",
    "bad_log_then_answer",
    "deaf",
    "unterminated",
    "flood",
)
ANSWER: Final = {"content": [{"type": "text", "text": "answered"}], "isError": False}
FLOOD_ID_PREFIX: Final = "flood-"
"""The ids of ``flood``'s pings, told apart from the gateway's requests by it."""

_write_lock = threading.Lock()
"""One message at a time on stdout: ``flood`` writes from a thread while the main one answers."""
_flood: dict[str, Any] = {}
"""The ``flood`` waiting for its pings' answers: its request id, how many pings, how many answered."""


def _write(message: Any) -> None:
    with _write_lock:
        sys.stdout.write((message if isinstance(message, str) else json.dumps(message)) + "\n")
        sys.stdout.flush()


def _unterminated(size: int) -> None:
    chunk = b"x" * 65536
    with _write_lock:  # no message may follow: the line is never ended
        sys.stdout.flush()
        while size > 0:
            size -= os.write(sys.stdout.fileno(), chunk[:size])


def _pings(count: int) -> None:
    for i in range(count):
        _write({"jsonrpc": "2.0", "id": f"{FLOOD_ID_PREFIX}{i}", "method": "ping"})


def _call(request_id: Any, tool: str, arguments: dict[str, Any]) -> None:
    reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if tool == "error_not_an_object":
        reply["error"] = "nope"
    elif tool == "result_not_an_object":
        reply["result"] = [1, 2]
    elif tool == "refuse":
        reply["error"] = {"code": REFUSE_CODE, "message": REFUSE_MESSAGE}
    elif tool == "noise_then_answer":
        _write("this is not JSON")
        _write({"jsonrpc": "2.0", "id": "nobody-asked", "result": {}})
        _write({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "x", "progress": 1}})
        reply["result"] = ANSWER
    elif tool in ("log_then_answer", "bad_log_then_answer"):
        level = "warning" if tool == "log_then_answer" else "loud"
        log = {"level": level, "logger": "liar", "data": {"before": "answer"}}
        _write({"jsonrpc": "2.0", "method": "notifications/message", "params": log})
        reply["result"] = ANSWER
    elif tool == "deaf":
        _write({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "deaf"}})
        threading.Event().wait()  # until the gateway stops the process
    elif tool == "unterminated":
        # From a thread: the main one goes on reading stdin, so the process exits when the gateway closes it.
        threading.Thread(target=_unterminated, args=(int(arguments["size"]),), daemon=True).start()
        return
    elif tool == "flood":
        count = int(arguments["count"])
        if not arguments.get("read"):
            _pings(count)
            threading.Event().wait()  # never reads again; until the gateway stops the process
        _flood.update(id=request_id, count=count, answered=0)
        threading.Thread(target=_pings, args=(count,), daemon=True).start()
        return
    elif tool != "no_answer_fields":
        reply["error"] = {"code": -32602, "message": f"unknown tool {tool!r}"}
    _write(reply)


def main() -> None:
    for line in sys.stdin:
        message = json.loads(line)
        method, request_id = message.get("method"), message.get("id")
        if method is None and str(request_id).startswith(FLOOD_ID_PREFIX) and _flood:
            _flood["answered"] += 1
            if _flood["answered"] == _flood["count"]:
                result = {**ANSWER, "structuredContent": {"answered": _flood["count"]}}
                _write({"jsonrpc": "2.0", "id": _flood.pop("id"), "result": result})
                _flood.clear()
            continue
        if request_id is None or method is None:
            continue  # notifications, and answers to requests this server never sends
        if method == "initialize":
            result = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "liar", "version": "0"},
            }
            _write({"jsonrpc": "2.0", "id": request_id, "result": result})
        elif method == "tools/list":
            tools = [{"name": name, "inputSchema": {"type": "object"}} for name in TOOLS]
            _write({"jsonrpc": "2.0", "id": request_id, "result": {"tools": tools}})
        elif method == "tools/call":
            params = message["params"]
            _call(request_id, params["name"], params.get("arguments") or {})
        elif method == "ping":
            _write({"jsonrpc": "2.0", "id": request_id, "result": {}})
        else:
            _write({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "method not found"}})


if __name__ == "__main__":
    main()
