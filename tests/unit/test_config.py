"""Server configs: the models, their constructors, the mcpServers loader, redaction and errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from lash_gateway._config import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_MODE,
    DEFAULT_STARTUP_TIMEOUT,
    HttpServerConfig,
    McpServerConfig,
    StdioServerConfig,
    load_mcp_servers,
)
from lash_gateway._errors import ConfigError, GatewayError
from lash_gateway._naming import validate_server_name
from lash_gateway._secrets import redacted, secret_values
from lash_gateway._tool_filter import ToolFilter

SECRET = "sk-live-Do-Not-Print-7f3a"

CLAUDE_DESKTOP = {
    "globalShortcut": "Ctrl+Space",
    "mcpServers": {
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
        },
        "github": {
            "command": "docker",
            "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": SECRET},
        },
    },
}

CLAUDE_CODE = {
    "mcpServers": {
        "sentry": {"type": "http", "url": "https://mcp.sentry.dev/mcp"},
        "linear": {"type": "sse", "url": "https://mcp.linear.app/sse", "headers": {"Authorization": SECRET}},
        "local": {"type": "stdio", "command": "python", "args": ["-m", "srv"], "env": {}},
        "legacy-http": {"type": "streamable-http", "url": "http://127.0.0.1:8000/mcp"},
    }
}

CURSOR = {
    "mcpServers": {
        "remote": {"url": "http://localhost:3000/mcp", "headers": {"API_KEY": SECRET}},
        "py": {"command": "python", "args": ["mcp-server.py"], "env": {"API_KEY": SECRET}},
    }
}


def config_error(obj: object, name: str = "docs") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        McpServerConfig.parse(obj, name=name)  # type: ignore[arg-type]
    return info.value


# --- constructors and defaults ---


def test_stdio_constructor_applies_named_defaults() -> None:
    config = McpServerConfig.stdio("python", ["-m", "srv"], env={"TZ": "UTC"}, cwd=Path("/srv"))
    assert isinstance(config, StdioServerConfig)
    assert (config.transport, config.command, config.args, config.cwd) == ("stdio", "python", ["-m", "srv"], "/srv")
    assert config.env["TZ"].get_secret_value() == "UTC"
    assert (config.startup_timeout, config.call_timeout) == (DEFAULT_STARTUP_TIMEOUT, DEFAULT_CALL_TIMEOUT) == (10, 60)
    assert config.mode == DEFAULT_MODE == "legacy"
    assert config.tools == ToolFilter()


def test_http_constructors_pick_their_transport() -> None:
    streamable = McpServerConfig.streamable_http("https://example.com/mcp", headers={"X-Key": SecretStr(SECRET)})
    sse = McpServerConfig.sse("http://127.0.0.1:8000/sse", call_timeout=5, mode="auto")
    assert isinstance(streamable, HttpServerConfig) and isinstance(sse, HttpServerConfig)
    assert (streamable.transport, sse.transport) == ("streamable_http", "sse")
    assert streamable.headers["X-Key"].get_secret_value() == SECRET
    assert (sse.call_timeout, sse.mode) == (5, "auto")


def test_stdio_args_given_as_one_string_are_refused() -> None:
    with pytest.raises(ConfigError, match="field 'args': must be a list of strings"):
        McpServerConfig.stdio("python", "-m srv")


def test_the_base_type_itself_is_not_instantiable() -> None:
    with pytest.raises(TypeError):
        McpServerConfig()


def test_configs_are_frozen() -> None:
    config = McpServerConfig.stdio("python")
    with pytest.raises(ValidationError):
        config.command = "other"


def test_constructor_errors_are_config_errors_without_a_server() -> None:
    with pytest.raises(ConfigError) as info:
        McpServerConfig.streamable_http("ftp://example.com/x", call_timeout=0)
    assert str(info.value).splitlines() == [
        "field 'call_timeout': Input should be greater than 0",
        "field 'url': URL scheme must be http or https (got 'ftp')",
    ]
    assert info.value.server is None


# --- parse: both shapes ---


def test_parse_accepts_the_typed_shape() -> None:
    config = McpServerConfig.parse({"transport": "sse", "url": "http://h/sse", "tools": {"deny": ["rm*"]}})
    assert isinstance(config, HttpServerConfig)
    assert (config.transport, config.tools.deny) == ("sse", ["rm*"])


def test_parse_infers_stdio_from_command_and_streamable_http_from_url() -> None:
    assert McpServerConfig.parse({"command": "uvx", "args": ["mcp-server-time"]}).transport == "stdio"
    assert McpServerConfig.parse({"url": "https://h/mcp"}).transport == "streamable_http"


@pytest.mark.parametrize(
    ("kind", "transport"),
    [
        ("http", "streamable_http"),
        ("streamable-http", "streamable_http"),
        ("streamable_http", "streamable_http"),
        ("streamableHttp", "streamable_http"),
        ("sse", "sse"),
    ],
)
def test_parse_maps_the_type_key_clients_write(kind: str, transport: str) -> None:
    assert McpServerConfig.parse({"type": kind, "url": "https://h/x"}).transport == transport


def test_parse_returns_a_config_object_unchanged() -> None:
    config = McpServerConfig.stdio("python")
    assert McpServerConfig.parse(config) is config


def test_parse_accepts_gateway_extras_in_the_mcp_servers_shape() -> None:
    config = McpServerConfig.parse(
        {"command": "x", "startup_timeout": 2.5, "call_timeout": 30, "tools": {"allow": ["read_*"]}, "mode": "auto"}
    )
    assert (config.startup_timeout, config.call_timeout, config.tools.allow, config.mode) == (
        2.5,
        30,
        ["read_*"],
        "auto",
    )


def test_parse_accepts_windsurf_server_url_and_ignores_approval_lists() -> None:
    config = McpServerConfig.parse({"serverUrl": "https://h/mcp", "autoApprove": ["x"], "alwaysAllow": []})
    assert isinstance(config, HttpServerConfig)
    assert config.url == "https://h/mcp"


def test_mcp_server_config_validates_either_kind_as_a_field_of_another_model() -> None:
    class Body(BaseModel):
        config: McpServerConfig

    assert isinstance(Body.model_validate({"config": {"transport": "stdio", "command": "x"}}).config, StdioServerConfig)
    assert isinstance(Body.model_validate({"config": {"transport": "sse", "url": "http://h"}}).config, HttpServerConfig)
    built = Body(config=McpServerConfig.streamable_http("http://h/mcp"))
    assert Body.model_validate_json(built.model_dump_json()).config == built.config
    with pytest.raises(ValidationError):
        Body.model_validate({"config": {"transport": "carrier-pigeon"}})


# --- parse: errors name the server and the field ---


def test_url_scheme_error_names_server_and_field() -> None:
    error = config_error({"url": "ftp://files.example.com/mcp"})
    assert str(error) == "server 'docs': field 'url': URL scheme must be http or https (got 'ftp')"
    assert (error.server, error.field) == ("docs", "url")
    assert isinstance(error, ValueError) and isinstance(error, GatewayError)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("example.com/mcp", "URL must start with http:// or https://"),
        ("http:///mcp", "URL has no host"),
        ("http://h:99999/mcp", "URL has a malformed host or port"),
        ("http://h/a b", "URL contains whitespace or control characters"),
    ],
)
def test_malformed_urls_are_refused(url: str, problem: str) -> None:
    assert str(config_error({"url": url})) == f"server 'docs': field 'url': {problem}"


def test_entry_with_neither_command_nor_url_says_what_it_needs() -> None:
    assert str(config_error({"args": ["x"]}, name="x")) == "server 'x': needs 'command' (stdio) or 'url' (HTTP)"


def test_entry_with_both_command_and_url_is_refused() -> None:
    assert "has both 'command' (stdio) and 'url' (HTTP)" in str(config_error({"command": "x", "url": "http://h"}))


def test_unknown_key_is_named_with_the_allowed_keys() -> None:
    error = config_error({"command": "x", "enviroment": {}})
    assert str(error).startswith("server 'docs': field 'enviroment': unknown key for transport 'stdio' (allowed: ")
    assert "env" in str(error)


def test_key_of_the_other_transport_is_an_unknown_key() -> None:
    assert config_error({"url": "http://h", "args": ["x"]}).field == "args"


def test_every_problem_gets_its_own_line() -> None:
    error = config_error({"command": "", "call_timeout": -1, "tools": {"allow": "x"}, "mode": "modern"})
    lines = str(error).splitlines()
    assert lines == [
        "server 'docs': field 'call_timeout': Input should be greater than 0",
        "server 'docs': field 'tools.allow': Input should be a valid list",
        "server 'docs': field 'mode': Input should be 'legacy' or 'auto'",
        "server 'docs': field 'command': must not be empty",
    ]
    assert [field for field, _ in error.problems] == ["call_timeout", "tools.allow", "mode", "command"]


def test_unknown_type_and_transport_values_are_refused() -> None:
    assert config_error({"type": "websocket", "url": "ws://h"}).field == "type"
    assert "got 'grpc'" in str(config_error({"transport": "grpc"}))
    assert config_error({"type": "sse", "transport": "stdio", "command": "x"}).field == "type"


def test_non_object_config_is_refused_without_echoing_it() -> None:
    assert str(config_error([SECRET])) == "server 'docs': server config must be a JSON object (got an array)"


def test_parse_validates_the_name_it_is_given() -> None:
    with pytest.raises(ConfigError, match="control character"):
        McpServerConfig.parse({"command": "x"}, name="bad\nname")


# --- secrets stay secret ---


@pytest.mark.parametrize(
    "obj",
    [
        {"url": "http://h", "headers": {"Authorization": f"Bearer {SECRET}\r\nX-Injected: 1"}},
        {"command": "x", "env": {"TOKEN": f"{SECRET}\0"}},
        {"command": "x", "env": {"TOKEN": SECRET, "BAD=NAME": SECRET}},
        {"command": "x", "env": {"TOKEN": [SECRET]}},
        {"url": "http://h", "headers": {"Bad Header": SECRET}},
        {"type": SECRET * 3, "url": "http://h"},
    ],
)
def test_error_messages_never_contain_secret_values(obj: dict[str, object]) -> None:
    error = config_error(obj)
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert error.__cause__ is None  # the pydantic error (which would show inputs) is not chained


def test_env_header_errors_name_the_variable_or_header() -> None:
    assert str(config_error({"command": "x", "env": {"TOKEN": f"{SECRET}\0"}})) == (
        "server 'docs': field 'env': value of environment variable 'TOKEN' contains a NUL character"
    )
    assert str(config_error({"url": "http://h", "headers": {"Authorization": "a\nb"}})) == (
        "server 'docs': field 'headers': value of header 'Authorization' contains a line break or NUL"
    )


def test_direct_model_validation_errors_hide_inputs() -> None:
    with pytest.raises(ValidationError) as info:
        HttpServerConfig(url="http://h", headers={"A": f"{SECRET}\n"})  # type: ignore[dict-item]
    assert SECRET not in str(info.value)


def test_repr_and_str_of_configs_hide_secrets() -> None:
    stdio = McpServerConfig.stdio("x", ["--api-key", SECRET, f"--token={SECRET}"], env={"TOKEN": SECRET})
    http = McpServerConfig.sse(f"https://user:{SECRET}@h/sse?key={SECRET}", headers={"Authorization": SECRET})
    for config in (stdio, http):
        assert SECRET not in repr(config)
        assert SECRET not in str(config)


def test_redacted_view_masks_values_and_keeps_names() -> None:
    stdio = McpServerConfig.stdio(
        "docker",
        ["run", "--token", SECRET, f"--api-key={SECRET}", f"postgresql://app:{SECRET}@db/app", "-e", "GITHUB_TOKEN"],
        env={"GITHUB_TOKEN": SECRET},
    )
    view = redacted(stdio)
    assert view["env"] == {"GITHUB_TOKEN": "***"}
    assert view["args"] == ["run", "--token", "***", "--api-key=***", "postgresql://***@db/app", "-e", "GITHUB_TOKEN"]
    assert view["transport"] == "stdio"
    assert SECRET not in json.dumps(view)

    http = McpServerConfig.streamable_http(f"https://h/mcp?key={SECRET}&v=2", headers={"Authorization": SECRET})
    view = redacted(http)
    assert view == {
        "transport": "streamable_http",
        "url": "https://h/mcp?key=***&v=***",
        "headers": {"Authorization": "***"},
        "startup_timeout": 10.0,
        "call_timeout": 60.0,
        "tools": {"allow": [], "deny": []},
        "mode": "legacy",
    }


@pytest.mark.parametrize(
    ("args", "shown", "scrubbed"),
    [
        (  # mcp-remote's documented way to pass a token, the usual bridge to remote servers
            ["mcp-remote", "https://h/sse", "--header", f"Authorization: Bearer {SECRET}"],
            ["mcp-remote", "https://h/sse", "--header", "Authorization: ***"],
            f"Bearer {SECRET}",
        ),
        ([f"--header=X-Api-Key:{SECRET}"], ["--header=X-Api-Key: ***"], SECRET),
        (
            ["run", "-e", f"GITHUB_TOKEN={SECRET}", "-e", "GITHUB_TOKEN"],
            ["run", "-e", "GITHUB_TOKEN=***", "-e", "GITHUB_TOKEN"],
            SECRET,
        ),
        (["--api-key", SECRET], ["--api-key", "***"], SECRET),
        (  # mcp-proxy's form: the header's name, then its value
            ["--headers", "Authorization", f"Bearer {SECRET}", "--headers", "Accept", "text/plain"],
            ["--headers", "Authorization", "***", "--headers", "Accept", "***"],
            f"Bearer {SECRET}",
        ),
        (["--tokenizer", "bert-base-uncased"], ["--tokenizer", "***"], None),  # hidden, but no secret's name
        # Hidden all the same, but not scrubbed from every log line by value: they are ordinary words.
        (["--header", "Content-Type: application/json"], ["--header", "Content-Type: ***"], None),
        (["-e", "LOG_LEVEL=debugging"], ["-e", "LOG_LEVEL=***"], None),
        (["--auth", "nonexistent", "--no-auth", "server.py"], ["--auth", "***", "--no-auth", "***"], None),
        (["-H", "127.0.0.1"], ["-H", "127.0.0.1"], None),  # not a header flag of every command
    ],
)
def test_secret_arguments_show_their_names_and_hide_their_values(
    args: list[str], shown: list[str], scrubbed: str | None
) -> None:
    config = McpServerConfig.stdio("npx", args)
    assert redacted(config)["args"] == shown
    assert SECRET not in repr(config)
    assert secret_values(config) == ([scrubbed] if scrubbed else [])


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://h/mcp?{SECRET}", "https://h/mcp?***"),  # a key-only part is the value
        (f"https://h/mcp?v=2&{SECRET}&k=", "https://h/mcp?v=***&***&k="),
    ],
)
def test_a_query_part_without_a_value_is_hidden_and_the_url_kept_as_it_was(url: str, shown: str) -> None:
    config = McpServerConfig.streamable_http(url)
    assert redacted(config)["url"] == shown
    assert SECRET not in repr(config)
    assert SECRET in secret_values(config)


# --- server names ---


@pytest.mark.parametrize("name", ["docs", "My Docs (prod)", "dökumente", "x" * 64])
def test_valid_server_names_are_returned(name: str) -> None:
    assert validate_server_name(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "must not be empty"),
        ("x" * 65, "65 characters long; the limit is 64"),
        ("a\tb", "control character U+0009"),
        ("a\u202eb", "control character U+202E"),
        (" docs", "must not start or end with whitespace"),
    ],
)
def test_invalid_server_names_are_config_errors(name: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        validate_server_name(name)


def test_overlong_name_is_cut_in_the_message() -> None:
    with pytest.raises(ConfigError) as info:
        validate_server_name("x" * 10_000)
    assert len(str(info.value)) < 200
    assert info.value.server == "x" * 10_000


# --- tool filters ---


def test_empty_filter_allows_every_tool() -> None:
    assert ToolFilter().allows("anything")


def test_allow_patterns_are_case_sensitive_globs() -> None:
    tools = ToolFilter(allow=["read_*", "list?"])
    assert [name for name in ("read_file", "Read_file", "list1", "list12", "write") if tools.allows(name)] == [
        "read_file",
        "list1",
    ]


def test_deny_applies_after_allow() -> None:
    tools = ToolFilter(allow=["*_file"], deny=["delete_*"])
    assert tools.allows("read_file")
    assert not tools.allows("delete_file")
    assert not ToolFilter(deny=["*"]).allows("x")


# --- mcpServers files ---


def test_loads_claude_desktop_config_file(tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(json.dumps(CLAUDE_DESKTOP, indent=2), encoding="utf-8")
    servers = load_mcp_servers(path)
    assert list(servers) == ["filesystem", "github"]
    github = servers["github"]
    assert isinstance(github, StdioServerConfig)
    assert github.command == "docker"
    assert github.env["GITHUB_PERSONAL_ACCESS_TOKEN"].get_secret_value() == SECRET


def test_loads_claude_code_mcp_json_with_type_keys() -> None:
    servers = load_mcp_servers(CLAUDE_CODE)
    assert {name: config.transport for name, config in servers.items()} == {
        "sentry": "streamable_http",
        "linear": "sse",
        "local": "stdio",
        "legacy-http": "streamable_http",
    }
    linear = servers["linear"]
    assert isinstance(linear, HttpServerConfig)
    assert linear.headers["Authorization"].get_secret_value() == SECRET


def test_loads_cursor_mcp_json_from_json_text() -> None:
    servers = load_mcp_servers(json.dumps(CURSOR))
    assert isinstance(servers["remote"], HttpServerConfig)
    assert servers["remote"].transport == "streamable_http"
    assert isinstance(servers["py"], StdioServerConfig)


def test_file_with_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(CURSOR).encode())
    assert list(load_mcp_servers(path)) == ["remote", "py"]


def test_disabled_entries_are_left_out_and_approval_lists_ignored() -> None:
    servers = load_mcp_servers(
        {
            "mcpServers": {
                "on": {"command": "node", "args": ["s.js"], "disabled": False, "autoApprove": ["read"]},
                "off": {"command": "node", "disabled": True},
            }
        }
    )
    assert list(servers) == ["on"]


def test_non_boolean_disabled_is_an_error() -> None:
    with pytest.raises(ConfigError, match="server 'a': field 'disabled': must be true or false"):
        load_mcp_servers({"mcpServers": {"a": {"command": "x", "disabled": "yes"}}})


def test_invalid_entry_error_names_its_server() -> None:
    bad = {"mcpServers": {"ok": {"command": "x"}, "docs": {"url": "ftp://h"}}}
    with pytest.raises(ConfigError) as info:
        load_mcp_servers(bad)
    assert str(info.value) == "server 'docs': field 'url': URL scheme must be http or https (got 'ftp')"


def test_invalid_server_name_in_a_file_is_an_error() -> None:
    with pytest.raises(ConfigError, match="must not be empty"):
        load_mcp_servers({"mcpServers": {"": {"command": "x"}}})


def test_missing_mcp_servers_object_is_an_error() -> None:
    with pytest.raises(ConfigError, match="'mcpServers'"):
        load_mcp_servers({"servers": {}})
    with pytest.raises(ConfigError, match="field 'mcpServers': must be a JSON object"):
        load_mcp_servers({"mcpServers": []})


def test_empty_mcp_servers_gives_no_servers() -> None:
    assert load_mcp_servers('{"mcpServers": {}}') == {}


def test_repeated_keys_are_an_error_not_a_silent_overwrite() -> None:
    text = '{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y"}}}'
    with pytest.raises(ConfigError, match="the key 'a' appears twice"):
        load_mcp_servers(text)


def test_invalid_json_is_a_config_error_with_a_path_hint_for_strings() -> None:
    with pytest.raises(ConfigError, match="not valid JSON") as info:
        load_mcp_servers("~/.cursor/mcp.json")
    assert "pass a pathlib.Path" in str(info.value)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_mcp_servers(tmp_path / "missing.json")


def test_the_base_type_validates_and_describes_either_kind() -> None:
    stdio = McpServerConfig.model_validate({"transport": "stdio", "command": "x"})
    assert isinstance(stdio, StdioServerConfig)
    http = McpServerConfig.model_validate_json('{"transport": "sse", "url": "http://h/sse"}')
    assert isinstance(http, HttpServerConfig) and http.transport == "sse"
    schema = McpServerConfig.model_json_schema()
    assert {"oneOf", "discriminator"} <= set(schema), schema
    with pytest.raises(ValidationError):
        McpServerConfig.model_validate({"transport": "carrier-pigeon"})


def test_a_subclass_of_a_kind_leaves_fields_of_the_kinds_alone() -> None:
    """Bug: the base's schema hook was inherited by the kinds and built a union of their subclasses."""

    class NotedStdio(StdioServerConfig):
        note: str = ""

    class Body(BaseModel):
        stdio: StdioServerConfig
        any: McpServerConfig

    body = Body.model_validate({"stdio": {"command": "x"}, "any": {"transport": "stdio", "command": "y"}})
    assert type(body.stdio) is StdioServerConfig and type(body.any) is StdioServerConfig
    assert NotedStdio(command="z", note="n").note == "n"


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"command": "x", "per_client": "sometimes"}, "per_client"),
        ({"command": "x", "per_client": True, "max_clients": 0}, "max_clients"),
        ({"url": "http://127.0.0.1:1/mcp", "max_clients": 10**9}, "max_clients"),
        ({"url": "http://127.0.0.1:1/mcp", "prefix": "maybe"}, "prefix"),
    ],
)
def test_per_client_and_prefix_reject_nonsense_naming_the_field(entry: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        McpServerConfig.parse(entry, name="srv")
