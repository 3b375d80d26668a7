"""End-to-end keys, device lists and to-device messages between two Ranvier servers.

A (`first`, SQLite) and B (`second`, PostgreSQL). Users of one query and claim the keys
of users of the other through their client API; other servers' requests to /user/devices
and /user/keys are made here too, signed with a server's own key, to check what is
served and what is refused. Device list changes reach room-mates on the other server
(their /sync and /keys/changes), a gap in an m.device_list_update chain makes the
receiver fetch the whole list again, and to-device messages cross once.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ranvier.protocol.signing import sign_json
from tests.federation.conftest import ServerPair
from tests.federation.fake_server import FakeServer, ReceivedRequest
from tests.federation.harness import FederatingServer, FederationCA, register
from tests.federation.replies import ok, refused, sync_until
from tests.federation.test_memberships import signed
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, Session
from tests.integration.test_e2e_keys import CrossSigning, Device

FEDERATION = "/_matrix/federation/v1"

_names = itertools.count()


def new_user(server: FederatingServer, name: str) -> Session:
    return register(server, f"{name}{next(_names)}")


def login(server: FederatingServer, session: Session, device_id: str) -> Session:
    """Another device of the same user."""
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": session.user_id},
        "password": DEFAULT_PASSWORD,
        "device_id": device_id,
        "initial_device_display_name": f"{device_id} of {session.user_id}",
    }
    answer = ok(server.request("POST", CLIENT + "/login", body))
    return Session(answer["user_id"], answer["access_token"], answer["device_id"])


def upload_keys(server: FederatingServer, device: Device, one_time_keys: int = 0) -> Any:
    body: dict[str, Any] = {"device_keys": device.device_keys()}
    if one_time_keys:
        body["one_time_keys"] = {
            f"signed_curve25519:K{n}": device.one_time_key(n) for n in range(one_time_keys)
        }
    return ok(server.authed(device.session, "POST", CLIENT + "/keys/upload", body))


def query(server: FederatingServer, session: Session, wanted: dict[str, list[str]]) -> Any:
    return ok(server.authed(session, "POST", CLIENT + "/keys/query", {"device_keys": wanted}))


def claim(server: FederatingServer, session: Session, wanted: dict[str, dict[str, str]]) -> Any:
    return ok(server.authed(session, "POST", CLIENT + "/keys/claim", {"one_time_keys": wanted}))


def shared_room(
    creator_server: FederatingServer,
    creator: Session,
    joiner_server: FederatingServer,
    joiner: Session,
) -> str:
    """A room on the creator's server that the joiner joined from theirs, once the
    creator's server has the join."""
    body = {"invite": [joiner.user_id], "preset": "private_chat"}
    room_id: str = ok(creator_server.authed(creator, "POST", CLIENT + "/createRoom", body))[
        "room_id"
    ]
    sync_until(joiner_server, joiner, lambda r: room_id in r.get("rooms", {}).get("invite", {}))
    ok(joiner_server.authed(joiner, "POST", f"{CLIENT}/join/{quote(room_id)}", {}))
    member = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.member/{quote(joiner.user_id)}"
    poll(
        lambda: (
            creator_server.authed(creator, "GET", member).status == 200
            and creator_server.authed(creator, "GET", member).json().get("membership") == "join"
        ),
        "the join to reach the room's server",
    )
    return room_id


def delete_device(server: FederatingServer, session: Session, device_id: str) -> None:
    """Through user-interactive auth with the user's password."""
    path = CLIENT + "/delete_devices"
    challenge = server.authed(session, "POST", path, {"devices": [device_id]})
    assert challenge.status == 401, challenge.body
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": session.user_id},
        "password": DEFAULT_PASSWORD,
        "session": challenge.json()["session"],
    }
    ok(server.authed(session, "POST", path, {"devices": [device_id], "auth": auth}))


def poll(found: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def sync_token(server: FederatingServer, session: Session, since: str | None = None) -> str:
    """The current sync token: from an incremental sync when `since` is given (an initial
    sync's answer may be a cached one)."""
    path = CLIENT + "/sync?timeout=0" + ("" if since is None else f"&since={quote(since)}")
    token: str = ok(server.authed(session, "GET", path))["next_batch"]
    return token


def device_lists_after(
    server: FederatingServer, session: Session, since: str, found: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The device_lists section of the first incremental sync from `since` it holds for."""
    deadline = time.monotonic() + 30.0
    while True:
        response = ok(
            server.authed(session, "GET", f"{CLIENT}/sync?since={quote(since)}&timeout=1000")
        )
        section: dict[str, Any] = response.get("device_lists", {})
        if found(section):
            return section
        assert time.monotonic() < deadline, section
        since = response["next_batch"]


# -- keys of other servers' users ------------------------------------------------------------


def test_keys_of_a_user_of_the_other_server_are_queried_and_claimed(
    two_servers: ServerPair,
) -> None:
    for here, there in (
        (two_servers.first, two_servers.second),
        (
            two_servers.second,
            two_servers.first,
        ),
    ):
        alice = new_user(here, "alice")
        bob = Device(new_user(there, "bob"))
        upload_keys(there, bob, one_time_keys=2)
        # no room shared: the other server is asked each time
        answer = query(here, alice, {bob.user_id: []})
        assert answer["failures"] == {}
        keys = answer["device_keys"][bob.user_id][bob.session.device_id]
        expected = bob.device_keys()
        assert {k: v for k, v in keys.items() if k != "unsigned"} == expected
        # device names stay home unless the other server allows them out
        assert "device_display_name" not in keys.get("unsigned", {})
        # a device asked for by ID, and one that does not exist
        answer = query(here, alice, {bob.user_id: ["NOSUCHDEVICE"]})
        assert answer["device_keys"] == {bob.user_id: {}}

        wanted = {bob.user_id: {bob.session.device_id: "signed_curve25519"}}
        first = claim(here, alice, wanted)
        second = claim(here, alice, wanted)
        assert first["failures"] == second["failures"] == {}
        first_key = first["one_time_keys"][bob.user_id][bob.session.device_id]
        second_key = second["one_time_keys"][bob.user_id][bob.session.device_id]
        assert len(first_key) == len(second_key) == 1
        assert first_key != second_key
        # both were taken from bob's server
        counts = ok(there.authed(bob.session, "POST", CLIENT + "/keys/upload", {}))
        assert counts["one_time_key_counts"].get("signed_curve25519", 0) == 0
        assert claim(here, alice, wanted)["one_time_keys"] == {}


def test_a_server_that_cannot_be_reached_is_a_failure_and_the_rest_is_answered(
    two_servers: ServerPair,
) -> None:
    a, b = two_servers
    alice = Device(new_user(a, "alice"))
    upload_keys(a, alice, one_time_keys=1)
    bob = Device(new_user(b, "bob"))
    upload_keys(b, bob, one_time_keys=1)
    # nothing listens on port 1
    nobody = "@nobody:localhost:1"
    answer = query(a, alice.session, {nobody: [], bob.user_id: [], alice.user_id: []})
    assert set(answer["failures"]) == {"localhost:1"}
    assert answer["failures"]["localhost:1"]["status"] >= 500
    assert set(answer["device_keys"]) == {bob.user_id, alice.user_id}
    assert bob.session.device_id in answer["device_keys"][bob.user_id]
    wanted = {
        nobody: {"DEVICE": "signed_curve25519"},
        bob.user_id: {bob.session.device_id: "signed_curve25519"},
    }
    claimed = claim(a, alice.session, wanted)
    assert set(claimed["failures"]) == {"localhost:1"}
    assert set(claimed["one_time_keys"]) == {bob.user_id}
    # as Synapse, a server that failed is not asked again until its backoff is over
    again = query(a, alice.session, {nobody: []})["failures"]["localhost:1"]
    assert again == {"status": 503, "message": "Not ready for retry"}


def test_the_timeout_the_client_gives_bounds_the_wait_for_a_server(
    two_servers: ServerPair, test_ca: FederationCA, tmp_path: Path
) -> None:
    a, b = two_servers
    alice = new_user(a, "alice")
    bob = Device(new_user(b, "bob"))
    upload_keys(b, bob)
    # a timeout that is no count of milliseconds is refused before anything is asked
    for timeout in (-1, "1000", 1.5):
        bad_query = {"device_keys": {bob.user_id: []}, "timeout": timeout}
        refused(a.authed(alice, "POST", CLIENT + "/keys/query", bad_query), 400, "M_BAD_JSON")
        bad_claim = {"one_time_keys": {bob.user_id: {}}, "timeout": timeout}
        refused(a.authed(alice, "POST", CLIENT + "/keys/claim", bad_claim), 400, "M_BAD_JSON")
    release = threading.Event()

    def too_slow(_: ReceivedRequest) -> tuple[int, Any]:
        release.wait(20)
        return 200, {"device_keys": {}}

    with FakeServer.running(test_ca, tmp_path / "fake") as fake:
        fake.route("POST", f"{FEDERATION}/user/keys/query", too_slow)
        fake.route("POST", f"{FEDERATION}/user/keys/claim", too_slow)
        try:
            slow_user = fake.user("slow")
            body = {"device_keys": {slow_user: [], bob.user_id: []}, "timeout": 1000}
            started = time.monotonic()
            answer = ok(a.authed(alice, "POST", CLIENT + "/keys/query", body))
            assert time.monotonic() - started < 5
            assert set(answer["failures"]) == {fake.server_name}
            assert answer["failures"][fake.server_name]["status"] == 504
            # the server that answered in time is in the answer
            assert set(answer["device_keys"]) == {bob.user_id}
            assert any(r.path == f"{FEDERATION}/user/keys/query" for r in fake.received)

            wanted = {slow_user: {"DEVICE": "signed_curve25519"}}
            started = time.monotonic()
            claimed = ok(
                a.authed(
                    alice, "POST", CLIENT + "/keys/claim", {"one_time_keys": wanted, "timeout": 500}
                )
            )
            assert time.monotonic() - started < 5
            assert set(claimed["failures"]) == {fake.server_name}
        finally:
            release.set()


def test_other_servers_get_our_users_devices_and_keys_and_nobody_elses(
    two_servers: ServerPair,
) -> None:
    a, b = two_servers
    bob = Device(new_user(b, "bob"))
    upload_keys(b, bob, one_time_keys=1)
    cross_signing = CrossSigning.for_user(bob.user_id)
    ok(
        b.authed(
            bob.session, "POST", CLIENT + "/keys/device_signing/upload", cross_signing.upload_body()
        )
    )
    devices = ok(signed(a, b, "GET", f"{FEDERATION}/user/devices/{quote(bob.user_id)}"))
    assert devices["user_id"] == bob.user_id
    assert isinstance(devices["stream_id"], int) and devices["stream_id"] > 0
    assert devices["devices"] == [{"device_id": bob.session.device_id, "keys": bob.device_keys()}]
    assert devices["master_key"] == cross_signing.master.unsigned_json()
    assert devices["self_signing_key"] == cross_signing.self_signing.signed_by(cross_signing.master)
    # the user-signing key is private to its user
    assert "user_signing_key" not in devices

    body = {"device_keys": {bob.user_id: []}}
    keys = ok(signed(a, b, "POST", f"{FEDERATION}/user/keys/query", body))
    served_keys = keys["device_keys"][bob.user_id][bob.session.device_id]
    assert served_keys.pop("unsigned", {}) == {}
    assert keys["device_keys"] == {bob.user_id: {bob.session.device_id: bob.device_keys()}}
    assert keys["master_keys"] == {bob.user_id: cross_signing.master.unsigned_json()}
    assert "user_signing_keys" not in keys

    wanted = {"one_time_keys": {bob.user_id: {bob.session.device_id: "signed_curve25519"}}}
    claimed = ok(signed(a, b, "POST", f"{FEDERATION}/user/keys/claim", wanted))
    assert claimed["one_time_keys"][bob.user_id][bob.session.device_id] == {
        "signed_curve25519:K0": bob.one_time_key(0)
    }

    # users of another server, a request without a signature, a malformed body
    stranger = "@someone:" + a.server_name
    refused(signed(a, b, "GET", f"{FEDERATION}/user/devices/{quote(stranger)}"), 400, "M_UNKNOWN")
    mixed = {"device_keys": {bob.user_id: [], stranger: []}}
    refused(signed(a, b, "POST", f"{FEDERATION}/user/keys/query", mixed), 400, "M_UNKNOWN")
    claim_other = {"one_time_keys": {stranger: {"DEVICE": "signed_curve25519"}}}
    refused(signed(a, b, "POST", f"{FEDERATION}/user/keys/claim", claim_other), 400, "M_UNKNOWN")
    unsigned = b.request("GET", f"{FEDERATION}/user/devices/{quote(bob.user_id)}")
    refused(unsigned, 401, "M_UNAUTHORIZED")
    bad = {"device_keys": {bob.user_id: "all"}}
    refused(signed(a, b, "POST", f"{FEDERATION}/user/keys/query", bad), 400, "M_BAD_JSON")
    # the refused claim took nothing: bob's key count is what the good claim left
    counts = ok(b.authed(bob.session, "POST", CLIENT + "/keys/upload", {}))
    assert counts["one_time_key_counts"].get("signed_curve25519", 0) == 0


# -- device lists ------------------------------------------------------------------------------


def test_device_list_changes_reach_room_mates_on_the_other_server(
    two_servers: ServerPair,
) -> None:
    a, b = two_servers
    alice = new_user(a, "alice")
    bob = Device(new_user(b, "bob"))
    upload_keys(b, bob)
    room_id = shared_room(a, alice, b, bob.session)
    # sharing a room, alice's server keeps bob's list: it is fetched once and then kept
    # up to date by bob's server
    assert set(query(a, alice, {bob.user_id: []})["device_keys"][bob.user_id]) == {
        bob.session.device_id
    }
    since = sync_token(a, alice)

    # bob logs in on another device, which uploads its keys
    phone = Device(login(b, bob.session, "PHONE"))
    upload_keys(b, phone)
    device_lists_after(a, alice, since, lambda s: bob.user_id in s.get("changed", []))
    poll(
        lambda: (
            set(query(a, alice, {bob.user_id: []})["device_keys"][bob.user_id])
            == {bob.session.device_id, "PHONE"}
        ),
        "bob's new device in alice's query",
    )
    upto = sync_token(a, alice, since)
    changes = ok(
        a.authed(alice, "GET", f"{CLIENT}/keys/changes?from={quote(since)}&to={quote(upto)}")
    )
    assert bob.user_id in changes["changed"]

    # the device is deleted: it leaves alice's view of bob's devices
    since = upto
    delete_device(b, bob.session, "PHONE")
    device_lists_after(a, alice, since, lambda s: bob.user_id in s.get("changed", []))
    poll(
        lambda: (
            set(query(a, alice, {bob.user_id: []})["device_keys"][bob.user_id])
            == {bob.session.device_id}
        ),
        "bob's deleted device gone from alice's query",
    )

    # bob leaves: alice's sync says she no longer shares a room with him
    since = sync_token(a, alice, since)
    ok(b.authed(bob.session, "POST", f"{CLIENT}/rooms/{quote(room_id)}/leave", {}))
    section = device_lists_after(a, alice, since, lambda s: bob.user_id in s.get("left", []))
    assert bob.user_id not in section.get("changed", [])

    # while no room is shared, B has no one to tell of bob's new device; once he is back,
    # A fetches his list again rather than serve what it held before
    laptop = Device(login(b, bob.session, "LAPTOP"))
    upload_keys(b, laptop)
    invite = {"user_id": bob.user_id}
    ok(a.authed(alice, "POST", f"{CLIENT}/rooms/{quote(room_id)}/invite", invite))
    sync_until(b, bob.session, lambda r: room_id in r.get("rooms", {}).get("invite", {}))
    ok(b.authed(bob.session, "POST", f"{CLIENT}/join/{quote(room_id)}", {}))
    member = f"{CLIENT}/rooms/{quote(room_id)}/state/m.room.member/{quote(bob.user_id)}"
    poll(
        lambda: a.authed(alice, "GET", member).json().get("membership") == "join",
        "bob's second join to reach A",
    )
    assert set(query(a, alice, {bob.user_id: []})["device_keys"][bob.user_id]) == {
        bob.session.device_id,
        "LAPTOP",
    }


def test_a_gap_in_the_update_chain_makes_the_receiver_fetch_the_whole_list(
    two_servers: ServerPair,
) -> None:
    a, b = two_servers
    alice = new_user(a, "alice")
    bob = Device(new_user(b, "bob"))
    upload_keys(b, bob)
    shared_room(a, alice, b, bob.session)
    query(a, alice, {bob.user_id: []})
    served = ok(signed(a, b, "GET", f"{FEDERATION}/user/devices/{quote(bob.user_id)}"))
    stream_id = served["stream_id"]
    ghost = Device(Session(bob.user_id, "unused", "GHOST"))

    def update(txn: str, prev_id: list[int], new_stream_id: int, device_id: str) -> None:
        edu = {
            "edu_type": "m.device_list_update",
            "content": {
                "user_id": bob.user_id,
                "device_id": device_id,
                "stream_id": new_stream_id,
                "prev_id": prev_id,
                "deleted": False,
                "keys": dict(ghost.device_keys(), device_id=device_id),
            },
        }
        body = {"origin": b.server_name, "origin_server_ts": 0, "pdus": [], "edus": [edu]}
        ok(signed(b, a, "PUT", f"{FEDERATION}/send/{txn}", body))

    def devices() -> set[str]:
        return set(query(a, alice, {bob.user_id: []})["device_keys"][bob.user_id])

    # an update that follows on from what A holds is applied as sent: A asks nobody
    update(f"chain-{stream_id}", [stream_id], stream_id + 1000, "GHOST")
    poll(lambda: devices() == {bob.session.device_id, "GHOST"}, "the applied update")
    # so is one following several updates, all of which A holds
    update(f"chain2-{stream_id}", [stream_id, stream_id + 1000], stream_id + 1100, "GHOST2")
    poll(lambda: devices() == {bob.session.device_id, "GHOST", "GHOST2"}, "the second update")
    # one that follows an update A never had: A fetches bob's real list from B
    update(f"gap-{stream_id}", [stream_id + 1500], stream_id + 2000, "GHOST3")
    poll(lambda: devices() == {bob.session.device_id}, "the list fetched again")
    # an update claiming another server's user is not applied
    since = sync_token(a, alice)
    edu = {
        "edu_type": "m.device_list_update",
        "content": {
            "user_id": alice.user_id,
            "device_id": "FORGED",
            "stream_id": 1,
            "prev_id": [],
            "deleted": True,
        },
    }
    body = {"origin": b.server_name, "origin_server_ts": 0, "pdus": [], "edus": [edu]}
    ok(signed(b, a, "PUT", f"{FEDERATION}/send/forged-{stream_id}", body))
    response = ok(a.authed(alice, "GET", f"{CLIENT}/sync?since={quote(since)}&timeout=0"))
    assert alice.user_id not in response.get("device_lists", {}).get("changed", [])


# -- to-device ------------------------------------------------------------------------------


def to_device_messages(server: FederatingServer, session: Session, since: str) -> list[Any]:
    """Every to-device message synced from `since` until a sync brings none."""
    messages: list[Any] = []
    while True:
        response = ok(
            server.authed(session, "GET", f"{CLIENT}/sync?since={quote(since)}&timeout=2000")
        )
        events = response.get("to_device", {}).get("events", [])
        if not events:
            return messages
        messages.extend(events)
        since = response["next_batch"]


def test_to_device_messages_cross_servers_once(two_servers: ServerPair) -> None:
    a, b = two_servers
    alice = new_user(a, "alice")
    bob = new_user(b, "bob")
    content = {"secret": "the hatter"}
    path = f"{CLIENT}/sendToDevice/m.test.message/txn1"
    body = {"messages": {bob.user_id: {bob.device_id: content}}}
    ok(a.authed(alice, "PUT", path, body))
    # the client retries its transaction: nothing more is sent
    ok(a.authed(alice, "PUT", path, body))
    response = sync_until(
        b, bob, lambda r: bool(r.get("to_device", {}).get("events")), timeout=30.0
    )
    events = response["to_device"]["events"]
    assert events == [{"sender": alice.user_id, "type": "m.test.message", "content": content}]
    assert to_device_messages(b, bob, response["next_batch"]) == []

    # the same EDU in two transactions (a sender that retried it): delivered once
    since = sync_token(b, bob)
    edu = {
        "edu_type": "m.direct_to_device",
        "content": {
            "sender": alice.user_id,
            "type": "m.test.replayed",
            "message_id": f"replayed-{since}",
            "messages": {bob.user_id: {"*": {"n": 1}}},
        },
    }
    for txn in ("first", "second"):
        transaction = {"origin": a.server_name, "origin_server_ts": 0, "pdus": [], "edus": [edu]}
        ok(signed(a, b, "PUT", f"{FEDERATION}/send/replay-{txn}-{since}", transaction))
    # and one whose sender is not of the server that sent it is dropped
    forged = {
        "edu_type": "m.direct_to_device",
        "content": {
            "sender": "@mallory:" + b.server_name,
            "type": "m.test.forged",
            "message_id": f"forged-{since}",
            "messages": {bob.user_id: {"*": {"n": 2}}},
        },
    }
    transaction = {"origin": a.server_name, "origin_server_ts": 0, "pdus": [], "edus": [forged]}
    ok(signed(a, b, "PUT", f"{FEDERATION}/send/forged-{since}", transaction))
    received = to_device_messages(b, bob, since)
    assert [m["type"] for m in received] == ["m.test.replayed"]


# -- cross-signing across servers ---------------------------------------------------------------


def test_a_user_signs_the_master_key_of_a_user_of_the_other_server(
    two_servers: ServerPair,
) -> None:
    a, b = two_servers
    alice, carol = new_user(a, "alice"), new_user(a, "carol")
    bob = new_user(b, "bob")
    alice_keys = CrossSigning.for_user(alice.user_id)
    bob_keys = CrossSigning.for_user(bob.user_id)
    signing_upload = CLIENT + "/keys/device_signing/upload"
    ok(a.authed(alice, "POST", signing_upload, alice_keys.upload_body()))
    ok(b.authed(bob, "POST", signing_upload, bob_keys.upload_body()))
    bob_master = bob_keys.master.unsigned_json()
    assert query(a, alice, {bob.user_id: []})["master_keys"] == {bob.user_id: bob_master}

    signatures_upload = CLIENT + "/keys/signatures/upload"
    signed = sign_json(bob_master, alice.user_id, alice_keys.user_signing.signing)
    # signed with the wrong key, or a key bob does not have: refused, nothing kept
    forged = sign_json(bob_master, alice.user_id, alice_keys.self_signing.signing)
    unknown = dict(bob_master, keys={"ed25519:nosuchkey": "nosuchkey"})
    body = {
        bob.user_id: {
            bob_keys.master.public_key: forged,
            "nosuchkey": sign_json(unknown, alice.user_id, alice_keys.user_signing.signing),
        }
    }
    failures = ok(a.authed(alice, "POST", signatures_upload, body))["failures"][bob.user_id]
    assert failures[bob_keys.master.public_key]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures["nosuchkey"]["errcode"] == "M_NOT_FOUND"
    assert query(a, alice, {bob.user_id: []})["master_keys"] == {bob.user_id: bob_master}

    since = sync_token(a, alice)
    body = {bob.user_id: {bob_keys.master.public_key: signed}}
    assert ok(a.authed(alice, "POST", signatures_upload, body))["failures"] == {}
    # alice sees her signature on bob's master key, and her devices are told to look
    assert query(a, alice, {bob.user_id: []})["master_keys"] == {bob.user_id: signed}
    device_lists_after(a, alice, since, lambda s: bob.user_id in s.get("changed", []))
    # nobody else sees it: not carol on the same server, nor bob's own server
    assert query(a, carol, {bob.user_id: []})["master_keys"] == {bob.user_id: bob_master}
    assert query(b, bob, {bob.user_id: []})["master_keys"] == {bob.user_id: bob_master}


def test_updates_from_another_kind_of_server_are_fetched_applied_and_kept(
    two_servers: ServerPair, test_ca: FederationCA, tmp_path: Path
) -> None:
    """As SyTest's remote server does: an update for a user whose list we do not hold
    (no prev_id, keys in a shape of its own) makes us fetch the list; the next update,
    following on, is applied as sent, display name included; cross-signing keys arrive
    by m.signing_key_update; and what we hold is served while that server is down."""
    a, _ = two_servers
    alice = new_user(a, "alice")
    room = {"preset": "public_chat"}
    room_id: str = ok(a.authed(alice, "POST", CLIENT + "/createRoom", room))["room_id"]
    with FakeServer.running(test_ca, tmp_path / "fake") as fake:
        creator = fake.user("creator")
        fetches: list[ReceivedRequest] = []

        def user_devices(request: ReceivedRequest) -> tuple[int, Any]:
            fetches.append(request)
            device = {"device_id": "RANDOM", "keys": {"device_keys": {}}}
            return 200, {"user_id": creator, "stream_id": 1, "devices": [device]}

        fake.route("GET", f"{FEDERATION}/user/devices/", user_devices)
        fake.join(a, room_id, creator)
        since = sync_token(a, alice)

        def send_edus(txn: str, *edus: dict[str, Any]) -> None:
            reply = fake.send_transaction(a, txn, [], [dict(edu) for edu in edus])
            assert reply.status == 200, reply.body

        first = {"user_id": creator, "device_id": "RANDOM", "stream_id": 1}
        first["keys"] = {"device_keys": {}}
        send_edus("1", {"edu_type": "m.device_list_update", "content": first})
        device_lists_after(a, alice, since, lambda s: creator in s.get("changed", []))
        answer = query(a, alice, {creator: ["RANDOM"]})
        assert answer["device_keys"][creator]["RANDOM"]["device_keys"] == {}
        assert len(fetches) == 1
        assert fetches[0].path == f"{FEDERATION}/user/devices/{creator}"

        second = dict(first, stream_id=2, prev_id=[1], device_display_name="test display name")
        master = CrossSigning.for_user(creator).master.unsigned_json()
        signing_keys = {"user_id": creator, "master_key": master}
        send_edus(
            "2",
            {"edu_type": "m.device_list_update", "content": second},
            {"edu_type": "m.signing_key_update", "content": signing_keys},
        )

        def updated() -> bool:
            answer = query(a, alice, {creator: ["RANDOM"]})
            device = answer["device_keys"][creator]["RANDOM"]
            return (
                device["unsigned"].get("device_display_name") == "test display name"
                and answer["master_keys"].get(creator) == master
            )

        poll(updated, "the update applied")
        assert len(fetches) == 1

        # the creator's server goes down: what we hold is still served
        fake.route("GET", f"{FEDERATION}/user/devices/", lambda _: (503, {}))
        fake.route("POST", f"{FEDERATION}/user/keys/query", lambda _: (503, {}))
        answer = query(a, alice, {creator: []})
        assert answer["failures"] == {}
        assert set(answer["device_keys"][creator]) == {"RANDOM"}
