"""Many users sending into one room at once, over HTTP: every event lands, in one order."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.integration.homeserver import RunningServer
from tests.integration.matrix import Session, authed, register

CLIENT = "/_matrix/client/v3"
USERS = 10
MESSAGES_EACH = 10


async def send_all(server: RunningServer, room_id: str, sessions: list[Session]) -> list[str]:
    async with aiohttp.ClientSession() as http:

        async def send(session: Session, n: int) -> str:
            url = f"{server.url}{CLIENT}/rooms/{room_id}/send/m.room.message/t{n}"
            body = {"msgtype": "m.text", "body": f"{session.user_id} {n}"}
            async with http.put(url, json=body, headers=session.headers) as response:
                assert response.status == 200, await response.text()
                event_id: str = (await response.json())["event_id"]
                return event_id

        async def send_in_order(session: Session) -> list[str]:
            # each user waits for its own answer, as a client does; users race each other
            return [await send(session, n) for n in range(MESSAGES_EACH)]

        per_user = await asyncio.gather(*(send_in_order(s) for s in sessions))
        return [event_id for events in per_user for event_id in events]


def test_concurrent_senders_lose_nothing(server: RunningServer) -> None:
    sessions = [register(server.url, f"sender{i}") for i in range(USERS)]
    owner = sessions[0]
    created = authed(owner, "POST", server.url + CLIENT + "/createRoom", {"preset": "public_chat"})
    room_id = created.json()["room_id"]
    for session in sessions[1:]:
        joined = authed(session, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/join", {})
        assert joined.status == 200, joined.body

    sent = asyncio.run(send_all(server, room_id, sessions))
    assert len(set(sent)) == USERS * MESSAGES_EACH

    # page the whole timeline back: each sent event exactly once, and each user's
    # messages in the order that user sent them
    seen: list[dict[str, Any]] = []
    url = f"{server.url}{CLIENT}/rooms/{room_id}/messages?dir=b&limit=37"
    token = None
    while True:
        page = authed(owner, "GET", url + (f"&from={token}" if token else "")).json()
        seen += page["chunk"]
        if "end" not in page or not page["chunk"]:
            break
        token = page["end"]
    messages = [e for e in reversed(seen) if e["type"] == "m.room.message"]
    assert sorted(e["event_id"] for e in messages) == sorted(sent)
    for session in sessions:
        bodies = [e["content"]["body"] for e in messages if e["sender"] == session.user_id]
        assert bodies == [f"{session.user_id} {n}" for n in range(MESSAGES_EACH)]
