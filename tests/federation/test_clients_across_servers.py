"""Real Matrix clients on different servers share a room: matrix-nio (Python) and
matrix-js-sdk (Node, tests/interop/js/federation_member.mjs), each on its own server, go
through a remote invite, the join, messages both ways, a rename and a leave, and each
client sees every step through its own /sync.

Pairings: two Ranvier servers (SQLite and PostgreSQL, each client on each engine, as
inviter and invitee), and Ranvier with a real Synapse (the room on either side). Every
server is HTTPS with a certificate from the test CA, which the clients are told to trust.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    MatrixRoom,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomLeaveResponse,
    RoomMemberEvent,
    RoomMessageText,
    RoomNameEvent,
    RoomPutStateResponse,
    RoomSendResponse,
    SyncResponse,
)
from nio.events import Event as NioEvent

from tests.federation.conftest import ServerPair
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse
from tests.integration.matrix import Session
from tests.interop.node import JsMember

STEP_TIMEOUT = 30.0

FIRST_NAME = "Croquet ground"
NEW_NAME = "The Queen's croquet ground"
FROM_CREATOR = "Off with her head!"
FROM_JOINER = "Stuff and nonsense!"


class Member(Protocol):
    """One user's client, on its own server; each wait returns what that client synced."""

    user_id: str

    async def create_room(self, name: str) -> str: ...
    async def invite(self, room_id: str, user_id: str) -> None: ...
    async def invited(self, room_id: str) -> str: ...  # the inviter
    async def join(self, room_id: str) -> None: ...
    async def send(self, room_id: str, body: str) -> None: ...
    async def message(self, room_id: str, body: str) -> str: ...  # its sender
    async def set_name(self, room_id: str, name: str) -> None: ...
    async def name(self, room_id: str, name: str) -> str: ...  # who set it
    async def membership(self, room_id: str, user_id: str, membership: str) -> None: ...
    async def leave(self, room_id: str) -> None: ...


class NioMember:
    """matrix-nio, syncing whenever a step waits for something."""

    def __init__(self, client: AsyncClient, describe_servers: Callable[[], str]) -> None:
        self.client = client
        self.user_id = client.user_id
        self._describe_servers = describe_servers
        # what the timelines of joined rooms showed, per room: (sender, body) of messages,
        # (state_key, membership) of membership changes, (sender, name) of renames
        self._messages: dict[str, list[tuple[str, str]]] = {}
        self._members: dict[str, list[tuple[str, str]]] = {}
        self._names: dict[str, list[tuple[str, str]]] = {}
        self._left: set[str] = set()
        client.add_event_callback(self._on_event, (RoomMessageText, RoomMemberEvent, RoomNameEvent))

    async def _on_event(self, room: MatrixRoom, event: NioEvent) -> None:
        if isinstance(event, RoomMessageText):
            self._messages.setdefault(room.room_id, []).append((event.sender, event.body))
        elif isinstance(event, RoomMemberEvent):
            self._members.setdefault(room.room_id, []).append((event.state_key, event.membership))
        elif isinstance(event, RoomNameEvent):
            self._names.setdefault(room.room_id, []).append((event.sender, event.name))

    async def _until(self, what: str, found: Callable[[], object]) -> object:
        deadline = time.monotonic() + STEP_TIMEOUT
        while (value := found()) is None or value is False:
            if time.monotonic() > deadline:
                pytest.fail(f"nio {self.user_id} never saw {what}\n{self._describe_servers()}")
            response = await self.client.sync(timeout=1000)
            assert isinstance(response, SyncResponse), response
            self._left.update(response.rooms.leave)
        return value

    async def create_room(self, name: str) -> str:
        created = await self.client.room_create(name=name)
        assert isinstance(created, RoomCreateResponse), created
        await self._until("the new room", lambda: created.room_id in self.client.rooms)
        return created.room_id

    async def invite(self, room_id: str, user_id: str) -> None:
        invited = await self.client.room_invite(room_id, user_id)
        assert isinstance(invited, RoomInviteResponse), invited

    async def invited(self, room_id: str) -> str:
        def inviter() -> str | None:
            room = self.client.invited_rooms.get(room_id)
            return room.inviter if room is not None else None

        return str(await self._until("the invite", inviter))

    async def join(self, room_id: str) -> None:
        joined = await self.client.join(room_id)
        assert isinstance(joined, JoinResponse), joined
        await self._until("its join", lambda: room_id in self.client.rooms)

    async def send(self, room_id: str, body: str) -> None:
        sent = await self.client.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}
        )
        assert isinstance(sent, RoomSendResponse), sent

    async def message(self, room_id: str, body: str) -> str:
        def sender() -> str | None:
            messages = self._messages.get(room_id, [])
            return next((s for s, b in messages if b == body), None)

        return str(await self._until(f"the message {body!r}", sender))

    async def set_name(self, room_id: str, name: str) -> None:
        put = await self.client.room_put_state(room_id, "m.room.name", {"name": name})
        assert isinstance(put, RoomPutStateResponse), put

    async def name(self, room_id: str, name: str) -> str:
        def setter() -> str | None:
            room = self.client.rooms.get(room_id)
            if room is None or room.name != name:
                return None
            return next((s for s, n in self._names.get(room_id, []) if n == name), None)

        return str(await self._until(f"the name {name!r}", setter))

    async def membership(self, room_id: str, user_id: str, membership: str) -> None:
        def reached() -> bool:
            room = self.client.rooms.get(room_id)
            if room is None:
                return False
            if membership == "join":
                return user_id in room.users
            seen = self._members.get(room_id, [])
            return (user_id, membership) in seen and user_id not in room.users

        await self._until(f"{user_id}'s membership {membership}", reached)

    async def leave(self, room_id: str) -> None:
        left = await self.client.room_leave(room_id)
        assert isinstance(left, RoomLeaveResponse), left
        await self._until("its leave", lambda: room_id in self._left)


class JsSdkMember:
    """matrix-js-sdk in Node: each step is one command to federation_member.mjs."""

    def __init__(self, js: JsMember) -> None:
        self.js = js
        self.user_id = js.user_id

    async def create_room(self, name: str) -> str:
        return str((await self.js.do("create_room", name=name))["room_id"])

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.js.do("invite", room_id=room_id, user_id=user_id)

    async def invited(self, room_id: str) -> str:
        return str((await self.js.do("invited", room_id=room_id))["inviter"])

    async def join(self, room_id: str) -> None:
        await self.js.do("join", room_id=room_id)

    async def send(self, room_id: str, body: str) -> None:
        await self.js.do("send", room_id=room_id, body=body)

    async def message(self, room_id: str, body: str) -> str:
        return str((await self.js.do("message", room_id=room_id, body=body))["sender"])

    async def set_name(self, room_id: str, name: str) -> None:
        await self.js.do("set_name", room_id=room_id, name=name)

    async def name(self, room_id: str, name: str) -> str:
        return str((await self.js.do("name", room_id=room_id, name=name))["sender"])

    async def membership(self, room_id: str, user_id: str, membership: str) -> None:
        await self.js.do("membership", room_id=room_id, user_id=user_id, membership=membership)

    async def leave(self, room_id: str) -> None:
        await self.js.do("leave", room_id=room_id)


class ClientServer(Protocol):
    url: str

    def log(self) -> str: ...


async def converse(creator: Member, joiner: Member) -> None:
    """The scenario: every step one client takes, the other client sees."""
    room_id = await creator.create_room(FIRST_NAME)
    await creator.invite(room_id, joiner.user_id)
    assert await joiner.invited(room_id) == creator.user_id
    await joiner.join(room_id)
    await creator.membership(room_id, joiner.user_id, "join")

    await creator.send(room_id, FROM_CREATOR)
    await joiner.send(room_id, FROM_JOINER)
    for member in (creator, joiner):
        assert await member.message(room_id, FROM_CREATOR) == creator.user_id
        assert await member.message(room_id, FROM_JOINER) == joiner.user_id

    # the joiner saw the first name at its join: this one is a change it hears of
    await creator.set_name(room_id, NEW_NAME)
    for member in (creator, joiner):
        assert await member.name(room_id, NEW_NAME) == creator.user_id

    await joiner.leave(room_id)
    await creator.membership(room_id, joiner.user_id, "leave")


def describing(*servers: ClientServer) -> Callable[[], str]:
    return lambda: "\n".join(f"--- {s.url}\n{s.log()[-3000:]}" for s in servers)


class Clients:
    """Starts the clients of one test and closes them all at its end."""

    def __init__(self, ca: FederationCA, directory: Path) -> None:
        self.ca = ca
        self.directory = directory
        self._nio: list[AsyncClient] = []
        self._js: list[JsMember] = []

    async def nio(self, server: ClientServer, session: Session, *others: ClientServer) -> Member:
        # nio's hint says bool, but it hands an SSLContext on to aiohttp as it is
        context: Any = self.ca.client_context()
        client = AsyncClient(server.url, session.user_id, ssl=context)
        client.restore_login(session.user_id, session.device_id, session.access_token)
        self._nio.append(client)
        return NioMember(client, describing(server, *others))

    async def js_sdk(self, server: ClientServer, session: Session) -> Member:
        stderr = self.directory / f"js-{len(self._js)}.stderr"
        js = await JsMember.start(server.url, session, stderr, ca_file=self.ca.pem_path)
        self._js.append(js)
        return JsSdkMember(js)

    async def close(self) -> None:
        """Each script still running is asked to stop and must end cleanly (one that failed
        a step has already ended, with its error reported)."""
        try:
            for js in self._js:
                if js.process.returncode is None:
                    await js.stop()
        finally:
            for js in self._js:
                await js.kill()
            for client in self._nio:
                await client.close()


@pytest.fixture
async def clients(test_ca: FederationCA, tmp_path: Path) -> AsyncIterator[Clients]:
    started = Clients(test_ca, tmp_path)
    yield started
    await started.close()


def synapse_user(peer: SynapsePeer, localpart: str) -> Session:
    return register_on_synapse(peer, localpart)


async def test_nio_on_sqlite_invites_js_sdk_on_postgres(
    two_servers: ServerPair, clients: Clients
) -> None:
    sqlite, postgres = two_servers
    creator = await clients.nio(sqlite, register(sqlite, "alice"), postgres)
    joiner = await clients.js_sdk(postgres, register(postgres, "bob"))
    await converse(creator, joiner)


async def test_js_sdk_on_sqlite_invites_nio_on_postgres(
    two_servers: ServerPair, clients: Clients
) -> None:
    sqlite, postgres = two_servers
    creator = await clients.js_sdk(sqlite, register(sqlite, "hatter"))
    joiner = await clients.nio(postgres, register(postgres, "hare"), sqlite)
    await converse(creator, joiner)


async def test_js_sdk_on_ranvier_invites_nio_on_synapse(
    two_servers: ServerPair, synapse: SynapsePeer, clients: Clients
) -> None:
    ranvier: FederatingServer = two_servers.first
    creator = await clients.js_sdk(ranvier, register(ranvier, "queen"))
    joiner = await clients.nio(synapse, synapse_user(synapse, "knave"), ranvier)
    await converse(creator, joiner)


async def test_nio_on_synapse_invites_js_sdk_on_ranvier(
    two_servers: ServerPair, synapse: SynapsePeer, clients: Clients
) -> None:
    ranvier: FederatingServer = two_servers.second
    creator = await clients.nio(synapse, synapse_user(synapse, "duchess"), ranvier)
    joiner = await clients.js_sdk(ranvier, register(ranvier, "cook"))
    await converse(creator, joiner)
