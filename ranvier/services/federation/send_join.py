"""The resident server's second step of a join (spec: server-server-api "Joining Rooms",
PUT /send_join v1 and v2): the joining server sends back the join event it completed and
signed from make_join's template; we check it, persist it as a normal event, and answer
with the room's state before it and the auth chain of that state and of the join, so the
joining server can check and store the room."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.auth import AuthError, check_auth, check_auth_events_consistency
from ranvier.protocol.auth_selection import auth_types_for_event
from ranvier.protocol.events import Event
from ranvier.protocol.signing import sign_event
from ranvier.protocol.validation import PDUValidationError, validate_pdu
from ranvier.services.federation.dag_state import state_at_prev_events
from ranvier.services.federation.event_checks import EventVerifier
from ranvier.services.federation.membership_pdus import (
    Relay,
    checked_membership_pdu,
    require_signed,
)
from ranvier.services.federation.server_acl import ServerAclChecker
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.membership import AUTHORISING_USER
from ranvier.services.rooms.sender import FederatedEvent, RoomEventSender, RoomNotFound
from ranvier.storage import events as event_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.state import StateKey

CREATE_KEY = ("m.room.create", "")
JOIN = "join event"


def domain_of(identifier: str) -> str:
    return identifier.partition(":")[2]


async def auth_chain_pdus(
    db: Database, loader: EventLoader, event_ids: Iterable[str]
) -> list[dict[str, Any]]:
    """The full PDUs of the auth chain of `event_ids` (not the events themselves unless
    one cites another), oldest first by depth."""
    chain = await event_store.get_auth_chain_ids(db, event_ids)
    events = await loader.get_events(chain)
    return [e.pdu for e in sorted(events.values(), key=lambda e: (e.depth, e.event_id))]


class SendJoinService:
    def __init__(
        self,
        db: Database,
        sender: RoomEventSender,
        verifier: EventVerifier,
        acl: ServerAclChecker,
        server_name: str,
        relay: Relay | None = None,
    ) -> None:
        """`relay` sends an accepted join on to the room's other servers (None: this
        server sends nothing to other servers)."""
        self._db = db
        self._relay = relay
        self._sender = sender
        self._loader = sender.loader
        self._verifier = verifier
        self._acl = acl
        self._server_name = server_name

    async def send_join(
        self, origin: str, room_id: str, event_id: str, pdu: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}, sent by `origin`."""
        await self._acl.check(origin, room_id)
        try:
            head = await self._sender.head(room_id)
        except RoomNotFound:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}") from None
        version = head.room_version
        content = pdu.get("content")
        authoriser = content.get(AUTHORISING_USER) if isinstance(content, Mapping) else None
        co_signed = (
            version.restricted_join_rule
            and isinstance(authoriser, str)
            and domain_of(authoriser) == self._server_name
        )
        if co_signed:
            # spec: "Restricted rooms" - we vouched for the join in make_join: sign it,
            # once it is signed by its sender's server and well-formed
            try:
                validate_pdu(require_signed(pdu, JOIN), version)
            except PDUValidationError as exc:
                raise MatrixError(400, exc.errcode, f"Invalid {JOIN}: {exc}") from None
            pdu = sign_event(pdu, self._server_name, self._sender.signing_key, version)
        event = await checked_membership_pdu(self._verifier, pdu, version, JOIN)
        self._check_shape(origin, room_id, event_id, event)
        known = await self._loader.get_event(event.event_id)
        if known is None:
            # spec: joins-v2.yaml - the state answered is the state before the join,
            # which is its prev events' (not the room's now, which may have moved on)
            state_before = await self._state_at_prev_events(event)
            await self._authorise(event, state_before, head.state)
            await self._sender.persist_federated(
                room_id, version, [FederatedEvent(event, state_before)]
            )
            if self._relay is not None:
                # spec: "Joining Rooms" - the resident server sends the join on
                await self._relay(event, origin)
        else:
            # a retry: answer with the state it was accepted at
            try:
                state_before = await self._state_at_prev_events(known)
            except MatrixError:
                state_before = await self._state_before(known)
        state_events = await self._loader.get_events(state_before.values())
        members = await state_store.get_members(self._db, room_id)
        answer: dict[str, Any] = {
            "origin": self._server_name,
            "state": [
                state_events[eid].pdu for eid in state_before.values() if eid in state_events
            ],
            "auth_chain": await auth_chain_pdus(
                self._db, self._loader, [*state_before.values(), event.event_id]
            ),
            "members_omitted": False,
            "servers_in_room": sorted({domain_of(m) for m in members}),
        }
        if co_signed:
            answer["event"] = event.pdu
        return answer

    def _check_shape(self, origin: str, room_id: str, event_id: str, event: Event) -> None:
        if event.event_id != event_id or event.room_id != room_id:
            raise MatrixError(
                400, "M_BAD_JSON", "The event's ID or room ID does not match the request"
            )
        if (
            event.type != "m.room.member"
            or event.state_key != event.sender
            or event.membership != "join"
        ):
            raise MatrixError(400, "M_BAD_JSON", "Not a join event of its sender")
        if domain_of(event.sender) != origin:
            raise MatrixError(403, "M_FORBIDDEN", f"{event.sender} is not a user of {origin}")

    async def _state_at_prev_events(self, event: Event) -> dict[StateKey, str]:
        """The state after the join's prev events, which must all be in the room here
        (make_join chose them from this server's extremities)."""
        state = await state_at_prev_events(self._db, self._loader, event)
        if state is None:
            raise MatrixError(403, "M_FORBIDDEN", "The join's prev events are not in the room here")
        return state

    async def _authorise(
        self, event: Event, before: Mapping[StateKey, str], current: Mapping[StateKey, str]
    ) -> None:
        """Against the event's own auth events, the room's state before it and the room's
        current state (a join the room has since come to forbid is refused, not taken)."""
        version = event.room_version
        cited = await self._loader.get_events(event.auth_event_ids)
        if len(cited) != len(set(event.auth_event_ids)):
            raise MatrixError(403, "M_FORBIDDEN", "The join cites auth events unknown here")
        create_id = current.get(CREATE_KEY)
        create = None if create_id is None else await self._loader.get_event(create_id)
        keys = auth_types_for_event(
            version, event.type, event.sender, event.state_key, event.content
        )
        keys.add(CREATE_KEY)
        wanted = [{key: state[key] for key in keys if key in state} for state in (before, current)]
        loaded = await self._loader.get_events({eid for w in wanted for eid in w.values()})
        try:
            check_auth_events_consistency(event, list(cited.values()), version, create)
            own = {(e.type, e.state_key or ""): e for e in cited.values()}
            if create is not None:
                own.setdefault(CREATE_KEY, create)
            check_auth(event, own, version)
            for state in wanted:
                check_auth(event, {key: loaded[eid] for key, eid in state.items()}, version)
        except AuthError as exc:
            raise MatrixError(403, "M_FORBIDDEN", f"You cannot join this room: {exc}") from None

    async def _state_before(self, event: Event) -> dict[StateKey, str]:
        groups = await self._loader.state_groups_of([event.event_id])
        if event.event_id not in groups:
            return dict(await state_store.get_current_state_ids(self._db, event.room_id))
        state = dict(await self._loader.get_state_group(groups[event.event_id]))
        key = (event.type, event.state_key or "")
        if state.get(key) == event.event_id:
            # the state after the join; before it, the user's previous membership (if any)
            # is not known from here, so leave the key out
            del state[key]
        return state
