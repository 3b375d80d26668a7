"""Outbound federation as its admin watches it: a remote server (the scripted fake) joins a
local room, a local message reaches it in a transaction, and the transaction, PDU and
queue metrics move; the fake, named in `federation_metrics_domains`, gets its own
last-sent time. Both engines."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ENGINES
from tests.federation.conftest import postgres_section, sqlite_section, test_ca
from tests.federation.fake_server import FakeServer
from tests.federation.harness import FederatingServer, FederationCA, launch_federating_server
from tests.federation.test_inbound_events import message
from tests.federation.test_outbound_queue import new_room, say, wait_for_body
from tests.integration.homeserver import free_port
from tests.metrics.scrape import Scrape, scrape

__all__ = ["postgres_section", "sqlite_section", "test_ca"]


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


@pytest.fixture(scope="module", params=ENGINES)
def metered(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    test_ca: FederationCA,
    fake: FakeServer,
) -> Iterator[tuple[FederatingServer, str]]:
    """A federating server with metrics on its own plain-HTTP port, and that port's URL."""
    section: dict[str, Any] = request.getfixturevalue(f"{request.param}_section")
    metrics_port = free_port()
    server = launch_federating_server(
        tmp_path_factory.mktemp("hs"),
        section,
        test_ca,
        extra_listeners=[
            {"port": metrics_port, "bind_addresses": ["127.0.0.1"], "type": "metrics"}
        ],
        enable_metrics=True,
        federation_metrics_domains=[fake.server_name],
    )
    try:
        server.wait_until_serving()
        yield server, f"http://127.0.0.1:{metrics_port}/_synapse/metrics"
    finally:
        assert server.stop() == 0, server.log()


def labelled(metrics: Scrape, sample: str, server: FederatingServer, **labels: str) -> float:
    return metrics.value(sample, server_name=server.server_name, **labels)


def test_a_transaction_to_another_server_moves_the_federation_metrics(
    metered: tuple[FederatingServer, str], fake: FakeServer
) -> None:
    server, metrics_url = metered
    room = new_room(server, fake)
    before = scrape(metrics_url)
    started = time.time()
    hello = "hello, metered"
    say(server, room.alice, room.room_id, hello)
    wait_for_body(fake, hello)

    def moved() -> Scrape:
        # the transaction is counted once the fake's answer is back
        deadline = time.monotonic() + 10
        while True:
            after = scrape(metrics_url)
            sent = labelled(after, "synapse_federation_client_sent_transactions_total", server)
            if sent > labelled(before, "synapse_federation_client_sent_transactions_total", server):
                return after
            assert time.monotonic() < deadline, "the transaction was never counted"
            time.sleep(0.05)

    after = moved()
    queued = "synapse_federation_client_sent_pdu_destinations_count_total"
    assert labelled(after, queued, server) >= labelled(before, queued, server) + 1
    pairs = "synapse_federation_client_sent_pdu_destinations_total"
    assert labelled(after, pairs, server) >= labelled(before, pairs, server) + 1
    last_sent = labelled(
        after,
        "synapse_federation_last_sent_pdu_time",
        server,
        destination_server_name=fake.server_name,
    )
    assert started - 1 <= last_sent <= time.time() + 1
    block = {"block_name": "send_transaction"}
    assert labelled(after, "synapse_util_metrics_block_count_total", server, **block) >= 1
    for gauge in ("destinations", "pdus", "edus"):
        sample = f"synapse_federation_transaction_queue_pending_{gauge}"
        assert (sample, (("server_name", server.server_name),)) in after.samples
    # only the servers named in federation_metrics_domains get a label of their own
    assert {
        dict(key)["destination_server_name"]
        for key in after.matching("synapse_federation_last_sent_pdu_time")
    } == {fake.server_name}


def test_a_transaction_from_another_server_is_counted(
    metered: tuple[FederatingServer, str], fake: FakeServer
) -> None:
    server, metrics_url = metered
    room = new_room(server, fake)
    member = next(
        state_key
        for kind, state_key in room.state
        if kind == "m.room.member" and state_key.endswith(":" + fake.server_name)
    )
    before = scrape(metrics_url)
    started = time.time()
    event = message(fake, room, "hello from afar", sender=member)
    typing = {"room_id": room.room_id, "user_id": member, "typing": True}
    reply = fake.send_transaction(
        server,
        f"t{secrets.token_hex(6)}",
        [event.pdu],
        [{"edu_type": "m.typing", "content": typing}],
    )
    assert reply.status == 200, reply.body
    assert reply.json()["pdus"] == {event.event_id: {}}
    after = scrape(metrics_url)
    for kind in ("pdus", "edus"):
        sample = f"synapse_federation_server_received_{kind}_total"
        assert labelled(after, sample, server) == labelled(before, sample, server) + 1, kind
    last_received = labelled(
        after,
        "synapse_federation_last_received_pdu_time",
        server,
        origin_server_name=fake.server_name,
    )
    assert started - 1 <= last_received <= time.time() + 1
