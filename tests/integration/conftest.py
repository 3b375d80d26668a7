"""Databases for the server processes that integration tests start."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import ENGINES, new_database_config
from tests.integration.homeserver import RunningServer, free_port, serving, write_test_config
from tests.integration.matrix import REGISTRATION_CONFIG, Session, register


def as_yaml_section(config: Any) -> dict[str, Any]:
    section: dict[str, Any] = config.model_dump()
    return section


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=ENGINES)
async def module_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Any]]:
    """The `database:` section for a server shared by one test module, on each engine."""
    async for config in new_database_config(request.param, tmp_path_factory.mktemp("db")):
        yield as_yaml_section(config)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> dict[str, Any]:
    return {"name": "sqlite3", "args": {"database": str(tmp_path / "homeserver.db")}}


def module_server(**overrides: Any) -> Any:
    """A module-scoped `server` fixture, for a test module to assign to `server`: one server
    per module, on each engine, with `overrides` on top of the generated test config."""

    @pytest.fixture(scope="module")
    def server(
        tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
    ) -> Iterator[RunningServer]:
        with serving(tmp_path_factory.mktemp("hs"), module_database, **overrides) as running:
            yield running

    return server


def restartable_config(**overrides: Any) -> Any:
    """A module-scoped `config` fixture, for modules that start and stop the server
    themselves (restarts): (homeserver.yaml path, port) on each engine, with open
    registration and `overrides`."""

    @pytest.fixture(scope="module")
    def config(
        tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
    ) -> tuple[Path, int]:
        port = free_port()
        path = write_test_config(
            tmp_path_factory.mktemp("hs"),
            module_database,
            port,
            **{**REGISTRATION_CONFIG, **overrides},
        )
        return path, port

    return config


# the default: open registration, for `register`
server = module_server(**REGISTRATION_CONFIG)


# users most modules want, registered once per module's server
@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Session:
    return register(server.url, "alice")


@pytest.fixture(scope="module")
def bob(server: RunningServer) -> Session:
    return register(server.url, "bob")


@pytest.fixture(scope="module")
def carol(server: RunningServer) -> Session:
    return register(server.url, "carol")
