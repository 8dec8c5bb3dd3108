"""A server config's secrets: the view of a config that may be shown anywhere (`redacted`), and the secret
values in it (`secret_values`), which the log formatter scrubs from every line by value."""

from __future__ import annotations

from ._config import ServerConfig, StdioServerConfig
from ._redact import REDACTED, config_secrets, redacted_args, redacted_url

__all__ = ["redacted", "secret_values"]


def redacted(config: ServerConfig) -> dict[str, object]:
    """A JSON-able view of `config` for status output and logs, with secrets replaced by "***".

    Env and header values are always replaced (their names are kept). Best effort beyond that:
    credentials and query values in the URL, credentials in URL-shaped arguments, and the values of
    arguments such as `--api-key X` / `--token=X` are replaced too. A secret inside a URL path
    (e.g. `/mcp/<key>/sse`) cannot be recognised; pass it in a header instead.
    """
    view: dict[str, object] = {"transport": config.transport}
    if isinstance(config, StdioServerConfig):
        view["command"] = config.command
        view["args"] = redacted_args(config.args)
        view["env"] = dict.fromkeys(config.env, REDACTED)
        view["cwd"] = config.cwd
    else:
        view["url"] = redacted_url(config.url)
        view["headers"] = dict.fromkeys(config.headers, REDACTED)
        if config.oauth is not None:
            oauth = config.oauth.model_dump(mode="json", exclude={"client_secret", "private_key_pem"})
            oauth.update({key: REDACTED for key in ("client_secret", "private_key_pem") if getattr(config.oauth, key)})
            view["oauth"] = oauth
    view.update(config.model_dump(mode="json", include={"startup_timeout", "call_timeout", "tools", "mode"}))
    return view


def secret_values(config: ServerConfig) -> list[str]:
    """The secret values of `config` (env or header values, URL credentials and query values, secret-looking
    arguments), for `redact`."""
    if isinstance(config, StdioServerConfig):
        return config_secrets(values=[value.get_secret_value() for value in config.env.values()], args=config.args)
    values = [value.get_secret_value() for value in config.headers.values()]
    if config.oauth is not None:
        values += [
            secret.get_secret_value() for secret in (config.oauth.client_secret, config.oauth.private_key_pem) if secret
        ]
    return config_secrets(config.url, values)
