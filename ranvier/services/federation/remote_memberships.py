"""Our users' memberships in rooms this server is not in (spec: server-server-api "Leaving
Rooms (Rejecting Invites)", "Knocking upon a room"): rejecting an invite or withdrawing a
knock through a resident server (make_leave, then send_leave), and knocking through one
(make_knock, then send_knock). The results are kept as out-of-band memberships
(services/federation/out_of_band.py) so /sync lists the room under leave or knock.

A rejection must work even when no resident server answers (spec: "the client should
still be able to reject the invite"): then, as Synapse does, the leave is made here on
top of the invite or knock alone and kept out of band, without being sent anywhere.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.federation.client import FederationRequests, is_unknown_endpoint
from ranvier.federation.errors import FederationError, RemoteRequestFailed
from ranvier.protocol.canonical_json import CanonicalJSONError
from ranvier.protocol.event_builder import EventTemplate, PrevEvent, build_event
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, EventFormat, RoomVersion
from ranvier.protocol.signing import sign_event
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.protocol.validation import PDUValidationError, validate_pdu
from ranvier.services.federation.invites import InviteService
from ranvier.services.federation.out_of_band import (
    INVITE_ROOM_STATE,
    KNOCK_ROOM_STATE,
    OutOfBandMemberships,
    usable_stripped_state,
    with_stripped_state,
)

logger = logging.getLogger(__name__)

MEMBER = "m.room.member"
FEDERATION = "/_matrix/federation"


class _Unusable(Exception):
    """A resident server's answer that cannot be used; another server may be tried."""


def _domain(identifier: str) -> str:
    return identifier.partition(":")[2]


def _path(*parts: str) -> str:
    return "/".join(quote(part, safe="") for part in parts)


class RemoteMemberships:
    """The membership changes of our users that go through other servers; the client
    API's membership service calls these (services/rooms/membership.py)."""

    def __init__(
        self,
        *,
        client: FederationRequests,
        invites: InviteService,
        out_of_band: OutOfBandMemberships,
        server_name: str,
        signing_key: ServerSigningKey,
    ) -> None:
        self._client = client
        self._invites = invites
        self._out_of_band = out_of_band
        self._server_name = server_name
        self._signing_key = signing_key

    async def invite(self, template: EventTemplate) -> Event:
        """Our invite of a user of another server, signed by that server too, persisted."""
        return await self._invites.invite(template)

    async def in_room(self, room_id: str) -> bool:
        return await self._out_of_band.in_room(room_id)

    async def servers_for(self, user_id: str, room_id: str) -> list[str]:
        """Servers likely in a room the user is invited to or knocked on out of band (the
        inviter's first), to join it through; none otherwise."""
        latest = await self._out_of_band.latest(room_id, user_id)
        if latest is None or latest.membership not in ("invite", "knock"):
            return []
        return self._resident_candidates(latest)

    # -- leaving -------------------------------------------------------------------------

    async def leave_out_of_band(
        self, user_id: str, room_id: str, content: Mapping[str, Any]
    ) -> None:
        """Reject the user's invite to (or withdraw their knock on) a room this server is
        not in. 403 if the user has neither."""
        latest = await self._out_of_band.latest(room_id, user_id)
        if latest is None or latest.membership not in ("invite", "knock"):
            raise MatrixError(403, "M_FORBIDDEN", "You are not in this room")
        for server in self._resident_candidates(latest):
            try:
                event = await self._leave_through(server, room_id, user_id, content)
            except (FederationError, _Unusable) as exc:
                logger.info("Leaving %s through %s failed: %s", room_id, server, exc)
                continue
            await self._out_of_band.store(event)
            return
        # spec: the user must be able to reject an invite from a server that is gone
        logger.info("No server of %s answered; %s leaves it here only", room_id, user_id)
        template = EventTemplate(MEMBER, user_id, dict(content), room_id, user_id)
        leave = build_event(
            template,
            room_version=latest.room_version,
            prev_events=[PrevEvent.of(latest)],
            current_state={(MEMBER, user_id): latest},
            server_name=self._server_name,
            signing_key=self._signing_key,
        )
        await self._out_of_band.store(leave)

    def _resident_candidates(self, latest: Event) -> list[str]:
        """Servers that may be in the room: the inviter's, those that sent the stripped
        state, the room ID's (before room version 12, the creating server's)."""
        candidates = [_domain(latest.sender)]
        unsigned = latest.pdu.get("unsigned")
        if isinstance(unsigned, dict):
            for key in (INVITE_ROOM_STATE, KNOCK_ROOM_STATE):
                entries = unsigned.get(key)
                for entry in usable_stripped_state(entries if isinstance(entries, list) else []):
                    sender = entry.get("sender")
                    if isinstance(sender, str):
                        candidates.append(_domain(sender))
        if ":" in latest.room_id:
            candidates.append(_domain(latest.room_id))
        return [
            server for server in dict.fromkeys(candidates) if server and server != self._server_name
        ]

    async def _leave_through(
        self, server: str, room_id: str, user_id: str, content: Mapping[str, Any]
    ) -> Event:
        answer = await self._client.get_json(
            server, f"{FEDERATION}/v1/make_leave/{_path(room_id, user_id)}"
        )
        event = self._completed(answer, room_id, user_id, "leave", content)
        path = f"{FEDERATION}/v2/send_leave/{_path(room_id, event.event_id)}"
        try:
            await self._client.put_json(server, path, event.pdu)
        except RemoteRequestFailed as exc:
            if not is_unknown_endpoint(exc):
                raise
            # spec: leaving-v2.yaml - an older server has only v1
            await self._client.put_json(
                server, f"{FEDERATION}/v1/send_leave/{_path(room_id, event.event_id)}", event.pdu
            )
        return event

    # -- knocking ------------------------------------------------------------------------

    async def knock(
        self, user_id: str, room_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> None:
        """Knock on a room this server is not in, through the first of `servers` that
        answers; 404 if none is given or none knows the room, else the last refusal."""
        candidates = [s for s in dict.fromkeys(servers) if s and s != self._server_name]
        if not candidates:
            raise MatrixError(404, "M_NOT_FOUND", "No server to knock on this room through")
        failure: MatrixError = MatrixError(
            404, "M_NOT_FOUND", "No server could be reached to knock on this room"
        )
        for server in candidates:
            try:
                await self._knock_through(server, room_id, user_id, content)
            except RemoteRequestFailed as exc:
                logger.info("Knocking on %s through %s refused: %s", room_id, server, exc)
                failure = _refusal(exc, failure)
                continue
            except (FederationError, _Unusable) as exc:
                logger.info("Knocking on %s through %s failed: %s", room_id, server, exc)
                continue
            return
        raise failure

    async def _knock_through(
        self, server: str, room_id: str, user_id: str, content: Mapping[str, Any]
    ) -> None:
        answer = await self._client.get_json(
            server,
            f"{FEDERATION}/v1/make_knock/{_path(room_id, user_id)}",
            query={"ver": sorted(KNOWN_ROOM_VERSIONS)},
        )
        event = self._completed(answer, room_id, user_id, "knock", content)
        sent = await self._client.put_json(
            server, f"{FEDERATION}/v1/send_knock/{_path(room_id, event.event_id)}", event.pdu
        )
        state = sent.get("knock_room_state") if isinstance(sent, dict) else None
        # spec: knocks.yaml - improper entries SHOULD be removed before clients see them
        checked = await self._invites.checked_room_state(
            state if isinstance(state, list) else [], room_id, event.room_version
        )
        stripped = checked.kept
        creator = next((e.get("sender") for e in stripped if e["type"] == "m.room.create"), None)
        await self._out_of_band.store(
            with_stripped_state(event, KNOCK_ROOM_STATE, stripped),
            creator=creator if isinstance(creator, str) else None,
        )

    # -- templates -----------------------------------------------------------------------

    def _completed(
        self,
        answer: Any,
        room_id: str,
        user_id: str,
        membership: str,
        content: Mapping[str, Any],
    ) -> Event:
        """The resident server's template (make_leave, make_knock) completed and signed
        by this server, after the checks the spec asks of it."""
        if not isinstance(answer, dict) or not isinstance(answer.get("event"), dict):
            raise _Unusable("the answer holds no event template")
        version = KNOWN_ROOM_VERSIONS.get(str(answer.get("room_version", "1")))
        if version is None:
            raise _Unusable(f"unsupported room version {answer.get('room_version')!r}")
        pdu: dict[str, Any] = dict(answer["event"])
        template_content = pdu.get("content")
        # spec: knocks.yaml, leaving-v1.yaml - what a template must be before it is signed
        if (
            pdu.get("room_id") != room_id
            or pdu.get("sender") != user_id
            or pdu.get("state_key") != user_id
            or pdu.get("type") != MEMBER
            or not isinstance(template_content, dict)
            or template_content.get("membership") != membership
        ):
            raise _Unusable("the template is not the membership asked for")
        pdu["content"] = {**template_content, **content, "membership": membership}
        pdu["origin"] = self._server_name
        pdu["origin_server_ts"] = now_ms()
        pdu.pop("signatures", None)
        pdu.pop("hashes", None)
        pdu.pop("unsigned", None)
        if version.event_format is EventFormat.V1:
            # spec: rooms/v1 - the sending server chooses the event ID
            pdu["event_id"] = f"${secrets.token_urlsafe(18)}:{self._server_name}"
        return _signed(pdu, self._server_name, self._signing_key, version)


def _signed(
    pdu: dict[str, Any], server_name: str, signing_key: ServerSigningKey, version: RoomVersion
) -> Event:
    try:
        signed = sign_event(pdu, server_name, signing_key, version)
        validate_pdu(signed, version)
    except (CanonicalJSONError, PDUValidationError) as exc:
        raise _Unusable(f"the completed template is not a valid event: {exc}") from None
    return Event(signed, version, compute_event_id(signed, version))


def _refusal(exc: RemoteRequestFailed, previous: MatrixError) -> MatrixError:
    """A resident server's 4xx refusal of a knock, passed on to the client (spec:
    knocks.yaml "should be passed through to clients")."""
    if not 400 <= exc.status < 500:
        return previous
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    message = error if isinstance(error, str) and error else "The knock was refused"
    extra: dict[str, Any] = {}
    if isinstance(exc.body, dict) and isinstance(exc.body.get("room_version"), str):
        extra["room_version"] = exc.body["room_version"]
    return MatrixError(exc.status, exc.errcode or "M_UNKNOWN", message, **extra)
