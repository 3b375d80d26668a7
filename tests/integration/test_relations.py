"""Relations, threads and bundled aggregations over real HTTP on both engines."""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import quote

from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import Session, authed

CLIENT = "/_matrix/client/v3"
CLIENT_V1 = "/_matrix/client/v1"
_txns = itertools.count()


def create_room(server: RunningServer, session: Session, **body: Any) -> str:
    reply = authed(session, "POST", server.url + CLIENT + "/createRoom", body)
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def join(server: RunningServer, session: Session, room_id: str) -> None:
    reply = authed(session, "POST", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/join", {})
    assert reply.status == 200, reply.body


def send(
    server: RunningServer,
    session: Session,
    room_id: str,
    body: str,
    relates_to: dict[str, Any] | None = None,
    event_type: str = "m.room.message",
    **extra: Any,
) -> str:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body, **extra}
    if relates_to is not None:
        content["m.relates_to"] = relates_to
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/send/{event_type}/t{next(_txns)}"
    reply = authed(session, "PUT", url, content)
    assert reply.status == 200, reply.body
    event_id: str = reply.json()["event_id"]
    return event_id


def thread(root: str) -> dict[str, Any]:
    return {"rel_type": "m.thread", "event_id": root}


def reference(parent: str) -> dict[str, Any]:
    return {"rel_type": "m.reference", "event_id": parent}


def edit(server: RunningServer, session: Session, room_id: str, original: str, body: str) -> str:
    return send(
        server,
        session,
        room_id,
        f"* {body}",
        {"rel_type": "m.replace", "event_id": original},
        **{"m.new_content": {"msgtype": "m.text", "body": body}},
    )


def relations(
    server: RunningServer,
    session: Session,
    room_id: str,
    event_id: str,
    *path: str,
    **query: Any,
) -> Reply:
    url = f"{server.url}{CLIENT_V1}/rooms/{quote(room_id)}/relations/{quote(event_id)}"
    for part in path:
        url += "/" + quote(part)
    if query:
        url += "?" + "&".join(f"{key}={quote(str(value))}" for key, value in query.items())
    return authed(session, "GET", url)


def threads(server: RunningServer, session: Session, room_id: str, **query: Any) -> Reply:
    url = f"{server.url}{CLIENT_V1}/rooms/{quote(room_id)}/threads"
    if query:
        url += "?" + "&".join(f"{key}={quote(str(value))}" for key, value in query.items())
    return authed(session, "GET", url)


def ids(reply: Reply) -> list[str]:
    assert reply.status == 200, reply.body
    return [event["event_id"] for event in reply.json()["chunk"]]


def test_children_of_an_event(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice)
    parent = send(server, alice, room_id, "parent")
    in_thread = send(server, alice, room_id, "in thread", thread(parent))
    referring = send(server, alice, room_id, "refers", reference(parent))
    reaction = send(
        server,
        alice,
        room_id,
        "",
        {"rel_type": "m.annotation", "event_id": parent, "key": "👍"},
        event_type="m.reaction",
    )
    send(server, alice, room_id, "unrelated")

    everything = relations(server, alice, room_id, parent)
    assert ids(everything) == [reaction, referring, in_thread]
    served = everything.json()["chunk"][2]
    assert served["content"]["body"] == "in thread"
    assert served["room_id"] == room_id and served["sender"] == alice.user_id
    assert "next_batch" not in everything.json()
    assert "recursion_depth" not in everything.json()

    assert ids(relations(server, alice, room_id, parent, "m.thread")) == [in_thread]
    assert ids(relations(server, alice, room_id, parent, "m.annotation", "m.reaction")) == [
        reaction
    ]
    assert ids(relations(server, alice, room_id, parent, "m.annotation", "m.room.message")) == []
    assert ids(relations(server, alice, room_id, parent, dir="f")) == [
        in_thread,
        referring,
        reaction,
    ]
    assert ids(relations(server, alice, room_id, in_thread)) == []


def test_relations_pagination(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice)
    parent = send(server, alice, room_id, "parent")
    children = [send(server, alice, room_id, f"reply {i}", thread(parent)) for i in range(5)]
    newest_first = children[::-1]

    pages: list[str] = []
    token = None
    while True:
        query: dict[str, Any] = {"limit": 2}
        if token is not None:
            query["from"] = token
        reply = relations(server, alice, room_id, parent, **query)
        pages += ids(reply)
        token = reply.json().get("next_batch")
        if token is None:
            break
    assert pages == newest_first

    forwards: list[str] = []
    token = None
    while True:
        query = {"limit": 2, "dir": "f"}
        if token is not None:
            query["from"] = token
        reply = relations(server, alice, room_id, parent, **query)
        forwards += ids(reply)
        token = reply.json().get("next_batch")
        if token is None:
            break
    assert forwards == children

    # `to`: from the start of page one to the token that ends it covers just page one
    first = relations(server, alice, room_id, parent, limit=2)
    bounded = relations(server, alice, room_id, parent, to=first.json()["next_batch"])
    assert ids(bounded) == newest_first[:2]


def test_recursive_relations(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice)
    root = send(server, alice, room_id, "root")
    child = send(server, alice, room_id, "child", reference(root))
    grandchild = send(server, alice, room_id, "grandchild", reference(child))
    great = send(server, alice, room_id, "great-grandchild", reference(grandchild))
    too_deep = send(server, alice, room_id, "too deep", reference(great))
    beside = send(
        server,
        alice,
        room_id,
        "",
        {"rel_type": "m.annotation", "event_id": child, "key": "👍"},
        event_type="m.reaction",
    )

    direct = relations(server, alice, room_id, root, recurse="false")
    assert ids(direct) == [child]
    assert direct.json()["recursion_depth"] == 1
    deep = relations(server, alice, room_id, root, recurse="true")
    assert ids(deep) == [beside, great, grandchild, child]
    assert deep.json()["recursion_depth"] == 3
    assert too_deep not in ids(deep)
    # the filter applies at every level: the reaction hangs off a reference
    filtered = relations(server, alice, room_id, root, "m.reference", recurse="true")
    assert ids(filtered) == [great, grandchild, child]


def test_relations_refusals(
    server: RunningServer, alice: Session, bob: Session, carol: Session
) -> None:
    room_id = create_room(server, alice)
    parent = send(server, alice, room_id, "parent")
    other_room = create_room(server, alice)

    for reply in (
        relations(server, alice, room_id, "$unknown"),
        relations(server, alice, other_room, parent),
        # bob is not in the room and it is not world readable
        relations(server, bob, room_id, parent),
    ):
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    for query in (
        {"dir": "sideways"},
        {"limit": "many"},
        {"limit": 0},
        {"from": "nonsense"},
        {"to": "t1"},
        {"recurse": "maybe"},
    ):
        reply = relations(server, alice, room_id, parent, **query)
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), query
    url = f"{server.url}{CLIENT_V1}/rooms/{quote(room_id)}/relations/{quote(parent)}"
    anonymous = request("GET", url)
    assert (anonymous.status, anonymous.errcode) == (401, "M_MISSING_TOKEN")


def test_history_visibility_hides_children(
    server: RunningServer, alice: Session, carol: Session
) -> None:
    room_id = create_room(
        server,
        alice,
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ],
    )
    root = send(server, alice, room_id, "root")
    join(server, carol, room_id)
    after = send(server, alice, room_id, "after carol joined", thread(root))
    # carol cannot see the root, sent before she joined
    hidden = relations(server, carol, room_id, root)
    assert (hidden.status, hidden.errcode) == (404, "M_NOT_FOUND")
    later_root = send(server, alice, room_id, "later root")
    before_leave = send(server, alice, room_id, "before carol left", thread(later_root))
    leave = authed(carol, "POST", f"{server.url}{CLIENT}/rooms/{quote(room_id)}/leave", {})
    assert leave.status == 200, leave.body
    after_leave = send(server, alice, room_id, "after carol left", thread(later_root))
    assert ids(relations(server, alice, room_id, later_root)) == [after_leave, before_leave]
    assert ids(relations(server, carol, room_id, later_root)) == [before_leave]
    assert after


def test_bundled_aggregations(server: RunningServer, alice: Session, bob: Session) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    join(server, bob, room_id)
    root = send(server, alice, room_id, "root")
    first = send(server, bob, room_id, "first reply", thread(root))
    edit(server, bob, room_id, first, "first reply, edited")
    latest_edit = edit(server, bob, room_id, first, "first reply, edited again")
    # not an edit: alice may not edit bob's message
    edit(server, alice, room_id, first, "hijacked")
    refs = [send(server, alice, room_id, f"see {i}", reference(first)) for i in range(2)]
    last = send(server, alice, room_id, "last reply", thread(root))

    # the thread reply, served by /relations, carries its edit and references
    chunk = relations(server, alice, room_id, root, "m.thread").json()["chunk"]
    assert [event["event_id"] for event in chunk] == [last, first]
    bundled = chunk[1]["unsigned"]["m.relations"]
    assert bundled["m.replace"]["event_id"] == latest_edit
    assert bundled["m.replace"]["content"]["m.new_content"]["body"] == "first reply, edited again"
    assert bundled["m.reference"] == {"chunk": [{"event_id": ref} for ref in refs]}
    # the content itself is not replaced
    assert chunk[1]["content"]["body"] == "first reply"
    assert "m.relations" not in chunk[0]["unsigned"]

    # the thread root, served by /threads, carries the thread summary
    for session, participated in ((alice, True), (bob, True)):
        (served,) = threads(server, session, room_id).json()["chunk"]
        summary = served["unsigned"]["m.relations"]["m.thread"]
        assert served["event_id"] == root
        assert summary["count"] == 2
        assert summary["latest_event"]["event_id"] == last
        assert summary["current_user_participated"] is participated


def test_thread_summary_participation(
    server: RunningServer, alice: Session, bob: Session, carol: Session
) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    join(server, bob, room_id)
    join(server, carol, room_id)
    root = send(server, alice, room_id, "root")
    reply = send(server, bob, room_id, "reply", thread(root))
    # the latest event in the thread carries its own aggregations
    referring = send(server, alice, room_id, "ref", reference(reply))
    for session, participated in ((alice, True), (bob, True), (carol, False)):
        (served,) = threads(server, session, room_id).json()["chunk"]
        summary = served["unsigned"]["m.relations"]["m.thread"]
        assert summary["current_user_participated"] is participated, session.user_id
        latest = summary["latest_event"]
        assert latest["event_id"] == reply
        assert latest["unsigned"]["m.relations"]["m.reference"] == {
            "chunk": [{"event_id": referring}]
        }


def test_thread_list(server: RunningServer, alice: Session, bob: Session) -> None:
    room_id = create_room(server, alice, preset="public_chat")
    join(server, bob, room_id)
    roots = [send(server, alice, room_id, f"root {i}") for i in range(4)]
    send(server, alice, room_id, "no thread here")
    # replies in an order that differs from the roots' order
    send(server, alice, room_id, "r", thread(roots[2]))
    send(server, alice, room_id, "r", thread(roots[0]))
    send(server, bob, room_id, "r", thread(roots[3]))
    send(server, alice, room_id, "r", thread(roots[1]))
    send(server, alice, room_id, "r", thread(roots[0]))
    expected = [roots[0], roots[1], roots[3], roots[2]]

    assert ids(threads(server, alice, room_id)) == expected
    pages: list[str] = []
    token = None
    while True:
        query: dict[str, Any] = {"limit": 3}
        if token is not None:
            query["from"] = token
        page = threads(server, alice, room_id, **query)
        pages += ids(page)
        token = page.json().get("next_batch")
        if token is None:
            break
    assert pages == expected

    # bob replied in one thread; alice started them all
    assert ids(threads(server, bob, room_id, include="participated")) == [roots[3]]
    assert ids(threads(server, alice, room_id, include="participated")) == expected
    assert ids(threads(server, bob, room_id, include="all")) == expected


def test_thread_list_refusals(server: RunningServer, alice: Session, bob: Session) -> None:
    room_id = create_room(server, alice)
    for query in (
        {"limit": 0},
        {"limit": "x"},
        {"include": "mine"},
        {"from": "garbage"},
        {"from": "t1-2"},
    ):
        reply = threads(server, alice, room_id, **query)
        assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM"), query
    for room in (room_id, "!unknown:test.localhost"):
        refused = threads(server, bob, room)
        assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
    anonymous = request("GET", f"{server.url}{CLIENT_V1}/rooms/{quote(room_id)}/threads")
    assert (anonymous.status, anonymous.errcode) == (401, "M_MISSING_TOKEN")


def redact(server: RunningServer, session: Session, room_id: str, event_id: str) -> None:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/redact/{quote(event_id)}/r{next(_txns)}"
    reply = authed(session, "PUT", url, {"reason": "test"})
    assert reply.status == 200, reply.body


def get_event(server: RunningServer, session: Session, room_id: str, event_id: str) -> Any:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/event/{quote(event_id)}"
    reply = authed(session, "GET", url)
    assert reply.status == 200, reply.body
    return reply.json()


def test_redaction_breaks_relations(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice)
    root = send(server, alice, room_id, "root")
    kept = send(server, alice, room_id, "kept", thread(root))
    dropped = send(server, alice, room_id, "dropped", thread(root))
    first_edit = edit(server, alice, room_id, root, "root, edited")
    second_edit = edit(server, alice, room_id, root, "root, edited again")

    bundled = get_event(server, alice, room_id, root)["unsigned"]["m.relations"]
    assert bundled["m.thread"]["count"] == 2
    assert bundled["m.thread"]["latest_event"]["event_id"] == dropped
    assert bundled["m.replace"]["event_id"] == second_edit

    redact(server, alice, room_id, dropped)
    redact(server, alice, room_id, second_edit)
    assert ids(relations(server, alice, room_id, root, "m.thread")) == [kept]
    bundled = get_event(server, alice, room_id, root)["unsigned"]["m.relations"]
    assert bundled["m.thread"]["count"] == 1
    assert bundled["m.thread"]["latest_event"]["event_id"] == kept
    # the previous edit counts again
    assert bundled["m.replace"]["event_id"] == first_edit

    # a redacted original is served without its edits
    redact(server, alice, room_id, kept)
    edited = send(server, alice, room_id, "to be redacted")
    edit(server, alice, room_id, edited, "edited")
    assert "m.replace" in get_event(server, alice, room_id, edited)["unsigned"]["m.relations"]
    redact(server, alice, room_id, edited)
    served = get_event(server, alice, room_id, edited)
    assert "m.relations" not in served["unsigned"]
    assert "redacted_because" in served["unsigned"]


def test_threads_cannot_start_from_an_event_with_a_relation(
    server: RunningServer, alice: Session
) -> None:
    room_id = create_room(server, alice)
    root = send(server, alice, room_id, "root")
    reply = send(server, alice, room_id, "reply", thread(root))
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/bad-thread"
    content = {"msgtype": "m.text", "body": "nested", "m.relates_to": thread(reply)}
    refused = authed(alice, "PUT", url, content)
    assert (refused.status, refused.errcode) == (400, "M_UNKNOWN")
    assert ids(relations(server, alice, room_id, reply)) == []
    # replying inside a thread targets the root, with the reply as m.in_reply_to
    in_thread_reply = {**thread(root), "m.in_reply_to": {"event_id": reply}}
    answered = send(server, alice, room_id, "answer", in_thread_reply)
    assert ids(relations(server, alice, room_id, root)) == [answered, reply]
    # a rich reply has no rel_type, so a thread may start from it
    rich = send(server, alice, room_id, "rich", {"m.in_reply_to": {"event_id": root}})
    send(server, alice, room_id, "thread off a reply", thread(rich))


def test_messages_tokens_page_relations(server: RunningServer, alice: Session) -> None:
    room_id = create_room(server, alice)
    parent = send(server, alice, room_id, "parent")
    children = [send(server, alice, room_id, f"reply {i}", thread(parent)) for i in range(3)]
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/messages?dir=b&limit=1"
    page = authed(alice, "GET", url)
    assert page.status == 200, page.body
    assert [event["event_id"] for event in page.json()["chunk"]] == [children[2]]
    # /messages' `end` lies before the newest reply: relations from there skip it
    after_newest = relations(server, alice, room_id, parent, **{"from": page.json()["end"]})
    assert ids(after_newest) == [children[1], children[0]]
    from_start = relations(server, alice, room_id, parent, **{"from": page.json()["start"]})
    assert ids(from_start) == children[::-1]
