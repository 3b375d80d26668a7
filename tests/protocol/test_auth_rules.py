"""Auth rules, one table row per rule, checked across every room version it applies to.

Expected rule numbers are written per "era" of numbering: the key is the first room version
whose page numbers the rule that way (v1, v3: same as v1 without redaction; v6: aliases gone;
v7: knock; v8: restricted; v10: integer power levels; v12: creators).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from room_fixture import ALICE, BOB, CAROL, MOD, Room, standard_room

from ranvier.protocol.auth import AuthError, check_auth
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion

ALL = [int(v) for v in KNOWN_ROOM_VERSIONS]


@dataclass
class Case:
    name: str
    build: Callable[[RoomVersion], tuple[Room, Event]]
    # None: allowed; else {first version of the numbering era: rule number}
    refused: dict[int, str] | None
    versions: range | list[int] = range(1, 13)


def rule_for(expected: dict[int, str], version: int) -> str:
    return expected[max(era for era in expected if era <= version)]


def std(join_rule: str = "invite") -> Callable[[RoomVersion], Room]:
    return lambda rv: standard_room(rv, join_rule)


def ev(
    event_type: str,
    sender: str,
    content: dict[str, object],
    state_key: str | None = None,
    join_rule: str = "invite",
    before: Callable[[Room], object] | None = None,
    **kw: object,
) -> Callable[[RoomVersion], tuple[Room, Event]]:
    def build(rv: RoomVersion) -> tuple[Room, Event]:
        room = standard_room(rv, join_rule)
        if before is not None:
            before(room)
        return room, room.make(event_type, sender, content, state_key, **kw)  # type: ignore[arg-type]

    return build


def member(
    target: str, membership: str, sender: str | None = None, **kw: object
) -> Callable[[RoomVersion], tuple[Room, Event]]:
    content = {"membership": membership, **kw.pop("content", {})}  # type: ignore[dict-item]
    return ev("m.room.member", sender or target, content, target, **kw)  # type: ignore[arg-type]


def banned(user: str) -> Callable[[Room], object]:
    return lambda room: room.member(user, "ban", sender=ALICE)


def invited(user: str) -> Callable[[Room], object]:
    return lambda room: room.member(user, "invite", sender=ALICE)


def create_event(
    content: dict[str, object], **kw: object
) -> Callable[[RoomVersion], tuple[Room, Event]]:
    def build(rv: RoomVersion) -> tuple[Room, Event]:
        room = Room(rv)
        base: dict[str, object] = {"room_version": rv.identifier}
        if not rv.implicit_room_creator:
            base["creator"] = ALICE
        base.update(content)
        base = {k: v for k, v in base.items() if v is not None}
        kw.setdefault("prev", [])
        event = room.make("m.room.create", ALICE, base, "", state={}, **kw)  # type: ignore[arg-type]
        return room, event

    return build


PL = "m.room.power_levels"
PL_USERS = {ALICE: 100, MOD: 50}


def pl_content(rv_creators: bool, **changes: object) -> dict[str, object]:
    users = dict(PL_USERS)
    if rv_creators:
        del users[ALICE]
    content: dict[str, object] = {"users": users}
    content.update(changes)
    return content


def pl_change(sender: str, **changes: object) -> Callable[[RoomVersion], tuple[Room, Event]]:
    def build(rv: RoomVersion) -> tuple[Room, Event]:
        room = standard_room(rv)
        content = pl_content(rv.privileged_creators, **changes)
        return room, room.make(PL, sender, content, "")

    return build


def restricted_join(
    via: str | None, signed: bool = True, rule: str = "restricted"
) -> Callable[[RoomVersion], tuple[Room, Event]]:
    def build(rv: RoomVersion) -> tuple[Room, Event]:
        room = standard_room(rv, rule)
        content: dict[str, object] = {"membership": "join"}
        if via is not None:
            content["join_authorised_via_users_server"] = via
        event = room.make("m.room.member", CAROL, content, CAROL)
        if signed and via is not None:
            event.pdu["signatures"][via.partition(":")[2]] = {"ed25519:k": "sig"}
        return room, event

    return build


CASES = [
    # rule 1: m.room.create
    Case("create allowed", create_event({}), None),
    Case("create with prev_events", create_event({}, prev=["$x:a.test"]), {1: "1.1"}),
    Case("create with unknown room_version", create_event({"room_version": "99"}), {1: "1.3"}),
    Case("create without creator", create_event({"creator": None}), {1: "1.4"}, range(1, 11)),
    Case(
        "v12 create with bad additional_creators",
        create_event({"additional_creators": ["not-a-user"]}),
        {12: "1.4"},
        [12],
    ),
    Case(
        "v12 create with additional_creators",
        create_event({"additional_creators": [BOB]}),
        None,
        [12],
    ),
    Case(
        "create on another server's room ID",
        create_event({}, extra={"room_id": "!room:elsewhere.test"}),
        {1: "1.2"},
    ),
    # rule 3/4: m.federate
    Case(
        "remote sender in a non-federating room",
        ev("m.room.message", BOB, {"body": "hi"}, before=lambda r: None),
        None,
    ),
    # rule 4 (v1-v5): m.room.aliases
    Case(
        "aliases for own server without membership",
        ev("m.room.aliases", CAROL, {}, "c.test"),
        None,
        range(1, 6),
    ),
    Case(
        "aliases for another server",
        ev("m.room.aliases", CAROL, {}, "a.test"),
        {1: "4.2"},
        range(1, 6),
    ),
    Case("aliases without state_key", ev("m.room.aliases", CAROL, {}), {1: "4.1"}, range(1, 6)),
    Case(
        "aliases need membership from v6",
        ev("m.room.aliases", CAROL, {}, "c.test"),
        {6: "5", 12: "6"},
        range(6, 13),
    ),
    # member: shape
    Case(
        "member without membership",
        ev("m.room.member", BOB, {}, BOB),
        {1: "5.1", 6: "4.1", 12: "5.1"},
    ),
    Case(
        "unknown membership",
        member(BOB, "dance"),
        {1: "5.6", 6: "4.6", 7: "4.7", 8: "4.8", 12: "5.8"},
    ),
    # member: join
    Case("join a public room", member(CAROL, "join", join_rule="public"), None),
    Case(
        "join someone else",
        member(CAROL, "join", sender=BOB, join_rule="public"),
        {1: "5.2.2", 6: "4.2.2", 8: "4.3.2", 12: "5.3.2"},
    ),
    Case(
        "banned user joins",
        member(CAROL, "join", join_rule="public", before=banned(CAROL)),
        {1: "5.2.3", 6: "4.2.3", 8: "4.3.3", 12: "5.3.3"},
    ),
    Case(
        "join an invite room uninvited",
        member(CAROL, "join"),
        {1: "5.2.4", 6: "4.2.4", 8: "4.3.4", 12: "5.3.4"},
    ),
    Case("join an invite room invited", member(CAROL, "join", before=invited(CAROL)), None),
    Case(
        "join a private room",
        member(CAROL, "join", join_rule="private"),
        {1: "5.2.6", 6: "4.2.6", 8: "4.3.7", 12: "5.3.7"},
    ),
    Case(
        "join a knock room before knocking existed",
        member(CAROL, "join", join_rule="knock", before=invited(CAROL)),
        {1: "5.2.6", 6: "4.2.6"},
        range(1, 7),
    ),
    Case(
        "join a knock room invited",
        member(CAROL, "join", join_rule="knock", before=invited(CAROL)),
        None,
        range(7, 13),
    ),
    # member: restricted joins
    Case("restricted join via a joined inviter", restricted_join(MOD), None, range(8, 13)),
    Case(
        "restricted join via a stranger",
        restricted_join("@dave:a.test"),
        {8: "4.3.5.2", 12: "5.3.5.2"},
        range(8, 13),
    ),
    Case(
        "restricted join without a via",
        restricted_join(None),
        {8: "4.3.5.2", 12: "5.3.5.2"},
        range(8, 13),
    ),
    Case(
        "restricted join not signed by the via server",
        restricted_join(BOB, signed=False),
        {8: "4.2.1", 12: "5.2.1"},
        range(8, 13),
    ),
    Case("restricted join before v8", restricted_join(MOD), {1: "5.2.6", 6: "4.2.6"}, range(1, 8)),
    Case(
        "restricted invitee joins",
        member(CAROL, "join", join_rule="restricted", before=invited(CAROL)),
        None,
        range(8, 13),
    ),
    Case(
        "knock_restricted join via",
        restricted_join(MOD, rule="knock_restricted"),
        None,
        range(10, 13),
    ),
    Case(
        "knock_restricted join before v10",
        restricted_join(MOD, rule="knock_restricted"),
        {8: "4.3.7"},
        range(8, 10),
    ),
    # member: invite
    Case("invite by a member", member(CAROL, "invite", sender=BOB), None),
    Case(
        "invite by a stranger",
        member("@dave:d.test", "invite", sender=CAROL),
        {1: "5.3.2", 6: "4.3.2", 8: "4.4.2", 12: "5.4.2"},
    ),
    Case(
        "invite a joined user",
        member(BOB, "invite", sender=MOD),
        {1: "5.3.3", 6: "4.3.3", 8: "4.4.3", 12: "5.4.3"},
    ),
    Case(
        "invite a banned user",
        member(CAROL, "invite", sender=MOD, before=banned(CAROL)),
        {1: "5.3.3", 6: "4.3.3", 8: "4.4.3", 12: "5.4.3"},
    ),
    Case(
        "invite below the invite level",
        member(
            CAROL,
            "invite",
            sender=BOB,
            before=lambda r: r.add(PL, ALICE, pl_content(r.rv.privileged_creators, invite=10), ""),
        ),
        {1: "5.3.5", 6: "4.3.5", 8: "4.4.5", 12: "5.4.5"},
    ),
    # member: leave
    Case("leave", member(BOB, "leave"), None),
    Case(
        "leave when not in the room",
        member(CAROL, "leave"),
        {1: "5.4.1", 6: "4.4.1", 8: "4.5.1", 12: "5.5.1"},
    ),
    Case("rescind an invite", member(CAROL, "leave", before=invited(CAROL)), None),
    Case(
        "kick by a stranger",
        member(BOB, "leave", sender=CAROL),
        {1: "5.4.2", 6: "4.4.2", 8: "4.5.2", 12: "5.5.2"},
    ),
    Case("kick", member(BOB, "leave", sender=MOD), None),
    Case(
        "kick a higher user",
        member(ALICE, "leave", sender=MOD),
        {1: "5.4.5", 6: "4.4.5", 8: "4.5.5", 12: "5.5.5"},
    ),
    Case(
        "kick an equal user",
        member(
            MOD,
            "leave",
            sender=ALICE,
            before=lambda r: r.add(
                PL,
                ALICE,
                {"users": {MOD: 100}}
                if r.rv.privileged_creators
                else {"users": {ALICE: 100, MOD: 100}},
                "",
            ),
        ),
        {1: "5.4.5", 6: "4.4.5", 8: "4.5.5", 12: None},
    ),
    Case(
        "unban below the ban level",
        member(
            CAROL,
            "leave",
            sender=MOD,
            before=lambda r: (
                r.member(CAROL, "ban", sender=ALICE),
                r.add(PL, ALICE, pl_content(r.rv.privileged_creators, ban=60), ""),
            ),
        ),
        {1: "5.4.3", 6: "4.4.3", 8: "4.5.3", 12: "5.5.3"},
    ),
    Case("unban", member(CAROL, "leave", sender=ALICE, before=banned(CAROL)), None),
    # member: ban
    Case("ban", member(BOB, "ban", sender=MOD), None),
    Case(
        "ban by a stranger",
        member(BOB, "ban", sender=CAROL),
        {1: "5.5.1", 6: "4.5.1", 8: "4.6.1", 12: "5.6.1"},
    ),
    Case(
        "ban a higher user",
        member(ALICE, "ban", sender=MOD),
        {1: "5.5.3", 6: "4.5.3", 8: "4.6.3", 12: "5.6.3"},
    ),
    # member: knock
    Case("knock", member(CAROL, "knock", join_rule="knock"), None, range(7, 13)),
    Case(
        "knock before v7",
        member(CAROL, "knock", join_rule="knock"),
        {1: "5.6", 6: "4.6"},
        range(1, 7),
    ),
    Case(
        "knock on an invite room",
        member(CAROL, "knock"),
        {7: "4.6.1", 8: "4.7.1", 12: "5.7.1"},
        range(7, 13),
    ),
    Case(
        "knock for someone else",
        member(CAROL, "knock", sender=BOB, join_rule="knock"),
        {7: "4.6.2", 8: "4.7.2", 12: "5.7.2"},
        range(7, 13),
    ),
    Case(
        "knock while joined",
        member(BOB, "knock", join_rule="knock"),
        {7: "4.6.4", 8: "4.7.4", 12: "5.7.4"},
        range(7, 13),
    ),
    Case(
        "knock on knock_restricted",
        member(CAROL, "knock", join_rule="knock_restricted"),
        None,
        range(10, 13),
    ),
    Case(
        "knock on knock_restricted before v10",
        member(CAROL, "knock", join_rule="knock_restricted"),
        {7: "4.6.1", 8: "4.7.1"},
        range(7, 10),
    ),
    Case(
        "leave after knocking",
        member(
            CAROL,
            "leave",
            before=lambda r: (
                r.add("m.room.join_rules", ALICE, {"join_rule": "knock"}, "")
                and r.member(CAROL, "knock")
            ),
        ),
        None,
        range(7, 13),
    ),
    # sender must be joined
    Case(
        "message from a stranger",
        ev("m.room.message", CAROL, {"body": "x"}),
        {1: "6", 6: "5", 12: "6"},
    ),
    Case("message from a member", ev("m.room.message", BOB, {"body": "x"}), None),
    # third party invite event
    Case("third party invite event", ev("m.room.third_party_invite", BOB, {}, "tok"), None),
    Case(
        "third party invite below invite level",
        ev(
            "m.room.third_party_invite",
            BOB,
            {},
            "tok",
            before=lambda r: r.add(PL, ALICE, pl_content(r.rv.privileged_creators, invite=10), ""),
        ),
        {1: "7.1", 6: "6.1", 12: "7.1"},
    ),
    # required power level
    Case(
        "state below state_default",
        ev("m.room.name", BOB, {"name": "x"}, ""),
        {1: "8", 6: "7", 12: "8"},
    ),
    Case("state at state_default", ev("m.room.name", MOD, {"name": "x"}, ""), None),
    Case(
        "message below events level",
        ev(
            "m.room.message",
            BOB,
            {},
            before=lambda r: r.add(
                PL, ALICE, pl_content(r.rv.privileged_creators, events={"m.room.message": 10}), ""
            ),
        ),
        {1: "8", 6: "7", 12: "8"},
    ),
    # user-keyed state
    Case(
        "state keyed by another user", ev("org.example", ALICE, {}, BOB), {1: "9", 6: "8", 12: "9"}
    ),
    Case(
        "state keyed by oneself",
        ev(
            "org.example",
            BOB,
            {},
            BOB,
            before=lambda r: r.add(
                PL, ALICE, pl_content(r.rv.privileged_creators, state_default=0), ""
            ),
        ),
        None,
    ),
    # power levels
    Case("power levels unchanged", pl_change(ALICE), None),
    Case(
        "power levels users key not a user",
        pl_change(ALICE, users={"bob": 1}),
        {1: "10.1", 6: "9.1", 10: "9.3", 12: "10.3"},
    ),
    Case(
        "power levels users value not a number",
        pl_change(ALICE, users={BOB: "x"}),
        {1: "10.1", 6: "9.1", 10: "9.3", 12: "10.3"},
    ),
    Case(
        "stringy power levels", pl_change(ALICE, ban="60", users={BOB: " +10 "}), None, range(1, 10)
    ),
    Case(
        "stringy power levels refused from v10",
        pl_change(ALICE, ban="60"),
        {10: "9.1", 12: "10.1"},
        range(10, 13),
    ),
    Case(
        "stringy events refused from v10",
        pl_change(ALICE, events={"m.room.name": "60"}),
        {10: "9.2", 12: "10.2"},
        range(10, 13),
    ),
    Case("floaty power levels", pl_change(ALICE, users={BOB: 10.7}), None, range(1, 6)),
    Case(
        "non-finite power level",
        pl_change(ALICE, users={BOB: float("inf")}),
        {1: "10.1", 3: "10.1"},
        range(1, 6),
    ),
    Case("creator listed in users", pl_change(ALICE, users={ALICE: 100}), {12: "10.4"}, [12]),
    Case(
        "raise ban above own level",
        pl_change(MOD, ban=51),
        {1: "10.3", 6: "9.3", 10: "9.5", 12: "10.6"},
    ),
    Case("lower a level to within own", pl_change(MOD, kick=40), None),
    Case(
        "change an event level above own",
        pl_change(MOD, events={"m.room.name": 60}),
        {1: "10.5", 6: "9.5", 10: "9.7", 12: "10.8"},
    ),
    Case(
        "change notifications above own",
        pl_change(MOD, notifications={"room": 60}),
        {6: "9.5", 10: "9.7", 12: "10.8"},
        range(6, 13),
    ),
    Case(
        "notifications unchecked before v6",
        pl_change(MOD, notifications={"room": 60}),
        None,
        range(1, 6),
    ),
    Case(
        "set a lower user's level",
        pl_change(MOD, users={ALICE: 100, MOD: 50, BOB: 10}),
        None,
        range(1, 12),
    ),
    Case("set a lower user's level v12", pl_change(MOD, users={MOD: 50, BOB: 10}), None, [12]),
    Case(
        "promote above own level",
        pl_change(MOD, users={ALICE: 100, MOD: 50, BOB: 60}),
        {1: "10.7", 6: "9.7", 10: "9.9"},
        range(1, 12),
    ),
    Case(
        "remove a higher user",
        pl_change(MOD, users={MOD: 50}),
        {1: "10.6", 6: "9.6", 10: "9.8"},
        range(1, 12),
    ),
    # redactions (v1/v2 only)
    Case(
        "redact own server's event",
        ev("m.room.redaction", BOB, {}, extra={"redacts": "$x:a.test"}),
        None,
    ),
    Case(
        "redact another server's event",
        ev("m.room.redaction", BOB, {}, extra={"redacts": "$x:b.test"}),
        {1: "11"},
        range(1, 3),
    ),
    Case(
        "redaction left to the redaction algorithm from v3",
        ev("m.room.redaction", BOB, {}, extra={"redacts": "$x:b.test"}),
        None,
        range(3, 13),
    ),
    Case(
        "redact with the redact level",
        ev("m.room.redaction", MOD, {}, extra={"redacts": "$x:b.test"}),
        None,
    ),
]


def _params() -> list[object]:
    params = []
    for case in CASES:
        for version in case.versions:
            params.append(pytest.param(case, version, id=f"v{version}-{case.name}"))
    return params


@pytest.mark.parametrize(("case", "version"), _params())
def test_auth_rule(case: Case, version: int) -> None:
    rv = KNOWN_ROOM_VERSIONS[str(version)]
    room, event = case.build(rv)
    expected = None if case.refused is None else rule_for(case.refused, version)
    if expected is None:
        check_auth(event, room.state_events(), rv)
        return
    with pytest.raises(AuthError) as info:
        check_auth(event, room.state_events(), rv)
    assert info.value.rule == expected, str(info.value)
    assert str(info.value).startswith(f"rooms/v{version} rule {expected}: ")
