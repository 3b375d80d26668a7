"""matrix-nio with its end-to-end encryption (vodozemac), a real client, against Ranvier: two
clients of two users in an encrypted room; Alice's message reaches Bob as Megolm ciphertext
and Bob reads the plaintext, and Bob's answer reaches Alice the same way. Keys travel the
way they do between real clients: device and one-time keys through /keys/upload,
/keys/query and /keys/claim, the room key in an Olm-encrypted to-device message, the
one-time key count and device list changes in /sync."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    KeysUploadResponse,
    MegolmEvent,
    RegisterResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed

PASSWORD = "correct horse battery staple"
ENCRYPTION = {"algorithm": "m.megolm.v1.aes-sha2"}
BODY = "Twinkle, twinkle, little bat, end to end encrypted"
REPLY = "How I wonder what you're at"


async def encrypting_client(server: RunningServer, localpart: str, store: Path) -> AsyncClient:
    """A registered nio client with its Olm account and device keys uploaded."""
    store.mkdir()
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    client = AsyncClient(server.url, localpart, store_path=str(store), config=config)
    registered = await client.register(localpart, PASSWORD, device_name=f"nio-e2ee-{localpart}")
    assert isinstance(registered, RegisterResponse), registered
    assert client.olm is not None, "nio has no encryption support (matrix-nio[e2e])"
    assert client.should_upload_keys
    uploaded = await client.keys_upload()
    assert isinstance(uploaded, KeysUploadResponse), uploaded
    # the server counts the one-time keys it now holds: nio's first upload fills its maximum
    assert uploaded.signed_curve25519_count == client.olm.account.max_one_time_keys
    assert not client.should_upload_keys
    return client


async def synced(client: AsyncClient) -> SyncResponse:
    response = await client.sync(timeout=1000)
    assert isinstance(response, SyncResponse), response
    return response


async def received(client: AsyncClient, room_id: str, event_id: str) -> tuple[Any, SyncResponse]:
    """The event as `client`'s sync delivered it, and that sync."""
    for _ in range(10):
        response = await synced(client)
        room = response.rooms.join.get(room_id)
        found = [e for e in room.timeline.events if e.event_id == event_id] if room else []
        if found:
            return found[0], response
    raise AssertionError(f"{event_id} never reached {client.user_id}'s sync")


async def send_text(client: AsyncClient, room_id: str, body: str) -> RoomSendResponse:
    """`body` sent encrypted to every device in the room, verified or not."""
    sent = await client.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": body},
        ignore_unverified_devices=True,
    )
    assert isinstance(sent, RoomSendResponse), sent
    return sent


@pytest.fixture
async def clients(tmp_path: Path, server: RunningServer) -> AsyncIterator[list[AsyncClient]]:
    made: list[AsyncClient] = []
    try:
        for localpart in ("alice", "bob"):
            made.append(await encrypting_client(server, localpart, tmp_path / localpart))
        yield made
    finally:
        for client in made:
            await client.close()


async def test_each_decrypts_what_the_other_sent(
    server: RunningServer, clients: list[AsyncClient]
) -> None:
    alice, bob = clients
    created = await alice.room_create(
        name="Mad tea party",
        invite=[bob.user_id],
        initial_state=[{"type": "m.room.encryption", "state_key": "", "content": ENCRYPTION}],
    )
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    first = await synced(bob)
    assert room_id in first.rooms.invite
    joined = await bob.join(room_id)
    assert isinstance(joined, JoinResponse), joined

    # Alice's sync shows Bob joined the encrypted room, so nio tracks his devices
    await synced(alice)
    assert alice.rooms[room_id].encrypted
    assert bob.user_id in alice.rooms[room_id].users
    # room_send queries Bob's device keys, claims a one-time key, sends the room key to his
    # device as an Olm to-device message, and then the Megolm-encrypted message
    sent = await send_text(alice, room_id, BODY)
    assert bob.device_id in alice.device_store[bob.user_id]

    message, bob_sync = await received(bob, room_id, sent.event_id)
    # nio decrypts with the room key that came in the same sync's to_device section
    assert not isinstance(message, MegolmEvent), "Bob could not decrypt Alice's message"
    assert isinstance(message, RoomMessageText), message
    assert message.body == BODY
    assert message.sender == alice.user_id
    assert message.decrypted
    assert message.session_id
    # Alice claimed one of Bob's one-time keys
    full = bob.olm.account.max_one_time_keys
    assert bob_sync.device_key_count.signed_curve25519 == full - 1

    # and back: Bob shares a room key of his own over the Olm session Alice opened
    reply_sent = await send_text(bob, room_id, REPLY)
    answer, alice_sync = await received(alice, room_id, reply_sent.event_id)
    assert isinstance(answer, RoomMessageText), answer
    assert (answer.sender, answer.body, answer.decrypted) == (bob.user_id, REPLY, True)
    assert answer.session_id != message.session_id
    # so none of Alice's one-time keys was needed
    assert alice_sync.device_key_count.signed_curve25519 == full

    # the server holds only ciphertext
    session = Session(bob.user_id, bob.access_token, bob.device_id)
    room, event = quote(room_id), quote(sent.event_id)
    reply = authed(session, "GET", f"{server.url}{CLIENT}/rooms/{room}/event/{event}")
    assert reply.status == 200, reply.body
    stored = reply.json()
    assert stored["type"] == "m.room.encrypted"
    assert stored["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
    assert stored["content"]["sender_key"] == alice.olm.account.identity_keys["curve25519"]
    assert BODY.encode() not in reply.body
