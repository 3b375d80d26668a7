"""matrix-nio with its end-to-end encryption (vodozemac), two real clients on two Ranvier
servers: Alice on A (SQLite) and Bob on B (PostgreSQL) in an encrypted room on A. Alice's
message reaches Bob as Megolm ciphertext and Bob reads the plaintext, and Bob's answer
reaches Alice the same way; then they verify each other's device interactively (SAS).
Everything the clients need crosses between the servers: Bob's device keys (A asks B), a
one-time key claimed from B, the room key and each verification step as to-device
messages (m.direct_to_device EDUs), and the events themselves. The same between a client
on Ranvier and one on a real Synapse, with the room on either side.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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
    SyncResponse,
    ToDeviceResponse,
)
from nio.crypto.sas import SasState

from tests.federation.conftest import ServerPair
from tests.federation.harness import FederatingServer, FederationCA
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse
from tests.interop.test_e2ee_nio import send_text

PASSWORD = "correct horse battery staple"
ENCRYPTION = {"algorithm": "m.megolm.v1.aes-sha2"}
BODY = "The time has come, the Walrus said, to talk of many things"
REPLY = "Of shoes, and ships, and sealing-wax, of cabbages and kings"
STEP_TIMEOUT = 30.0


async def encrypting_client(
    server: FederatingServer, ca: FederationCA, localpart: str, store: Path
) -> AsyncClient:
    """A registered nio client of `server` with its Olm account and device keys uploaded."""
    store.mkdir()
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    # nio's hint says bool, but it hands an SSLContext on to aiohttp as it is
    context: Any = ca.client_context()
    client = AsyncClient(server.url, localpart, store_path=str(store), config=config, ssl=context)
    registered = await client.register(localpart, PASSWORD, device_name=f"nio-{localpart}")
    assert isinstance(registered, RegisterResponse), registered
    assert client.olm is not None, "nio has no encryption support (matrix-nio[e2e])"
    uploaded = await client.keys_upload()
    assert isinstance(uploaded, KeysUploadResponse), uploaded
    return client


async def encrypting_synapse_client(
    peer: SynapsePeer, ca: FederationCA, localpart: str, store: Path
) -> AsyncClient:
    """A nio client of a user registered on Synapse, its device keys uploaded."""
    store.mkdir()
    session = register_on_synapse(peer, localpart)
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    context: Any = ca.client_context()
    client = AsyncClient(
        peer.url, session.user_id, store_path=str(store), config=config, ssl=context
    )
    client.restore_login(session.user_id, session.device_id, session.access_token)
    assert client.olm is not None, "nio has no encryption support (matrix-nio[e2e])"
    uploaded = await client.keys_upload()
    assert isinstance(uploaded, KeysUploadResponse), uploaded
    return client


async def synced(client: AsyncClient) -> SyncResponse:
    response = await client.sync(timeout=1000)
    assert isinstance(response, SyncResponse), response
    return response


async def sync_until(client: AsyncClient, what: str, found: Any) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while not found():
        assert time.monotonic() < deadline, f"{client.user_id} never saw {what}"
        await synced(client)


async def received(client: AsyncClient, room_id: str, event_id: str) -> Any:
    """The event as `client`'s sync delivered it."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        response = await synced(client)
        room = response.rooms.join.get(room_id)
        found = [e for e in room.timeline.events if e.event_id == event_id] if room else []
        if found:
            return found[0]
    raise AssertionError(f"{event_id} never reached {client.user_id}'s sync")


@pytest.fixture
async def clients(
    tmp_path: Path, two_servers: ServerPair, test_ca: FederationCA
) -> AsyncIterator[list[AsyncClient]]:
    made: list[AsyncClient] = []
    try:
        made.append(await encrypting_client(two_servers.first, test_ca, "alice", tmp_path / "a"))
        made.append(await encrypting_client(two_servers.second, test_ca, "bob", tmp_path / "b"))
        yield made
    finally:
        for client in made:
            await client.close()


async def test_clients_on_two_servers_each_decrypt_what_the_other_sent(
    two_servers: ServerPair, clients: list[AsyncClient]
) -> None:
    alice, bob = clients
    await exchange_encrypted_messages(alice, bob)
    await verify_each_other(alice, bob)


async def test_a_client_on_synapse_and_one_on_ranvier_each_decrypt_what_the_other_sent(
    two_servers: ServerPair, synapse: SynapsePeer, test_ca: FederationCA, tmp_path: Path
) -> None:
    ranvier = await encrypting_client(two_servers.second, test_ca, "tweedledum", tmp_path / "r")
    try:
        on_synapse = await encrypting_synapse_client(synapse, test_ca, "tweedledee", tmp_path / "s")
        try:
            # the room on Ranvier, then one on Synapse
            await exchange_encrypted_messages(ranvier, on_synapse)
            await exchange_encrypted_messages(on_synapse, ranvier)
            await verify_each_other(on_synapse, ranvier)
        finally:
            await on_synapse.close()
    finally:
        await ranvier.close()


async def exchange_encrypted_messages(alice: AsyncClient, bob: AsyncClient) -> None:
    """Alice makes an encrypted room on her server and invites Bob; each sends the
    other a message that the other decrypts."""
    created = await alice.room_create(
        name="The Walrus and the Carpenter",
        invite=[bob.user_id],
        initial_state=[{"type": "m.room.encryption", "state_key": "", "content": ENCRYPTION}],
    )
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    await sync_until(bob, "the invite", lambda: room_id in bob.invited_rooms)
    joined = await bob.join(room_id)
    assert isinstance(joined, JoinResponse), joined
    await sync_until(bob, "his join", lambda: room_id in bob.rooms)

    # Alice's sync shows Bob joined the encrypted room, so nio tracks his devices
    await sync_until(
        alice,
        "Bob's join",
        lambda: room_id in alice.rooms and bob.user_id in alice.rooms[room_id].users,
    )
    assert alice.rooms[room_id].encrypted
    # room_send queries Bob's device keys (A asks B), claims one of his one-time keys
    # from B, sends him the room key as an Olm to-device message through B, and then
    # the Megolm-encrypted message
    sent = await send_text(alice, room_id, BODY)
    assert bob.device_id in alice.device_store[bob.user_id]

    message = await received(bob, room_id, sent.event_id)
    assert not isinstance(message, MegolmEvent), "Bob could not decrypt Alice's message"
    assert isinstance(message, RoomMessageText), message
    assert (message.sender, message.body, message.decrypted) == (alice.user_id, BODY, True)
    assert message.session_id

    # and back: Bob's own room key reaches Alice over the Olm session Alice opened
    reply_sent = await send_text(bob, room_id, REPLY)
    assert alice.device_id in bob.device_store[alice.user_id]
    answer = await received(alice, room_id, reply_sent.event_id)
    assert not isinstance(answer, MegolmEvent), "Alice could not decrypt Bob's answer"
    assert isinstance(answer, RoomMessageText), answer
    assert (answer.sender, answer.body, answer.decrypted) == (bob.user_id, REPLY, True)
    assert answer.session_id != message.session_id


async def sync_and_send(client: AsyncClient) -> None:
    """One sync, then the to-device messages nio queued while handling it (its
    verification steps answer the other side's)."""
    await synced(client)
    if client.outgoing_to_device_messages:
        sent = await client.send_to_device_messages()
        assert all(isinstance(r, ToDeviceResponse) for r in sent), sent


async def step(client: AsyncClient, what: str, done: Any) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while not done():
        assert time.monotonic() < deadline, f"{client.user_id} never saw {what}"
        await sync_and_send(client)


async def verify_each_other(alice: AsyncClient, bob: AsyncClient) -> None:
    """Interactive (SAS) verification of each other's device, every step a to-device
    message through the other's server: both see the same emoji, and after confirming
    each holds the other's device as verified."""
    bob_device = alice.device_store[bob.user_id][bob.device_id]
    alice_device = bob.device_store[alice.user_id][alice.device_id]
    assert not bob_device.verified and not alice_device.verified
    started = await alice.start_key_verification(bob_device)
    assert isinstance(started, ToDeviceResponse), started
    (transaction_id,) = alice.key_verifications
    await step(bob, "the verification request", lambda: transaction_id in bob.key_verifications)
    accepted = await bob.accept_key_verification(transaction_id)
    assert isinstance(accepted, ToDeviceResponse), accepted
    alice_sas = alice.key_verifications[transaction_id]
    bob_sas = bob.key_verifications[transaction_id]
    # Alice answers the accept with her key, Bob his with his
    await step(alice, "the accept", lambda: alice_sas.state != SasState.created)
    await step(bob, "Alice's key", lambda: bob_sas.state != SasState.started)
    await step(alice, "Bob's key", lambda: alice_sas.state != SasState.accepted)
    assert not alice_sas.canceled and not bob_sas.canceled
    assert alice_sas.get_emoji() == bob_sas.get_emoji()
    for client in (alice, bob):
        confirmed = await client.confirm_short_auth_string(transaction_id)
        assert isinstance(confirmed, ToDeviceResponse), confirmed
    await step(alice, "Bob's MAC", lambda: alice.device_store[bob.user_id][bob.device_id].verified)
    await step(
        bob, "Alice's MAC", lambda: bob.device_store[alice.user_id][alice.device_id].verified
    )
