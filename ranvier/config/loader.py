"""Reading homeserver.yaml into a HomeserverConfig, or refusing with every problem at once."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ranvier.config.errors import ConfigError
from ranvier.config.models import HomeserverConfig
from ranvier.config.validation import removed_key_problems, semantic_problems


def load_config(path: str | Path) -> HomeserverConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        problem = f"cannot read the configuration file: {exc.strerror}"
        raise ConfigError([problem], str(path)) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(path)) from None
    if not isinstance(raw, dict):
        raise ConfigError(["the file must be a YAML mapping of options"], str(path))
    raw = _resolve_relative_paths(raw, path.parent)

    problems = removed_key_problems(raw)
    raw = {k: v for k, v in raw.items() if k not in ("log_file",)}
    try:
        config = HomeserverConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(problems + _describe(exc), str(path)) from None
    problems += semantic_problems(config, path.parent)
    if problems:
        raise ConfigError(problems, str(path))
    return config


def _resolve_relative_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths in the file are relative to the file, so `-c` works from any directory."""
    resolved = dict(raw)
    for key in ("signing_key_path", "media_store_path", "log_config", "pid_file"):
        value = resolved.get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            resolved[key] = str(base / value)
    database = resolved.get("database")
    if isinstance(database, dict) and database.get("name", "sqlite3") == "sqlite3":
        args = database.get("args")
        if isinstance(args, dict):
            db_path = args.get("database")
            if (
                isinstance(db_path, str)
                and db_path != ":memory:"
                and not Path(db_path).is_absolute()
            ):
                resolved["database"] = {
                    **database,
                    "args": {**args, "database": str(base / db_path)},
                }
    return resolved


def _describe(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        key = _dotted(error["loc"])
        if error["type"] == "extra_forbidden":
            hint = _suggest(error["loc"])
            problems.append(f"{key}: unknown option; remove it or correct its spelling{hint}")
        elif error["type"] == "missing":
            problems.append(f"{key}: required option is missing; add it to the file")
        else:
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {message} (got {error.get('input')!r})")
    return problems


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _suggest(loc: tuple[int | str, ...]) -> str:
    """'(did you mean ...?)' from the fields of the model that holds the unknown key."""
    model: Any = HomeserverConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if _is_model(model) else None
        if field is None:
            return ""
        annotation = field.annotation
        model = _inner_model(annotation)
        if model is None:
            return ""
    if not _is_model(model):
        return ""
    matches = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _inner_model(annotation: Any) -> Any:
    if _is_model(annotation):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if _is_model(arg):
            return arg
    return None
