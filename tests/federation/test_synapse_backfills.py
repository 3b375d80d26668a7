"""A real Synapse backfills a Ranvier room's history: its user joins a room that has
history from before, and paginating back in /messages makes Synapse ask Ranvier with
/backfill (and /state_ids and /event for the state at the gap), check what it gets and
show it. Ranvier on SQLite; one Synapse for the module."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.federation.harness import (
    FederatingServer,
    FederationCA,
    register,
    start_federating_server,
)
from tests.federation.replies import ok
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse
from tests.integration.matrix import CLIENT


@pytest.fixture(scope="module")
def ranvier(
    tmp_path_factory: pytest.TempPathFactory,
    test_ca: FederationCA,
    sqlite_section: dict[str, Any],
) -> Iterator[FederatingServer]:
    server = start_federating_server(tmp_path_factory.mktemp("hs"), sqlite_section, test_ca)
    try:
        yield server
    finally:
        assert server.stop() == 0, server.log()


def test_synapse_reads_history_from_before_its_join(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    alice = register(ranvier, "alice")
    room_id = ok(ranvier.authed(alice, "POST", CLIENT + "/createRoom", {"preset": "public_chat"}))[
        "room_id"
    ]
    bodies = [f"message {i}" for i in range(30)]
    for i, body in enumerate(bodies):
        path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t{i}"
        ok(ranvier.authed(alice, "PUT", path, {"msgtype": "m.text", "body": body}))
    sam = register_on_synapse(synapse, "sam")
    join = f"{CLIENT}/join/{quote(room_id)}?server_name={quote(ranvier.server_name)}"
    reply = synapse.authed(sam, "POST", join, {})
    assert reply.status == 200, (reply.body, synapse.log()[-4000:], ranvier.log()[-4000:])
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        path = f"{CLIENT}/rooms/{quote(room_id)}/messages?dir=b&limit=100"
        chunk = ok(synapse.authed(sam, "GET", path))["chunk"]
        seen = [e["content"].get("body") for e in chunk if e["type"] == "m.room.message"]
        if len(seen) >= len(bodies):
            break
        time.sleep(0.5)
    assert seen == list(reversed(bodies)), (seen, synapse.log()[-6000:])
    # they came through Ranvier's /backfill (its access log names the path)
    assert "/_matrix/federation/v1/backfill/" in ranvier.log()
