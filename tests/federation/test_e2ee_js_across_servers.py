"""matrix-js-sdk with its Rust crypto stack (tests/interop/js/federation_e2ee.mjs) and
matrix-nio with vodozemac, each user on a different server, in an encrypted room made by the
nio user: they verify each other's device, exchange Megolm messages both ways (each decrypts
the other's, from a device it trusts), see each other typing and reading, see a new login of
the other in their sync's `device_lists.changed`, and each views an image the other uploaded,
downloaded through its own server from the other's (authenticated media, over federation).

Verification is by comparing device keys out of band (each client checks that the Ed25519 key
its server fetched for the other's device is the one the other client holds, then marks the
device verified), not SAS: nio 0.26 only starts SAS without an `m.key.verification.request`,
a flow js-sdk's crypto API does not surface; SAS between two nio clients across servers is in
test_e2ee_nio_across_servers.py.

Pairings: js-sdk on Ranvier (SQLite) with nio on Ranvier (PostgreSQL), and js-sdk on Ranvier
(PostgreSQL) with nio on a real Synapse. Every server is HTTPS with a certificate from the
test CA, which both clients trust.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    KeysQueryResponse,
    KeysUploadResponse,
    LoginResponse,
    MemoryDownloadResponse,
    RoomCreateResponse,
    RoomEncryptedImage,
    RoomMessageText,
    RoomReadMarkersResponse,
    RoomSendResponse,
    RoomTypingResponse,
    UploadResponse,
)
from nio.crypto.attachments import decrypt_attachment

from tests.federation.conftest import ServerPair
from tests.federation.harness import FederationCA, register
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse
from tests.federation.test_e2ee_nio_across_servers import (
    ENCRYPTION,
    received,
    sync_until,
    synced,
)
from tests.integration.matrix import DEFAULT_PASSWORD, Session
from tests.interop.node import JS_DIR, JsMember

FROM_NIO = "Twinkle, twinkle, little bat, from Python"
FROM_JS = "How I wonder what you're at, from Node"
STEP_TIMEOUT = 30.0


class JsE2eeMember(JsMember):
    """A matrix-js-sdk client with Rust crypto, driven step by step (see the script)."""

    SCRIPT = JS_DIR / "federation_e2ee.mjs"


@dataclass(frozen=True)
class Home:
    """Where a user lives: the base URL clients use and the server name in its IDs."""

    url: str
    server_name: str


def png(seed: bytes) -> bytes:
    """A 4x4 RGB PNG whose pixels come from `seed`, so each test's image is its own."""
    pixels = hashlib.sha256(seed).digest()[:48]
    raw = b"".join(b"\x00" + pixels[row * 12 : row * 12 + 12] for row in range(4))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def nio_client(home: Home, ca: FederationCA, session: Session, store: Path) -> AsyncClient:
    """A nio client with encryption for a logged-in session, its device keys uploaded."""
    store.mkdir()
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    # nio's hint says bool, but it hands an SSLContext on to aiohttp as it is
    context: Any = ca.client_context()
    client = AsyncClient(
        home.url, session.user_id, store_path=str(store), config=config, ssl=context
    )
    client.restore_login(session.user_id, session.device_id, session.access_token)
    assert client.olm is not None, "nio has no encryption support (matrix-nio[e2e])"
    uploaded = await client.keys_upload()
    assert isinstance(uploaded, KeysUploadResponse), uploaded
    return client


async def log_in_again(home: Home, ca: FederationCA, user_id: str, store: Path) -> str:
    """A new device of `user_id`, logged in with the password and its keys uploaded, as a
    client on a new computer would; returns its device ID."""
    store.mkdir()
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    context: Any = ca.client_context()
    client = AsyncClient(home.url, user_id, store_path=str(store), config=config, ssl=context)
    try:
        login = await client.login(DEFAULT_PASSWORD, device_name="second login")
        assert isinstance(login, LoginResponse), login
        uploaded = await client.keys_upload()
        assert isinstance(uploaded, KeysUploadResponse), uploaded
        device_id: str = login.device_id
        return device_id
    finally:
        await client.close()


@pytest.fixture
async def clients_across(
    test_ca: FederationCA, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Starts a js-sdk member on one home and a nio client on another; stops them after."""
    started: list[JsE2eeMember | AsyncClient] = []

    async def start(
        js_home: Home, js_session: Session, nio_home: Home, nio_session: Session
    ) -> tuple[JsE2eeMember, AsyncClient]:
        member = await JsE2eeMember.start(
            js_home.url, js_session, tmp_path / "js.stderr", test_ca.pem_path
        )
        assert isinstance(member, JsE2eeMember)
        started.append(member)
        client = await nio_client(nio_home, test_ca, nio_session, tmp_path / "nio")
        started.append(client)
        return member, client

    yield start
    for each in reversed(started):
        if isinstance(each, AsyncClient):
            await each.close()
        else:
            await each.kill()


async def test_js_sdk_and_nio_on_two_ranvier_servers(
    two_servers: ServerPair, test_ca: FederationCA, clients_across: Any, tmp_path: Path
) -> None:
    js_server, nio_server = two_servers
    js_home = Home(js_server.url, js_server.server_name)
    nio_home = Home(nio_server.url, nio_server.server_name)
    js_session = register(js_server, "alice")
    nio_session = register(nio_server, "dinah")
    js, nio = await clients_across(js_home, js_session, nio_home, nio_session)
    await the_whole_conversation(js, js_session, js_home, nio, nio_home, test_ca, tmp_path)
    await js.stop()


async def test_js_sdk_on_ranvier_and_nio_on_synapse(
    two_servers: ServerPair,
    synapse: SynapsePeer,
    test_ca: FederationCA,
    clients_across: Any,
    tmp_path: Path,
) -> None:
    # the PostgreSQL server, so that the js-sdk client is on each engine in this module
    js_server = two_servers.second
    js_home = Home(js_server.url, js_server.server_name)
    nio_home = Home(synapse.url, synapse.server_name)
    js_session = register(js_server, "tweedledum")
    nio_session = register_on_synapse(synapse, "tweedledee")
    js, nio = await clients_across(js_home, js_session, nio_home, nio_session)
    await the_whole_conversation(js, js_session, js_home, nio, nio_home, test_ca, tmp_path)
    await js.stop()


async def the_whole_conversation(
    js: JsE2eeMember,
    js_session: Session,
    js_home: Home,
    nio: AsyncClient,
    nio_home: Home,
    ca: FederationCA,
    tmp_path: Path,
) -> None:
    room_id = await encrypted_room(js, nio)
    await verify_each_other(js, js_session, nio)
    await exchange_messages(js, nio, room_id)
    await typing_and_reading(js, nio, room_id)
    await images_both_ways(js, js_home, nio, nio_home, room_id)
    # last, as nio sends nothing more once the room has devices it has not verified
    await new_devices_seen(js, js_session, js_home, nio, nio_home, ca, tmp_path)


async def encrypted_room(js: JsE2eeMember, nio: AsyncClient) -> str:
    """The nio user makes an encrypted room on its server and invites the js-sdk user, who
    joins from theirs."""
    created = await nio.room_create(
        name="The Looking-Glass",
        invite=[js.user_id],
        initial_state=[{"type": "m.room.encryption", "state_key": "", "content": ENCRYPTION}],
    )
    assert isinstance(created, RoomCreateResponse), created
    room_id: str = created.room_id
    assert await js.do("join", room_id=room_id) == {}
    await sync_until(
        nio,
        "the js-sdk user's join",
        lambda: room_id in nio.rooms and js.user_id in nio.rooms[room_id].users,
    )
    assert nio.rooms[room_id].encrypted
    return room_id


async def verify_each_other(js: JsE2eeMember, js_session: Session, nio: AsyncClient) -> None:
    """Each client fetched the other's device keys through its own server (which asked the
    other's); each checks them against what the other client holds and marks them verified."""
    js_keys = await js.do("own_keys")
    nio_ed25519 = nio.olm.account.identity_keys["ed25519"]

    await nio_knows_device(nio, js.user_id, js_session.device_id)
    js_device = nio.device_store[js.user_id][js_session.device_id]
    assert (js_device.ed25519, js_device.curve25519) == (js_keys["ed25519"], js_keys["curve25519"])
    assert not js_device.verified
    nio.verify_device(js_device)
    assert nio.device_store[js.user_id][js_session.device_id].verified

    seen = await js.do(
        "verify_device", user_id=nio.user_id, device_id=nio.device_id, ed25519=nio_ed25519
    )
    assert seen == {"fingerprint": nio_ed25519, "verified_before": False, "verified": True}


async def nio_knows_device(nio: AsyncClient, user_id: str, device_id: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while device_id not in nio.device_store[user_id]:
        assert time.monotonic() < deadline, f"nio never got {user_id}'s device {device_id}"
        await synced(nio)
        if nio.should_query_keys:
            queried = await nio.keys_query()
            assert isinstance(queried, KeysQueryResponse), queried


async def exchange_messages(js: JsE2eeMember, nio: AsyncClient, room_id: str) -> None:
    # nio refuses to send to an unverified device unless told to: sending plainly shows
    # it trusts the js-sdk device
    sent = await nio.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": FROM_NIO})
    assert isinstance(sent, RoomSendResponse), sent
    nio_keys = nio.olm.account.identity_keys
    seen = await js.do("decrypt", room_id=room_id, event_id=sent.event_id)
    assert seen == {
        "type": "m.room.encrypted",
        "body": FROM_NIO,
        "sender": nio.user_id,
        "sender_curve25519": nio_keys["curve25519"],
        "claimed_ed25519": nio_keys["ed25519"],
        "content": {"msgtype": "m.text", "file": None},
    }

    answered = await js.do("send", room_id=room_id, body=FROM_JS)
    answer = await received(nio, room_id, answered["event_id"])
    assert isinstance(answer, RoomMessageText), answer
    assert (answer.sender, answer.body, answer.decrypted) == (js.user_id, FROM_JS, True)
    assert answer.verified, "nio does not take the js-sdk device as the verified sender"


async def typing_and_reading(js: JsE2eeMember, nio: AsyncClient, room_id: str) -> None:
    typing = await nio.room_typing(room_id, True, timeout=30000)
    assert isinstance(typing, RoomTypingResponse), typing
    assert await js.do("sees_typing", room_id=room_id, user_id=nio.user_id) == {
        "user_ids": [nio.user_id]
    }
    assert await js.do("typing", room_id=room_id, typing=True) == {}
    await sync_until(
        nio, "the js-sdk user typing", lambda: js.user_id in nio.rooms[room_id].typing_users
    )

    # each reads the other's latest message
    nio_event = await nio.room_send(
        room_id, "m.room.message", {"msgtype": "m.text", "body": "Read me"}
    )
    js_event = await js.do("send", room_id=room_id, body="And me")
    await received(nio, room_id, js_event["event_id"])
    marked = await nio.room_read_markers(room_id, js_event["event_id"], js_event["event_id"])
    assert isinstance(marked, RoomReadMarkersResponse), marked
    receipt = await js.do(
        "sees_receipt", room_id=room_id, user_id=nio.user_id, event_id=js_event["event_id"]
    )
    assert isinstance(receipt["ts"], int)
    assert await js.do("read", room_id=room_id, event_id=nio_event.event_id) == {}
    await sync_until(
        nio,
        "the js-sdk user's read receipt",
        lambda: (
            (r := nio.rooms[room_id].read_receipts.get(js.user_id)) is not None
            and r.event_id == nio_event.event_id
        ),
    )


async def new_devices_seen(
    js: JsE2eeMember,
    js_session: Session,
    js_home: Home,
    nio: AsyncClient,
    nio_home: Home,
    ca: FederationCA,
    tmp_path: Path,
) -> None:
    """A new login on one server is in the other's client's next syncs'
    `device_lists.changed`, and that client then finds the new device."""
    assert await js.do("forget_device_changes") == {}
    nio_second = await log_in_again(nio_home, ca, nio.user_id, tmp_path / "nio2")
    assert await js.do("sees_device_change", user_id=nio.user_id) == {}
    devices = await js.do("finds_device", user_id=nio.user_id, device_id=nio_second)
    assert devices == {"device_ids": sorted([nio.device_id, nio_second])}

    js_second = await log_in_again(js_home, ca, js.user_id, tmp_path / "js2")
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        assert time.monotonic() < deadline, "nio never saw the new device in device_lists"
        response = await synced(nio)
        if js.user_id in response.device_list.changed:
            break
    await nio_knows_device(nio, js.user_id, js_second)
    assert set(nio.device_store[js.user_id].keys()) == {js_session.device_id, js_second}


async def images_both_ways(
    js: JsE2eeMember, js_home: Home, nio: AsyncClient, nio_home: Home, room_id: str
) -> None:
    """Each uploads a PNG to its own server, as an encrypted attachment (as clients do in an
    encrypted room), and sends it in the room; the other downloads it through its own server,
    which fetches it from the uploader's over federation, and decrypts it."""
    js_png = png(os.urandom(8))
    sent = await js.do("send_image", room_id=room_id, png_base64=base64.b64encode(js_png).decode())
    assert sent["content_uri"].startswith(f"mxc://{js_home.server_name}/")
    image = await received(nio, room_id, sent["event_id"])
    assert isinstance(image, RoomEncryptedImage), image
    assert (image.url, image.mimetype) == (sent["content_uri"], "image/png")
    downloaded = await nio.download(mxc=image.url)
    assert isinstance(downloaded, MemoryDownloadResponse), downloaded
    assert downloaded.content_type == "application/octet-stream"
    plaintext = decrypt_attachment(
        downloaded.body, image.key["k"], image.hashes["sha256"], image.iv
    )
    assert plaintext == js_png

    nio_png = png(os.urandom(8))
    uploaded, keys = await nio.upload(
        io.BytesIO(nio_png),
        content_type="application/octet-stream",
        filename="tea.png",
        encrypt=True,
        filesize=len(nio_png),
    )
    assert isinstance(uploaded, UploadResponse), uploaded
    assert uploaded.content_uri.startswith(f"mxc://{nio_home.server_name}/")
    assert keys is not None
    file = {"url": uploaded.content_uri, **keys}
    nio_image = await nio.room_send(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.image",
            "body": "tea.png",
            "file": file,
            "info": {"mimetype": "image/png", "size": len(nio_png)},
        },
    )
    seen = await js.do("decrypt", room_id=room_id, event_id=nio_image.event_id)
    assert seen["content"] == {"msgtype": "m.image", "file": file}
    fetched = await js.do("download", file=file)
    media_id = uploaded.content_uri.removeprefix(f"mxc://{nio_home.server_name}/")
    assert fetched == {
        "url": f"/_matrix/client/v1/media/download/{nio_home.server_name}/{media_id}",
        "status": 200,
        "content_type": "application/octet-stream",
        "hash_matches": True,
        "sha256": hashlib.sha256(nio_png).hexdigest(),
    }
