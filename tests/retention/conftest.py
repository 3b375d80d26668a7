"""Fixtures for the retention tests: the `generated` config of tests/config, and the
per-engine databases of tests/integration."""

from __future__ import annotations

from tests.config.conftest import generated
from tests.integration.conftest import module_database

__all__ = ["generated", "module_database"]
