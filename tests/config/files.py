"""Editing a homeserver.yaml as an admin would, and reading start-up's refusal of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ranvier.config import ConfigError, load_config

# passed as a value to `write_config`: take the key out of the file
REMOVED = object()


def write_config(path: Path, **changes: object) -> Path:
    raw = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is REMOVED:
            raw.pop(key, None)
        else:
            raw[key] = value
    path.write_text(yaml.safe_dump(raw))
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value), "the message must name the file"
    return str(info.value)
