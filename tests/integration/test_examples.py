"""The runnable examples in `examples/`: each attaches the real `mcp-server-time` through the pool and runs one model
turn, as a subprocess started the way a user starts it (`python examples/<name>.py`, from another directory).

Without an API key a recorded response stands in for the model; the tests point the SDKs' base URLs at a closed
local port as well, so a stray request fails instead of going over the network. With a key, the examples call the
real API: that path runs here against a local stub of the API serving recorded responses to the real SDK clients.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.servers.launch import PROJECT_ROOT

EXAMPLES = PROJECT_ROOT / "examples"
RUN_TIMEOUT = 45.0
"""Bound on one example run: interpreter start, the time server's start, one turn, shutdown."""
CLOSED_URL = "http://127.0.0.1:9"
"""Nothing listens on the discard port: a request the example should not make fails at once."""
TOOL = "mcp__time__get_current_time"
TOKYO = timedelta(hours=9)
CLOCK_SKEW = timedelta(minutes=5)


def run_example(script: str, cwd: Path, env: Mapping[str, str]) -> str:
    """Run `examples/<script>` with exactly `env` added to this environment minus API keys; its stdout."""
    environ = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")}
    environ.update({"ANTHROPIC_BASE_URL": CLOSED_URL, "OPENAI_BASE_URL": CLOSED_URL, **env})
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def json_after(output: str, marker: str) -> Any:
    """The JSON document printed right after the line `marker`."""
    start = output.index(marker + "\n") + len(marker) + 1
    value, _ = json.JSONDecoder().raw_decode(output, start)
    return value


def assert_current_tokyo_time(text: object) -> None:
    """`text` is the time server's answer for Asia/Tokyo, and its time is now."""
    assert isinstance(text, str), text
    answer = json.loads(text)
    assert answer["timezone"] == "Asia/Tokyo"
    when = datetime.fromisoformat(answer["datetime"])
    assert when.utcoffset() == TOKYO
    assert abs(when - datetime.now(when.tzinfo)) < CLOCK_SKEW, answer


def tool_result_text(block: Mapping[str, Any], tool_use_id: str) -> str:
    """The one text of a successful Anthropic `tool_result` block answering `tool_use_id`."""
    assert block["type"] == "tool_result"
    assert block["tool_use_id"] == tool_use_id
    assert "is_error" not in block, block
    (part,) = block["content"]
    assert part["type"] == "text"
    return str(part["text"])


# --- offline: the recorded response -----------------------------------------------------------------------------------


def test_anthropic_example_runs_a_recorded_turn_without_an_api_key(tmp_path: Path) -> None:
    output = run_example("anthropic_turn.py", tmp_path, {})
    assert f"tools offered: {TOOL}, mcp__time__convert_time" in output
    assert "a recorded response stands in for the model" in output
    message = json_after(output, "next user message:")
    assert message["role"] == "user"
    (block,) = message["content"]
    assert_current_tokyo_time(tool_result_text(block, "toolu_01TokyoTimeRecordedCall"))


def test_openai_example_runs_a_recorded_turn_without_an_api_key(tmp_path: Path) -> None:
    output = run_example("openai_turn.py", tmp_path, {})
    assert f"tools offered: {TOOL}, mcp__time__convert_time" in output
    assert "a recorded response stands in for the model" in output
    (item,) = json_after(output, "function_call_output items (the next request's input):")
    assert item["type"] == "function_call_output"
    assert item["call_id"] == "call_TokyoTimeRecordedCall"
    assert_current_tokyo_time(item["output"])


# --- live path, against a local stub of the API -----------------------------------------------------------------------


@dataclass
class StubApi:
    """Answers each POST with the next of `replies` (JSON) and keeps the requests' paths and bodies."""

    replies: list[dict[str, Any]]
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def stub_api() -> Iterator[StubApi]:
    """A `StubApi` served on 127.0.0.1 (port chosen by the OS) until the test ends; fill in `replies` first."""
    stub = StubApi([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            stub.requests.append((self.path, json.loads(body)))
            if stub.replies:
                status, reply = 200, stub.replies.pop(0)
            else:
                status, reply = 500, {"error": {"type": "api_error", "message": "the stub has no more replies"}}
            payload = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output to what the example prints

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="stub-api", daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def anthropic_reply(stop_reason: str, content: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "id": f"msg_stub_{stop_reason}",
        "type": "message",
        "role": "assistant",
        "model": "claude-stub",
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 10},
    }


def openai_reply(response_id: str, output: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1763774700,
        "model": "gpt-stub",
        "status": "completed",
        "output": list(output),
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }


def test_anthropic_example_with_a_key_sends_the_tools_and_the_results_to_the_api(
    tmp_path: Path, stub_api: StubApi
) -> None:
    tool_use = {"type": "tool_use", "id": "toolu_live", "name": TOOL, "input": {"timezone": "Asia/Tokyo"}}
    answer = "It is morning in Tokyo."
    stub_api.replies += [
        anthropic_reply("tool_use", [tool_use]),
        anthropic_reply("end_turn", [{"type": "text", "text": answer}]),
    ]
    output = run_example(
        "anthropic_turn.py",
        tmp_path,
        {"ANTHROPIC_API_KEY": "sk-ant-stub", "ANTHROPIC_BASE_URL": stub_api.url, "ANTHROPIC_MODEL": "claude-stub"},
    )

    assert f"model: {answer}" in output
    (path, first), (_, second) = stub_api.requests
    assert path == "/v1/messages"
    assert first["model"] == "claude-stub"
    assert first["messages"] == [{"role": "user", "content": "What time is it in Tokyo?"}]
    assert [tool["name"] for tool in first["tools"]] == [TOOL, "mcp__time__convert_time"]
    user, assistant, results = second["messages"]
    assert user == first["messages"][0]
    assert assistant == {"role": "assistant", "content": [tool_use]}
    assert results["role"] == "user"
    (block,) = results["content"]
    assert_current_tokyo_time(tool_result_text(block, "toolu_live"))


def test_openai_example_with_a_key_sends_the_tools_and_the_outputs_to_the_api(
    tmp_path: Path, stub_api: StubApi
) -> None:
    call = {
        "type": "function_call",
        "id": "fc_live",
        "call_id": "call_live",
        "name": TOOL,
        "arguments": '{"timezone": "Asia/Tokyo"}',
        "status": "completed",
    }
    answer = "It is morning in Tokyo."
    message = {
        "type": "message",
        "id": "msg_live",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": answer, "annotations": []}],
    }
    stub_api.replies += [openai_reply("resp_first", [call]), openai_reply("resp_second", [message])]
    output = run_example(
        "openai_turn.py",
        tmp_path,
        {"OPENAI_API_KEY": "sk-stub", "OPENAI_BASE_URL": f"{stub_api.url}/v1", "OPENAI_MODEL": "gpt-stub"},
    )

    assert f"model: {answer}" in output
    (path, first), (_, second) = stub_api.requests
    assert path == "/v1/responses"
    assert first["model"] == "gpt-stub"
    assert first["input"] == "What time is it in Tokyo?"
    assert [tool["name"] for tool in first["tools"]] == [TOOL, "mcp__time__convert_time"]
    assert second["previous_response_id"] == "resp_first"
    assert second["tools"] == first["tools"]
    (item,) = second["input"]
    assert item["type"] == "function_call_output"
    assert item["call_id"] == "call_live"
    assert_current_tokyo_time(item["output"])
