"""Fixtures for federation tests: the session's test CA, and federating servers shared by a
test module (see harness.py; a real Synapse peer is in synapse_peer.py).

`two_servers` is a pair per module: `first` on SQLite and `second` on PostgreSQL, so a test
that goes both ways covers each engine on each side of the exchange without starting four
servers. A module with a config of its own assigns `two_servers = federating_pair(**overrides)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import new_database_config
from tests.federation.harness import (
    FederatingServer,
    FederationCA,
    federating,
    launch_federating_server,
)
from tests.federation.synapse_peer import synapse  # noqa: F401 (a fixture for the directory)
from tests.integration.conftest import as_yaml_section


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> FederationCA:
    """The CA every test server's certificate comes from; its PEM is `test_ca.pem_path`."""
    return FederationCA(tmp_path_factory.mktemp("ca"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sqlite_section(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Any]]:
    async for config in new_database_config("sqlite", tmp_path_factory.mktemp("db")):
        yield as_yaml_section(config)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def postgres_section(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, Any]]:
    """A fresh PostgreSQL database (skipped when unreachable, failed under CI=true)."""
    async for config in new_database_config("postgres", tmp_path_factory.mktemp("db")):
        yield as_yaml_section(config)


@dataclass(frozen=True)
class ServerPair:
    first: FederatingServer  # on SQLite
    second: FederatingServer  # on PostgreSQL

    def __iter__(self) -> Iterator[FederatingServer]:
        return iter((self.first, self.second))


def federating_pair(**overrides: Any) -> Any:
    """A module-scoped `two_servers` fixture, for a module to assign: two federating
    Ranvier servers (SQLite, PostgreSQL) with `overrides` on top of the harness config."""

    @pytest.fixture(scope="module")
    def two_servers(
        tmp_path_factory: pytest.TempPathFactory,
        test_ca: FederationCA,
        sqlite_section: dict[str, Any],
        postgres_section: dict[str, Any],
    ) -> Iterator[ServerPair]:
        first = launch_federating_server(
            tmp_path_factory.mktemp("hs1"), sqlite_section, test_ca, **overrides
        )
        try:
            second = launch_federating_server(
                tmp_path_factory.mktemp("hs2"), postgres_section, test_ca, **overrides
            )
            try:
                # both start at once
                first.wait_until_serving()
                second.wait_until_serving()
                yield ServerPair(first, second)
            finally:
                assert second.stop() == 0, second.log()
        finally:
            assert first.stop() == 0, first.log()

    return two_servers


two_servers = federating_pair()


@pytest.fixture(scope="module")
def ranvier(
    tmp_path_factory: pytest.TempPathFactory,
    test_ca: FederationCA,
    sqlite_section: dict[str, Any],
) -> Iterator[FederatingServer]:
    """One federating Ranvier server on SQLite per module, for tests beside the Synapse
    peer (`synapse`)."""
    with federating(tmp_path_factory.mktemp("ranvier"), sqlite_section, test_ca) as server:
        yield server
