"""/messages backfills from a real Synapse: a Ranvier user (SQLite) joins a Synapse room
with history from before, and paging back pulls that history with Synapse's /backfill,
checked and served in order down to the room's creation."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from tests.federation.harness import FederatingServer, register
from tests.federation.replies import ok
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse
from tests.integration.matrix import CLIENT

BEFORE = 20


def test_a_ranvier_user_pages_back_into_synapse_history(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    sam = register_on_synapse(synapse, f"sam{secrets.token_hex(3)}")
    body = {"name": "Synapse's old room", "preset": "public_chat"}
    room_id = ok(synapse.authed(sam, "POST", CLIENT + "/createRoom", body))["room_id"]
    for i in range(BEFORE):
        path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t{secrets.token_hex(4)}"
        ok(synapse.authed(sam, "PUT", path, {"msgtype": "m.text", "body": f"early {i}"}))
    carol = register(ranvier, f"carol{secrets.token_hex(3)}")
    path = f"{CLIENT}/join/{quote(room_id)}?server_name={quote(synapse.server_name)}"
    ok(ranvier.authed(carol, "POST", path))
    events: list[dict[str, Any]] = []
    token = ""
    for _ in range(20):
        path = f"{CLIENT}/rooms/{quote(room_id)}/messages?dir=b&limit=15{token}"
        page = ok(ranvier.authed(carol, "GET", path))
        events.extend(page["chunk"])
        if "end" not in page:
            break
        token = f"&from={quote(page['end'])}"
    else:
        raise AssertionError("pagination never ended")
    bodies = [e["content"]["body"] for e in events if e["type"] == "m.room.message"]
    assert bodies == [f"early {i}" for i in reversed(range(BEFORE))]
    assert events[0]["type"] == "m.room.member" and events[0]["state_key"] == carol.user_id
    assert events[-1]["type"] == "m.room.create"
