"""Micro-benchmarks of the pure protocol library: state resolution, auth, hashing + signing.

Run: .venv/bin/python -m bench.protocol_bench   (prints medians; not a test)
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

from ranvier.protocol.auth import check_auth
from ranvier.protocol.auth_selection import auth_types_for_event
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import V10, V12, RoomVersion
from ranvier.protocol.state_res import resolve_state_sync

MEMBERS = 10_000
RUNS = 5
ALICE = "@alice:a.test"
MOD = "@mod:a.test"
StateKey = tuple[str, str]


class Branch:
    def __init__(self, rv: RoomVersion, events: dict[str, Event], ids: list[int]) -> None:
        self.rv, self.events, self.ids = rv, events, ids
        self.state: dict[StateKey, str] = {}
        self.room_id = "!bench:a.test"
        self.tip: str | None = None
        self.depth = 0

    def fork(self) -> Branch:
        other = Branch(self.rv, self.events, self.ids)
        other.state, other.room_id = dict(self.state), self.room_id
        other.tip, other.depth = self.tip, self.depth
        return other

    def add(self, etype: str, sender: str, content: dict[str, Any], key: str | None = None) -> str:
        self.ids[0] += 1
        event_id = f"$b{self.ids[0]}:a.test"
        wanted = auth_types_for_event(self.rv, etype, sender, key, content)
        self.depth += 1
        pdu: dict[str, Any] = {
            "type": etype,
            "sender": sender,
            "content": content,
            "prev_events": [self.tip] if self.tip else [],
            "auth_events": sorted(self.state[k] for k in wanted if k in self.state),
            "depth": self.depth,
            "origin_server_ts": 1_000_000 + self.ids[0],
        }
        if key is not None:
            pdu["state_key"] = key
        if etype != "m.room.create" or not self.rv.room_id_from_create_event:
            pdu["room_id"] = self.room_id
        self.events[event_id] = Event(pdu, self.rv, event_id)
        if etype == "m.room.create" and self.rv.room_id_from_create_event:
            self.room_id = "!" + event_id[1:]
        if key is not None:
            self.state[(etype, key)] = event_id
        self.tip = event_id
        return event_id


def build_forked_room(rv: RoomVersion) -> tuple[dict[str, Event], list[dict[StateKey, str]]]:
    base = Branch(rv, {}, [0])
    create: dict[str, Any] = {"room_version": rv.identifier}
    if not rv.implicit_room_creator:
        create["creator"] = ALICE
    base.add("m.room.create", ALICE, create, "")
    base.add("m.room.member", ALICE, {"membership": "join"}, ALICE)
    users = {MOD: 50} if rv.privileged_creators else {ALICE: 100, MOD: 50}
    base.add("m.room.power_levels", ALICE, {"users": users}, "")
    base.add("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    base.add("m.room.member", MOD, {"membership": "join"}, MOD)
    for i in range(MEMBERS):
        user = f"@user{i}:s{i % 50}.test"
        base.add("m.room.member", user, {"membership": "join"}, user)
    a, b = base.fork(), base.fork()
    # fork A: the creator promotes some users and closes the room
    a.add("m.room.power_levels", ALICE, {"users": {**users, "@user1:s1.test": 50}}, "")
    a.add("m.room.join_rules", ALICE, {"join_rule": "invite"}, "")
    a.add("m.room.topic", ALICE, {"topic": "closed"}, "")
    # fork B: the moderator changes levels, kicks someone, and people keep joining
    b.add("m.room.power_levels", MOD, {"users": {**users, "@user2:s2.test": 10}}, "")
    b.add("m.room.member", MOD, {"membership": "leave"}, "@user3:s3.test")
    for i in range(MEMBERS, MEMBERS + 200):
        user = f"@user{i}:s{i % 50}.test"
        b.add("m.room.member", user, {"membership": "join"}, user)
    b.add("m.room.topic", MOD, {"topic": "open"}, "")
    return base.events, [a.state, b.state]


def median_ms(fn: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    for rv in (V10, V12):
        events, states = build_forked_room(rv)
        resolved = resolve_state_sync(rv, states, events)
        ms = median_ms(functools.partial(resolve_state_sync, rv, states, events))
        print(
            f"state res v{rv.identifier} ({rv.state_res.value}): 2 forks, {MEMBERS} members, "
            f"{len(resolved)} keys resolved: median {ms:.1f} ms"
        )
        state_events = {k: events[v] for k, v in resolved.items()}
        message = Event(
            {
                "type": "m.room.message",
                "sender": ALICE,
                "room_id": events[resolved[("m.room.power_levels", "")]].room_id,
                "content": {"body": "hi"},
                "prev_events": [],
                "auth_events": [],
                "depth": 1,
                "origin_server_ts": 1,
            },
            rv,
            "$msg:a.test",
        )
        us = median_ms(functools.partial(check_auth, message, state_events, rv), 1001) * 1000
        print(f"check_auth v{rv.identifier}, one message in that state: median {us:.1f} us")

    try:
        from ranvier.protocol.signing import sign_event
        from ranvier.protocol.signing_keys import ServerSigningKey
    except ImportError:
        print("hashing + signing: skipped (part A's signing module not available)")
        return
    key = ServerSigningKey.generate("bench")
    pdu = {
        "type": "m.room.message",
        "sender": ALICE,
        "room_id": "!bench:a.test",
        "content": {"body": "hello " * 20, "msgtype": "m.text"},
        "prev_events": ["$p:a.test"],
        "auth_events": ["$a1:a.test", "$a2:a.test", "$a3:a.test"],
        "depth": 12,
        "origin_server_ts": 1_700_000_000_000,
    }
    us = median_ms(lambda: sign_event(pdu, "a.test", key, V10), 1001) * 1000
    print(f"content hash + redact + sign one event (v10): median {us:.1f} us")


if __name__ == "__main__":
    main()
