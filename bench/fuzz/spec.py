"""The Client-Server API definitions the fuzzer drives, bundled into one OpenAPI document.

The spec's OpenAPI 3.1 files (`spec/data/api/client-server/*.yaml`, copied from matrix-spec:
see `spec/NOTICE.md`) are one document per module, with relative `$ref`s between files.
`load_operations` merges their paths under each file's base path and inlines every `$ref` of
the request side (parameters, request bodies), so schemathesis gets one self-contained
document. Responses are dropped: the fuzzer judges answers by status, not by shape.

`python -m bench.fuzz.spec PATH_TO_MATRIX_SPEC` refreshes the copy from a matrix-spec checkout:
the API files and every file their request side refers to, nothing else.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SPEC_DIR = Path(__file__).resolve().parent / "spec"
API_DIR = Path("data/api/client-server")
METHODS = ("get", "put", "post", "delete", "patch")
# the parts of an operation the fuzzer generates from; responses and prose are left out
REQUEST_KEYS = ("operationId", "parameters", "requestBody", "security")


@dataclass(frozen=True)
class Operation:
    """One method on one path template, e.g. `PUT /_matrix/client/v3/rooms/{roomId}/...`."""

    method: str  # upper case
    path: str
    # the spec's security requirement: "required", "optional" (`{}` allowed) or "none"
    auth: str
    # the ways of authenticating it names ("accessTokenBearer", "appserviceAccessTokenBearer")
    schemes: tuple[str, ...]
    body_types: tuple[str, ...]  # media types of the request body, if it has one

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def _load_yaml(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(), Loader=loader)


def _pointer(document: Any, fragment: str) -> Any:
    for part in (p for p in fragment.split("/") if p):
        part = part.replace("~1", "/").replace("~0", "~")
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


class _Inliner:
    """Replaces every `$ref` by a copy of what it points at, following refs across files."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.files: dict[Path, Any] = {}

    def document(self, path: Path) -> Any:
        path = path.resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"{path} is outside {self.root}")
        if path not in self.files:
            self.files[path] = _load_yaml(path)
        return self.files[path]

    def inline(self, node: Any, base: Path, seen: frozenset[tuple[Path, str]] = frozenset()) -> Any:
        if isinstance(node, list):
            return [self.inline(item, base, seen) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" not in node:
            return {key: self.inline(value, base, seen) for key, value in node.items()}
        file_part, _, fragment = str(node["$ref"]).partition("#")
        target_file = (base.parent / file_part).resolve() if file_part else base
        key = (target_file, fragment)
        if key in seen:
            raise ValueError(f"recursive $ref {node['$ref']} in {base}")
        target = self.inline(
            _pointer(self.document(target_file), fragment), target_file, seen | {key}
        )
        siblings = {k: self.inline(v, base, seen) for k, v in node.items() if k != "$ref"}
        if siblings and isinstance(target, dict):
            return {**target, **siblings}
        return target


def _auth(security: Any) -> tuple[str, tuple[str, ...]]:
    if not security:
        return "none", ()
    schemes = tuple(name for requirement in security for name in requirement)
    return ("optional" if {} in security else "required"), schemes


@cache
def load_operations(spec_dir: Path = SPEC_DIR) -> tuple[dict[str, Any], tuple[Operation, ...]]:
    """The bundled OpenAPI document and the operations in it, in a stable order."""
    inliner = _Inliner(spec_dir)
    paths: dict[str, dict[str, Any]] = {}
    operations: list[Operation] = []
    for api_file in sorted((spec_dir / API_DIR).glob("*.yaml")):
        document = inliner.document(api_file)
        base_path = document["servers"][0]["variables"]["basePath"]["default"]
        for template, item in document.get("paths", {}).items():
            for method, raw in item.items():
                if method not in METHODS:
                    continue
                operation = {key: raw[key] for key in REQUEST_KEYS if key in raw}
                operation = inliner.inline(operation, api_file)
                auth, schemes = _auth(operation.pop("security", None))
                operation["responses"] = {"default": {"description": "any answer"}}
                full_path = base_path + template
                paths.setdefault(full_path, {})[method] = operation
                body_types = tuple(operation.get("requestBody", {}).get("content", {}))
                operations.append(Operation(method.upper(), full_path, auth, schemes, body_types))
    bundled = {
        "openapi": "3.1.0",
        "info": {"title": "Matrix Client-Server API (request side)", "version": "unstable"},
        "paths": paths,
    }
    return bundled, tuple(operations)


def copy_spec(matrix_spec: Path, spec_dir: Path = SPEC_DIR) -> list[Path]:
    """Copy the API files and every file their request side refers to from a checkout."""
    source = matrix_spec.resolve()
    inliner = _Inliner(source)
    api_files = sorted((source / API_DIR).glob("*.yaml"))
    for api_file in api_files:
        document = inliner.document(api_file)
        for item in document.get("paths", {}).values():
            for method, raw in item.items():
                if method in METHODS:
                    inliner.inline({k: raw[k] for k in REQUEST_KEYS if k in raw}, api_file)
    copied = sorted(set(inliner.files) | {p.resolve() for p in api_files})
    if (spec_dir / "data").exists():
        shutil.rmtree(spec_dir / "data")
    for path in copied:
        target = spec_dir / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    shutil.copyfile(source / "LICENSE", spec_dir / "LICENSE")
    return [path.relative_to(source) for path in copied]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.fuzz.spec PATH_TO_MATRIX_SPEC_CHECKOUT")
    files = copy_spec(Path(sys.argv[1]))
    print(f"copied {len(files)} files into {SPEC_DIR}")
