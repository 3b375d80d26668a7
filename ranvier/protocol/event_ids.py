"""Event IDs and, from room version 12, room IDs derived from the create event.

spec: rooms/fragments/v1-event-ids (ID chosen by the sender), rooms/v3 (reference hash,
standard base64), rooms/fragments/v4-event-ids (URL-safe base64), rooms/v12 and appendices
"Room IDs" (room ID = create event ID with `!`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ranvier.protocol.hashing import compute_reference_hash
from ranvier.protocol.room_versions import EventFormat, RoomVersion
from ranvier.protocol.unpadded_base64 import encode_base64


class EventIDError(ValueError):
    """The event ID cannot be determined (a v1/v2 PDU without a usable `event_id`)."""


def compute_event_id(pdu: Mapping[str, Any], room_version: RoomVersion) -> str:
    """The ID of `pdu` in `room_version`.

    v1/v2 take the PDU's own `event_id`; later versions hash the event, so the result
    does not depend on `signatures`, `unsigned` or anything else redaction removes.
    """
    if room_version.event_format is EventFormat.V1:
        event_id = pdu.get("event_id")
        if not isinstance(event_id, str) or not event_id.startswith("$"):
            raise EventIDError(f"room version {room_version.identifier} PDU has no valid event_id")
        return event_id
    reference_hash = compute_reference_hash(pdu, room_version)
    urlsafe = room_version.event_format is EventFormat.V4
    return "$" + encode_base64(reference_hash, urlsafe=urlsafe)


def room_id_from_create_event(create_pdu: Mapping[str, Any], room_version: RoomVersion) -> str:
    """spec: rooms/v12 - the room ID is the create event's ID with `!` in place of `$`."""
    if not room_version.room_id_from_create_event:
        raise EventIDError(
            f"room version {room_version.identifier} does not derive room IDs from create events"
        )
    return "!" + compute_event_id(create_pdu, room_version)[1:]
