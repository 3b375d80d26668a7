"""POST /search over room events, over real HTTP on both engines: ranking, recency,
pagination, context, highlights, grouping, state, keys and filters, who finds what, and the
errors."""

from __future__ import annotations

from itertools import count
from typing import Any

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import Session, authed

CLIENT = "/_matrix/client/v3"
_txn = count()


def create_room(server: RunningServer, session: Session, **body: Any) -> str:
    reply = authed(session, "POST", server.url + CLIENT + "/createRoom", body)
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def send(server: RunningServer, session: Session, room_id: str, body: str) -> str:
    url = f"{server.url}{CLIENT}/rooms/{room_id}/send/m.room.message/t{next(_txn)}"
    reply = authed(session, "PUT", url, {"msgtype": "m.text", "body": body})
    assert reply.status == 200, reply.body
    event_id: str = reply.json()["event_id"]
    return event_id


def search(
    server: RunningServer, session: Session, next_batch: str | None = None, **criteria: Any
) -> Reply:
    url = server.url + CLIENT + "/search"
    if next_batch is not None:
        url += f"?next_batch={next_batch}"
    return authed(session, "POST", url, {"search_categories": {"room_events": criteria}})


def room_events(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.body
    result: dict[str, Any] = reply.json()["search_categories"]["room_events"]
    return result


def ids(result: dict[str, Any]) -> list[str]:
    return [entry["result"]["event_id"] for entry in result["results"]]


def test_rank_puts_the_best_match_first(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice)
    once = send(server, alice, room_id, "a zebra crossed the long road near the old barn")
    thrice = send(server, alice, room_id, "zebra zebra zebra")
    send(server, alice, room_id, "nothing to see here")
    result = room_events(search(server, alice, search_term="zebra", order_by="rank"))
    assert ids(result) == [thrice, once]
    ranks = [entry["rank"] for entry in result["results"]]
    assert ranks[0] > ranks[1] > 0
    assert result["count"] == 2
    assert "next_batch" not in result
    served = result["results"][0]["result"]
    assert served["content"]["body"] == "zebra zebra zebra"
    assert served["room_id"] == room_id and served["sender"] == alice.user_id
    # rank is the default order
    assert ids(room_events(search(server, alice, search_term="zebra"))) == [thrice, once]


def test_recent_puts_the_newest_first_and_pages_with_next_batch(
    server: RunningServer, alice: Session
) -> None:
    room_id = create_room(server, alice)
    sent = [send(server, alice, room_id, f"giraffe number {n}") for n in range(5)]
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        result = room_events(
            search(
                server, alice, token, search_term="giraffe", order_by="recent", filter={"limit": 2}
            )
        )
        assert result["count"] == 5
        seen += ids(result)
        pages += 1
        token = result.get("next_batch")
        if token is None:
            break
        assert len(result["results"]) == 2
    assert seen == list(reversed(sent))
    assert pages == 3


def test_rank_pages_with_next_batch_too(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice)
    sent = {send(server, alice, room_id, f"okapi {'okapi ' * n}") for n in range(3)}
    first = room_events(search(server, alice, search_term="okapi", filter={"limit": 2}))
    assert len(first["results"]) == 2
    second = room_events(
        search(server, alice, first["next_batch"], search_term="okapi", filter={"limit": 2})
    )
    assert "next_batch" not in second
    assert set(ids(first)) | set(ids(second)) == sent
    # the token belongs to its order
    wrong = search(server, alice, first["next_batch"], search_term="okapi", order_by="recent")
    assert (wrong.status, wrong.errcode) == (400, "M_INVALID_PARAM")


def test_context_with_profiles(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice)
    before = send(server, alice, room_id, "first words")
    match = send(server, alice, room_id, "the walrus speaks")
    after = send(server, alice, room_id, "last words")
    send(server, alice, room_id, "really the last")
    result = room_events(
        search(
            server,
            alice,
            search_term="walrus",
            event_context={"before_limit": 1, "after_limit": 1, "include_profile": True},
        )
    )
    (entry,) = result["results"]
    assert entry["result"]["event_id"] == match
    context = entry["context"]
    assert [e["event_id"] for e in context["events_before"]] == [before]
    assert [e["event_id"] for e in context["events_after"]] == [after]
    assert isinstance(context["start"], str) and isinstance(context["end"], str)
    # registration sets the display name to the localpart
    assert context["profile_info"][alice.user_id]["displayname"] == "alice"
    # without event_context there is no context
    plain = room_events(search(server, alice, search_term="walrus"))
    assert "context" not in plain["results"][0]


def test_highlights_name_the_words_that_matched(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice)
    send(server, alice, room_id, "Martians invade the capital")
    result = room_events(search(server, alice, search_term="mart"))
    assert len(result["results"]) == 1
    assert "mart" in result["highlights"]
    assert "martians" in result["highlights"]


def test_keys_pick_names_and_topics(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice, name="Narwhal lounge", topic="all about narwhals")
    message = send(server, alice, room_id, "a narwhal appears")
    names = room_events(search(server, alice, search_term="narwhal", keys=["content.name"]))
    assert [e["result"]["type"] for e in names["results"]] == ["m.room.name"]
    topics = room_events(search(server, alice, search_term="narwhal", keys=["content.topic"]))
    assert [e["result"]["type"] for e in topics["results"]] == ["m.room.topic"]
    bodies = room_events(search(server, alice, search_term="narwhal", keys=["content.body"]))
    assert ids(bodies) == [message]
    every = room_events(search(server, alice, search_term="narwhal"))
    assert len(every["results"]) == 3


def test_filter_groupings_and_state(server: RunningServer, alice: Session) -> None:
    first = create_room(server, alice, name="one")
    second = create_room(server, alice, name="two")
    in_first = send(server, alice, first, "badger alpha")
    in_second = send(server, alice, second, "badger beta")
    only_first = room_events(search(server, alice, search_term="badger", filter={"rooms": [first]}))
    assert ids(only_first) == [in_first]
    not_first = room_events(
        search(server, alice, search_term="badger", filter={"not_rooms": [first]})
    )
    assert ids(not_first) == [in_second]
    nobody = room_events(
        search(server, alice, search_term="badger", filter={"senders": ["@nobody:test.localhost"]})
    )
    assert nobody["results"] == []

    grouped = room_events(
        search(
            server,
            alice,
            search_term="badger",
            order_by="recent",
            groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]},
            include_state=True,
        )
    )
    rooms = grouped["groups"]["room_id"]
    assert rooms[first]["results"] == [in_first]
    assert rooms[second]["results"] == [in_second]
    assert {rooms[first]["order"], rooms[second]["order"]} == {1, 2}
    assert set(grouped["groups"]["sender"][alice.user_id]["results"]) == {in_first, in_second}
    state_types = {event["type"] for event in grouped["state"][first]}
    assert {"m.room.create", "m.room.member", "m.room.name"} <= state_types


def test_others_rooms_are_not_searched(server: RunningServer, alice: Session, bob: Session) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    send(server, alice, room_id, "a secret pangolin")
    result = room_events(search(server, bob, search_term="pangolin"))
    assert result["results"] == []
    assert result["count"] == 0


def test_former_members_find_only_what_they_could_see(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    reply = authed(bob, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/join", {})
    assert reply.status == 200, reply.body
    while_member = send(server, alice, room_id, "the quokka smiles")
    reply = authed(bob, "POST", f"{server.url}{CLIENT}/rooms/{room_id}/leave", {})
    assert reply.status == 200, reply.body
    send(server, alice, room_id, "the quokka frowns after bob left")
    result = room_events(search(server, bob, search_term="quokka"))
    assert ids(result) == [while_member]
    assert len(ids(room_events(search(server, alice, search_term="quokka")))) == 2


def test_search_errors(server: RunningServer, alice: Session) -> None:
    url = server.url + CLIENT + "/search"
    missing = authed(alice, "POST", url, {})
    assert (missing.status, missing.errcode) == (400, "M_MISSING_PARAM")
    no_term = authed(alice, "POST", url, {"search_categories": {"room_events": {}}})
    assert (no_term.status, no_term.errcode) == (400, "M_MISSING_PARAM")
    bad_order = search(server, alice, search_term="x", order_by="random")
    assert (bad_order.status, bad_order.errcode) == (400, "M_BAD_JSON")
    bad_key = search(server, alice, search_term="x", keys=["content.url"])
    assert (bad_key.status, bad_key.errcode) == (400, "M_BAD_JSON")
    bad_filter = search(server, alice, search_term="x", filter={"limit": -1})
    assert (bad_filter.status, bad_filter.errcode) == (400, "M_BAD_JSON")
    bad_context = search(server, alice, search_term="x", event_context={"before_limit": -1})
    assert (bad_context.status, bad_context.errcode) == (400, "M_BAD_JSON")
    bad_token = search(server, alice, "not-a-token", search_term="x")
    assert (bad_token.status, bad_token.errcode) == (400, "M_INVALID_PARAM")
    not_json = authed(alice, "POST", url, b"{nope")
    assert (not_json.status, not_json.errcode) == (400, "M_NOT_JSON")
    anonymous = request("POST", url, {"search_categories": {}})
    assert (anonymous.status, anonymous.errcode) == (401, "M_MISSING_TOKEN")
    # no category asked for: nothing to answer, and no error
    empty = authed(alice, "POST", url, {"search_categories": {}})
    assert (empty.status, empty.json()) == (200, {"search_categories": {}})
    # a term without any word finds nothing
    assert room_events(search(server, alice, search_term="  !! "))["results"] == []


def test_redacted_events_vanish_from_results(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice)
    kept = send(server, alice, room_id, "the wombat stays")
    gone = send(server, alice, room_id, "the wombat goes")
    assert set(ids(room_events(search(server, alice, search_term="wombat")))) == {kept, gone}
    url = f"{server.url}{CLIENT}/rooms/{room_id}/redact/{gone}/r{next(_txn)}"
    reply = authed(alice, "PUT", url, {"reason": "oops"})
    assert reply.status == 200, reply.body
    for order in ("rank", "recent"):
        result = room_events(search(server, alice, search_term="wombat", order_by=order))
        assert ids(result) == [kept]
        assert result["count"] == 1
