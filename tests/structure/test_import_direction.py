"""Dependencies point one way. Inside `lash_gateway`: the leaves (the top-level modules but `_sdk`) import neither
anyio nor the MCP SDK, and nothing of the sides; the upstream side never imports `mcp.server`, the export side never
imports `mcp.client`, and neither imports the other or the control plane (`admin`). `lash_core` imports nothing of
`lash_gateway` or `adapters`. Read from each module's source, so a deferred import inside a function counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[2]
GATEWAY: Final = ROOT / "lash_gateway"
SDK_DOOR: Final = "lash_gateway._sdk"
SIDES: Final = ("upstream", "export", "admin")
FORBIDDEN_BY_SIDE: Final = {
    "upstream": ("mcp.server", "lash_gateway.export", "lash_gateway.admin"),
    "export": ("mcp.client", "lash_gateway.upstream", "lash_gateway.admin"),
    "admin": (),
}
LEAF_FORBIDDEN: Final = ("anyio", "mcp", "mcp_types", *(f"lash_gateway.{side}" for side in SIDES), SDK_DOOR)
ROOT_PACKAGE: Final = "lash_gateway"
"""Importing the package itself from inside it is importing upward (it imports every side)."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> Iterator[str]:
    """Every module `path` imports, absolute (relative imports resolved against its package)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def imports_the_root(path: Path) -> bool:
    """Whether `path` imports the `lash_gateway` package itself (`import lash_gateway`, `from lash_gateway import
    X`, `from .. import X` reaching the root), rather than one of its modules."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(alias.name == ROOT_PACKAGE for alias in node.names):
            return True
        if isinstance(node, ast.ImportFrom):
            package = module_name(path).split(".")[:-1] if path.name != "__init__.py" else module_name(path).split(".")
            base = package[: len(package) - node.level + 1] if node.level else []
            if ".".join([*base, node.module] if node.module else base) == ROOT_PACKAGE:
                return True
    return False


def private_reaches(path: Path) -> list[str]:
    """`x._name` where `x` is not `self` or `cls`: a reach into another object's private parts."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"{ast.unparse(owner)}.{node.attr} (line {node.lineno})")
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def modules(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.py"))


LEAVES: Final = [
    path for path in sorted(GATEWAY.glob("_*.py")) if not path.name.startswith("__") and module_name(path) != SDK_DOOR
]


@pytest.mark.parametrize("path", LEAVES, ids=[path.name for path in LEAVES])
def test_leaves_import_neither_anyio_nor_the_sdk_nor_a_side(path: Path) -> None:
    bad = sorted({name for name in imports_of(path) if within(name, LEAF_FORBIDDEN)})
    assert bad == [], f"{module_name(path)} is a leaf (pure rules and values) but imports {bad}"


@pytest.mark.parametrize("side", SIDES)
def test_each_side_imports_only_what_its_side_may(side: str) -> None:
    forbidden = FORBIDDEN_BY_SIDE[side]
    found = {
        module_name(path): sorted({name for name in imports_of(path) if within(name, forbidden)})
        for path in modules(GATEWAY / side)
    }
    assert {name: bad for name, bad in found.items() if bad} == {}, f"lash_gateway.{side} must not import {forbidden}"


def test_only_the_sdk_door_imports_private_sdk_names() -> None:
    found = {}
    for path in modules(GATEWAY):
        private = sorted(
            name
            for name in imports_of(path)
            if within(name, ("mcp", "mcp_types")) and any(part.startswith("_") for part in name.split(".")[1:])
        )
        if private and module_name(path) != SDK_DOOR:
            found[module_name(path)] = private
    assert found == {}, "private SDK names are used only through lash_gateway._sdk"


def test_no_module_inside_imports_the_package_itself() -> None:
    inside = [path for path in modules(GATEWAY) if path != GATEWAY / "__init__.py" and path.name != "__main__.py"]
    assert [module_name(path) for path in inside if imports_the_root(path)] == []


def test_only_the_sdk_door_reaches_into_private_parts_of_other_objects() -> None:
    """The SDK's private parts are used in `_sdk` only; elsewhere no module reads another object's `_name` (the
    gateway's own classes keep their insides to themselves too)."""
    found = {module_name(path): reaches for path in modules(GATEWAY) if (reaches := private_reaches(path))}
    found.pop(SDK_DOOR, None)
    assert found == {}


def test_lash_core_imports_nothing_of_the_gateway_or_the_adapters() -> None:
    found = {
        module_name(path): bad
        for path in modules(ROOT / "lash_core")
        if (bad := sorted(name for name in imports_of(path) if within(name, ("lash_gateway", "adapters", "mcp"))))
    }
    assert found == {}
