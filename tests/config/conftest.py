"""What every config test starts from: the config `generate-config` writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ranvier.config.generate import generate_config


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    generate_config("example.org", tmp_path / "homeserver.yaml", tmp_path / "data")
    return tmp_path / "homeserver.yaml"
