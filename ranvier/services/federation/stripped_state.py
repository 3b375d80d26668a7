"""The room state another server sends with an invite or a knock (`invite_room_state`,
`knock_room_state`), checked before it is kept for the user's /sync.

spec (v1.16, invites-v2.yaml and knocks.yaml): each entry is a full PDU of the room's
version, the create event included, properly signed and of the same room; a server SHOULD
refuse an invite whose state breaks this from room version 12 on (MAY before), and SHOULD
drop improperly signed or formatted entries before clients see them.

What Ranvier does, for every room version: an entry that is a PDU (it carries signatures,
hashes or auth events) goes through the checks of any received PDU (format, signatures,
content hash) and must be of the invite's room (from version 12 the create event's room is
the one derived from its ID); an entry in the older client-style stripped form (string
type and state_key, object content) is kept in that form only, and must not name another
room. Bad entries are left out, at most MAX_ENTRIES are kept, none keeps its `unsigned`;
`problems` says what was wrong, and a missing create event. An invite in a room of version
12 or later with any problem is refused (the spec's SHOULD). Stripped-form entries are
still taken there, as Synapse takes them: servers that claimed version 12 before they sent
full PDUs are still about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ranvier.protocol.room_versions import RoomVersion
from ranvier.protocol.signing import SignatureError
from ranvier.protocol.validation import PDUValidationError
from ranvier.services.federation.event_checks import EventVerifier
from ranvier.services.federation.out_of_band import usable_stripped_state

# Synapse's default room_prejoin_state has 8 types; leave room for custom ones
MAX_ENTRIES = 50
CREATE = "m.room.create"
# what marks an entry as a PDU rather than a client-style stripped event
PDU_ONLY_KEYS = ("signatures", "hashes", "auth_events")
# spec: client-server-api "Stripped state"
STRIPPED_KEYS = ("type", "state_key", "content", "sender")


@dataclass(frozen=True)
class CheckedRoomState:
    kept: list[dict[str, Any]]
    # why each left-out entry was left out, and a missing create event
    problems: list[str]


async def check_room_state(
    verifier: EventVerifier, entries: Sequence[Any], room_id: str, version: RoomVersion
) -> CheckedRoomState:
    problems: list[str] = []
    if len(entries) > MAX_ENTRIES:
        problems.append(f"{len(entries) - MAX_ENTRIES} entries beyond the first {MAX_ENTRIES}")
        entries = entries[:MAX_ENTRIES]
    well_formed = usable_stripped_state(entries)
    if len(well_formed) < len(entries):
        problems.append(f"{len(entries) - len(well_formed)} entries are not state events")
    checked = await asyncio.gather(
        *(_entry_problem(verifier, entry, room_id, version) for entry in well_formed)
    )
    kept = [entry for entry, problem in checked if problem is None and entry is not None]
    problems.extend(problem for _, problem in checked if problem is not None)
    if not any(entry["type"] == CREATE and entry["state_key"] == "" for entry in kept):
        problems.append("there is no m.room.create event")
    return CheckedRoomState(kept, problems)


async def _entry_problem(
    verifier: EventVerifier, entry: Mapping[str, Any], room_id: str, version: RoomVersion
) -> tuple[dict[str, Any] | None, str | None]:
    if any(key in entry for key in PDU_ONLY_KEYS):
        return await _full_pdu_problem(verifier, entry, room_id, version)
    if entry.get("room_id", room_id) != room_id:
        return None, f"the {entry['type']} event is of another room"
    return {key: entry[key] for key in STRIPPED_KEYS if key in entry}, None


async def _full_pdu_problem(
    verifier: EventVerifier, entry: Mapping[str, Any], room_id: str, version: RoomVersion
) -> tuple[dict[str, Any] | None, str | None]:
    kind = entry["type"]
    try:
        event = await verifier.check_pdu(entry, version)
    except (PDUValidationError, SignatureError) as exc:
        return None, f"the {kind} event does not check: {exc}"
    if version.room_id_from_create_event and event.type == CREATE and event.state_key == "":
        # spec: rooms/v12 - the create event names no room; the room ID is derived from it
        in_room = "!" + event.event_id[1:] == room_id
    else:
        in_room = event.room_id == room_id
    if not in_room:
        return None, f"the {kind} event is of another room"
    # a wrong content hash leaves the redacted event, which is what may be shown
    return _without_unsigned(event.pdu), None


def _without_unsigned(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key != "unsigned"}
