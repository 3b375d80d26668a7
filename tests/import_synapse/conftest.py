"""A new Ranvier database per engine for the module's import (module_database)."""

from __future__ import annotations

from tests.integration.conftest import module_database

__all__ = ["module_database"]
