"""Transactions survive a restart of the homeserver: the one a service had not
acknowledged is sent again first, unchanged and under the same ID; nothing is sent twice;
a service registered later starts at the newest event, not at the beginning of history.
Both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.appservice.fake_appservice import FakeAppService
from tests.appservice.pushed import (
    bot_joins,
    events_in,
    fresh_service,
    send,
    transaction_requests,
    txn_id_of,
    wait_until,
)
from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config
from tests.integration.matrix import REGISTRATION_CONFIG, create_room, login, register


@pytest.fixture(scope="module")
def appservice(module_database: dict[str, Any]) -> Iterator[FakeAppService]:
    yield from fresh_service()


@pytest.fixture(scope="module")
def config(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    appservice: FakeAppService,
) -> tuple[Path, int]:
    directory = tmp_path_factory.mktemp("hs")
    port = free_port()
    path = write_test_config(
        directory,
        module_database,
        port,
        **REGISTRATION_CONFIG,
        app_service_config_files=[appservice.write_registration(directory)],
    )
    return path, port


def started(config: tuple[Path, int]) -> RunningServer:
    return start_server(*config)


def stopped(server: RunningServer) -> None:
    assert server.stop() == 0, server.log()


def test_the_unacknowledged_transaction_is_sent_again_after_a_restart(
    config: tuple[Path, int], appservice: FakeAppService
) -> None:
    server = started(config)
    try:
        alice = register(server.url, "alice")
        room_id = create_room(server.url, alice)
        bot_joins(server, appservice, alice, room_id)
        wait_until(lambda: len(events_in(appservice, room_id)) >= 2, "the bot's memberships")
        # the service is down from here: every transaction is refused
        appservice.fail_transactions = 1_000_000
        already = len(transaction_requests(appservice))
        message = send(server, alice, room_id, "sent while the bridge was down")
        first = wait_until(lambda: transaction_requests(appservice)[already:], "a refused attempt")[
            0
        ]
    finally:
        stopped(server)
    assert [e["event_id"] for e in first.body["events"]] == [message]

    appservice.fail_transactions = 0
    server = started(config)
    try:
        alice = login(server.url, "alice")
        wait_until(lambda: any(e["event_id"] == message for e in appservice.events()), "the resend")
        acknowledged = next(
            received
            for received in transaction_requests(appservice)[already:]
            if txn_id_of(received) == txn_id_of(first) and received is not first
        )
        assert acknowledged.body == first.body
        after = send(server, alice, room_id, "after the restart")
        wait_until(lambda: any(e["event_id"] == after for e in appservice.events()), "news")
    finally:
        stopped(server)
    ids = [e["event_id"] for e in appservice.events()]
    assert ids.count(message) == 1 and ids.count(after) == 1
    txn_ids = [int(txn_id) for txn_id, _ in appservice.transactions]
    assert txn_ids == sorted(txn_ids) and len(txn_ids) == len(set(txn_ids))


def test_a_service_registered_later_starts_at_the_newest_event(
    config: tuple[Path, int], appservice: FakeAppService
) -> None:
    path, _ = config
    newcomer = FakeAppService(
        id="newcomer", sender_localpart="new_bot", user_regex="@new_.*", alias_regex="#new_.*"
    ).start()
    try:
        server = started(config)
        try:
            alice = login(server.url, "alice")
            room_id = create_room(server.url, alice)
            old = send(server, alice, room_id, "before the newcomer")
        finally:
            stopped(server)
        raw = yaml.safe_load(path.read_text())
        raw["app_service_config_files"].append(newcomer.write_registration(path.parent))
        path.write_text(yaml.safe_dump(raw))
        server = started(config)
        try:
            alice = login(server.url, "alice")
            bot_joins(server, newcomer, alice, room_id)
            new = send(server, alice, room_id, "after the newcomer came")
            wait_until(lambda: any(e["event_id"] == new for e in newcomer.events()), "news")
        finally:
            stopped(server)
        # the room's history before the service was registered is not pushed to it
        ids = {e["event_id"] for e in newcomer.events()}
        assert old not in ids
        assert all(e["room_id"] == room_id for e in newcomer.events())
    finally:
        newcomer.stop()
