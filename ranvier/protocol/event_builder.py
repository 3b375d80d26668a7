"""Building, hashing and signing new events of this server.

spec: server-server-api "PDUs" (prev_events), "Auth events selection", "Signing Events";
data/api/server-server/definitions/pdu_v*.yaml (field formats and the depth limit);
rooms/v11 (`redacts` in content), rooms/v12 (room ID derived from the create event).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ranvier.protocol.auth_selection import auth_types_for_event
from ranvier.protocol.canonical_json import CanonicalJSONError
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import EventFormat, RoomVersion
from ranvier.protocol.signing import sign_event
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.protocol.validation import PDUValidationError, max_depth, validate_pdu

StateMap = Mapping[tuple[str, str], Event]


class EventBuildError(ValueError):
    """The template cannot make an event in this room version; the message says why."""


@dataclass(frozen=True, slots=True)
class EventTemplate:
    """What a client or service asks for; the builder adds everything the DAG needs."""

    type: str
    sender: str
    content: Mapping[str, Any]
    room_id: str | None = None
    state_key: str | None = None
    # for m.room.redaction: top-level before room version 11, in content from 11 on
    redacts: str | None = None
    # None: now. An application service may set it (spec: application-service-api
    # "Timestamp massaging"); the event's place in the DAG does not change
    origin_server_ts: int | None = None


@dataclass(frozen=True, slots=True)
class PrevEvent:
    """A parent of the new event: its ID, its depth, and (for room versions 1-2) its hashes."""

    event_id: str
    depth: int
    hashes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, event: Event) -> PrevEvent:
        hashes = event.pdu.get("hashes")
        return cls(event.event_id, event.depth, hashes if isinstance(hashes, Mapping) else {})


def build_event(
    template: EventTemplate,
    *,
    room_version: RoomVersion,
    prev_events: Sequence[PrevEvent],
    current_state: StateMap,
    server_name: str,
    signing_key: ServerSigningKey,
    origin_server_ts: int | None = None,
) -> Event:
    """A complete, hashed and signed event with its ID.

    `current_state` is the room state the event is sent against, keyed by (type, state_key);
    auth_events are chosen from it with the spec's auth events selection.
    Raises EventBuildError for templates the room version cannot take, and
    PDUValidationError if the result breaks a format limit (e.g. M_TOO_LARGE).
    """
    pdu = build_unsigned_pdu(
        template,
        room_version=room_version,
        prev_events=prev_events,
        current_state=current_state,
        server_name=server_name,
        origin_server_ts=origin_server_ts,
    )
    try:
        signed = sign_event(pdu, server_name, signing_key, room_version)
    except CanonicalJSONError as exc:
        # the signed (redacted) form holds content the room version's JSON rules refuse
        raise PDUValidationError(f"PDU is not canonical JSON: {exc}") from exc
    validate_pdu(signed, room_version)
    return Event(signed, room_version, compute_event_id(signed, room_version))


def build_unsigned_pdu(
    template: EventTemplate,
    *,
    room_version: RoomVersion,
    prev_events: Sequence[PrevEvent],
    current_state: StateMap,
    server_name: str,
    origin_server_ts: int | None = None,
) -> dict[str, Any]:
    """The PDU `build_event` hashes and signs: the event's fields, its place in the DAG
    (prev_events, depth) and its auth_events, without hashes or signatures. On its own it
    is the template another server completes and signs (make_join)."""
    is_create = template.type == "m.room.create" and template.state_key == ""
    if is_create and room_version.room_id_from_create_event:
        if template.room_id is not None:
            raise EventBuildError(
                f"m.room.create in room version {room_version.identifier} has no room_id; "
                "the room ID is derived from it"
            )
    elif not template.room_id:
        raise EventBuildError("room_id is required")
    if is_create and prev_events:
        raise EventBuildError("m.room.create cannot have prev_events")

    pdu: dict[str, Any] = {
        "type": template.type,
        "sender": template.sender,
        "content": dict(template.content),
        "origin_server_ts": _now_ms() if origin_server_ts is None else origin_server_ts,
        "depth": _depth(prev_events, room_version),
        "prev_events": [_ref(p.event_id, p.hashes, room_version) for p in prev_events],
        "auth_events": [] if is_create else _auth_refs(template, current_state, room_version),
    }
    if template.room_id is not None:
        pdu["room_id"] = template.room_id
    if template.state_key is not None:
        pdu["state_key"] = template.state_key
    if template.redacts is not None:
        if room_version.updated_redaction_rules:
            pdu["content"]["redacts"] = template.redacts
        else:
            pdu["redacts"] = template.redacts
    if room_version.event_format is EventFormat.V1:
        # spec: rooms/fragments/v1-event-ids - `$opaque_id:domain`, chosen by the sender
        pdu["event_id"] = f"${secrets.token_urlsafe(18)}:{server_name}"
    return pdu


def build_create_event(
    *,
    room_version: RoomVersion,
    sender: str,
    content: Mapping[str, Any],
    server_name: str,
    signing_key: ServerSigningKey,
    room_id: str | None = None,
    origin_server_ts: int | None = None,
) -> Event:
    """The m.room.create event of a new room; `event.room_id` is the room's ID.

    `room_version` is put in the content, and `creator` too before room version 11 (spec:
    rooms/v11 removes it), over whatever the content said: the client's creation_content
    cannot make the event disagree with the room (as Synapse, which overwrites them too).
    `room_id` is required before room version 12 and refused from 12 on, where the ID is
    `!` + the event's reference hash.
    """
    full_content = dict(content)
    full_content["room_version"] = room_version.identifier
    if not room_version.implicit_room_creator:
        full_content["creator"] = sender
    return build_event(
        EventTemplate("m.room.create", sender, full_content, room_id=room_id, state_key=""),
        room_version=room_version,
        prev_events=(),
        current_state={},
        server_name=server_name,
        signing_key=signing_key,
        origin_server_ts=origin_server_ts,
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _depth(prev_events: Sequence[PrevEvent], room_version: RoomVersion) -> int:
    # spec: pdu "depth" - max of prev_events plus one, held at the limit once reached
    if not prev_events:
        return 1
    return min(max(p.depth for p in prev_events) + 1, max_depth(room_version))


def _ref(event_id: str, hashes: Mapping[str, str], room_version: RoomVersion) -> Any:
    if room_version.event_format is not EventFormat.V1:
        return event_id
    # spec: pdu_v1 - [event_id, {"sha256": ...}]
    if "sha256" not in hashes:
        raise EventBuildError(f"room version 1/2 reference to {event_id} needs its sha256 hash")
    return [event_id, {"sha256": hashes["sha256"]}]


def _auth_refs(template: EventTemplate, state: StateMap, room_version: RoomVersion) -> list[Any]:
    wanted = auth_types_for_event(
        room_version, template.type, template.sender, template.state_key, template.content
    )
    # sorted so that the same state always yields the same PDU
    return [
        _ref(state[key].event_id, _hashes(state[key]), room_version)
        for key in sorted(wanted)
        if key in state
    ]


def _hashes(event: Event) -> Mapping[str, str]:
    hashes = event.pdu.get("hashes")
    return hashes if isinstance(hashes, Mapping) else {}
