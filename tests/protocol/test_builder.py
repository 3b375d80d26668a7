"""Building new events, and the receipt checks applied to them by another server."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.protocol.event_builder import (
    EventBuildError,
    EventTemplate,
    PrevEvent,
    build_create_event,
    build_event,
)
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.hashing import content_hash_matches
from ranvier.protocol.pdu_receipt import check_pdu_on_receipt
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, V1, V2, V5, V10, V11, V12
from ranvier.protocol.signing import InvalidSignatureError, verify_event_signatures
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.protocol.validation import PDUValidationError, validate_pdu

SERVER = "hs.example"
KEY = ServerSigningKey.from_seed(b"\x07" * 32, "a")
KEYS = {SERVER: {KEY.key_id: KEY.verify_key}}
ALICE = "@alice:hs.example"
BOB = "@bob:hs.example"


class Room:
    """A tiny room driven only through the builder, keeping state the way a server would."""

    def __init__(self, version: Any) -> None:
        self.version = version
        self.state: dict[tuple[str, str], Event] = {}
        self.create = build_create_event(
            room_version=version,
            sender=ALICE,
            content={},
            server_name=SERVER,
            signing_key=KEY,
            room_id=None if version.room_id_from_create_event else "!room:hs.example",
            origin_server_ts=1000,
        )
        self.room_id = self.create.room_id
        self.extremities = [self.create]
        self.state[("m.room.create", "")] = self.create

    def send(self, event_type: str, content: dict[str, Any], state_key: str | None = None,
             sender: str = ALICE, **extra: Any) -> Event:  # fmt: skip
        event = build_event(
            EventTemplate(event_type, sender, content, self.room_id, state_key, **extra),
            room_version=self.version,
            prev_events=[PrevEvent.of(e) for e in self.extremities],
            current_state=self.state,
            server_name=SERVER,
            signing_key=KEY,
            origin_server_ts=2000,
        )
        self.extremities = [event]
        if state_key is not None:
            self.state[(event_type, state_key)] = event
        return event


ALL_VERSIONS = list(KNOWN_ROOM_VERSIONS.values())


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=lambda v: f"v{v.identifier}")
def test_built_events_are_valid_signed_and_pass_receipt_checks(version: Any) -> None:
    room = Room(version)
    join = room.send("m.room.member", {"membership": "join"}, ALICE)
    power = room.send("m.room.power_levels", {"users": {ALICE: 100}}, "")
    message = room.send("m.room.message", {"body": "hello"})

    for event in (room.create, join, power, message):
        validate_pdu(event.pdu, version)
        verify_event_signatures(event.pdu, version, KEYS)
        assert content_hash_matches(event.pdu)
        assert compute_event_id(event.pdu, version) == event.event_id
        checked = check_pdu_on_receipt(event.pdu, version, KEYS)
        assert checked.event.event_id == event.event_id
        assert not checked.redacted_for_bad_hash
        assert event.room_id == room.room_id

    assert [room.create.depth, join.depth, power.depth, message.depth] == [1, 2, 3, 4]
    assert room.create.pdu["auth_events"] == [] and room.create.pdu["prev_events"] == []
    assert message.prev_event_ids == [power.event_id]
    # spec: auth events selection - create (not in v12), power levels, sender's membership
    expected_auth = {power.event_id, join.event_id}
    if not version.room_id_from_create_event:
        expected_auth.add(room.create.event_id)
    assert set(message.auth_event_ids) == expected_auth
    assert len(message.auth_event_ids) == len(expected_auth)


def test_create_content_per_version() -> None:
    old = Room(V10).create
    assert old.content == {"room_version": "10", "creator": ALICE}
    assert old.pdu["room_id"] == "!room:hs.example"
    new = Room(V11).create
    assert new.content == {"room_version": "11"}
    v12 = Room(V12).create
    assert "room_id" not in v12.pdu
    assert v12.room_id == "!" + v12.event_id[1:]


@pytest.mark.parametrize("version", [V1, V2], ids=["v1", "v2"])
def test_v1_v2_references_carry_hashes_and_event_ids_name_the_server(version: Any) -> None:
    room = Room(version)
    join = room.send("m.room.member", {"membership": "join"}, ALICE)
    assert join.event_id.endswith(":" + SERVER) and join.event_id.startswith("$")
    assert join.pdu["event_id"] == join.event_id
    create_ref = [room.create.event_id, {"sha256": room.create.pdu["hashes"]["sha256"]}]
    assert join.pdu["prev_events"] == [create_ref]
    assert join.pdu["auth_events"] == [create_ref]


def test_member_event_cites_target_join_rules_and_authoriser() -> None:
    room = Room(V10)
    room.send("m.room.member", {"membership": "join"}, ALICE)
    rules = room.send("m.room.join_rules", {"join_rule": "restricted"}, "")
    bob_join = room.send(
        "m.room.member",
        {"membership": "join", "join_authorised_via_users_server": ALICE},
        BOB,
        sender=BOB,
    )
    cited = set(bob_join.auth_event_ids)
    assert rules.event_id in cited
    assert room.state[("m.room.member", ALICE)].event_id in cited
    # bob had no membership yet, so only what exists is cited
    assert len(cited) == 3


def test_redacts_placement_per_version() -> None:
    old = Room(V10).send("m.room.redaction", {}, redacts="$target")
    assert old.pdu["redacts"] == "$target" and "redacts" not in old.content
    new = Room(V11).send("m.room.redaction", {}, redacts="$target")
    assert new.content["redacts"] == "$target" and "redacts" not in new.pdu
    assert old.redacts == new.redacts == "$target"


@pytest.mark.parametrize(
    ("version", "limit"), [(V5, 2**63 - 1), (V10, 2**53 - 1)], ids=["v5", "v10"]
)
def test_depth_is_capped_at_the_version_limit(version: Any, limit: int) -> None:
    room = Room(version)
    event = build_event(
        EventTemplate("m.room.message", ALICE, {}, room.room_id),
        room_version=version,
        prev_events=[PrevEvent("$deep", limit), PrevEvent("$shallow", 3)],
        current_state=room.state,
        server_name=SERVER,
        signing_key=KEY,
    )
    assert event.depth == limit
    two = build_event(
        EventTemplate("m.room.message", ALICE, {}, room.room_id),
        room_version=version,
        prev_events=[PrevEvent("$a", 7), PrevEvent("$b", 3)],
        current_state=room.state,
        server_name=SERVER,
        signing_key=KEY,
    )
    assert two.depth == 8
    assert two.origin_server_ts > 1_600_000_000_000  # defaults to now


def _build(template: EventTemplate, version: Any, **kwargs: Any) -> Event:
    arguments: dict[str, Any] = dict(
        room_version=version,
        prev_events=[],
        current_state={},
        server_name=SERVER,
        signing_key=KEY,
    )
    arguments.update(kwargs)
    return build_event(template, **arguments)


@pytest.mark.parametrize(
    ("template", "version", "kwargs", "message"),
    [
        (EventTemplate("m.room.message", ALICE, {}), V10, {}, "room_id is required"),
        (EventTemplate("m.room.create", ALICE, {}, "!r:x", ""), V12, {}, "has no room_id"),
        (
            EventTemplate("m.room.create", ALICE, {}, "!r:x", ""),
            V10,
            {"prev_events": [PrevEvent("$p", 1)]},
            "cannot have prev_events",
        ),
        (
            EventTemplate("m.room.message", ALICE, {}, "!r:x"),
            V1,
            {"prev_events": [PrevEvent("$p:x", 1)]},
            "needs its sha256 hash",
        ),
    ],
)
def test_build_errors(
    template: EventTemplate, version: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(EventBuildError, match=message):
        _build(template, version, **kwargs)


def test_oversized_event_is_refused_as_too_large() -> None:
    room = Room(V12)
    with pytest.raises(PDUValidationError) as info:
        room.send("m.room.message", {"body": "x" * 70000})
    assert info.value.errcode == "M_TOO_LARGE"


def test_receipt_redacts_on_bad_content_hash_and_keeps_the_event_id() -> None:
    room = Room(V12)
    message = room.send("m.room.message", {"body": "original"})
    tampered = dict(message.pdu, content={"body": "forged"})
    # the signature covers only the redacted form, so it still verifies
    checked = check_pdu_on_receipt(tampered, V12, KEYS)
    assert checked.redacted_for_bad_hash
    assert checked.event.content == {}
    assert checked.event.event_id == message.event_id
    assert "unsigned" not in checked.event.pdu


def test_receipt_drops_events_with_bad_signatures_or_format() -> None:
    room = Room(V12)
    message = room.send("m.room.message", {"body": "hi"})
    with pytest.raises(InvalidSignatureError):
        check_pdu_on_receipt(dict(message.pdu, depth=99), V12, KEYS)
    with pytest.raises(PDUValidationError):
        check_pdu_on_receipt(dict(message.pdu, depth="99"), V12, KEYS)
