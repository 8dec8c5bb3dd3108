"""Tools and sessions shared by the unit tests of `adapters.anthropic` and `adapters.openai`.

`session_with(tool("echo", echo), ...)` builds a session offering in-process tools, each answered by its own
handler; `import_fresh` imports a module in a new interpreter, for checking what an import loads.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from lash_core import LashCore, Session, ToolCall, ToolDefinition, ToolResult
from lash_core.testing import StaticToolProvider, ToolHandler

__all__ = ["ECHO_SCHEMA", "LONG_NAME", "PDF", "PNG", "echo", "import_fresh", "session_with", "tool"]

ECHO_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
LONG_NAME = "mcp__a_server_with_a_rather_long_name__a_tool_whose_name_is_also_quite_long"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(40))).decode()
PDF = base64.b64encode(b"%PDF-1.4\n%fake\n").decode()


def tool(
    name: str, handler: ToolHandler, schema: Mapping[str, Any] | None = None, description: str = ""
) -> tuple[ToolDefinition, ToolHandler]:
    return ToolDefinition.raw(name, description, ECHO_SCHEMA if schema is None else schema), handler


async def echo(call: ToolCall) -> ToolResult:
    return ToolResult.ok(str(call.args["text"]))


def session_with(*tools: tuple[ToolDefinition, ToolHandler]) -> Session:
    """A session offering `tools`, each answered by its own handler."""
    handlers = {definition.name: handler for definition, handler in tools}

    async def dispatch(call: ToolCall) -> ToolResult:
        return await handlers[call.name](call)

    provider = StaticToolProvider((definition for definition, _ in tools), dispatch)
    return LashCore.builder().tools(provider).build().session()


def import_fresh(module: str) -> subprocess.CompletedProcess[str]:
    """Import `module` in a new interpreter, which exits non-zero naming any LLM SDK (anthropic, openai) it loaded."""
    code = (
        f"import sys, {module}; "
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'anthropic', 'openai'}); "
        "sys.exit(str(loaded) if loaded else 0)"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
