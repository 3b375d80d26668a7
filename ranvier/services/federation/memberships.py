"""The resident server's side of leaving and knocking (spec: server-server-api "Leaving
Rooms (Rejecting Invites)" and "Knocking upon a room"; leaving-v1/v2.yaml, knocks.yaml):
make_leave and make_knock hand the remote server a template, as make_join does
(services/federation/joins.py), built by the room sender's `build_template` so that a
membership the room's rules refuse is refused before the other server signs it;
send_leave and send_knock take the event back, signed, check it (format, signatures,
hash, that it is that membership of a user of the sending server, the auth rules against
its auth events, the state after its prev events and the room's current state) and
persist it into the room on the state after its prev events, whose other servers the
outbound queue then tells. send_knock answers with the room's
identifying state, for the knocking user's /sync.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.auth import AuthError, check_auth, check_auth_events_consistency
from ranvier.protocol.auth_selection import auth_types_for_event
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import RoomVersion
from ranvier.services.federation.dag_state import state_at_prev_events
from ranvier.services.federation.event_checks import EventVerifier
from ranvier.services.federation.invites import INVITE_STATE_TYPES
from ranvier.services.federation.membership_pdus import Relay, checked_membership_pdu
from ranvier.services.federation.server_acl import ServerAclChecker
from ranvier.services.rooms.sender import FederatedEvent, RoomEventSender, RoomHead, RoomNotFound
from ranvier.storage.state import StateKey

# spec: knocks.yaml - `ver` is required; as for make_join, none means ["1"]
DEFAULT_SUPPORTED_VERSIONS = ("1",)


def _domain(identifier: str) -> str:
    return identifier.partition(":")[2]


CREATE_KEY = ("m.room.create", "")


def invalid(message: str) -> MatrixError:
    # spec: leaving-v2.yaml, knocks.yaml - no code is mandated; M_INVALID_PARAM SHOULD be
    return MatrixError(400, "M_INVALID_PARAM", message)


class MakeMembershipService:
    def __init__(
        self,
        sender: RoomEventSender,
        verifier: EventVerifier,
        acl: ServerAclChecker,
        server_name: str,
        relay: Relay | None = None,
    ) -> None:
        """`relay` sends an accepted leave or knock on to the room's other servers (None:
        this server sends nothing to other servers)."""
        self._relay = relay
        self._sender = sender
        self._loader = sender.loader
        self._verifier = verifier
        self._acl = acl
        self._server_name = server_name

    async def make_leave(self, origin: str, room_id: str, user_id: str) -> dict[str, Any]:
        """GET /_matrix/federation/v1/make_leave/{roomId}/{userId}, asked by `origin`."""
        await self._acl.check(origin, room_id)
        await self._room_version(room_id)
        self._check_user(origin, user_id)
        version, pdu = await self._template(room_id, user_id, "leave", "You cannot leave this room")
        return {"event": pdu, "room_version": version.identifier}

    async def make_knock(
        self, origin: str, room_id: str, user_id: str, supported_versions: Sequence[str]
    ) -> dict[str, Any]:
        """GET /_matrix/federation/v1/make_knock/{roomId}/{userId}, asked by `origin`."""
        await self._acl.check(origin, room_id)
        version = await self._room_version(room_id)
        if version.identifier not in (supported_versions or DEFAULT_SUPPORTED_VERSIONS):
            raise MatrixError(
                400,
                "M_INCOMPATIBLE_ROOM_VERSION",
                f"The room has version {version.identifier}, which your server did not say "
                "it supports",
                room_version=version.identifier,
            )
        if not version.knock_join_rule:
            # as Synapse: the room's version has no knocking at all
            raise MatrixError(
                403,
                "M_FORBIDDEN",
                f"Room version {version.identifier} does not support knocking",
            )
        self._check_user(origin, user_id)
        version, pdu = await self._template(
            room_id, user_id, "knock", "You are not permitted to knock on this room"
        )
        return {"event": pdu, "room_version": version.identifier}

    async def send_leave(
        self, origin: str, room_id: str, event_id: str, pdu: Mapping[str, Any]
    ) -> None:
        """PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId} (and v1), sent by
        `origin`."""
        await self._accept(origin, room_id, event_id, pdu, "leave")

    async def send_knock(
        self, origin: str, room_id: str, event_id: str, pdu: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}, sent by `origin`:
        the room's identifying state for the knocking user (spec: knock_room_state, each
        a full PDU of the room version, the create event included)."""
        head = await self._accept(origin, room_id, event_id, pdu, "knock")
        ids = [head.state[(kind, "")] for kind in INVITE_STATE_TYPES if (kind, "") in head.state]
        loaded = await self._loader.get_events(ids)
        state = [
            {key: value for key, value in loaded[event_id].pdu.items() if key != "unsigned"}
            for event_id in ids
            if event_id in loaded
        ]
        return {"knock_room_state": state}

    async def _accept(
        self,
        origin: str,
        room_id: str,
        event_id: str,
        pdu: Mapping[str, Any],
        membership: str,
    ) -> RoomHead:
        """Check a membership event another server completed from our template and
        persist it into the room (again: nothing); the room's head it was accepted on."""
        await self._acl.check(origin, room_id)
        try:
            head = await self._sender.head(room_id)
        except RoomNotFound:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}") from None
        version = head.room_version
        if membership == "knock" and not version.knock_join_rule:
            raise MatrixError(
                403, "M_FORBIDDEN", f"Room version {version.identifier} does not support knocking"
            )
        event = await checked_membership_pdu(self._verifier, pdu, version, f"{membership} event")
        if event.event_id != event_id or event.room_id != room_id:
            raise invalid("The event's ID or room ID is not the one in the path")
        if (
            event.type != "m.room.member"
            or event.state_key != event.sender
            or event.membership != membership
        ):
            raise invalid(f"Not a {membership} event of its sender")
        if _domain(event.sender) != origin:
            raise MatrixError(403, "M_FORBIDDEN", f"{event.sender} is not a user of {origin}")
        if await self._loader.get_event(event.event_id) is not None:
            return head
        # the state the event attaches to (its prev events'), not the room's now
        state_before = await state_at_prev_events(self._sender.db, self._loader, event)
        if state_before is None:
            raise MatrixError(
                403, "M_FORBIDDEN", f"The {membership}'s prev events are not in the room here"
            )
        await self._authorise(event, state_before, membership)
        await self._authorise(event, head.state, membership)
        try:
            await self._sender.persist_federated(
                room_id, version, [FederatedEvent(event, state_before)]
            )
        except RoomNotFound:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}") from None
        if self._relay is not None:
            # spec: send_leave and send_knock - the resident server sends the event on
            await self._relay(event, origin)
        return head

    async def _authorise(
        self, event: Event, current: Mapping[StateKey, str], membership: str
    ) -> None:
        """spec: "Checks performed on receipt of a PDU" - against the event's own auth
        events, and against the room's current state."""
        version = event.room_version
        cited = await self._loader.get_events(event.auth_event_ids)
        if len(cited) != len(set(event.auth_event_ids)):
            raise MatrixError(403, "M_FORBIDDEN", f"The {membership} cites unknown auth events")
        create_id = current.get(CREATE_KEY)
        create = None if create_id is None else await self._loader.get_event(create_id)
        keys = auth_types_for_event(
            version, event.type, event.sender, event.state_key, event.content
        )
        keys.add(CREATE_KEY)
        wanted = {key: current[key] for key in keys if key in current}
        loaded = await self._loader.get_events(wanted.values())
        own = {(e.type, e.state_key or ""): e for e in cited.values()}
        if create is not None:
            own.setdefault(CREATE_KEY, create)
        try:
            check_auth_events_consistency(event, list(cited.values()), version, create)
            check_auth(event, own, version)
            check_auth(event, {key: loaded[eid] for key, eid in wanted.items()}, version)
        except AuthError as exc:
            raise MatrixError(
                403, "M_FORBIDDEN", f"The {membership} is not allowed: {exc.reason}"
            ) from None

    async def _room_version(self, room_id: str) -> RoomVersion:
        try:
            return (await self._sender.head(room_id)).room_version
        except RoomNotFound:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}") from None

    def _check_user(self, origin: str, user_id: str) -> None:
        if not user_id.startswith("@") or _domain(user_id) != origin:
            raise MatrixError(403, "M_FORBIDDEN", f"{user_id} is not a user of {origin}")

    async def _template(
        self, room_id: str, user_id: str, membership: str, refusal: str
    ) -> tuple[RoomVersion, dict[str, Any]]:
        template = EventTemplate(
            "m.room.member", user_id, {"membership": membership}, room_id, user_id
        )
        try:
            version, pdu = await self._sender.build_template(template)
        except RoomNotFound:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {room_id}") from None
        except AuthError as exc:
            raise MatrixError(403, "M_FORBIDDEN", f"{refusal}: {exc.reason}") from None
        # spec: the template names the resident server as origin
        pdu["origin"] = self._server_name
        return version, pdu
