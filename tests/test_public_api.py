"""Pins each public namespace's `__all__`: sorted, exact, every name importable.

"Sorted" is isort-style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.

Changing a public API means changing this file on purpose. A new package is one more row in `PUBLIC_API`.
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC_API: dict[str, list[str]] = {
    "lash_core": [
        "ASKED_AS",
        "DEFAULT_MAX_TEXT_CHARS",
        "NO_CALLER",
        "ActionArgumentsError",
        "ActionSpec",
        "AudioPart",
        "Caller",
        "CallerRequest",
        "CallerUnsupported",
        "Cancellation",
        "ContentPart",
        "DuplicatePluginError",
        "ExclusiveRegistrationError",
        "ExtensionContribution",
        "FailureClass",
        "ImagePart",
        "LashCore",
        "LashCoreBuilder",
        "LogReporter",
        "PluginError",
        "PluginFactory",
        "PluginRegistrar",
        "PluginSessionContext",
        "PluginStack",
        "PluginUsageError",
        "ProgressReporter",
        "ResourceLinkPart",
        "ResourcePart",
        "Session",
        "SessionKind",
        "SessionPlugin",
        "SessionSnapshot",
        "TextPart",
        "ToolCall",
        "ToolCallContext",
        "ToolConflictError",
        "ToolDefinition",
        "ToolFailure",
        "ToolOutputBudget",
        "ToolOutputBudgetPluginFactory",
        "ToolProvider",
        "ToolResult",
        "TurnContext",
        "UnknownActionError",
        "UnknownPluginError",
        "apply_budget",
        "ignore_log",
        "ignore_progress",
        "unique_name",
    ],
    "lash_gateway": [
        "DEFAULT_CALL_TIMEOUT",
        "DEFAULT_STARTUP_TIMEOUT",
        "AdminPolicy",
        "AdminSettings",
        "CallTimeout",
        "ConfigError",
        "ExportSettings",
        "Gateway",
        "GatewayConfig",
        "GatewayError",
        "GatewaySettings",
        "HttpServerConfig",
        "McpConnectionPool",
        "McpExport",
        "McpPluginFactory",
        "McpServerConfig",
        "McpSessionPlugin",
        "McpToolProvider",
        "NetworkGuard",
        "OAuthConfig",
        "PolicyError",
        "PostgresStore",
        "ServerConfig",
        "ServerDetached",
        "ServerNotAttached",
        "ServerStatus",
        "SkippedTool",
        "StateError",
        "StateStore",
        "StdioServerConfig",
        "Store",
        "StoreError",
        "StoredChange",
        "ToolFilter",
        "ToolOverride",
        "UnknownPrompt",
        "UnknownResource",
        "UnknownTool",
        "UpstreamCallError",
        "UpstreamError",
        "UpstreamProtocolError",
        "UpstreamUnavailable",
        "View",
        "export_name",
        "load_gateway_config",
        "load_mcp_servers",
        "redacted",
    ],
    "adapters": [],
    "adapters.anthropic": [
        "DEFAULT_SAMPLING_MAX_TOKENS",
        "NameMap",
        "SamplingHandler",
        "run_tool_uses",
        "sampling_handler",
        "sampling_request",
        "sampling_result",
        "tool_definitions",
        "tool_names",
    ],
    "adapters.openai": [
        "NameMap",
        "chat_tools",
        "response_tools",
        "run_function_calls",
        "run_tool_calls",
        "tool_names",
    ],
    "lash_core.testing": [
        "CallbackPluginFactory",
        "RegisterFunction",
        "StaticToolProvider",
        "ToolHandler",
        "echo",
        "returns",
        "simple_tool",
    ],
}


def isort_style(name: str) -> tuple[int, str]:
    group = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return group, name


@pytest.mark.parametrize(("module_name", "expected"), PUBLIC_API.items(), ids=list(PUBLIC_API))
def test_dunder_all_is_sorted_exact_and_importable(module_name: str, expected: list[str]) -> None:
    module = importlib.import_module(module_name)
    exported = list(module.__all__)

    assert exported == sorted(exported, key=isort_style), f"{module_name}.__all__ is not sorted"
    assert exported == expected
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == [], f"{module_name}.__all__ names what the module does not define"


@pytest.mark.parametrize("module_name", list(PUBLIC_API))
def test_star_import_gives_exactly_dunder_all(module_name: str) -> None:
    namespace: dict[str, object] = {}

    exec(f"from {module_name} import *", namespace)

    assert sorted(name for name in namespace if name != "__builtins__") == sorted(PUBLIC_API[module_name])
