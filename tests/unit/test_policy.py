"""The stdio allow-list decides over everything that determines what runs: the executable (resolved to an absolute
path), the arguments, the working directory and the environment.

Regression: the allow-list matched the command line only, so an attach matching `python3 -m mcp_server_*` ran
arbitrary code through `env` (PYTHONPATH, LD_PRELOAD, PATH, BASH_ENV, PYTHONWARNINGS with BROWSER, ...) or through
a `cwd` holding a module named `mcp_server_evil.py`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from lash_gateway import ConfigError, McpServerConfig, PolicyError, StdioServerConfig, load_gateway_config
from lash_gateway.admin._policy import StdioPolicy

README_PATTERN = "python3 -m mcp_server_* *"
PYTHON3 = shutil.which("python3")


def stdio(
    command: str = "python3", *args: str, env: dict[str, str] | None = None, cwd: str | None = None
) -> StdioServerConfig:
    return McpServerConfig.stdio(command, list(args) or ["-m", "mcp_server_time"], env=env, cwd=cwd)


def refusal(policy: StdioPolicy, config: StdioServerConfig) -> str:
    with pytest.raises(PolicyError) as caught:
        policy.check(config)
    return str(caught.value)


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONWARNINGS",
        "BROWSER",
        "BASH_ENV",
        "ENV",
        "NODE_OPTIONS",
        "npm_config_registry",
        "HOME",
        "ld_preload",
        "OPENSSL_CONF",
        "HTTPS_PROXY",
        "PUPPETEER_EXECUTABLE_PATH",
        "CC",
    ],
)
def test_a_variable_that_changes_what_runs_is_refused_even_when_a_glob_matches_it(name: str) -> None:
    policy = StdioPolicy([README_PATTERN], env=[f"*{name[-4:]}"] if len(name) > 4 else [])
    message = refusal(policy, stdio(env={name: "x"}))
    assert repr(name) in message and "stdio_env_allow" in message and "exact name" in message


def test_a_variable_that_changes_what_runs_passes_when_listed_by_its_exact_name() -> None:
    policy = StdioPolicy([README_PATTERN], env=["PYTHONPATH"])
    assert policy.check(stdio(env={"PYTHONPATH": "/srv/lib"})).env["PYTHONPATH"].get_secret_value() == "/srv/lib"


def test_other_variables_need_a_matching_glob() -> None:
    assert "stdio_env_allow" in refusal(StdioPolicy([README_PATTERN]), stdio(env={"GITHUB_TOKEN": "x"}))
    assert "stdio_env_allow" in refusal(StdioPolicy([README_PATTERN], env=["*_API_KEY"]), stdio(env={"TOKEN": "x"}))
    StdioPolicy([README_PATTERN], env=["*_API_KEY", "TZ"]).check(stdio(env={"OPENAI_API_KEY": "x", "TZ": "UTC"}))


def test_cwd_must_be_absolute_and_allowed(tmp_path: Path) -> None:
    policy = StdioPolicy([README_PATTERN], cwds=[str(tmp_path / "servers" / "*")])
    allowed = tmp_path / "servers" / "time"
    allowed.mkdir(parents=True)
    assert policy.check(stdio(cwd=str(allowed))).cwd == os.path.realpath(allowed)
    assert "absolute path" in refusal(policy, stdio(cwd="servers/time"))
    message = refusal(policy, stdio(cwd=str(tmp_path)))
    assert "stdio_cwd_allow" in message and str(tmp_path) in message
    assert "stdio_cwd_allow" in refusal(StdioPolicy([README_PATTERN]), stdio(cwd=str(allowed)))


def test_cwd_is_matched_by_its_real_path(tmp_path: Path) -> None:
    """A symlink inside an allowed directory that points elsewhere does not make elsewhere allowed."""
    (tmp_path / "servers").mkdir()
    (tmp_path / "evil").mkdir()
    (tmp_path / "servers" / "link").symlink_to(tmp_path / "evil")
    policy = StdioPolicy([README_PATTERN], cwds=[str(tmp_path / "servers" / "*")])
    message = refusal(policy, stdio(cwd=str(tmp_path / "servers" / "link")))
    assert "really" in message and str(tmp_path / "evil") in message
    dots = refusal(policy, stdio(cwd=str(tmp_path / "servers" / ".." / "evil")))
    assert "stdio_cwd_allow" in dots


@pytest.mark.skipif(PYTHON3 is None, reason="no python3 on PATH")
def test_the_command_is_resolved_on_the_gateways_path_and_runs_as_that_absolute_path() -> None:
    assert PYTHON3 is not None
    to_run = StdioPolicy([README_PATTERN]).check(stdio())
    assert to_run.command == os.path.abspath(PYTHON3)
    # the resolved form matches too, and a pattern may pin it
    assert StdioPolicy([f"{to_run.command} -m mcp_server_* *"]).check(stdio()).command == to_run.command


def test_a_relative_command_with_a_directory_part_is_refused(tmp_path: Path) -> None:
    assert "bare name or an absolute path" in refusal(StdioPolicy(["*"]), stdio("./python3"))
    assert "bare name or an absolute path" in refusal(StdioPolicy(["*"]), stdio("bin/python3"))


def test_a_command_that_is_not_an_executable_is_refused(tmp_path: Path) -> None:
    assert "not an executable" in refusal(StdioPolicy(["*"]), stdio("no-such-command-here"))
    plain = tmp_path / "script"
    plain.write_text("#!/bin/sh\n")
    assert "not an executable" in refusal(StdioPolicy(["*"]), stdio(str(plain)))


def test_a_command_line_no_pattern_matches_is_refused_with_the_fix() -> None:
    message = refusal(StdioPolicy([README_PATTERN]), stdio(sys.executable, "-c", "print(1)"))
    assert "gateway.admin.stdio_allow" in message and "add a pattern" in message
    assert refusal(StdioPolicy([]), stdio())


def test_patterns_match_word_by_word() -> None:
    exact = StdioPolicy(["python3 -m mcp_server_*"])
    exact.check(stdio("python3", "-m", "mcp_server_time"))
    assert refusal(exact, stdio("python3", "-m", "mcp_server_time", "--extra"))
    more = StdioPolicy(["python3 -m mcp_server_* *"])
    more.check(stdio("python3", "-m", "mcp_server_time", "--local-timezone", "UTC"))
    assert refusal(more, stdio("python3", "-m"))  # fewer arguments than words
    assert refusal(more, stdio("python3", "-c", "mcp_server_x"))


def test_a_star_matches_within_one_directory_level(tmp_path: Path) -> None:
    assert PYTHON3 is not None
    policy = StdioPolicy([f"python3 {tmp_path}/servers/*.py"])
    policy.check(stdio("python3", f"{tmp_path}/servers/time.py"))
    assert refusal(policy, stdio("python3", f"{tmp_path}/servers/sub/evil.py"))
    climbing = refusal(policy, stdio("python3", f"{tmp_path}/servers/../evil.py"))
    assert "'..' segment" in climbing


def test_a_command_path_with_dot_dot_segments_is_refused(tmp_path: Path) -> None:
    """Regression: `/opt/mcp/bin/*` admitted `/opt/mcp/bin/../../../bin/sh` (glob `*` matched `..` and `/`), and
    the normalised `/bin/sh` is what ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    policy = StdioPolicy([f"{bin_dir}/* *"])
    climbing = f"{bin_dir}/../../../../../../../bin/sh"
    assert "without '..' or '.' segments" in refusal(policy, stdio(climbing, "-c", "id"))
    assert "without '..' or '.' segments" in refusal(policy, stdio(f"{bin_dir}/./sh", "-c", "id"))


@pytest.mark.parametrize("pattern", ["*", "*_*", "?", "[A-Z]*", "A*"])
def test_env_globs_that_admit_names_wholesale_are_refused_at_load(pattern: str) -> None:
    with pytest.raises(ValueError, match="too broadly"):
        StdioPolicy([README_PATTERN], env=[pattern])
    with pytest.raises(ConfigError, match="stdio_env_allow"):
        load_gateway_config({"gateway": {"admin": {"stdio_env_allow": [pattern]}}})


@pytest.mark.parametrize("pattern", ["'unclosed", ""])
def test_malformed_command_patterns_are_refused_at_load(pattern: str) -> None:
    with pytest.raises(ConfigError, match="stdio_allow"):
        load_gateway_config({"gateway": {"admin": {"stdio_allow": [pattern]}}})
