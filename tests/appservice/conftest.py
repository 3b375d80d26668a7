"""One homeserver per test module with a scripted application service registered on it
(`appservice`, a FakeAppService), on each engine; users to act as."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.appservice.fake_appservice import FakeAppService
from tests.integration.conftest import module_database
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import REGISTRATION_CONFIG, Session, register

__all__ = ["module_database"]


@pytest.fixture(scope="module")
def appservice(module_database: dict[str, Any]) -> Iterator[FakeAppService]:
    # one per engine's server (module_database is), so what each server sends stays apart
    with FakeAppService() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    appservice: FakeAppService,
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    registration = appservice.write_registration(directory)
    with serving(
        directory,
        module_database,
        **REGISTRATION_CONFIG,
        app_service_config_files=[registration],
    ) as running:
        yield running


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Session:
    return register(server.url, "alice")
