"""A pydantic model validated into a `ConfigError` that a user can act on: one line per problem, naming the server
and the field, never quoting the input (it may be a secret), and listing the allowed keys for an unknown one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ._errors import ConfigError

__all__ = ["validated"]

_Model = TypeVar("_Model", bound=BaseModel)


def validated(
    model: type[_Model], name: str | None, data: Mapping[str, object], *, nested_keys: Iterable[str] = ()
) -> _Model:
    """`data` as a `model`; `nested_keys` are the allowed keys one level down (in the message of an unknown one).

    Raises:
        ConfigError: a line per problem.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # `from None`: each error is a line of the ConfigError already, and the pydantic chain is noise.
        problems = _problems(exc, model, data.get("transport"), list(nested_keys))
        raise ConfigError.from_problems(name, problems) from None


def _problems(
    exc: ValidationError, model: type[BaseModel], transport: object, nested_keys: list[str]
) -> list[tuple[str | None, str]]:
    """One `(field, problem)` per pydantic error, without the inputs (they may be secrets)."""
    problems: list[tuple[str | None, str]] = []
    for error in exc.errors(include_url=False, include_input=False):
        field = _field_path(error["loc"])
        kind = error["type"]
        top = len(error["loc"]) == 1
        if kind == "missing":
            problem = "is required"
        elif kind == "extra_forbidden":
            allowed = ", ".join(model.model_fields if top else nested_keys)
            where = f" for transport {transport!r}" if isinstance(transport, str) and top else ""
            problem = f"unknown key{where} (allowed: {allowed})"
        elif kind == "value_error" and "error" in error.get("ctx", {}):
            problem = str(error["ctx"]["error"])
        else:
            problem = error["msg"]
        problems.append((field, problem))
    return problems


def _field_path(loc: tuple[int | str, ...]) -> str | None:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or None
