"""matrix-nio, a real Matrix client, in a room with another: create, invite, join, and each
reads the other's messages through /messages."""

from __future__ import annotations

from nio import (
    AsyncClient,
    JoinResponse,
    RegisterResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomSendResponse,
)

from tests.integration.homeserver import RunningServer


async def registered(server: RunningServer, localpart: str) -> AsyncClient:
    client = AsyncClient(server.url, localpart)
    response = await client.register(localpart, "correct horse", device_name=f"nio-{localpart}")
    assert isinstance(response, RegisterResponse), response
    return client


async def texts(client: AsyncClient, room_id: str) -> list[tuple[str, str]]:
    # nio needs a start token; an empty one reads from the newest event backwards
    page = await client.room_messages(room_id, start="", limit=50)
    assert isinstance(page, RoomMessagesResponse), page
    return [(e.sender, e.body) for e in reversed(page.chunk) if isinstance(e, RoomMessageText)]


async def test_two_clients_exchange_messages(server: RunningServer) -> None:
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    try:
        created = await alice.room_create(name="Tea party")
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id

        invited = await alice.room_invite(room_id, bob.user_id)
        assert isinstance(invited, RoomInviteResponse), invited
        joined = await bob.join(room_id)
        assert isinstance(joined, JoinResponse), joined

        content = {"msgtype": "m.text", "body": "Have some wine"}
        sent = await alice.room_send(room_id, "m.room.message", content)
        assert isinstance(sent, RoomSendResponse), sent
        content = {"msgtype": "m.text", "body": "I don't see any wine"}
        sent = await bob.room_send(room_id, "m.room.message", content)
        assert isinstance(sent, RoomSendResponse), sent

        expected = [
            (alice.user_id, "Have some wine"),
            (bob.user_id, "I don't see any wine"),
        ]
        assert await texts(alice, room_id) == expected
        assert await texts(bob, room_id) == expected
    finally:
        await alice.close()
        await bob.close()
