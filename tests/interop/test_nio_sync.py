"""matrix-nio's sync loop against the real server: client B sees through /sync what
client A does - invites, messages, state, typing, receipts, presence, to-device messages
and unread counts."""

from __future__ import annotations

from nio import (
    AsyncClient,
    InviteMemberEvent,
    JoinResponse,
    PresenceEvent,
    ReceiptEvent,
    RegisterResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomMessageText,
    RoomNameEvent,
    RoomSendResponse,
    SyncResponse,
    ToDeviceMessage,
    TypingNoticeEvent,
)

from tests.integration.homeserver import RunningServer


async def registered(server: RunningServer, localpart: str) -> AsyncClient:
    client = AsyncClient(server.url, localpart)
    response = await client.register(localpart, "correct horse", device_name=f"nio-{localpart}")
    assert isinstance(response, RegisterResponse), response
    return client


async def synced(client: AsyncClient, timeout: int = 5000) -> SyncResponse:
    response = await client.sync(timeout=timeout)
    assert isinstance(response, SyncResponse), response
    return response


async def test_b_sees_what_a_does_through_sync(server: RunningServer) -> None:
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    try:
        await synced(alice, 0)
        await synced(bob, 0)

        created = await alice.room_create(name="Tea party")
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        invited = await alice.room_invite(room_id, bob.user_id)
        assert isinstance(invited, RoomInviteResponse), invited
        response = await synced(bob)
        assert room_id in response.rooms.invite
        invite_events = response.rooms.invite[room_id].invite_state
        assert any(
            isinstance(e, InviteMemberEvent) and e.state_key == bob.user_id for e in invite_events
        )
        assert bob.invited_rooms[room_id].name == "Tea party"

        joined = await bob.join(room_id)
        assert isinstance(joined, JoinResponse), joined
        response = await synced(bob)
        assert room_id in response.rooms.join
        assert bob.rooms[room_id].name == "Tea party"
        assert set(bob.rooms[room_id].users) == {alice.user_id, bob.user_id}

        # messages and state
        sent = await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "Have some wine"}
        )
        assert isinstance(sent, RoomSendResponse), sent
        await alice.room_put_state(room_id, "m.room.name", {"name": "Mad tea party"})
        response = await synced(bob)
        events = response.rooms.join[room_id].timeline.events
        assert [e.body for e in events if isinstance(e, RoomMessageText)] == ["Have some wine"]
        assert any(isinstance(e, RoomNameEvent) for e in events)
        assert bob.rooms[room_id].name == "Mad tea party"
        # the message counts as unread for bob
        assert response.rooms.join[room_id].unread_notifications.notification_count >= 1

        # typing
        await alice.room_typing(room_id, True, timeout=30000)
        response = await synced(bob)
        typing = [
            e for e in response.rooms.join[room_id].ephemeral if isinstance(e, TypingNoticeEvent)
        ]
        assert typing and typing[-1].users == [alice.user_id]

        # receipts: bob reads the message, alice sees it
        await synced(alice, 0)
        await bob.room_read_markers(room_id, sent.event_id, sent.event_id)
        response = await synced(alice)
        receipts = [
            r
            for e in response.rooms.join[room_id].ephemeral
            if isinstance(e, ReceiptEvent)
            for r in e.receipts
        ]
        assert any(r.user_id == bob.user_id and r.event_id == sent.event_id for r in receipts)
        response = await synced(bob, 0)
        if room_id in response.rooms.join:
            counts = response.rooms.join[room_id].unread_notifications
            assert counts.notification_count == 0

        # presence
        await alice.set_presence("online", "curiouser")
        response = await synced(bob)
        presence = [e for e in response.presence_events if isinstance(e, PresenceEvent)]
        assert any(e.user_id == alice.user_id and e.status_msg == "curiouser" for e in presence)

        # to-device
        message = ToDeviceMessage(
            "org.example.riddle", bob.user_id, bob.device_id, {"why": "raven"}
        )
        await alice.to_device(message)
        response = await synced(bob)
        assert [e.source["content"] for e in response.to_device_events] == [{"why": "raven"}]
        response = await synced(bob, 0)
        assert response.to_device_events == []
    finally:
        await alice.close()
        await bob.close()
