"""The transactions pushed to an application service, as its admin watches them: sent,
failed (and retried) and the events they carried, by the service's ID. Both engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.appservice.fake_appservice import FakeAppService
from tests.appservice.pushed import bot_joins, events_in, send, wait_until
from tests.integration.conftest import module_database
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, Session, create_room, register
from tests.metrics.scrape import SERVER_NAME, Scrape, scrape
from tests.metrics.servers import serving_metrics

__all__ = ["module_database"]


@pytest.fixture(scope="module")
def appservice(module_database: dict[str, Any]) -> Iterator[FakeAppService]:
    # its first transaction is refused, so one attempt fails before one is acknowledged
    with FakeAppService(id="metered_bridge", fail_transactions=1) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    appservice: FakeAppService,
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    with serving_metrics(
        directory,
        module_database,
        **REGISTRATION_CONFIG,
        app_service_config_files=[appservice.write_registration(directory)],
    ) as running:
        yield running


def test_transactions_to_a_service_are_counted_by_its_id(
    server: RunningServer, appservice: FakeAppService
) -> None:
    alice: Session = register(server.url, "alice")
    room_id = create_room(server.url, alice)
    bot_joins(server, appservice, alice, room_id)
    sent = [send(server, alice, room_id, f"message {n}") for n in range(3)]
    wait_until(
        lambda: {e["event_id"] for e in events_in(appservice, room_id)} >= set(sent),
        "the messages to reach the service",
    )
    service = {"service": "metered_bridge", "server_name": SERVER_NAME}

    def counted() -> tuple[Scrape, int] | None:
        # a transaction is counted once its acknowledgement is stored, just after the
        # service has it; and more may come (the bot's own membership, say)
        received = list(appservice.transactions)
        metrics = scrape(server.url + "/_synapse/metrics")
        sent = metrics.value("synapse_appservice_api_sent_transactions_total", **service)
        if sent != len(received) or received != appservice.transactions:
            return None
        return metrics, sum(len(body.get("events", ())) for _, body in received)

    metrics, delivered = wait_until(counted, "the acknowledged transactions to be counted")
    assert metrics.value("synapse_appservice_api_failed_transactions_total", **service) == 1
    assert metrics.value("synapse_appservice_api_sent_transactions_total", **service) >= 1
    assert metrics.value("synapse_appservice_api_sent_events_total", **service) == delivered
    assert delivered >= len(sent)
