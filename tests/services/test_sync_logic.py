"""The pure parts of /sync: which section a room goes in, the state section, summaries,
unread counts."""

from __future__ import annotations

from typing import Any

from ranvier.protocol.events import Event
from ranvier.protocol.filters import Filter, RoomFilter
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.services.sync.event_fields import only_fields
from ranvier.services.sync.rooms import RoomsRequest, plan_rooms, unread_sections
from ranvier.services.sync.state import calculate_state
from ranvier.storage.sync import MembershipAt, UserMemberships

ME = "@me:hs"


def event(event_id: str, kind: str, sender: str, state_key: str | None = None) -> Event:
    pdu: dict[str, Any] = {
        "type": kind,
        "sender": sender,
        "room_id": "!r:hs",
        "content": {},
        "origin_server_ts": 1,
        "depth": 1,
        "prev_events": [],
        "auth_events": [],
    }
    if state_key is not None:
        pdu["state_key"] = state_key
    return Event(pdu, KNOWN_ROOM_VERSIONS["10"], event_id)


def member(room_id: str, membership: str, stream: int, *, forgotten: bool = False) -> MembershipAt:
    return MembershipAt(room_id, f"${room_id}{stream}", membership, stream, forgotten)


def request(*, since: int, full: bool, include_leave: bool = False) -> RoomsRequest:
    return RoomsRequest(
        user_id=ME,
        device_id="D",
        since=since,
        upto=100,
        full=full,
        filter=Filter(room=RoomFilter(include_leave=include_leave)),
        timeline_limit=10,
    )


def test_plan_sorts_rooms_into_sections() -> None:
    now = {
        "!stay": member("!stay", "join", 5),
        "!new": member("!new", "join", 60),
        "!inv": member("!inv", "invite", 70),
        "!oldinv": member("!oldinv", "invite", 10),
        "!knock": member("!knock", "knock", 80),
        "!left": member("!left", "leave", 90),
        "!gone": member("!gone", "leave", 20),
        "!forgot": member("!forgot", "leave", 95, forgotten=True),
    }
    before = {
        "!stay": now["!stay"],
        "!new": member("!new", "invite", 40),
        "!oldinv": now["!oldinv"],
        "!left": member("!left", "join", 30),
        "!gone": now["!gone"],
        "!forgot": member("!forgot", "join", 3),
    }
    plan = plan_rooms(UserMemberships(now, before), request(since=50, full=False))
    assert plan.join_since == ["!stay"] and plan.join_newly == ["!new"]
    assert [m.room_id for m in plan.invite] == ["!inv"]
    assert [m.room_id for m in plan.knock] == ["!knock"]
    assert list(plan.leave) == ["!left"]
    span, full = plan.leave["!left"]
    assert (span.after, span.upto, full) == (50, 90, False)


def test_initial_plan_has_left_rooms_only_with_include_leave() -> None:
    now = {"!left": member("!left", "ban", 9), "!in": member("!in", "join", 4)}
    plan = plan_rooms(UserMemberships(now, {}), request(since=0, full=True))
    assert plan.join_newly == ["!in"] and not plan.leave
    plan = plan_rooms(UserMemberships(now, {}), request(since=0, full=True, include_leave=True))
    assert plan.leave["!left"][0].upto == 9


def test_state_is_what_the_client_lacks_at_the_timeline_start() -> None:
    start = {("m.room.create", ""): "$c", ("m.room.name", ""): "$n1"}
    end = {("m.room.create", ""): "$c", ("m.room.name", ""): "$n2"}
    timeline = [event("$n2", "m.room.name", ME, "")]
    state = calculate_state(
        timeline_start=start,
        timeline_end=end,
        previous={},
        timeline=timeline,
        lazy_load_members=False,
    )
    assert state == start
    # what the client had at its token is not sent again
    state = calculate_state(
        timeline_start=start,
        timeline_end=end,
        previous={("m.room.create", ""): "$c"},
        timeline=timeline,
        lazy_load_members=False,
    )
    assert state == {("m.room.name", ""): "$n1"}


def test_state_hidden_from_the_timeline_by_a_filter_is_sent_as_state() -> None:
    start = {("m.room.topic", ""): "$t1"}
    end = {("m.room.topic", ""): "$t2"}
    state = calculate_state(
        timeline_start=start, timeline_end=end, previous=start, timeline=[], lazy_load_members=False
    )
    assert state == {("m.room.topic", ""): "$t2"}


def test_lazy_loading_keeps_only_the_senders_members() -> None:
    start = {
        ("m.room.create", ""): "$c",
        ("m.room.member", "@a:hs"): "$ma",
        ("m.room.member", "@b:hs"): "$mb",
        ("m.room.member", ME): "$me",
    }
    timeline = [event("$x", "m.room.message", "@a:hs")]
    state = calculate_state(
        timeline_start=start,
        timeline_end=start,
        previous=start,
        timeline=timeline,
        lazy_load_members=True,
    )
    # even though the client had it at its token: it may never have been sent
    assert state == {("m.room.member", "@a:hs"): "$ma"}


def test_unread_counts_with_and_without_threads() -> None:
    counts = {
        "notification_count": 5,
        "highlight_count": 1,
        "threads": {"$root": {"notification_count": 2, "highlight_count": 1}},
    }
    assert unread_sections(counts, False) == {
        "unread_notifications": {"notification_count": 5, "highlight_count": 1}
    }
    assert unread_sections(counts, True) == {
        "unread_notifications": {"notification_count": 3, "highlight_count": 0},
        "unread_thread_notifications": counts["threads"],
    }
    assert unread_sections({}, False)["unread_notifications"]["notification_count"] == 0


def test_event_fields_keep_only_the_named_paths() -> None:
    served = {
        "type": "m.room.message",
        "sender": "@a:hs",
        "content": {"body": "hi", "msgtype": "m.text", "m.relates_to": {"rel_type": "x"}},
        "unsigned": {"age": 1},
    }
    assert only_fields(served, ["type", "content.body"]) == {
        "type": "m.room.message",
        "content": {"body": "hi"},
    }
    assert only_fields(served, ["content.m\\.relates_to.rel_type", "nope.deeper"]) == {
        "content": {"m.relates_to": {"rel_type": "x"}}
    }
    assert only_fields(served, []) == {}


def test_a_room_joined_and_left_since_the_token_is_in_leave_with_full_state() -> None:
    now = {"!brief": member("!brief", "leave", 70), "!declined": member("!declined", "leave", 80)}
    before = {"!declined": member("!declined", "invite", 20)}
    memberships = UserMemberships(now, before, joined_since={"!brief"})
    plan = plan_rooms(memberships, request(since=50, full=False))
    span, full = plan.leave["!brief"]
    assert (span.after, span.upto, full) == (50, 70, True)
    span, full = plan.leave["!declined"]
    assert (span.after, span.upto, full) == (79, 80, False)
