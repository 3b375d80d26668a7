"""A fake remote homeserver in the test process, for checking how Ranvier treats what other
servers send it: honest, late, or forged.

`FakeServer` listens over HTTPS on its own loopback port with a certificate from the
harness CA, as `localhost:<port>`, with its own signing key. It serves its keys
(`/_matrix/key/v2/server`), `/_matrix/federation/v1/version`, the events it knows
(`GET /event/{eventId}`, from `events`), and whatever a test adds with `route` (say
`/get_missing_events` or `/state_ids`); every request it receives is kept in `received`
(the outbound queue's transactions land there). It sends signed requests to a Ranvier with
`request`, and builds and signs events as its users with `build` / `sign`.

The server runs on an event loop in a thread of its own, so sync tests (urllib) and async
ones both use it. Start with `with FakeServer.running(ca, directory) as fake:`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bench.threaded_https import ThreadedHttpsServer, bound_socket
from ranvier.clock import now_ms
from ranvier.protocol.event_builder import EventTemplate, PrevEvent, build_event
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.request_auth import authorization_header
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.protocol.server_keys import build_key_response
from ranvier.protocol.signing import sign_event
from ranvier.protocol.signing_keys import ServerSigningKey
from tests.federation.harness import FederatingServer, FederationCA, https_request
from tests.integration.client import Reply
from tests.integration.homeserver import free_port

FEDERATION = "/_matrix/federation"


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    query: Mapping[str, str]
    body: Any
    # the X-Matrix header as sent (not checked: tests that care check it)
    authorization: str | None


# answers a request: (status, JSON body)
Handler = Callable[[ReceivedRequest], tuple[int, Any]]


@dataclass
class JoinedRoom:
    """A room one of the fake's users joined through another server (`FakeServer.join`)."""

    room_id: str
    version: RoomVersion
    # the room's state as the resident server gave it, with the join: (type, state_key) -> event
    state: dict[tuple[str, str], Event]
    join: Event


@dataclass
class FakeServer:
    ca: FederationCA
    directory: Path
    signing_key: ServerSigningKey = field(default_factory=lambda: ServerSigningKey.generate("fake"))
    port: int = field(default_factory=free_port)
    # event ID -> PDU, served at GET /_matrix/federation/v1/event/{eventId}
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[ReceivedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._routes: list[tuple[str, str, Handler]] = []
        self._server: ThreadedHttpsServer | None = None

    @property
    def server_name(self) -> str:
        return f"localhost:{self.port}"

    def user(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    # -- serving -------------------------------------------------------------------------

    def route(self, method: str, path_prefix: str, handler: Handler) -> None:
        """Answer requests whose path starts with `path_prefix` (such as
        "/_matrix/federation/v1/get_missing_events/") with `handler`; the latest route
        added for a path wins."""
        self._routes.insert(0, (method.upper(), path_prefix, handler))

    def remember(self, *events: Event) -> None:
        """Serve these events at /event/{eventId}."""
        for event in events:
            self.events[event.event_id] = event.pdu

    @classmethod
    @contextmanager
    def running(cls, ca: FederationCA, directory: Path) -> Iterator[FakeServer]:
        fake = cls(ca, directory)
        fake.start()
        try:
            yield fake
        finally:
            fake.stop()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        issued = self.ca.issue_cert("localhost", "127.0.0.1")
        cert_path = self.directory / "fake-tls.crt"
        key_path = self.directory / "fake-tls.key"
        cert_path.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
        key_path.write_bytes(issued.private_key_pem.bytes())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert_path), str(key_path))
        self._server = ThreadedHttpsServer(
            self._handle, context, bound_socket(self.port), f"fake-{self.port}"
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
        received = ReceivedRequest(
            request.method,
            request.path,
            dict(request.query),
            body,
            request.headers.get("Authorization"),
        )
        self.received.append(received)
        status, answer = self._answer(received)
        return web.json_response(answer, status=status)

    def _answer(self, received: ReceivedRequest) -> tuple[int, Any]:
        for method, prefix, handler in self._routes:
            if received.method == method and received.path.startswith(prefix):
                return handler(received)
        path = received.path
        if path == "/_matrix/key/v2/server":
            return 200, build_key_response(
                self.server_name, self.signing_key, {}, now_ms() + 3_600_000
            )
        if path == f"{FEDERATION}/v1/version":
            return 200, {"server": {"name": "fake", "version": "0"}}
        if path.startswith(f"{FEDERATION}/v1/event/"):
            event_id = path.rpartition("/")[2]
            pdu = self.events.get(event_id)
            if pdu is None:
                return 404, {"errcode": "M_NOT_FOUND", "error": "unknown event"}
            return 200, {"origin": self.server_name, "origin_server_ts": now_ms(), "pdus": [pdu]}
        if path.startswith(f"{FEDERATION}/v1/send/"):
            return 200, {"pdus": {}}
        return 404, {"errcode": "M_UNRECOGNIZED", "error": "not served by the fake"}

    # -- as a client ---------------------------------------------------------------------

    def request(
        self,
        target: FederatingServer,
        method: str,
        path: str,
        body: Any = None,
        *,
        origin: str | None = None,
        signing_key: ServerSigningKey | None = None,
    ) -> Reply:
        """A federation request to `target`, signed as this server (or as `origin` with
        `signing_key`, to forge one). `path` includes any query string."""
        header = authorization_header(
            signing_key or self.signing_key,
            method=method,
            uri=path,
            origin=origin or self.server_name,
            destination=target.server_name,
            content=body,
        )
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": header}
        if data is not None:
            headers["Content-Type"] = "application/json"
        return https_request(self.ca, method, target.url + path, data, headers)

    def send_transaction(
        self,
        target: FederatingServer,
        txn_id: str,
        pdus: Sequence[Mapping[str, Any]],
        edus: Sequence[Mapping[str, Any]] = (),
    ) -> Reply:
        """PUT /_matrix/federation/v1/send/{txnId} with these PDUs."""
        body = {
            "origin": self.server_name,
            "origin_server_ts": now_ms(),
            "pdus": list(pdus),
        }
        if edus:
            body["edus"] = list(edus)
        return self.request(target, "PUT", f"{FEDERATION}/v1/send/{txn_id}", body)

    # -- events ---------------------------------------------------------------------------

    def build(
        self,
        template: EventTemplate,
        room_version: RoomVersion,
        prev_events: Sequence[Event],
        auth_state: Mapping[tuple[str, str], Event],
        *,
        origin_server_ts: int | None = None,
    ) -> Event:
        """An event of one of this server's users, hashed and signed by this server, with
        its auth events chosen from `auth_state`; remembered so /event serves it."""
        event = build_event(
            template,
            room_version=room_version,
            prev_events=[PrevEvent.of(p) for p in prev_events],
            current_state=auth_state,
            server_name=self.server_name,
            signing_key=self.signing_key,
            origin_server_ts=origin_server_ts,
        )
        self.remember(event)
        return event

    def sign(self, pdu: Mapping[str, Any], room_version: RoomVersion) -> Event:
        """Complete a template (make_join's): hash and sign it as this server."""
        signed = sign_event(pdu, self.server_name, self.signing_key, room_version)
        event = Event(signed, room_version, compute_event_id(signed, room_version))
        self.remember(event)
        return event

    # -- rooms ----------------------------------------------------------------------------

    def join(self, target: FederatingServer, room_id: str, user_id: str) -> JoinedRoom:
        """Join `user_id` (one of this server's users) to a room `target` is in, through its
        make_join and send_join (v2), offering every room version; the answer's state and
        auth chain are remembered so /event serves them."""
        versions = "&".join(f"ver={quote(v)}" for v in KNOWN_ROOM_VERSIONS)
        path = f"{FEDERATION}/v1/make_join/{quote(room_id)}/{quote(user_id)}?{versions}"
        reply = self.request(target, "GET", path)
        assert reply.status == 200, reply.body
        template = reply.json()
        version = KNOWN_ROOM_VERSIONS[template["room_version"]]
        join = self.sign(template["event"], version)
        path = f"{FEDERATION}/v2/send_join/{quote(room_id)}/{quote(join.event_id)}"
        reply = self.request(target, "PUT", path, join.pdu)
        assert reply.status == 200, reply.body
        answer = reply.json()
        for pdu in answer["auth_chain"]:
            self.remember(Event(pdu, version, compute_event_id(pdu, version)))
        state: dict[tuple[str, str], Event] = {}
        for pdu in answer["state"]:
            event = Event(pdu, version, compute_event_id(pdu, version))
            self.remember(event)
            state[(event.type, event.state_key or "")] = event
        state[("m.room.member", user_id)] = join
        return JoinedRoom(room_id, version, state, join)

    def fetch(self, target: FederatingServer, event_id: str, version: RoomVersion) -> Event:
        """An event `target` serves at /event (its hashes and signatures not checked), and
        remembered so this server serves it too."""
        reply = self.request(target, "GET", f"{FEDERATION}/v1/event/{quote(event_id)}")
        assert reply.status == 200, reply.body
        pdu = reply.json()["pdus"][0]
        event = Event(pdu, version, compute_event_id(pdu, version))
        assert event.event_id == event_id, pdu
        self.remember(event)
        return event
