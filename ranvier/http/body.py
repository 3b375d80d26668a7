"""Typed fields of a JSON request body, with the spec's errors for the wrong type."""

from __future__ import annotations

from typing import Any

from ranvier.errors import MatrixError


def optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise MatrixError(400, "M_BAD_JSON", f"'{key}' must be a string")
    return value


def required_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        raise MatrixError(400, "M_MISSING_PARAM", f"Missing '{key}'")
    if not isinstance(value, str):
        raise MatrixError(400, "M_BAD_JSON", f"'{key}' must be a string")
    return value


def optional_bool(body: dict[str, Any], key: str, default: bool = False) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise MatrixError(400, "M_BAD_JSON", f"'{key}' must be true or false")
    return value
