"""The layering of docs/architecture.md, read off the import statements of the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ranvier"

# layer -> the layers it must never import
FORBIDDEN = {
    "protocol": ("api", "http", "services", "storage", "streams", "config", "server"),
    "http": ("api", "services", "storage", "server"),
    "services": ("api", "http", "server"),
    "storage": ("api", "http", "services", "server"),
    "streams": ("api", "http", "services", "server"),
    # the outbound federation client: services call it, it calls storage (backoff)
    "federation": ("api", "http", "services", "server"),
    "errors": ("api", "http", "services", "storage", "server"),
    "requester": ("api", "http", "services", "storage", "server"),
    # below everything that records into it
    "metrics": ("api", "http", "services", "storage", "streams", "federation", "server"),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(("ranvier", *path.relative_to(PACKAGE).parent.parts))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        forbidden = FORBIDDEN.get(layer_of(path), ())
        for module in sorted(imported_modules(path)):
            parts = module.split(".")
            if parts[0] == "ranvier" and len(parts) > 1 and parts[1] in forbidden:
                found.append(f"{path.relative_to(PACKAGE.parent)} imports {module}")
    return found


def test_layers_import_only_downwards() -> None:
    assert violations() == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_every_layer_named_exists(layer: str) -> None:
    # a renamed layer would silently drop out of the check above
    assert (PACKAGE / layer).is_dir() or (PACKAGE / f"{layer}.py").is_file()
