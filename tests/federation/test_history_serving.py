"""A room's events and state served to other servers: /event, /state, /state_ids,
/event_auth, /backfill, /get_missing_events and /timestamp_to_event.

Two Ranvier servers: the one serving holds the rooms, the other's users hold no
membership, so it reads only what a world_readable room shows to anyone (and gets 403
elsewhere); the requests "from" it are signed in the test process with its own key. Each
test runs both ways, so the SQLite and the PostgreSQL server each serve.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import yaml

from ranvier.config.signing_key import load_signing_key
from ranvier.protocol.request_auth import authorization_header
from tests.federation.conftest import ServerPair
from tests.federation.harness import FederatingServer, register
from tests.federation.replies import ok, refused
from tests.integration.client import Reply
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, Session

FEDERATION = "/_matrix/federation/v1"
_txn = itertools.count()


def signed(
    origin: FederatingServer,
    destination: FederatingServer,
    method: str,
    uri: str,
    body: dict[str, Any] | None = None,
) -> Reply:
    """`method uri` on `destination`, signed as `origin` with origin's own key."""
    raw = yaml.safe_load(Path(origin.config_path).read_text())
    key_path = Path(raw["signing_key_path"])
    if not key_path.is_absolute():
        key_path = Path(origin.config_path).parent / key_path
    header = authorization_header(
        load_signing_key(str(key_path)),
        method=method,
        uri=uri,
        origin=origin.server_name,
        destination=destination.server_name,
        content=body,
    )
    return destination.request(method, uri, body, headers={"Authorization": header})


def send(server: FederatingServer, session: Session, room_id: str, body: str) -> str:
    path = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/t{next(_txn)}"
    event_id: str = ok(server.authed(session, "PUT", path, {"msgtype": "m.text", "body": body}))[
        "event_id"
    ]
    return event_id


def put_state(
    server: FederatingServer, session: Session, room_id: str, event_type: str, content: Any
) -> str:
    path = f"{CLIENT}/rooms/{quote(room_id)}/state/{event_type}/"
    event_id: str = ok(server.authed(session, "PUT", path, content))["event_id"]
    return event_id


def visibility(server: FederatingServer, session: Session, room_id: str, value: str) -> str:
    return put_state(
        server, session, room_id, "m.room.history_visibility", {"history_visibility": value}
    )


def state_event_ids(server: FederatingServer, session: Session, room_id: str) -> dict[str, str]:
    """type -> event ID of the room's current state events with an empty state key, and
    "member" -> the creator's membership."""
    state = ok(server.authed(session, "GET", f"{CLIENT}/rooms/{quote(room_id)}/state"))
    found = {e["type"]: e["event_id"] for e in state if e["state_key"] == ""}
    found["member"] = next(e["event_id"] for e in state if e["type"] == "m.room.member")
    return found


@dataclass(frozen=True)
class History:
    """A room on `serving`: shared at first (m1), then joined (m2), then world_readable
    (m3, m4 redacted, m5); `asking` has no user in it."""

    serving: FederatingServer
    asking: FederatingServer
    alice: Session
    room_id: str
    private_room_id: str
    state: dict[str, str]
    hv_joined: str
    hv_world: str
    m1: str
    m2: str
    m3: str
    m4: str
    m5: str

    def get(self, path: str, **params: Any) -> Reply:
        query = f"?{urlencode(params, doseq=True)}" if params else ""
        return signed(self.asking, self.serving, "GET", FEDERATION + path + query)

    def post(self, path: str, body: dict[str, Any]) -> Reply:
        return signed(self.asking, self.serving, "POST", FEDERATION + path, body)


def build_history(serving: FederatingServer, asking: FederatingServer, localpart: str) -> History:
    alice = register(serving, localpart)
    room_id = ok(serving.authed(alice, "POST", CLIENT + "/createRoom", {"preset": "public_chat"}))[
        "room_id"
    ]
    m1 = send(serving, alice, room_id, "one")
    hv_joined = visibility(serving, alice, room_id, "joined")
    m2 = send(serving, alice, room_id, "two")
    hv_world = visibility(serving, alice, room_id, "world_readable")
    m3 = send(serving, alice, room_id, "three")
    m4 = send(serving, alice, room_id, "four")
    m5 = send(serving, alice, room_id, "five")
    path = f"{CLIENT}/rooms/{quote(room_id)}/redact/{quote(m4)}/t{next(_txn)}"
    ok(serving.authed(alice, "PUT", path, {"reason": "oops"}))
    private_room_id = ok(
        serving.authed(alice, "POST", CLIENT + "/createRoom", {"preset": "private_chat"})
    )["room_id"]
    send(serving, alice, private_room_id, "secret")
    return History(
        serving,
        asking,
        alice,
        room_id,
        private_room_id,
        state_event_ids(serving, alice, room_id),
        hv_joined,
        hv_world,
        m1,
        m2,
        m3,
        m4,
        m5,
    )


@pytest.fixture(scope="module")
def histories(two_servers: ServerPair) -> dict[str, History]:
    a, b = two_servers
    return {"sqlite": build_history(a, b, "alice"), "postgres": build_history(b, a, "alice")}


@pytest.fixture(params=["sqlite", "postgres"])
def h(request: pytest.FixtureRequest, histories: dict[str, History]) -> History:
    history: History = histories[request.param]
    return history


def body_of(pdu: dict[str, Any]) -> Any:
    return pdu["content"].get("body")


def event_pdu(h: History, event_id: str) -> dict[str, Any]:
    answer = ok(h.get(f"/event/{quote(event_id)}"))
    assert len(answer["pdus"]) == 1
    pdu: dict[str, Any] = answer["pdus"][0]
    return pdu


# -- who may ask -------------------------------------------------------------------------------


def room_paths(h: History, room_id: str, event_id: str) -> list[tuple[str, str, Any]]:
    r, e = quote(room_id), quote(event_id)
    return [
        ("GET", f"/state/{r}?event_id={e}", None),
        ("GET", f"/state_ids/{r}?event_id={e}", None),
        ("GET", f"/event_auth/{r}/{e}", None),
        ("GET", f"/backfill/{r}?v={e}&limit=5", None),
        ("POST", f"/get_missing_events/{r}", {"earliest_events": [], "latest_events": [e]}),
        ("GET", f"/timestamp_to_event/{r}?ts=0&dir=f", None),
    ]


def test_every_endpoint_needs_a_signature(h: History) -> None:
    paths = [*room_paths(h, h.room_id, h.m3), ("GET", f"/event/{quote(h.m3)}", None)]
    for method, path, body in paths:
        refused(h.serving.request(method, FEDERATION + path, body), 401, "M_UNAUTHORIZED")


def test_a_server_with_no_member_cannot_read_a_room_that_is_not_world_readable(
    h: History,
) -> None:
    latest = ok(h.get(f"/backfill/{quote(h.room_id)}", v=h.m5, limit=1))["pdus"]
    assert latest  # the world_readable room answers
    private_event = state_event_ids(h.serving, h.alice, h.private_room_id)["m.room.create"]
    for method, path, body in [
        *room_paths(h, h.private_room_id, private_event),
        ("GET", f"/event/{quote(private_event)}", None),
    ]:
        reply = signed(h.asking, h.serving, method, FEDERATION + path, body)
        refused(reply, 403, "M_FORBIDDEN")
    # a room this server does not know is answered the same way
    refused(h.get("/state_ids/!unknown:nowhere", event_id=h.m3), 403, "M_FORBIDDEN")


def test_a_server_denied_by_the_acl_is_refused(h: History) -> None:
    alice = h.alice
    room_id = ok(
        h.serving.authed(
            alice,
            "POST",
            CLIENT + "/createRoom",
            {
                "preset": "public_chat",
                "initial_state": [
                    {
                        "type": "m.room.history_visibility",
                        "state_key": "",
                        "content": {"history_visibility": "world_readable"},
                    }
                ],
            },
        )
    )["room_id"]
    event_id = send(h.serving, alice, room_id, "hello")
    ok(h.get(f"/event/{quote(event_id)}"))
    # the asking server's host, whatever its port (ACLs match names without ports)
    put_state(
        h.serving, alice, room_id, "m.room.server_acl", {"allow": ["*"], "deny": ["localhost"]}
    )
    for method, path, body in [
        *room_paths(h, room_id, event_id),
        ("GET", f"/event/{quote(event_id)}", None),
    ]:
        refused(signed(h.asking, h.serving, method, FEDERATION + path, body), 403, "M_FORBIDDEN")


# -- /event --------------------------------------------------------------------------------------


def test_an_event_is_served_as_a_transaction(h: History) -> None:
    answer = ok(h.get(f"/event/{quote(h.m3)}"))
    assert answer["origin"] == h.serving.server_name
    assert isinstance(answer["origin_server_ts"], int)
    (pdu,) = answer["pdus"]
    assert body_of(pdu) == "three"
    assert pdu["room_id"] == h.room_id
    # the full PDU, as signed
    assert {"auth_events", "prev_events", "depth", "hashes", "signatures"} <= pdu.keys()
    assert h.serving.server_name in pdu["signatures"]
    refused(h.get("/event/$unknown"), 404, "M_NOT_FOUND")


def test_history_the_server_may_not_see_is_served_redacted(h: History) -> None:
    # shared, then joined: a server with no member saw neither
    for event_id in (h.m1, h.m2):
        pdu = event_pdu(h, event_id)
        assert pdu["content"] == {}
        assert pdu["type"] == "m.room.message"
        assert "hashes" in pdu and "signatures" in pdu
    # world_readable from the change on
    assert event_pdu(h, h.m5)["content"]["body"] == "five"
    assert event_pdu(h, h.hv_world)["content"] == {"history_visibility": "world_readable"}


def test_a_redacted_event_is_served_redacted(h: History) -> None:
    pdu = event_pdu(h, h.m4)
    assert pdu["content"] == {}
    assert pdu["type"] == "m.room.message"


def test_an_erased_users_events_are_served_redacted(h: History) -> None:
    eve = register(h.serving, f"eve{next(_txn)}")
    ok(h.serving.authed(eve, "POST", f"{CLIENT}/join/{quote(h.room_id)}", {}))
    said = send(h.serving, eve, h.room_id, "forget me")
    assert event_pdu(h, said)["content"]["body"] == "forget me"
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": eve.user_id},
        "password": DEFAULT_PASSWORD,
    }
    ok(h.serving.authed(eve, "POST", CLIENT + "/account/deactivate", {"erase": True, "auth": auth}))
    pdu = event_pdu(h, said)
    assert pdu["content"] == {} and pdu["sender"] == eve.user_id


# -- state ---------------------------------------------------------------------------------------


def test_state_ids_are_the_state_before_the_event(h: History) -> None:
    r = quote(h.room_id)
    answer = ok(h.get(f"/state_ids/{r}", event_id=h.m3))
    assert set(answer) == {"pdu_ids", "auth_chain_ids"}
    state = set(answer["pdu_ids"])
    assert h.hv_world in state and h.m3 not in state
    assert {h.state["m.room.create"], h.state["m.room.power_levels"], h.state["member"]} <= state
    # the auth chain of that state (v12 rooms name no create event in auth_events)
    assert h.state["member"] in answer["auth_chain_ids"]
    assert h.state["m.room.create"] not in answer["auth_chain_ids"]
    # at a state event: what it replaced, not itself
    before = set(ok(h.get(f"/state_ids/{r}", event_id=h.hv_world))["pdu_ids"])
    assert h.hv_joined in before and h.hv_world not in before
    assert before - {h.hv_joined} == state - {h.hv_world}


def test_state_serves_the_events(h: History) -> None:
    answer = ok(h.get(f"/state/{quote(h.room_id)}", event_id=h.hv_world))
    assert set(answer) == {"pdus", "auth_chain"}
    by_type = {pdu["type"]: pdu for pdu in answer["pdus"]}
    assert by_type["m.room.history_visibility"]["content"] == {"history_visibility": "joined"}
    assert {"m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules"} <= set(
        by_type
    )
    ids = ok(h.get(f"/state_ids/{quote(h.room_id)}", event_id=h.hv_world))
    assert len(answer["pdus"]) == len(ids["pdu_ids"])
    assert len(answer["auth_chain"]) == len(ids["auth_chain_ids"])
    assert "m.room.member" in {pdu["type"] for pdu in answer["auth_chain"]}


def test_state_refusals(h: History) -> None:
    r = quote(h.room_id)
    refused(h.get(f"/state/{r}"), 400, "M_MISSING_PARAM")
    refused(h.get(f"/state_ids/{r}"), 400, "M_MISSING_PARAM")
    refused(h.get(f"/state_ids/{r}", event_id="$unknown"), 404, "M_NOT_FOUND")
    # an event of another room
    other = state_event_ids(h.serving, h.alice, h.private_room_id)["m.room.create"]
    refused(h.get(f"/state_ids/{r}", event_id=other), 404, "M_NOT_FOUND")
    refused(h.get(f"/state/{r}", event_id=other), 404, "M_NOT_FOUND")


def test_event_auth_is_the_auth_chain(h: History) -> None:
    answer = ok(h.get(f"/event_auth/{quote(h.room_id)}/{quote(h.m3)}"))
    types = sorted(pdu["type"] for pdu in answer["auth_chain"])
    # the sender's join and the power levels, and their own auth events; no message (and
    # in v12 rooms no create event: it is the room ID, never named in auth_events)
    assert {"m.room.member", "m.room.power_levels"} <= set(types)
    assert "m.room.message" not in types
    create = ok(h.get(f"/event_auth/{quote(h.room_id)}/{quote(h.state['m.room.create'])}"))
    assert create == {"auth_chain": []}
    refused(h.get(f"/event_auth/{quote(h.room_id)}/$unknown"), 404, "M_NOT_FOUND")
    # a v10 room names its create event: the chain is walked through the auth events'
    # own auth events
    body = {"preset": "public_chat", "room_version": "10", "initial_state": [WORLD_READABLE]}
    room_id = ok(h.serving.authed(h.alice, "POST", CLIENT + "/createRoom", body))["room_id"]
    message = send(h.serving, h.alice, room_id, "hi")
    chain = ok(h.get(f"/event_auth/{quote(room_id)}/{quote(message)}"))["auth_chain"]
    assert sorted(pdu["type"] for pdu in chain) == [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
    ]
    assert ok(h.get(f"/state_ids/{quote(room_id)}", event_id=message))["auth_chain_ids"]


# -- backfill ------------------------------------------------------------------------------------


def test_backfill_walks_back_newest_first(h: History) -> None:
    r = quote(h.room_id)
    answer = ok(h.get(f"/backfill/{r}", v=h.m5, limit=4))
    assert answer["origin"] == h.serving.server_name
    pdus = answer["pdus"]
    # m5, the redaction is not before m5 (it came after), so: m5, m4, m3, hv_world
    assert [body_of(p) for p in pdus[:3]] == ["five", None, "three"]
    assert pdus[1]["content"] == {}  # m4, redacted
    assert pdus[3]["type"] == "m.room.history_visibility"
    depths = [p["depth"] for p in pdus]
    assert depths == sorted(depths, reverse=True) and len(pdus) == 4
    # the whole room ends at its create event
    whole = ok(h.get(f"/backfill/{r}", v=h.m5, limit=100))["pdus"]
    assert whole[-1]["type"] == "m.room.create"
    assert [body_of(p) for p in whole if p["type"] == "m.room.message"] == [
        "five",
        None,
        "three",
        None,  # m2: joined, not seen by this server
        None,  # m1: shared, this server not in the room
    ]


WORLD_READABLE = {
    "type": "m.room.history_visibility",
    "state_key": "",
    "content": {"history_visibility": "world_readable"},
}


def test_backfill_and_missing_events_limits_are_capped(h: History) -> None:
    alice = h.alice
    room_id = ok(
        h.serving.authed(
            alice,
            "POST",
            CLIENT + "/createRoom",
            {
                "preset": "public_chat",
                "initial_state": [
                    {
                        "type": "m.room.history_visibility",
                        "state_key": "",
                        "content": {"history_visibility": "world_readable"},
                    }
                ],
            },
        )
    )["room_id"]
    last = ""
    for i in range(105):
        last = send(h.serving, alice, room_id, f"m{i}")
    pdus = ok(h.get(f"/backfill/{quote(room_id)}", v=last, limit=1000))["pdus"]
    assert len(pdus) == 100
    assert [body_of(p) for p in pdus[:3]] == ["m104", "m103", "m102"]
    # and get_missing_events at 20, the 20 before the latest, oldest first
    body = {"earliest_events": [], "latest_events": [last], "limit": 500}
    events = ok(h.post(f"/get_missing_events/{quote(room_id)}", body))["events"]
    assert [body_of(e) for e in events] == [f"m{i}" for i in range(84, 104)]


def test_backfill_refusals(h: History) -> None:
    r = quote(h.room_id)
    refused(h.get(f"/backfill/{r}", limit=5), 400, "M_MISSING_PARAM")
    refused(h.get(f"/backfill/{r}", v=h.m5), 400, "M_MISSING_PARAM")
    refused(h.get(f"/backfill/{r}", v=h.m5, limit="many"), 400, "M_INVALID_PARAM")
    # events it does not have: nothing to walk from
    assert ok(h.get(f"/backfill/{r}", v="$unknown", limit=5))["pdus"] == []


# -- get_missing_events --------------------------------------------------------------------------


def test_get_missing_events_walks_back_from_latest_to_earliest(h: History) -> None:
    path = f"/get_missing_events/{quote(h.room_id)}"
    answer = ok(h.post(path, {"earliest_events": [h.m1], "latest_events": [h.m5]}))
    events = answer["events"]
    # oldest first, neither m1 nor m5
    assert [e["type"] for e in events] == [
        "m.room.history_visibility",
        "m.room.message",
        "m.room.history_visibility",
        "m.room.message",
        "m.room.message",
    ]
    assert events[1]["content"] == {}  # m2, joined-only
    assert events[2]["content"] == {"history_visibility": "world_readable"}
    assert body_of(events[3]) == "three"
    # the limit keeps the events nearest the latest
    two = ok(h.post(path, {"earliest_events": [h.m1], "latest_events": [h.m5], "limit": 2}))
    assert [body_of(e) for e in two["events"]] == ["three", None]
    # nothing below min_depth
    depth_m3 = event_pdu(h, h.m3)["depth"]
    shallow = ok(
        h.post(path, {"earliest_events": [], "latest_events": [h.m5], "min_depth": depth_m3})
    )
    assert [e["depth"] for e in shallow["events"]] == [depth_m3, depth_m3 + 1]
    # the default limit is 10, and a larger one is held to 20
    default = ok(h.post(path, {"earliest_events": [], "latest_events": [h.m5]}))["events"]
    assert len(default) == 10
    assert default[-1]["content"] == {}  # m4, the newest before m5
    capped = ok(h.post(path, {"earliest_events": [], "latest_events": [h.m5], "limit": 500}))
    # the room holds fewer than 20 events before m5: all of them, from the create event
    assert capped["events"][0]["type"] == "m.room.create"
    assert len(capped["events"]) < 20


def test_get_missing_events_defaults_and_refusals(h: History) -> None:
    path = f"/get_missing_events/{quote(h.room_id)}"
    # a list left out is taken as empty, as Synapse does
    assert ok(h.post(path, {"earliest_events": []})) == {"events": []}
    assert ok(h.post(path, {})) == {"events": []}
    walked = ok(h.post(path, {"latest_events": [h.m5]}))["events"]
    assert len(walked) == 10 and walked[-1]["content"] == {}
    refused(h.post(path, {"earliest_events": [], "latest_events": h.m5}), 400, "M_BAD_JSON")
    refused(
        h.post(path, {"earliest_events": [], "latest_events": [h.m5], "limit": "5"}),
        400,
        "M_BAD_JSON",
    )


# -- timestamp_to_event --------------------------------------------------------------------------


def test_timestamp_to_event_both_ways(h: History) -> None:
    r = quote(h.room_id)
    ts = event_pdu(h, h.m3)["origin_server_ts"]
    forwards = ok(h.get(f"/timestamp_to_event/{r}", ts=ts, dir="f"))
    assert set(forwards) == {"event_id", "origin_server_ts"}
    assert forwards["origin_server_ts"] == ts
    backwards = ok(h.get(f"/timestamp_to_event/{r}", ts=ts, dir="b"))
    assert backwards["origin_server_ts"] == ts
    first = ok(h.get(f"/timestamp_to_event/{r}", ts=0, dir="f"))
    assert first["event_id"] == h.state["m.room.create"]
    last = ok(h.get(f"/timestamp_to_event/{r}", ts=2**53 - 1, dir="b"))
    assert last["origin_server_ts"] >= ts
    refused(h.get(f"/timestamp_to_event/{r}", ts=0, dir="b"), 404, "M_NOT_FOUND")
    refused(h.get(f"/timestamp_to_event/{r}", ts=2**53 - 1, dir="f"), 404, "M_NOT_FOUND")


def test_timestamp_to_event_refusals(h: History) -> None:
    r = quote(h.room_id)
    refused(h.get(f"/timestamp_to_event/{r}", dir="f"), 400, "M_MISSING_PARAM")
    refused(h.get(f"/timestamp_to_event/{r}", ts=0), 400, "M_MISSING_PARAM")
    refused(h.get(f"/timestamp_to_event/{r}", ts=0, dir="x"), 400, "M_INVALID_PARAM")
    refused(h.get(f"/timestamp_to_event/{r}", ts="soon", dir="f"), 400, "M_INVALID_PARAM")
