"""Our users joining rooms this server is not in (spec: server-server-api "Joining Rooms",
the joining server's side): make_join to a resident server for a template, our join event
built and signed from it, send_join, and the answer checked (every state and auth chain
event through EventVerifier, each authorised by its own auth events, the create event's
room version the one make_join named) before the room is stored: the auth chain and state
as outliers, the join as the room's first event here, on that state.

Resident servers are tried in turn: those the client named (`via`, `server_name`), the
alias's server and the servers the directory gave, and the room ID's server (before room
version 12 the room ID names one).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.federation.client import FederationClient, is_unknown_endpoint
from ranvier.federation.errors import FederationError, RemoteRequestFailed
from ranvier.protocol.auth import AuthError, check_auth, check_auth_events_consistency
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, EventFormat, RoomVersion
from ranvier.protocol.signing import SignatureError, sign_event
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.protocol.validation import PDUValidationError
from ranvier.services.federation.event_checks import EventVerifier
from ranvier.services.rooms.aliases import RemoteDirectoryQuery
from ranvier.services.rooms.sender import FederatedEvent, RoomEventSender
from ranvier.storage import memberships as membership_store
from ranvier.storage import rooms as room_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.state import StateKey

logger = logging.getLogger(__name__)

FEDERATION = "/_matrix/federation"
CREATE_KEY = ("m.room.create", "")
AUTHORISING_USER = "join_authorised_via_users_server"


def _domain(identifier: str) -> str:
    return identifier.partition(":")[2]


def _bad_answer(server: str, message: str) -> MatrixError:
    return MatrixError(502, "M_UNKNOWN", f"{server} answered the join badly: {message}")


class RemoteJoins:
    def __init__(
        self,
        db: Database,
        sender: RoomEventSender,
        verifier: EventVerifier,
        client: FederationClient,
        directory: RemoteDirectoryQuery,
        server_name: str,
        signing_key: ServerSigningKey,
    ) -> None:
        self._db = db
        self._sender = sender
        self._verifier = verifier
        self._client = client
        self._directory = directory
        self._server_name = server_name
        self._signing_key = signing_key

    async def locate(
        self, room_id_or_alias: str, via: Sequence[str], *, user_id: str | None = None
    ) -> tuple[str, list[str]] | None:
        """(room ID, resident servers to ask) for a room named by another server's alias
        or by an ID with servers to ask; None when it is for this server to answer (a
        local alias, or no server but ours to ask). The server of whoever invited
        `user_id` is asked too (as Synapse): from room version 12 the ID names none."""
        if room_id_or_alias.startswith("#"):
            alias_server = _domain(room_id_or_alias)
            if not alias_server or alias_server == self._server_name:
                return None
            room_id, servers = await self._directory(room_id_or_alias)
            return room_id, self._others([*via, alias_server, *servers])
        if not room_id_or_alias.startswith("!"):
            return None
        inviter = [] if user_id is None else await self._inviting_server(user_id, room_id_or_alias)
        servers = self._others([*via, _domain(room_id_or_alias), *inviter])
        return (room_id_or_alias, servers) if servers else None

    async def _inviting_server(self, user_id: str, room_id: str) -> list[str]:
        history = await membership_store.get_membership_history(self._db, room_id, user_id)
        if history.latest_membership != "invite" or history.latest_event_id is None:
            return []
        invite = await self._sender.loader.get_event(history.latest_event_id)
        return [] if invite is None else [_domain(invite.sender)]

    async def in_room(self, room_id: str) -> bool:
        """Whether a user of this server is joined to the room now."""
        members = await state_store.get_members(self._db, room_id)
        return any(_domain(member) == self._server_name for member in members)

    def _others(self, servers: Sequence[str]) -> list[str]:
        return [s for s in dict.fromkeys(servers) if s and s != self._server_name]

    async def join(
        self, user_id: str, room_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> None:
        """Join `user_id` to `room_id` through the first of `servers` that lets us."""
        problem: MatrixError = MatrixError(
            404, "M_NOT_FOUND", f"No server could be asked to join {room_id}"
        )
        for server in servers:
            try:
                await self._join_through(server, user_id, room_id, content)
                return
            except _TryNext as exc:
                logger.info("Joining %s through %s failed: %s", room_id, server, exc.error)
                problem = exc.error
        raise problem

    async def _join_through(
        self, server: str, user_id: str, room_id: str, content: Mapping[str, Any]
    ) -> None:
        path_ids = f"{quote(room_id, safe='')}/{quote(user_id, safe='')}"
        try:
            answer = await self._client.get_json(
                server,
                f"{FEDERATION}/v1/make_join/{path_ids}",
                query={"ver": list(KNOWN_ROOM_VERSIONS)},
            )
        except RemoteRequestFailed as exc:
            raise _remote_refusal(server, exc) from None
        except FederationError as exc:
            logger.info("Joining %s through %s: %s", room_id, server, exc)
            raise _TryNext(_unreachable(server)) from None
        version, template = self._read_template(server, answer, user_id, room_id)
        join = self._build_join(template, version, content)
        try:
            answer = await self._send_join(server, join)
        except RemoteRequestFailed as exc:
            raise _remote_refusal(server, exc) from None
        except FederationError as exc:
            logger.info("Joining %s through %s: %s", room_id, server, exc)
            raise _TryNext(_unreachable(server)) from None
        if not isinstance(answer, Mapping):
            raise _TryNext(_bad_answer(server, "not a JSON object"))
        signed = answer.get("event")
        if isinstance(signed, Mapping) and AUTHORISING_USER in join.content:
            # spec: "Restricted rooms" - the resident server co-signed our join
            try:
                countersigned = await self._verifier.check_pdu(signed, version)
            except (PDUValidationError, SignatureError) as exc:
                raise _TryNext(_bad_answer(server, f"its signed join: {exc}")) from None
            if countersigned.event_id != join.event_id:
                raise _TryNext(_bad_answer(server, "it signed another join event"))
            join = countersigned
        await self._store_room(server, room_id, version, join, answer)

    async def _send_join(self, server: str, join: Event) -> Any:
        """PUT send_join: v2, or v1 when the server does not serve v2 (spec: joins-v1.yaml,
        deprecated but still the only one some servers have), its `[200, {...}]` answer
        unwrapped."""
        ids = f"{quote(join.room_id, safe='')}/{quote(join.event_id, safe='')}"
        try:
            return await self._client.put_json(server, f"{FEDERATION}/v2/send_join/{ids}", join.pdu)
        except RemoteRequestFailed as exc:
            if not is_unknown_endpoint(exc):
                raise
        logger.info("%s has no v2 send_join; trying v1", server)
        answer = await self._client.put_json(server, f"{FEDERATION}/v1/send_join/{ids}", join.pdu)
        if isinstance(answer, list) and len(answer) == 2 and answer[0] == 200:
            return answer[1]
        raise _TryNext(_bad_answer(server, "v1 send_join did not answer [200, {...}]"))

    def _read_template(
        self, server: str, answer: Any, user_id: str, room_id: str
    ) -> tuple[RoomVersion, dict[str, Any]]:
        if not isinstance(answer, Mapping) or not isinstance(answer.get("event"), Mapping):
            raise _TryNext(_bad_answer(server, "make_join gave no event template"))
        # spec: joins-v1.yaml - a server that leaves room_version out means version 1
        identifier = answer.get("room_version", "1")
        version = KNOWN_ROOM_VERSIONS.get(identifier) if isinstance(identifier, str) else None
        if version is None:
            raise MatrixError(
                400,
                "M_INCOMPATIBLE_ROOM_VERSION",
                f"The room's version {identifier!r} is not supported here",
                room_version=str(identifier),
            )
        template = dict(answer["event"])
        content = template.get("content")
        if (
            template.get("type") != "m.room.member"
            or template.get("state_key") != user_id
            or template.get("sender") != user_id
            or template.get("room_id") != room_id
            or not isinstance(content, Mapping)
            or content.get("membership") != "join"
        ):
            raise _TryNext(_bad_answer(server, "make_join's template is not our join"))
        return version, template

    def _build_join(
        self, template: Mapping[str, Any], version: RoomVersion, content: Mapping[str, Any]
    ) -> Event:
        pdu = {
            key: template[key]
            for key in (
                "type",
                "room_id",
                "sender",
                "state_key",
                "depth",
                "prev_events",
                "auth_events",
            )
            if key in template
        }
        template_content = template.get("content")
        authoriser = (
            template_content.get(AUTHORISING_USER)
            if isinstance(template_content, Mapping)
            else None
        )
        pdu["content"] = {
            **content,
            "membership": "join",
            **({AUTHORISING_USER: authoriser} if isinstance(authoriser, str) else {}),
        }
        pdu["origin"] = self._server_name
        pdu["origin_server_ts"] = now_ms()
        if version.event_format is EventFormat.V1:
            pdu["event_id"] = f"${secrets.token_urlsafe(18)}:{self._server_name}"
        signed = sign_event(pdu, self._server_name, self._signing_key, version)
        return Event(signed, version, compute_event_id(signed, version))

    async def _store_room(
        self,
        server: str,
        room_id: str,
        version: RoomVersion,
        join: Event,
        answer: Mapping[str, Any],
    ) -> None:
        state_pdus = answer.get("state")
        chain_pdus = answer.get("auth_chain")
        if not isinstance(state_pdus, list) or not isinstance(chain_pdus, list):
            raise _TryNext(_bad_answer(server, "send_join gave no state or auth_chain"))
        checked = await asyncio.gather(
            *(self._check(pdu, version) for pdu in [*chain_pdus, *state_pdus])
        )
        events: dict[str, Event] = {}
        for event in checked:
            if event is not None and event.room_id == room_id:
                events[event.event_id] = event
        # (the checks computed the IDs of the events that passed them)
        state_ids = {
            event.event_id if event is not None else _event_id_or_none(pdu, version)
            for pdu, event in zip(state_pdus, checked[len(chain_pdus) :], strict=True)
            if isinstance(pdu, Mapping)
        }
        creates = [e for e in events.values() if e.type == "m.room.create" and e.state_key == ""]
        if len(creates) != 1:
            raise _TryNext(_bad_answer(server, "the room has no single create event"))
        create = creates[0]
        if create.content.get("room_version", "1") != version.identifier:
            raise _TryNext(_bad_answer(server, "the create event names another room version"))
        if version.room_id_from_create_event and room_id != "!" + create.event_id[1:]:
            raise _TryNext(_bad_answer(server, "the room ID is not its create event's"))
        # each event by its own auth events, oldest first
        ordered = sorted(events.values(), key=lambda e: (e.depth, e.event_id))
        for event in ordered:
            event.rejected_reason = _auth_problem(event, events, create)
        state: dict[StateKey, str] = {}
        for event in ordered:
            if event.event_id in state_ids and event.is_state() and event.rejected_reason is None:
                state[(event.type, event.state_key or "")] = event.event_id
        if CREATE_KEY not in state:
            raise _TryNext(_bad_answer(server, "the room's state has no create event"))
        problem = _auth_problem(join, {**events, join.event_id: join}, create)
        if problem is None:
            problem = _against_state(join, state, events)
        if problem is not None:
            raise _TryNext(_bad_answer(server, f"our join is not allowed by its state: {problem}"))
        known = await self._sender.loader.get_events(events)
        outliers = [
            FederatedEvent(e, None, outlier=True, rejected_reason=e.rejected_reason)
            for e in ordered
            if e.event_id not in known
        ]
        exists = await room_store.get_room(self._db, room_id) is not None
        await self._sender.persist_federated(
            room_id,
            version,
            [*outliers, FederatedEvent(join, state)],
            new_room=not exists,
        )

    async def _check(self, pdu: Any, version: RoomVersion) -> Event | None:
        if not isinstance(pdu, Mapping):
            return None
        try:
            return await self._verifier.check_pdu(pdu, version)
        except (PDUValidationError, SignatureError) as exc:
            logger.info("Dropping an event of a send_join answer: %s", exc)
            return None


class _TryNext(Exception):
    def __init__(self, error: MatrixError) -> None:
        super().__init__(error.error)
        self.error = error


def _unreachable(server: str) -> MatrixError:
    return MatrixError(502, "M_UNKNOWN", f"Failed to join the room: {server} could not be reached")


def _remote_refusal(server: str, exc: RemoteRequestFailed) -> Exception:
    """The resident server said no: its 4xx reaches the client (as Synapse), other
    failures move on to the next server."""
    if exc.errcode == "M_INCOMPATIBLE_ROOM_VERSION":
        body = exc.body if isinstance(exc.body, Mapping) else {}
        return MatrixError(
            400,
            "M_INCOMPATIBLE_ROOM_VERSION",
            "The room's version is not supported here",
            room_version=str(body.get("room_version", "")),
        )
    error = MatrixError(
        exc.status if 400 <= exc.status < 500 else 502,
        exc.errcode or "M_UNKNOWN",
        exc.message or f"{server} refused the join",
    )
    if 400 <= exc.status < 500 and exc.status != 404:
        return error
    return _TryNext(error)


def _event_id_or_none(pdu: Mapping[str, Any], version: RoomVersion) -> str | None:
    try:
        return compute_event_id(pdu, version)
    except Exception:
        return None


def _auth_problem(event: Event, events: Mapping[str, Event], create: Event) -> str | None:
    """Why `event` is not allowed by its own auth events (which must all be known)."""
    if event.type == "m.room.create" and event.state_key == "":
        return None
    cited = [events[eid] for eid in event.auth_event_ids if eid in events]
    if len(cited) != len(set(event.auth_event_ids)):
        return "auth events not found"
    try:
        check_auth_events_consistency(event, cited, event.room_version, create)
        state = {(e.type, e.state_key or ""): e for e in cited}
        state.setdefault(CREATE_KEY, create)
        check_auth(event, state, event.room_version)
    except AuthError as exc:
        return str(exc)
    return None


def _against_state(
    event: Event, state: Mapping[StateKey, str], events: Mapping[str, Event]
) -> str | None:
    try:
        check_auth(
            event,
            {key: events[eid] for key, eid in state.items() if eid in events},
            event.room_version,
        )
    except AuthError as exc:
        return str(exc)
    return None
