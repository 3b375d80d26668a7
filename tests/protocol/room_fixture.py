"""A small in-memory room for auth and state resolution tests: events with made-up IDs."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ranvier.protocol.auth_selection import auth_types_for_event
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import RoomVersion

StateKey = tuple[str, str]

ALICE = "@alice:a.test"
BOB = "@bob:b.test"
CAROL = "@carol:c.test"
MOD = "@mod:a.test"


class Room:
    """Builds a linear room: each added event cites the previous one and the state it needs."""

    def __init__(
        self,
        room_version: RoomVersion,
        creator: str = ALICE,
        create_content: Mapping[str, Any] | None = None,
    ) -> None:
        self.rv = room_version
        self.events: dict[str, Event] = {}
        self.state: dict[StateKey, str] = {}
        # shared between forks so that event IDs stay unique
        self.ids = [0]
        self.last: str | None = None
        content: dict[str, Any] = {"room_version": room_version.identifier}
        if not room_version.implicit_room_creator:
            content["creator"] = creator
        content.update(create_content or {})
        self.room_id = "!room:a.test"
        create = self.make("m.room.create", creator, content, state_key="", prev=[])
        if room_version.room_id_from_create_event:
            self.room_id = "!" + create.event_id[1:]
        self.create = self.add_event(create)

    @property
    def counter(self) -> int:
        return self.ids[0]

    def next_id(self) -> str:
        self.ids[0] += 1
        return f"$e{self.ids[0]:05d}:a.test"

    def fork(self) -> Room:
        """Another branch from the current tip: same events, its own state and tip."""
        other = copy.copy(self)
        other.state = dict(self.state)
        return other

    def make(
        self,
        event_type: str,
        sender: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        *,
        prev: list[str] | None = None,
        auth: list[str] | None = None,
        event_id: str | None = None,
        ts: int | None = None,
        state: Mapping[StateKey, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Event:
        """An event on top of `state` (default: the room's current state), not yet applied."""
        event_id = event_id or self.next_id()
        state = self.state if state is None else state
        if auth is None:
            wanted = auth_types_for_event(self.rv, event_type, sender, state_key, content)
            auth = sorted(state[key] for key in wanted if key in state)
        if prev is None:
            prev = [self.last] if self.last else []
        pdu: dict[str, Any] = {
            "type": event_type,
            "sender": sender,
            "content": dict(content),
            "prev_events": prev,
            "auth_events": auth,
            "depth": 1 + max((self.events[p].depth for p in prev if p in self.events), default=0),
            "origin_server_ts": 1000 + self.counter if ts is None else ts,
            "signatures": {sender.partition(":")[2]: {"ed25519:k": "sig"}},
        }
        if not (event_type == "m.room.create" and self.rv.room_id_from_create_event):
            pdu["room_id"] = getattr(self, "room_id", "!room:a.test")
        if state_key is not None:
            pdu["state_key"] = state_key
        pdu.update(extra or {})
        return Event(pdu, self.rv, event_id)

    def add_event(self, event: Event) -> Event:
        self.events[event.event_id] = event
        if event.state_key is not None:
            self.state[(event.type, event.state_key)] = event.event_id
        self.last = event.event_id
        return event

    def add(self, *args: Any, **kwargs: Any) -> Event:
        return self.add_event(self.make(*args, **kwargs))

    def member(self, user: str, membership: str, sender: str | None = None, **kw: Any) -> Event:
        content = {"membership": membership, **kw.pop("content", {})}
        return self.add("m.room.member", sender or user, content, user, **kw)

    def state_events(self) -> dict[StateKey, Event]:
        return {key: self.events[event_id] for key, event_id in self.state.items()}


def standard_room(room_version: RoomVersion, join_rule: str = "invite") -> Room:
    """alice creates (100), mod has 50, bob joined at 0; carol is a stranger."""
    room = Room(room_version)
    room.member(ALICE, "join")
    users = {MOD: 50} if room_version.privileged_creators else {ALICE: 100, MOD: 50}
    room.add("m.room.power_levels", ALICE, {"users": users}, "")
    room.add("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.member(MOD, "join")
    room.member(BOB, "join")
    room.add("m.room.join_rules", ALICE, {"join_rule": join_rule}, "")
    return room
