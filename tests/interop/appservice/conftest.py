"""A Ranvier per test module with that module's bridge `registration` on it, which the tests
may restart; the human on the other side of the bridge."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import module_database
from tests.integration.homeserver import free_port, write_test_config
from tests.integration.matrix import REGISTRATION_CONFIG, Session, register
from tests.interop.appservice.bridges import Homeserver, Registration

__all__ = ["module_database"]


@pytest.fixture(scope="module")
def homeserver(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    registration: Registration,
) -> Iterator[Homeserver]:
    directory = tmp_path_factory.mktemp("hs")
    port = free_port()
    config = write_test_config(
        directory,
        module_database,
        port,
        **REGISTRATION_CONFIG,
        app_service_config_files=[str(registration.write(directory))],
    )
    homeserver = Homeserver(config, port)
    homeserver.start()
    try:
        yield homeserver
    finally:
        if homeserver.running is not None:
            homeserver.stop()


@pytest.fixture(scope="module")
def human(homeserver: Homeserver) -> Session:
    return register(homeserver.url, "human")
