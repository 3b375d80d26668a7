"""The `log_config` file: read, checked, and Synapse's class names translated to Ranvier's.

A Synapse log config names Synapse's own classes (its buffering handler, its request
context filter, its JSON formatters). Each has a Ranvier equivalent that behaves the same,
so the file works unchanged; any other `synapse.` class is refused with the fix, before
logging is set up, so the admin sees a message and not a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Synapse's class -> Ranvier's equivalent (older Synapse releases had other module paths)
SYNAPSE_CLASSES: dict[str, str] = {
    "synapse.logging.handlers.PeriodicallyFlushingMemoryHandler": (
        "ranvier.logs.PeriodicallyFlushingMemoryHandler"
    ),
    "synapse.logging.context.LoggingContextFilter": "ranvier.logs.RequestContextFilter",
    "synapse.util.logcontext.LoggingContextFilter": "ranvier.logs.RequestContextFilter",
    "synapse.logging.TerseJsonFormatter": "ranvier.logs.TerseJsonFormatter",
    "synapse.logging.JsonFormatter": "ranvier.logs.JsonFormatter",
    "synapse.logging._terse_json.TerseJsonFormatter": "ranvier.logs.TerseJsonFormatter",
    "synapse.logging._terse_json.JsonFormatter": "ranvier.logs.JsonFormatter",
}


class LogConfigError(Exception):
    """A log config Ranvier cannot use; the message says why and what to do."""


def read_log_config(path: Path) -> dict[str, Any]:
    """The dictConfig in `path`, Synapse's classes translated; LogConfigError if unusable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LogConfigError(
            f"log_config: the logging configuration {str(path)!r} does not exist; create it "
            "or point log_config at one (ranvier generate-config writes one)"
        ) from None
    except OSError as exc:
        raise LogConfigError(f"log_config: cannot read {str(path)!r}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LogConfigError(f"log_config: {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise LogConfigError(
            f"log_config: {str(path)!r} must be a YAML mapping (a logging dictConfig)"
        )
    if raw.get("structured") is True:
        raise LogConfigError(
            f"log_config: {str(path)!r} sets 'structured: true', which was removed; write a "
            "standard logging dictConfig (version: 1, formatters, handlers, loggers) instead, "
            "using a JSON formatter for structured output"
        )
    translated, unknown = _translate(raw)
    if unknown:
        raise LogConfigError(
            f"log_config: {str(path)!r} names Synapse's {', '.join(unknown)}, which Ranvier "
            "does not have; use a standard Python logging class there (logging.Formatter, "
            "logging.StreamHandler, logging.handlers.TimedRotatingFileHandler, ...)"
        )
    return translated


def _translate(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    unknown: list[str] = []
    out = dict(raw)
    for section in ("formatters", "filters", "handlers"):
        entries = raw.get(section)
        if not isinstance(entries, dict):
            continue
        translated = {}
        for name, entry in entries.items():
            if isinstance(entry, dict):
                entry = dict(entry)
                for key in ("class", "()"):
                    value = entry.get(key)
                    if not (isinstance(value, str) and value.startswith("synapse.")):
                        continue
                    if value not in SYNAPSE_CLASSES:
                        unknown.append(f"'{value}' ({section}.{name})")
                        continue
                    entry[key] = SYNAPSE_CLASSES[value]
                    if value.endswith("LoggingContextFilter"):
                        # its `request` argument was the default request name: ours is "-"
                        entry = {key: entry[key]}
            translated[name] = entry
        out[section] = translated
    return out, unknown
