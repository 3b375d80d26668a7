"""With `use_appservice_legacy_authorization: true`, services written before spec v1.4
also find the hs_token in the `access_token` query parameter. Both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.appservice.fake_appservice import FakeAppService
from tests.appservice.pushed import bot_joins, fresh_service, send, transaction_requests, wait_until
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import REGISTRATION_CONFIG, create_room, register


@pytest.fixture(scope="module")
def appservice(module_database: dict[str, Any]) -> Iterator[FakeAppService]:
    yield from fresh_service()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    appservice: FakeAppService,
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    with serving(
        directory,
        module_database,
        **REGISTRATION_CONFIG,
        app_service_config_files=[appservice.write_registration(directory)],
        use_appservice_legacy_authorization=True,
    ) as running:
        yield running


def test_the_hs_token_is_in_the_query_too(
    server: RunningServer, appservice: FakeAppService
) -> None:
    alice = register(server.url, "alice")
    room_id = create_room(server.url, alice)
    bot_joins(server, appservice, alice, room_id)
    message = send(server, alice, room_id, "old bridge")
    wait_until(lambda: any(e["event_id"] == message for e in appservice.events()), "the message")
    requests = transaction_requests(appservice)
    assert requests
    for received in requests:
        assert received.query.get("access_token") == appservice.hs_token
        assert received.authorization == f"Bearer {appservice.hs_token}"
