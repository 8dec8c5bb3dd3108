"""What the admin API may start or connect to.

Starting a process through a network API is code execution, so a stdio attach passes only when the
operator's allow-lists decide over everything that determines what runs:

- the executable: a bare command name is resolved on the gateway's own PATH (the child gets that PATH),
  an absolute path is taken as is (but not with `..` or `.` segments), a relative path with a
  directory part is refused. The resolved absolute path is what runs, so nothing can change the
  lookup between check and start.
- the arguments: the command and its arguments must match a pattern of `stdio_allow`, word by word
  (see `_allow`), with the command as given or as resolved (`python3 -m mcp_server_* *` and
  `/usr/bin/python3 -m mcp_server_* *` both match `python3 -m mcp_server_time --local-timezone UTC`).
- the working directory: with `cwd`, its real path (symlinks resolved) must match a glob of
  `stdio_cwd_allow` (`python -m` imports from it). Without, the child runs in the gateway's.
- the environment: every variable name must match a pattern of `stdio_env_allow`; names known to
  change what runs (`PATH`, `LD_PRELOAD`, `PYTHONPATH`, `NODE_OPTIONS`, `OPENSSL_CONF`, ... see
  `RUN_CHANGING_ENV`, a best-effort list) pass only when listed by their exact name, never through a
  glob, and globs must keep part of the name (`*_API_KEY`), so none admits names wholesale.

A URL attach is refused when its host resolves into `deny_networks` (every spelling of an address is
checked, see `_addresses`); the connection itself is checked again when it is made (`_network`).
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from .._allow import climbs, env_pattern, parse_command_pattern
from .._config import ServerConfig, StdioServerConfig
from .._errors import PolicyError
from .._redact import redacted_args
from ..upstream._network import NetworkGuard, NetworkRefused
from ._settings import AdminSettings

__all__ = ["RUN_CHANGING_ENV", "AdminPolicy", "StdioPolicy"]

RUN_CHANGING_ENV = (
    # the loader, the shell and the C library
    *("PATH", "LD_*", "DYLD_*", "GCONV_PATH", "LOCPATH", "NLSPATH", "GLIBC_TUNABLES", "MALLOC_*", "HOSTALIASES"),
    *("SHELL", "ENV", "BASH_ENV", "BASH_FUNC_*", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "IFS", "CDPATH"),
    # where programs find their configuration, caches, certificates, proxies and user packages
    *("HOME", "XDG_*", "TMPDIR", "APPDATA", "LOCALAPPDATA", "USERPROFILE", "COMSPEC", "PATHEXT", "SYSTEMROOT"),
    *("OPENSSL_*", "SSL_CERT_*", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "*_PROXY", "KRB5*", "LESSOPEN"),
    # interpreters, package runners and build tools
    *("PYTHON*", "VIRTUAL_ENV", "CONDA_*", "PIP_*", "UV_*", "PIPX_*"),
    *("NODE_*", "NPM_CONFIG_*", "NPX_*", "YARN_*", "PNPM_*", "COREPACK_*", "BUN_*", "DENO_*", "ELECTRON_*"),
    *("PERL*", "RUBY*", "GEM_*", "BUNDLE_*", "JAVA_HOME", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS"),
    *("JAVA_OPTS", "MAVEN_OPTS", "GRADLE_OPTS", "CLASSPATH", "GOROOT", "GOPATH", "GOFLAGS", "GOTOOLCHAIN"),
    *("CARGO_*", "RUSTUP_*", "DOTNET_*", "COR_*", "CORECLR_*", "PHPRC", "PHP_INI_*", "LUA_*", "TCLLIBPATH"),
    *("CC", "CXX", "LDSHARED", "CFLAGS", "LDFLAGS", "CPPFLAGS"),
    # programs that start other programs
    *("GIT_*", "BROWSER", "EDITOR", "VISUAL", "PAGER", "DOCKER_*", "PUPPETEER_*", "PLAYWRIGHT_*", "CHROME_*"),
)
"""Environment variables that make a program load other code or look it up elsewhere (matched case-insensitively,
as Windows and npm read them). A glob of `stdio_env_allow` never admits them; only their exact name does."""

_REFUSED = "starting a process through the admin API is refused"


class StdioPolicy:
    """The admin settings' allow-lists for starting processes."""

    def __init__(self, commands: Sequence[str], cwds: Sequence[str] = (), env: Sequence[str] = ()) -> None:
        """Raises `ValueError` for a malformed command or environment pattern."""
        self.commands = tuple(parse_command_pattern(pattern) for pattern in commands)
        self.cwds = tuple(cwds)
        self.env = tuple(env_pattern(pattern) for pattern in env)

    def check(self, config: StdioServerConfig) -> StdioServerConfig:
        """`config` as it is to run (command resolved to an absolute path, `cwd` to its real path), if allowed.

        Raises:
            PolicyError: the environment, the working directory or the command line is not allowed.
        """
        self._check_env(config)
        cwd = self._checked_cwd(config.cwd)
        executable = self._resolved(config)
        spellings = (config.command, executable)
        if not any(pattern.matches(spellings, config.args) for pattern in self.commands):
            line = shlex.join([config.command, *redacted_args(config.args)])
            climbing = " (an argument with a '..' segment matches no pattern)" if any(map(climbs, config.args)) else ""
            raise PolicyError(
                f"{_REFUSED}: the command line {line!r} (which runs {executable}) matches no pattern of "
                f"gateway.admin.stdio_allow in the gateway's config file{climbing}; add a pattern that matches it "
                "(one word per argument, '*' at the end for any further arguments) and restart the gateway"
            )
        return config.model_copy(update={"command": executable, "cwd": cwd})

    def _check_env(self, config: StdioServerConfig) -> None:
        for name in config.env:
            if any(fnmatchcase(name.upper(), pattern) for pattern in RUN_CHANGING_ENV):
                if name not in self.env:
                    raise PolicyError(
                        f"{_REFUSED}: the environment variable {name!r} changes what the process runs; it is "
                        "allowed only when gateway.admin.stdio_env_allow lists it by its exact name"
                    )
            elif not any(fnmatchcase(name, pattern) for pattern in self.env):
                raise PolicyError(
                    f"{_REFUSED}: the environment variable {name!r} matches no pattern of "
                    "gateway.admin.stdio_env_allow; add its name (or a glob such as '*_API_KEY') and restart the "
                    "gateway"
                )

    def _checked_cwd(self, cwd: str | None) -> str | None:
        if cwd is None:
            return None
        if not os.path.isabs(cwd):
            raise PolicyError(f"{_REFUSED}: cwd must be an absolute path (got {cwd!r})")
        real = os.path.realpath(cwd)
        if not any(fnmatchcase(real, pattern) for pattern in self.cwds):
            shown = f"{cwd!r}" if real == cwd else f"{cwd!r} (really {real!r})"
            raise PolicyError(
                f"{_REFUSED}: the working directory {shown} matches no pattern of gateway.admin.stdio_cwd_allow; "
                "add it there, or leave cwd out to run in the gateway's directory"
            )
        return real

    def _resolved(self, config: StdioServerConfig) -> str:
        command = config.command
        if os.path.isabs(command):
            if os.path.normpath(command) != command:
                raise PolicyError(f"{_REFUSED}: give the command's path without '..' or '.' segments (got {command!r})")
            found = command if os.access(command, os.X_OK) and os.path.isfile(command) else None
        elif os.sep in command or (os.altsep is not None and os.altsep in command):
            raise PolicyError(f"{_REFUSED}: give the command as a bare name or an absolute path (got {command!r})")
        else:
            # The child's PATH: its own when the operator allowed it to set one, else the gateway's.
            path = config.env["PATH"].get_secret_value() if "PATH" in config.env else os.environ.get("PATH")
            found = shutil.which(command, path=path)
        if found is None:
            raise PolicyError(f"{_REFUSED}: the command {command!r} is not an executable on the gateway's PATH")
        return os.path.abspath(found)


class AdminPolicy:
    """Everything `gateway.admin` decides about an attach made through the API (or restored from its store)."""

    def __init__(self, settings: AdminSettings) -> None:
        self._stdio = StdioPolicy(settings.stdio_allow, settings.stdio_cwd_allow, settings.stdio_env_allow)
        self._guard = NetworkGuard(settings.deny_networks) if settings.deny_networks else None

    async def admit(self, config: ServerConfig) -> tuple[ServerConfig, NetworkGuard | None]:
        """The config to run and the guard its connections must pass.

        Raises:
            PolicyError: a process the allow-lists do not admit, or a URL whose host resolves into a denied network
                (a host that does not resolve passes: the attach then fails to connect with its own error).
        """
        if isinstance(config, StdioServerConfig):
            return self._stdio.check(config), None
        if self._guard is not None:
            parts = urlsplit(config.url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                await self._guard.addresses(parts.hostname or "", port)
            except NetworkRefused as exc:
                raise PolicyError(str(exc).removeprefix("refused to connect: ")) from None
            except OSError:
                pass
        return config, self._guard
