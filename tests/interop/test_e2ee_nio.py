"""matrix-nio with its end-to-end encryption (vodozemac), a real client, against Ranvier: two
clients of two users in an encrypted room; Alice's message reaches Bob as Megolm ciphertext
and Bob reads the plaintext. Keys travel the way they do between real clients: device and
one-time keys through /keys/upload, /keys/query and /keys/claim, the room key in an
Olm-encrypted to-device message, the one-time key count and device list changes in /sync."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
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

from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import CLIENT, REGISTRATION_CONFIG, Session, authed

PASSWORD = "correct horse battery staple"
ENCRYPTION = {"algorithm": "m.megolm.v1.aes-sha2"}
BODY = "Twinkle, twinkle, little bat, end to end encrypted"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[RunningServer]:
    with serving(tmp_path_factory.mktemp("hs"), module_database, **REGISTRATION_CONFIG) as running:
        yield running


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


async def test_bob_decrypts_what_alice_sent(
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
    sent = await alice.room_send(
        room_id,
        "m.room.message",
        {"msgtype": "m.text", "body": BODY},
        ignore_unverified_devices=True,
    )
    assert isinstance(sent, RoomSendResponse), sent
    assert bob.device_id in alice.device_store[bob.user_id]

    seen: list[Any] = []
    for _ in range(10):
        response = await synced(bob)
        room = response.rooms.join.get(room_id)
        if room is not None:
            seen += [e for e in room.timeline.events if e.event_id == sent.event_id]
        if seen:
            break
    assert len(seen) == 1, "Alice's message never reached Bob's sync"
    message = seen[0]
    # nio decrypts with the room key that came in the same sync's to_device section
    assert not isinstance(message, MegolmEvent), "Bob could not decrypt Alice's message"
    assert isinstance(message, RoomMessageText), message
    assert message.body == BODY
    assert message.sender == alice.user_id
    assert message.decrypted
    assert message.session_id

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
