"""Invites across servers (spec: server-server-api "Inviting to a room"; invites-v1.yaml,
invites-v2.yaml).

Receiving: another server's user invites one of ours. The invite is checked (its room
version, that it is an invite of a local user by a user of the asking server, its hash and
signatures), signed with our key and, if this server is not in the room, kept as an
out-of-band membership with the room state the inviting server sent, for the invitee's
/sync. If this server is in the room, the invite arrives again through the room
(/send) and takes its place there.

Sending: one of our users invites a user of another server. The invite is built and
authorised like any membership change, but outside the room's send queue, then sent to
the invitee's server, which must return it with its signature added; that countersigned
event is what persists and what the room's other servers receive. The room's other sends
do not wait for the invitee's server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.federation.client import FederationRequests, is_unknown_endpoint
from ranvier.federation.errors import FederationError, RemoteRequestFailed
from ranvier.protocol.auth import check_auth
from ranvier.protocol.auth_selection import auth_types_for_event
from ranvier.protocol.canonical_json import CanonicalJSONError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.hashing import content_hash_matches
from ranvier.protocol.redaction import redact
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, EventFormat, RoomVersion
from ranvier.protocol.signing import SignatureError, countersign_event, sign_event
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.protocol.validation import PDUValidationError, validate_pdu
from ranvier.services.federation.dag_state import state_at_prev_events
from ranvier.services.federation.event_checks import EventVerifier
from ranvier.services.federation.keyring import SignatureVerifier
from ranvier.services.federation.membership_pdus import checked_membership_pdu
from ranvier.services.federation.out_of_band import (
    INVITE_ROOM_STATE,
    OutOfBandMemberships,
    with_stripped_state,
)
from ranvier.services.federation.server_acl import ServerAclChecker
from ranvier.services.federation.stripped_state import CheckedRoomState, check_room_state
from ranvier.services.rooms.sender import FederatedEvent, RoomEventSender

logger = logging.getLogger(__name__)

FEDERATION = "/_matrix/federation"

# what an invited user is shown of a room before joining (as Synapse's default
# room_prejoin_state; the same list /sync uses for local invites)
INVITE_STATE_TYPES = (
    "m.room.create",
    "m.room.join_rules",
    "m.room.canonical_alias",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.name",
    "m.room.topic",
)

# (exists, deactivated) of a local user
UserStatus = Callable[[str], Awaitable[tuple[bool, bool]]]


def invalid(message: str) -> MatrixError:
    # spec: invites-v2.yaml - a specific code is not mandated; M_INVALID_PARAM SHOULD be
    return MatrixError(400, "M_INVALID_PARAM", message)


def _domain(identifier: str) -> str:
    return identifier.partition(":")[2]


async def check_remote_pdu(verifier: EventVerifier, pdu: Any, room_version: RoomVersion) -> Event:
    """`pdu` from another server as an Event, once its format, the signatures the room
    version requires and its content hash have been checked (membership_pdus.py); a
    wrong hash is 400 M_INVALID_PARAM (refused rather than signed redacted)."""
    event = await checked_membership_pdu(verifier, pdu, room_version, "invite")
    if not content_hash_matches(pdu):
        raise invalid("The event's content hash does not match its content")
    return event


class InviteService:
    def __init__(
        self,
        *,
        sender: RoomEventSender,
        out_of_band: OutOfBandMemberships,
        verifier: EventVerifier,
        keyring: SignatureVerifier,
        client: FederationRequests,
        acl: ServerAclChecker,
        user_status: UserStatus,
        server_name: str,
        signing_key: ServerSigningKey,
    ) -> None:
        self._sender = sender
        self._out_of_band = out_of_band
        self._verifier = verifier
        self._keyring = keyring
        self._client = client
        self._acl = acl
        self._user_status = user_status
        self._server_name = server_name
        self._signing_key = signing_key

    # -- receiving -----------------------------------------------------------------------

    async def on_invite(
        self,
        origin: str,
        room_id: str,
        event_id: str,
        room_version_id: str,
        pdu: Any,
        invite_room_state: Sequence[Any],
    ) -> dict[str, Any]:
        """PUT /_matrix/federation/v2/invite/{roomId}/{eventId} (and v1), asked by
        `origin`: the invite signed by this server too."""
        room_version = KNOWN_ROOM_VERSIONS.get(room_version_id)
        if room_version is None:
            raise MatrixError(
                400,
                "M_INCOMPATIBLE_ROOM_VERSION",
                f"This server does not support room version {room_version_id}",
                room_version=room_version_id,
            )
        # as Synapse: a server the room's ACL denies may not invite into it
        await self._acl.check(origin, room_id)
        if not isinstance(pdu, dict):
            raise invalid("The invite event must be a JSON object")
        if pdu.get("type") != "m.room.member":
            raise invalid("The event is not a membership event")
        content = pdu.get("content")
        if not isinstance(content, dict) or content.get("membership") != "invite":
            raise invalid("The event is not an invite")
        sender, target = pdu.get("sender"), pdu.get("state_key")
        if not isinstance(sender, str) or _domain(sender) != origin:
            raise invalid(f"The inviting user is not a user of {origin}")
        if not isinstance(target, str) or _domain(target) != self._server_name:
            raise invalid(f"The invited user is not a user of {self._server_name}")
        if pdu.get("room_id") != room_id:
            raise invalid("The event's room ID is not the one in the path")
        event = await check_remote_pdu(self._verifier, pdu, room_version)
        if event.event_id != event_id:
            raise invalid("The event's ID is not the one in the path")
        checked = await self.checked_room_state(invite_room_state, room_id, room_version)
        if checked.problems and room_version.room_id_from_create_event:
            # spec: invites-v2.yaml - SHOULD for room versions 12 and later
            raise invalid(f"invite_room_state will not do: {'; '.join(checked.problems)}")
        stripped = checked.kept
        exists, deactivated = await self._user_status(target)
        if not exists:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown user {target}")
        if deactivated:
            raise MatrixError(403, "M_FORBIDDEN", f"{target} has been deactivated")
        try:
            signed = countersign_event(
                event.pdu, self._server_name, self._signing_key, room_version
            )
        except CanonicalJSONError as exc:
            raise invalid(f"The event cannot be signed: {exc}") from None
        signed.pop("unsigned", None)
        invite = Event(signed, room_version, event.event_id)
        if not await self._out_of_band.in_room(room_id):
            creator = next(
                (entry.get("sender") for entry in stripped if entry["type"] == "m.room.create"),
                None,
            )
            await self._out_of_band.store(
                with_stripped_state(invite, INVITE_ROOM_STATE, stripped),
                creator=creator if isinstance(creator, str) else None,
            )
        return signed

    async def checked_room_state(
        self, entries: Sequence[Any], room_id: str, room_version: RoomVersion
    ) -> CheckedRoomState:
        """An invite's or knock's room state from another server, as it may be kept
        (services/federation/stripped_state.py)."""
        checked = await check_room_state(self._verifier, entries, room_id, room_version)
        if checked.problems:
            logger.info("Room state for %s left out: %s", room_id, "; ".join(checked.problems))
        return checked

    # -- sending -------------------------------------------------------------------------

    async def invite(self, template: EventTemplate) -> Event:
        """Our user's invite of a user of another server, made outside the room's send
        queue so that the room's other sends go on while that server answers: built on
        the room's head now (its auth rules and this server's checks applied), signed,
        countersigned by the invitee's server, then persisted on the state it was built
        on - a fork if the room moved on meanwhile, merged by the next event - provided
        the room's current state still allows it. Raises MatrixError, or the sender's
        refusals (AuthError and the like) for the caller to turn into one."""
        assert template.room_id is not None
        version, pdu = await self._sender.build_template(template)
        signed = sign_event(pdu, self._server_name, self._signing_key, version)
        event = Event(signed, version, compute_event_id(signed, version))
        state_before = await state_at_prev_events(self._sender.db, self._sender.loader, event)
        if state_before is None:
            raise RuntimeError(f"The extremities of {template.room_id} have no state")
        invite = await self.countersigned(event)
        head = await self._sender.head(template.room_id)
        keys = auth_types_for_event(
            version, invite.type, invite.sender, invite.state_key, invite.content
        )
        keys.add(("m.room.create", ""))  # from room version 12 no auth event, still a rule
        wanted = {key: head.state[key] for key in keys if key in head.state}
        loaded = await self._sender.loader.get_events(wanted.values())
        check_auth(invite, {key: loaded[eid] for key, eid in wanted.items()}, version)
        await self._sender.persist_federated(
            template.room_id, version, [FederatedEvent(invite, state_before)]
        )
        return invite

    async def countersigned(self, event: Event) -> Event:
        """`event`, our invite of a user of another server, as that server returns it
        signed; raises MatrixError with what to tell the inviting client otherwise."""
        assert event.state_key is not None
        destination = _domain(event.state_key)
        room_version = event.room_version
        try:
            answer = await self._send_invite(destination, event)
        except RemoteRequestFailed as exc:
            logger.info("Invite of %s refused by %s: %s", event.state_key, destination, exc)
            raise _passed_on(exc) from None
        except FederationError as exc:
            logger.info("Invite of %s could not reach %s: %s", event.state_key, destination, exc)
            raise MatrixError(
                502, "M_UNKNOWN", f"Could not reach {destination} to invite {event.state_key}"
            ) from None
        returned = answer.get("event") if isinstance(answer, dict) else None
        if not isinstance(returned, dict):
            raise MatrixError(502, "M_UNKNOWN", f"{destination} answered the invite with no event")
        try:
            validate_pdu(returned, room_version)
        except PDUValidationError as exc:
            # as Synapse: what the invitee's server returned is not valid JSON for the
            # room version (a float, an integer out of range)
            raise MatrixError(
                400, exc.errcode, f"{destination} answered the invite with a bad event: {exc}"
            ) from None
        if _unsigned_part(returned) != _unsigned_part(event.pdu):
            raise MatrixError(
                502, "M_UNKNOWN", f"{destination} answered the invite with another event"
            )
        try:
            await self._keyring.verify_json_for_server(
                destination, redact(returned, room_version), valid_at_ts=now_ms()
            )
        except SignatureError as exc:
            raise MatrixError(
                502, "M_UNKNOWN", f"{destination} did not sign the invite: {exc}"
            ) from None
        their_signatures = returned["signatures"][destination]
        signatures = {name: dict(keys) for name, keys in event.pdu["signatures"].items()}
        signatures[destination] = dict(their_signatures)
        return Event({**event.pdu, "signatures": signatures}, room_version, event.event_id)

    async def _send_invite(self, destination: str, event: Event) -> Any:
        """PUT /invite: v2, or v1 when the invitee's server does not serve v2 and the room's
        version is one v1 can carry (its body names no room version, so the receiver
        assumes 1 or 2); the answer as v2 gives it."""
        ids = f"{quote(event.room_id, safe='')}/{quote(event.event_id, safe='')}"
        state = await self._invite_room_state(event.room_id)
        body = {
            "room_version": event.room_version.identifier,
            "event": event.pdu,
            "invite_room_state": state,
        }
        try:
            # as Synapse: an invite the user waits for is tried even while backing off
            return await self._client.put_json(
                destination, f"{FEDERATION}/v2/invite/{ids}", body, ignore_backoff=True
            )
        except RemoteRequestFailed as exc:
            if not is_unknown_endpoint(exc):
                raise
        if event.room_version.event_format is not EventFormat.V1:
            raise MatrixError(
                400,
                "M_UNSUPPORTED_ROOM_VERSION",
                f"{destination} does not support room version {event.room_version.identifier}",
            )
        logger.info("%s has no v2 invite; trying v1", destination)
        # spec: invites-v1.yaml - the event itself, the room's state in its unsigned
        unsigned = event.pdu.get("unsigned")
        unsigned = dict(unsigned) if isinstance(unsigned, Mapping) else {}
        v1_body = {**event.pdu, "unsigned": {**unsigned, "invite_room_state": state}}
        answer = await self._client.put_json(
            destination, f"{FEDERATION}/v1/invite/{ids}", v1_body, ignore_backoff=True
        )
        if isinstance(answer, list) and len(answer) == 2 and answer[0] == 200:
            return answer[1]
        raise MatrixError(502, "M_UNKNOWN", f"{destination} answered the v1 invite badly")

    async def _invite_room_state(self, room_id: str) -> list[dict[str, Any]]:
        """spec: invites-v2.yaml - the room's state events that identify it, the create
        event included, each as a full PDU of the room version."""
        head = await self._sender.head(room_id)
        ids = [head.state[(kind, "")] for kind in INVITE_STATE_TYPES if (kind, "") in head.state]
        loaded = await self._sender.loader.get_events(ids)
        return [_without_unsigned(loaded[event_id].pdu) for event_id in ids if event_id in loaded]


def _without_unsigned(pdu: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in pdu.items() if key != "unsigned"}


def _unsigned_part(pdu: Mapping[str, Any]) -> dict[str, Any]:
    """The event without what another server may add to it (signatures, unsigned)."""
    return {key: value for key, value in pdu.items() if key not in ("signatures", "unsigned")}


def _passed_on(exc: RemoteRequestFailed) -> MatrixError:
    """The invitee's server's refusal as the inviting client sees it: its 4xx passed on
    (spec: invites-v2.yaml, 400 and 403 "should be passed through to clients"), except
    that a request this server got wrong is this server's failure (502)."""
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    message = error if isinstance(error, str) and error else "The invite was refused"
    if 400 <= exc.status < 500 and exc.errcode not in (None, "M_MISSING_PARAM", "M_INVALID_PARAM"):
        extra: dict[str, Any] = {}
        if isinstance(exc.body, dict) and isinstance(exc.body.get("room_version"), str):
            extra["room_version"] = exc.body["room_version"]
        return MatrixError(exc.status, exc.errcode or "M_UNKNOWN", message, **extra)
    return MatrixError(502, "M_UNKNOWN", f"{exc.destination} refused the invite: {message}")
