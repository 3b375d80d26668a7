"""A scripted remote homeserver holding one prebuilt public room, for the federation benchmark.

`RemoteRoomServer` is `localhost:<port>` over HTTPS (a certificate from a throwaway trustme
CA, whose PEM the servers under test are told to trust) with an ed25519 key of its own. Its
room starts with `members` joined users of its own (the first created the room), one event
after another, every event hashed and signed by it. It answers what a joining server asks:
its keys, make_join, send_join (v2; the full state and auth chain, never a partial join),
/event, /state_ids, /backfill, and takes the transactions sent to it into the room. As a
client it signs transactions of new messages of its users, for pushing to a server under test.

It does not check what it is sent (signatures, auth): it is a load generator, not a server
under test. `reset()` puts the room back to its prebuilt members, so every server under test
joins the same room. The server runs on an event loop in a thread of its own.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import trustme
from aiohttp import web

from bench.threaded_https import ThreadedHttpsServer, bound_socket
from ranvier.clock import now_ms
from ranvier.protocol.event_builder import (
    EventTemplate,
    PrevEvent,
    build_create_event,
    build_event,
    build_unsigned_pdu,
)
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.request_auth import authorization_header
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.protocol.server_keys import build_key_response
from ranvier.protocol.signing import countersign_event
from ranvier.protocol.signing_keys import ServerSigningKey

FEDERATION = "/_matrix/federation"
ROOM_VERSION = KNOWN_ROOM_VERSIONS["10"]
StateKey = tuple[str, str]


def member_localpart(index: int) -> str:
    return f"member{index:05d}"


@dataclass
class RoomDag:
    """A linear room: each event's only parent is the one before it, so the state at an
    event is the state events before it in `timeline`."""

    server_name: str
    signing_key: ServerSigningKey
    room_version: RoomVersion = ROOM_VERSION
    timeline: list[Event] = field(default_factory=list)
    state: dict[StateKey, Event] = field(default_factory=dict)
    by_id: dict[str, Event] = field(default_factory=dict)
    position: dict[str, int] = field(default_factory=dict)

    @property
    def room_id(self) -> str:
        return self.timeline[0].room_id

    @property
    def head(self) -> Event:
        return self.timeline[-1]

    def user(self, index: int) -> str:
        return f"@{member_localpart(index)}:{self.server_name}"

    @classmethod
    def prebuilt(cls, server_name: str, signing_key: ServerSigningKey, members: int) -> RoomDag:
        """A public room with shared history whose `members` users (all of `server_name`)
        joined one after another."""
        dag = cls(server_name, signing_key)
        creator = dag.user(0)
        create = build_create_event(
            room_version=dag.room_version,
            sender=creator,
            content={},
            server_name=server_name,
            signing_key=signing_key,
            room_id=f"!{secrets.token_hex(9)}:{server_name}",
        )
        dag.append(create)
        dag.add_state("m.room.member", creator, {"membership": "join"}, creator)
        dag.add_state("m.room.power_levels", "", {"users": {creator: 100}}, creator)
        dag.add_state("m.room.join_rules", "", {"join_rule": "public"}, creator)
        dag.add_state("m.room.history_visibility", "", {"history_visibility": "shared"}, creator)
        dag.add_state("m.room.name", "", {"name": f"{members} members"}, creator)
        for index in range(1, members):
            user = dag.user(index)
            dag.add_state("m.room.member", user, {"membership": "join"}, user)
        return dag

    def copy(self) -> RoomDag:
        return RoomDag(
            self.server_name,
            self.signing_key,
            self.room_version,
            list(self.timeline),
            dict(self.state),
            dict(self.by_id),
            dict(self.position),
        )

    def append(self, event: Event) -> None:
        if event.event_id in self.by_id:
            return
        self.position[event.event_id] = len(self.timeline)
        self.timeline.append(event)
        self.by_id[event.event_id] = event
        if event.state_key is not None:
            self.state[(event.type, event.state_key)] = event

    def build(self, template: EventTemplate) -> Event:
        return build_event(
            template,
            room_version=self.room_version,
            prev_events=[PrevEvent.of(self.head)],
            current_state=self.state,
            server_name=self.server_name,
            signing_key=self.signing_key,
        )

    def add_state(self, type_: str, state_key: str, content: dict[str, Any], sender: str) -> Event:
        event = self.build(EventTemplate(type_, sender, content, self.room_id, state_key))
        self.append(event)
        return event

    def messages(self, count: int, senders: int, stem: str) -> list[Event]:
        """`count` new messages of the first `senders` members in turn, each after the last."""
        built = []
        for number in range(count):
            sender = self.user(number % senders)
            content = {"msgtype": "m.text", "body": f"{stem} {number}"}
            event = self.build(EventTemplate("m.room.message", sender, content, self.room_id))
            self.append(event)
            built.append(event)
        return built

    def state_before(self, event_id: str) -> list[Event]:
        state: dict[StateKey, Event] = {}
        for event in self.timeline[: self.position[event_id]]:
            if event.state_key is not None:
                state[(event.type, event.state_key)] = event
        return list(state.values())

    def auth_chain(self, events: Sequence[Event]) -> list[Event]:
        seen: dict[str, Event] = {}
        pending = [ref for event in events for ref in event.pdu["auth_events"]]
        while pending:
            event_id = pending.pop()
            if event_id in seen or event_id not in self.by_id:
                continue
            seen[event_id] = self.by_id[event_id]
            pending.extend(seen[event_id].pdu["auth_events"])
        return sorted(seen.values(), key=lambda e: self.position[e.event_id])


def _error(status: int, errcode: str, message: str) -> tuple[int, Any]:
    return status, {"errcode": errcode, "error": message}


@dataclass
class RemoteRoomServer:
    directory: Path
    members: int = 1000
    port: int = 0
    signing_key: ServerSigningKey = field(
        default_factory=lambda: ServerSigningKey.generate("bench")
    )
    # requests received, by method and path up to the room ID ("GET /_matrix/.../event")
    requests: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.ca = trustme.CA()
        self.ca_path = self.directory / "remote-ca.pem"
        self._socket: Any = None
        self._server: ThreadedHttpsServer | None = None
        self._prebuilt: RoomDag | None = None
        self._dag: RoomDag | None = None
        self._lock = threading.Lock()

    @property
    def server_name(self) -> str:
        return f"localhost:{self.port}"

    @property
    def room(self) -> RoomDag:
        assert self._dag is not None, "start() the remote first"
        return self._dag

    @property
    def room_id(self) -> str:
        return self.room.room_id

    def reset(self) -> None:
        """The room as prebuilt: `members` members, none of any server under test."""
        assert self._prebuilt is not None
        with self._lock:
            self._dag = self._prebuilt.copy()
        self.requests.clear()

    def build_messages(self, count: int, senders: int = 20, stem: str = "pushed") -> list[Event]:
        with self._lock:
            return self.room.messages(count, senders, stem)

    # -- serving -------------------------------------------------------------------------

    @classmethod
    @contextmanager
    def running(cls, directory: Path, members: int = 1000) -> Iterator[RemoteRoomServer]:
        remote = cls(directory, members)
        remote.start()
        try:
            yield remote
        finally:
            remote.stop()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        issued = self.ca.issue_cert("localhost", "127.0.0.1")
        cert_path, key_path = self.directory / "remote.crt", self.directory / "remote.key"
        cert_path.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
        key_path.write_bytes(issued.private_key_pem.bytes())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert_path), str(key_path))
        # the port is the server name, so it is bound before the room is built
        self._socket = bound_socket(self.port)
        self.port = self._socket.getsockname()[1]
        self._prebuilt = RoomDag.prebuilt(self.server_name, self.signing_key, self.members)
        self.reset()
        self._server = ThreadedHttpsServer(
            self._handle,
            context,
            self._socket,
            f"remote-{self.port}",
            client_max_size=64 * 1024 * 1024,
        )
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = unquote(request.path)
        self.requests[f"{request.method} {_route_name(path)}"] += 1
        with self._lock:
            status, answer = self._answer(request.method, path, request.query_string, body)
        return web.json_response(answer, status=status)

    def _answer(self, method: str, path: str, query: str, body: Any) -> tuple[int, Any]:
        params = parse_qs(query)
        if path == "/_matrix/key/v2/server":
            valid_until = now_ms() + 24 * 3_600_000
            return 200, build_key_response(self.server_name, self.signing_key, {}, valid_until)
        if path == f"{FEDERATION}/v1/version":
            return 200, {"server": {"name": "ranvier-bench-remote", "version": "0"}}
        parts = path.removeprefix(FEDERATION).strip("/").split("/")
        if len(parts) >= 2 and parts[1] == "send" and method == "PUT":
            return self._take_transaction(body)
        if len(parts) >= 3 and parts[1] == "event":
            event = self.room.by_id.get(parts[2])
            if event is None:
                return _error(404, "M_NOT_FOUND", "unknown event")
            return 200, self._pdus([event])
        if len(parts) < 3 or parts[2] != self.room_id:
            return _error(404, "M_UNRECOGNIZED", f"not served: {method} {path}")
        endpoint = parts[1]
        if endpoint == "make_join" and method == "GET" and len(parts) == 4:
            return self._make_join(parts[3], params.get("ver", ["1"]))
        if endpoint == "send_join" and method == "PUT" and parts[0] == "v2" and len(parts) == 4:
            return self._send_join(parts[3], body)
        if endpoint in ("state_ids", "state") and method == "GET":
            event_id = params.get("event_id", [""])[0]
            if event_id not in self.room.position:
                return _error(404, "M_NOT_FOUND", "unknown event")
            state = self.room.state_before(event_id)
            chain = self.room.auth_chain(state)
            if endpoint == "state":
                return 200, {"pdus": [e.pdu for e in state], "auth_chain": [e.pdu for e in chain]}
            return 200, {
                "pdu_ids": [e.event_id for e in state],
                "auth_chain_ids": [e.event_id for e in chain],
            }
        if endpoint == "backfill" and method == "GET":
            return 200, self._pdus(self._backfill(params.get("v", []), params.get("limit", ["10"])))
        if endpoint == "get_missing_events" and method == "POST" and isinstance(body, Mapping):
            return 200, {"events": [e.pdu for e in self._missing(body)]}
        return _error(404, "M_UNRECOGNIZED", f"not served: {method} {path}")

    def _pdus(self, events: Sequence[Event]) -> dict[str, Any]:
        return {
            "origin": self.server_name,
            "origin_server_ts": now_ms(),
            "pdus": [e.pdu for e in events],
        }

    def _make_join(self, user_id: str, versions: Sequence[str]) -> tuple[int, Any]:
        room = self.room
        if room.room_version.identifier not in versions:
            status, answer = _error(400, "M_INCOMPATIBLE_ROOM_VERSION", "room version 10 only")
            return status, {**answer, "room_version": room.room_version.identifier}
        template = EventTemplate(
            "m.room.member", user_id, {"membership": "join"}, room.room_id, user_id
        )
        pdu = build_unsigned_pdu(
            template,
            room_version=room.room_version,
            prev_events=[PrevEvent.of(room.head)],
            current_state=room.state,
            server_name=self.server_name,
        )
        return 200, {"room_version": room.room_version.identifier, "event": pdu}

    def _send_join(self, event_id: str, pdu: Any) -> tuple[int, Any]:
        room = self.room
        if not isinstance(pdu, Mapping):
            return _error(400, "M_BAD_JSON", "the body is not an event")
        if compute_event_id(pdu, room.room_version) != event_id:
            return _error(400, "M_BAD_JSON", "the event ID does not match the event")
        if pdu.get("type") != "m.room.member" or pdu.get("state_key") != pdu.get("sender"):
            return _error(400, "M_BAD_JSON", "not a join of its sender")
        countersigned = countersign_event(
            pdu, self.server_name, self.signing_key, room.room_version
        )
        join = Event(countersigned, room.room_version, event_id)
        state = list(room.state.values())
        chain = room.auth_chain([*state, join])
        room.append(join)
        return 200, {
            "origin": self.server_name,
            "state": [e.pdu for e in state],
            "auth_chain": [e.pdu for e in chain],
            "event": countersigned,
            "members_omitted": False,
            "servers_in_room": [self.server_name],
        }

    def _take_transaction(self, body: Any) -> tuple[int, Any]:
        """The server under test's own events join the room, so later ones build on them."""
        room = self.room
        results: dict[str, Any] = {}
        pdus = body.get("pdus", []) if isinstance(body, Mapping) else []
        for pdu in pdus:
            if not isinstance(pdu, Mapping) or pdu.get("room_id") != room.room_id:
                continue
            event_id = compute_event_id(pdu, room.room_version)
            room.append(Event(pdu, room.room_version, event_id))
            results[event_id] = {}
        return 200, {"pdus": results}

    def _backfill(self, from_ids: Sequence[str], limit: Sequence[str]) -> list[Event]:
        positions = [self.room.position[i] for i in from_ids if i in self.room.position]
        if not positions:
            return []
        count = max(1, min(100, int(limit[0]) if limit and limit[0].isdigit() else 10))
        last = max(positions)
        return list(reversed(self.room.timeline[max(0, last - count + 1) : last + 1]))

    def _missing(self, body: Mapping[str, Any]) -> list[Event]:
        """The events after the last of `earliest_events` and before the first of
        `latest_events`, the newest `limit` of them, oldest first (the room is a line)."""
        position = self.room.position
        earliest = [position[i] for i in body.get("earliest_events", []) if i in position]
        latest = [position[i] for i in body.get("latest_events", []) if i in position]
        if not latest:
            return []
        limit = body.get("limit", 10)
        limit = max(1, min(limit, 100)) if isinstance(limit, int) else 10
        start = max(earliest, default=-1) + 1
        end = min(latest)
        return self.room.timeline[max(start, end - limit) : end]

    # -- as a client ---------------------------------------------------------------------

    def transaction(
        self, destination: str, txn_id: str, pdus: Sequence[Event]
    ) -> tuple[str, bytes, dict[str, str]]:
        """PUT /send/{txn_id} to `destination`, signed by this server: path, body, headers."""
        path = f"{FEDERATION}/v1/send/{txn_id}"
        body = {
            "origin": self.server_name,
            "origin_server_ts": now_ms(),
            "pdus": [e.pdu for e in pdus],
        }
        header = authorization_header(
            self.signing_key,
            method="PUT",
            uri=path,
            origin=self.server_name,
            destination=destination,
            content=body,
        )
        headers = {"Authorization": header, "Content-Type": "application/json"}
        return path, json.dumps(body).encode(), headers


def _route_name(path: str) -> str:
    """The path up to the first identifier, so requests count by endpoint."""
    kept: list[str] = []
    for part in path.split("/"):
        if kept[-1:] == ["send"] or part[:1] in ("!", "$", "@") or len(part) > 40:
            break
        kept.append(part)
    return "/".join(kept)
