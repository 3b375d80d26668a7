"""Reading homeserver.yaml into a HomeserverConfig, or refusing with every problem at once."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ranvier.config.appservices import load_appservices
from ranvier.config.errors import ConfigError
from ranvier.config.models import HomeserverConfig
from ranvier.config.synapse_keys import (
    UNSUPPORTED,
    UNUSED,
    Unsupported,
    Unused,
    unsupported_problem,
)
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
    raw, not_used, synapse_problems = _sort_synapse_keys(raw)
    problems += synapse_problems
    problems += _read_secret_file(raw, "registration_shared_secret")
    problems += _read_secret_file(raw, "turn_shared_secret")
    for secret in ("recaptcha_public_key", "recaptcha_private_key", "form_secret"):
        problems += _read_secret_file(raw, secret)
    try:
        config = HomeserverConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(problems + _describe(exc), str(path)) from None
    problems += semantic_problems(config, path.parent)
    try:
        config._appservices = load_appservices(config.app_service_config_files, config.server_name)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems, str(path))
    config._not_used = tuple(not_used)
    return config


def _sort_synapse_keys(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """Takes out the Synapse keys Ranvier does not implement (synapse_keys.py): those that
    ask for nothing go quietly, unused ones are returned to be listed at start-up, and
    unsupported ones become problems. What is left is for the models."""
    kept = dict(raw)
    not_used: list[str] = []
    problems: list[str] = []
    entries: list[tuple[str, Unsupported | Unused]] = [*UNSUPPORTED.items(), *UNUSED.items()]
    for key, entry in entries:
        section, _, name = key.rpartition(".")
        holder = kept
        if section:
            inner = kept.get(section)
            if not isinstance(inner, dict) or name not in inner:
                continue
            holder = kept[section] = dict(inner)
        elif name not in kept:
            continue
        value = holder.pop(name)
        if entry.quiet(value):
            continue
        if isinstance(entry, Unsupported):
            problems.append(unsupported_problem(key, entry))
        else:
            not_used.append(key)
    return kept, not_used, problems


def _read_secret_file(raw: dict[str, Any], key: str) -> list[str]:
    """Synapse's `<key>_path`: the secret is the file's content (stripped), as if written
    under `key` itself."""
    path = raw.pop(f"{key}_path", None)
    if path is None:
        return []
    if raw.get(key) is not None:
        return [f"{key}_path: set either {key} or {key}_path, not both"]
    try:
        raw[key] = Path(path).read_text().strip()
    except OSError as exc:
        return [f"{key}_path: cannot read {path!r}: {exc.strerror}"]
    return []


def _resolve_relative_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths in the file are relative to the file, so `-c` works from any directory."""
    resolved = dict(raw)
    for key in (
        "signing_key_path",
        "media_store_path",
        "log_config",
        "pid_file",
        "registration_shared_secret_path",
        "turn_shared_secret_path",
        "recaptcha_public_key_path",
        "recaptcha_private_key_path",
        "form_secret_path",
        "tls_certificate_path",
        "tls_private_key_path",
    ):
        value = resolved.get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            resolved[key] = str(base / value)
    for key in ("federation_custom_ca_list", "app_service_config_files"):
        files = resolved.get(key)
        if isinstance(files, list):
            resolved[key] = [
                str(base / entry)
                if isinstance(entry, str) and not Path(entry).is_absolute()
                else entry
                for entry in files
            ]
    templates = resolved.get("templates")
    if isinstance(templates, dict):
        directory = templates.get("custom_template_directory")
        if isinstance(directory, str) and not Path(directory).is_absolute():
            resolved["templates"] = {
                **templates,
                "custom_template_directory": str(base / directory),
            }
    consent = resolved.get("user_consent")
    if isinstance(consent, dict):
        directory = consent.get("template_dir")
        if isinstance(directory, str) and not Path(directory).is_absolute():
            resolved["user_consent"] = {**consent, "template_dir": str(base / directory)}
    email = resolved.get("email")
    if isinstance(email, dict):
        directory = email.get("template_dir")
        if isinstance(directory, str) and not Path(directory).is_absolute():
            resolved["email"] = {**email, "template_dir": str(base / directory)}
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
    candidates = list(model.model_fields)
    if model is HomeserverConfig:
        # a misspelt Synapse key is better told by its right spelling than as unknown
        candidates += [key for key in (*UNSUPPORTED, *UNUSED) if "." not in key]
    matches = difflib.get_close_matches(str(loc[-1]), candidates, n=1)
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
