"""Auth rules that need more set-up than a table row: creators, 3PIDs, auth event consistency."""

from __future__ import annotations

from typing import Any

import nacl.signing
import pytest
from canonicaljson import encode_canonical_json
from room_fixture import ALICE, BOB, CAROL, MOD, Room, standard_room
from unpaddedbase64 import encode_base64

from ranvier.protocol.auth import AuthError, check_auth, check_auth_events_consistency
from ranvier.protocol.events import Event
from ranvier.protocol.power_levels import (
    INFINITE,
    PowerLevels,
    parse_level,
    power_levels_content_errors,
    room_creators,
)
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, V1, V3, V6, V10, V11, V12

ALL_VERSIONS = list(KNOWN_ROOM_VERSIONS.values())


def refused(event: Event, room: Room, rule: str) -> AuthError:
    with pytest.raises(AuthError) as info:
        check_auth(event, room.state_events(), room.rv)
    assert info.value.rule == rule, str(info.value)
    return info.value


@pytest.mark.parametrize("rv", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_room_creation_sequence_is_allowed(rv: Any) -> None:
    room = Room(rv)
    join = room.make("m.room.member", ALICE, {"membership": "join"}, ALICE)
    check_auth(join, room.state_events(), rv)
    room.add_event(join)
    # before any power levels event the creator has 100 (v1-v11) or infinite power (v12)
    name = room.make("m.room.name", ALICE, {"name": "x"}, "")
    check_auth(name, room.state_events(), rv)
    room.member(BOB, "invite", sender=ALICE)
    room.member(BOB, "join")
    bob_name = room.make("m.room.name", BOB, {"name": "y"}, "")
    # spec: no power levels event - state_default 50, other users 0
    with pytest.raises(AuthError):
        check_auth(bob_name, room.state_events(), rv)
    message = room.make("m.room.message", BOB, {"body": "hi"})
    check_auth(message, room.state_events(), rv)


@pytest.mark.parametrize("rv", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_non_federating_room_refuses_remote_senders(rv: Any) -> None:
    room = Room(rv, create_content={"m.federate": False})
    room.member(ALICE, "join")
    room.add("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    remote = room.make("m.room.member", BOB, {"membership": "join"}, BOB)
    rule = "4" if rv.room_id_from_create_event else "3"
    refused(remote, room, rule)
    local = room.make("m.room.member", MOD, {"membership": "join"}, MOD)
    check_auth(local, room.state_events(), rv)


def test_v12_creators_have_infinite_power() -> None:
    room = Room(V12, create_content={"additional_creators": [BOB]})
    room.member(ALICE, "join")
    room.add("m.room.power_levels", ALICE, {"users": {MOD: 99}}, "")
    room.add("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
    room.member(BOB, "join")
    room.member(MOD, "join")
    levels = PowerLevels.from_events(
        V12,
        room.events[room.state[("m.room.create", "")]],
        room.events[room.state[("m.room.power_levels", "")]],
    )
    assert levels.user_level(ALICE) == INFINITE
    assert levels.user_level(BOB) == INFINITE
    assert levels.user_level(MOD) == 99
    # a creator may ban anyone but another creator
    check_auth(
        room.make("m.room.member", BOB, {"membership": "ban"}, MOD), room.state_events(), V12
    )
    refused(room.make("m.room.member", BOB, {"membership": "ban"}, ALICE), room, "5.6.3")
    refused(room.make("m.room.member", MOD, {"membership": "ban"}, BOB), room, "5.6.3")
    # additional creators may not be listed in power levels either
    bad = room.make("m.room.power_levels", ALICE, {"users": {BOB: 100}}, "")
    refused(bad, room, "10.4")


def test_v12_room_id_must_name_the_create_event() -> None:
    room = standard_room(V12)
    event = room.make("m.room.message", BOB, {}, extra={"room_id": "!other:a.test"})
    state = room.state_events()
    with pytest.raises(AuthError) as info:
        check_auth(event, state, V12)
    assert info.value.rule == "2"
    room.events[room.create.event_id].rejected_reason = "bad"
    with pytest.raises(AuthError) as info:
        check_auth(room.make("m.room.message", BOB, {}), state, V12)
    assert info.value.rule == "2"


@pytest.mark.parametrize("rv", [V1, V10, V12], ids=lambda v: f"v{v.identifier}")
def test_missing_create_event(rv: Any) -> None:
    room = standard_room(rv)
    state = room.state_events()
    del state[("m.room.create", "")]
    with pytest.raises(AuthError) as info:
        check_auth(room.make("m.room.message", BOB, {}), state, rv)
    assert info.value.rule == ("2" if rv is V12 else "2.4")


def test_rejected_and_foreign_auth_events() -> None:
    room = standard_room(V10)
    state = room.state_events()
    state[("m.room.member", BOB)].rejected_reason = "nope"
    with pytest.raises(AuthError) as info:
        check_auth(room.make("m.room.message", BOB, {}), state, V10)
    assert info.value.rule == "2.3"
    room = standard_room(V10)
    state = room.state_events()
    foreign = Event({**state[("m.room.member", BOB)].pdu, "room_id": "!x:a.test"}, V10, "$f")
    state[("m.room.member", BOB)] = foreign
    with pytest.raises(AuthError) as info:
        check_auth(room.make("m.room.message", BOB, {}), state, V10)
    assert info.value.rule == "2.5"


@pytest.mark.parametrize("rv", [V1, V6, V10, V12], ids=lambda v: f"v{v.identifier}")
def test_auth_events_consistency(rv: Any) -> None:
    room = standard_room(rv)
    event = room.make("m.room.message", BOB, {})
    cited = [room.events[e] for e in event.auth_event_ids]
    check_auth_events_consistency(event, cited, rv, create_event=room.create)
    prefix = "3" if rv is V12 else "2"

    def rule_of(auth: list[Event], create: Event | None = None) -> str:
        with pytest.raises(AuthError) as info:
            check_auth_events_consistency(event, auth, rv, create_event=create)
        return info.value.rule

    assert rule_of([*cited, cited[0]]) == f"{prefix}.1"
    join_rules = room.events[room.state[("m.room.join_rules", "")]]
    assert rule_of([*cited, join_rules]) == f"{prefix}.2"
    if rv is V12:
        assert rule_of([*cited, room.create]) == "3.2"
        other = Event(room.create.pdu, rv, "$other")
        assert rule_of(cited, other) == "2"
    else:
        no_create = [e for e in cited if e.type != "m.room.create"]
        assert rule_of(no_create) == "2.4"
    message = room.make("m.room.message", BOB, {})
    assert rule_of([*cited, message]) == f"{prefix}.2"
    rejected = Event(cited[-1].pdu, rv, cited[-1].event_id)
    rejected.rejected_reason = "x"
    assert rule_of([*cited[:-1], rejected]) == f"{prefix}.3"
    moved = Event({**cited[-1].pdu, "room_id": "!elsewhere:a.test"}, rv, "$m")
    assert rule_of([*cited[:-1], moved]) == f"{prefix}.5"
    # the create event cites nothing and is not checked here
    check_auth_events_consistency(room.create, [], rv)


def _third_party_room(rv: Any) -> tuple[Room, nacl.signing.SigningKey]:
    key = nacl.signing.SigningKey.generate()
    room = standard_room(rv)
    public = encode_base64(bytes(key.verify_key))
    room.add(
        "m.room.third_party_invite",
        BOB,
        {"display_name": "c...", "public_keys": [{"public_key": public}], "key_validity_url": "x"},
        "tok",
    )
    return room, key


def _signed(key: nacl.signing.SigningKey, mxid: str, token: str = "tok") -> dict[str, Any]:
    signed: dict[str, Any] = {"mxid": mxid, "token": token}
    signature = key.sign(encode_canonical_json(signed)).signature
    signed["signatures"] = {"id.test": {"ed25519:0": encode_base64(signature)}}
    return signed


@pytest.mark.parametrize("rv", [V1, V10, V12], ids=lambda v: f"v{v.identifier}")
def test_third_party_invites(rv: Any) -> None:
    room, key = _third_party_room(rv)
    pre = {1: "5.3.1", 10: "4.4.1", 12: "5.4.1"}[int(rv.identifier)]

    def invite(signed: Any, sender: str = BOB, target: str = CAROL) -> Event:
        content = {"membership": "invite", "third_party_invite": {"display_name": "c"}}
        if signed is not None:
            content["third_party_invite"]["signed"] = signed  # type: ignore[index]
        return room.make("m.room.member", sender, content, target)

    check_auth(invite(_signed(key, CAROL)), room.state_events(), rv)
    refused(invite(None), room, f"{pre}.2")
    refused(invite({"mxid": CAROL}), room, f"{pre}.3")
    refused(invite(_signed(key, CAROL), target="@dave:d.test"), room, f"{pre}.4")
    refused(invite(_signed(key, CAROL, token="other")), room, f"{pre}.5")
    refused(invite(_signed(key, CAROL), sender=MOD), room, f"{pre}.6")
    wrong_key = nacl.signing.SigningKey.generate()
    refused(invite(_signed(wrong_key, CAROL)), room, f"{pre}.8")
    tampered = _signed(key, CAROL)
    tampered["signatures"]["id.test"]["ed25519:0"] = "!!notbase64"
    refused(invite(tampered), room, f"{pre}.8")
    room.member(CAROL, "ban", sender=ALICE)
    refused(invite(_signed(key, CAROL)), room, f"{pre}.1")


def test_third_party_invite_single_public_key() -> None:
    key = nacl.signing.SigningKey.generate()
    room = standard_room(V6)
    room.add(
        "m.room.third_party_invite",
        BOB,
        {"public_key": encode_base64(bytes(key.verify_key))},
        "tok",
    )
    content = {"membership": "invite", "third_party_invite": {"signed": _signed(key, CAROL)}}
    check_auth(room.make("m.room.member", BOB, content, CAROL), room.state_events(), V6)


def test_power_level_parsing() -> None:
    assert parse_level(" +0100 ", V1) == 100
    assert parse_level("-5", V3) == -5
    assert parse_level("1.5", V1) is None
    assert parse_level(5.114698e4, V1) == 51146
    assert parse_level(float("nan"), V1) is None
    assert parse_level(50.5, V6) is None
    assert parse_level("50", V10) is None
    assert parse_level(True, V1) is None
    assert parse_level(None, V1) is None


def test_power_level_defaults() -> None:
    room = Room(V10)
    levels = PowerLevels.from_events(V10, room.create, None)
    assert levels.user_level(ALICE) == 100
    assert levels.user_level(BOB) == 0
    assert levels.send_level("m.room.name", is_state=True) == 50
    assert levels.send_level("m.room.message", is_state=False) == 0
    assert (levels.ban, levels.kick, levels.redact, levels.invite) == (50, 50, 50, 0)
    assert levels.notification_level("room") == 50
    assert levels.notification_level("other") == 0
    content = {"users": {BOB: "7"}, "users_default": "x", "notifications": {"room": 20}}
    stringy = PowerLevels.from_content(V1, content)
    assert stringy.user_level(BOB) == 7
    assert stringy.user_level(CAROL) == 0
    assert stringy.notification_level("room") == 20
    assert room_creators(V11, Room(V11).create) == frozenset([ALICE])
    assert room_creators(V10, None) == frozenset()


def test_power_levels_content_errors() -> None:
    assert power_levels_content_errors(V10, {"users": []}) == [
        ("users", "`users` is not an object")
    ]
    assert power_levels_content_errors(V10, {"events": []})[0][0] == "maps"
    assert power_levels_content_errors(V1, {"ban": "x", "events": []}) == []
