"""JSON aliases shared by the runtime: the one place `Any` is allowed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

JsonValue: TypeAlias = Any
"""Any value that `json.dumps` accepts."""

JsonObject: TypeAlias = Mapping[str, Any]
"""A JSON object: tool arguments, schemas, structured content."""
