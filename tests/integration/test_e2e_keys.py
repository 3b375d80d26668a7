"""End-to-end encryption keys over real HTTP on both engines: device, one-time and fallback
keys, cross-signing keys and signatures, and the device_lists stream as /sync and
/keys/changes show it. Keys are real ed25519 keys, signed here the way a client signs."""

from __future__ import annotations

import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nacl.signing import SigningKey

from ranvier.protocol.signing import sign_json, verify_json
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.protocol.unpadded_base64 import encode_base64
from tests.integration.client import Reply
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    DEFAULT_PASSWORD,
    REGISTRATION_CONFIG,
    Session,
    authed,
    login,
    register,
)

CLIENT = "/_matrix/client/v3"
ALGORITHMS = ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]
OTK = "signed_curve25519"


server = module_server(
    # every sync here must be computed afresh, not repeated from the response cache
    caches={"sync_response_cache_duration": 0},
    allow_guest_access=True,
    **REGISTRATION_CONFIG,
)


_counter = iter(range(1_000_000))


def new_user(server: RunningServer, name: str) -> Session:
    return register(server.url, f"{name}{next(_counter)}")


def public_key(key: SigningKey) -> str:
    return encode_base64(bytes(key.verify_key))


@dataclass
class Device:
    """A client device with its own ed25519 identity key."""

    session: Session
    signing: ServerSigningKey = field(init=False)

    def __post_init__(self) -> None:
        self.signing = ServerSigningKey(f"ed25519:{self.session.device_id}", SigningKey.generate())

    @property
    def user_id(self) -> str:
        return self.session.user_id

    def sign(self, obj: dict[str, Any]) -> dict[str, Any]:
        return sign_json(obj, self.user_id, self.signing)

    def device_keys(self) -> dict[str, Any]:
        device_id = self.session.device_id
        return self.sign(
            {
                "user_id": self.user_id,
                "device_id": device_id,
                "algorithms": ALGORITHMS,
                "keys": {
                    f"curve25519:{device_id}": encode_base64(b"c" * 32),
                    f"ed25519:{device_id}": public_key(self.signing.signing_key),
                },
            }
        )

    def one_time_key(self, n: int, *, fallback: bool = False) -> dict[str, Any]:
        key: dict[str, Any] = {"key": encode_base64(n.to_bytes(32, "big"))}
        if fallback:
            key["fallback"] = True
        return self.sign(key)


@dataclass
class CrossSigningKey:
    user_id: str
    usage: str
    signing: ServerSigningKey = field(init=False)

    def __post_init__(self) -> None:
        key = SigningKey.generate()
        self.signing = ServerSigningKey(f"ed25519:{public_key(key)}", key)

    @property
    def public_key(self) -> str:
        return self.signing.key_id.partition(":")[2]

    def unsigned_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "usage": [self.usage],
            "keys": {self.signing.key_id: self.public_key},
        }

    def signed_by(self, master: CrossSigningKey) -> dict[str, Any]:
        return sign_json(self.unsigned_json(), self.user_id, master.signing)


@dataclass
class CrossSigning:
    master: CrossSigningKey
    self_signing: CrossSigningKey
    user_signing: CrossSigningKey

    @classmethod
    def for_user(cls, user_id: str) -> CrossSigning:
        return cls(
            CrossSigningKey(user_id, "master"),
            CrossSigningKey(user_id, "self_signing"),
            CrossSigningKey(user_id, "user_signing"),
        )

    def upload_body(self) -> dict[str, Any]:
        return {
            "master_key": self.master.unsigned_json(),
            "self_signing_key": self.self_signing.signed_by(self.master),
            "user_signing_key": self.user_signing.signed_by(self.master),
        }


def post(server: RunningServer, session: Session, path: str, body: Any) -> Reply:
    return authed(session, "POST", server.url + CLIENT + path, body)


def upload(server: RunningServer, session: Session, body: dict[str, Any]) -> Reply:
    return post(server, session, "/keys/upload", body)


def query(server: RunningServer, session: Session, wanted: dict[str, list[str]]) -> Any:
    reply = post(server, session, "/keys/query", {"device_keys": wanted})
    assert reply.status == 200, reply.body
    return reply.json()


def claim(server: RunningServer, session: Session, wanted: dict[str, dict[str, str]]) -> Any:
    reply = post(server, session, "/keys/claim", {"one_time_keys": wanted})
    assert reply.status == 200, reply.body
    return reply.json()


def sync(server: RunningServer, session: Session, since: str | None = None, **params: Any) -> Any:
    query_string = {**({"since": since} if since else {}), **{k: str(v) for k, v in params.items()}}
    url = f"{server.url}{CLIENT}/sync?{urllib.parse.urlencode(query_string)}"
    reply = authed(session, "GET", url)
    assert reply.status == 200, reply.body
    return reply.json()


def device_lists(body: Any) -> tuple[list[str], list[str]]:
    lists = body.get("device_lists", {})
    return lists.get("changed", []), lists.get("left", [])


def assert_error(reply: Reply, status: int, errcode: str) -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply.body


def shared_room(server: RunningServer, creator: Session, *others: Session) -> str:
    reply = post(server, creator, "/createRoom", {"preset": "public_chat"})
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    for other in others:
        join(server, other, room_id)
    return room_id


def join(server: RunningServer, session: Session, room_id: str) -> None:
    reply = post(server, session, f"/join/{room_id}", {})
    assert reply.status == 200, reply.body


def leave(server: RunningServer, session: Session, room_id: str) -> None:
    reply = post(server, session, f"/rooms/{room_id}/leave", {})
    assert reply.status == 200, reply.body


def password_auth(session: Session, uia_session: str) -> dict[str, Any]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": session.user_id},
        "password": DEFAULT_PASSWORD,
        "session": uia_session,
    }


# -- upload, query, claim ---------------------------------------------------------------------


def test_upload_query_claim_round_trip(server: RunningServer) -> None:
    alice, bob = Device(new_user(server, "alice")), new_user(server, "bob")
    body = {
        "device_keys": alice.device_keys(),
        "one_time_keys": {f"{OTK}:AAAA": alice.one_time_key(1)},
        "fallback_keys": {f"{OTK}:FFFF": alice.one_time_key(99, fallback=True)},
    }
    reply = upload(server, alice.session, body)
    assert reply.status == 200, reply.body
    assert reply.json() == {"one_time_key_counts": {OTK: 1}}
    # a later upload of more keys: claims hand out the older ones first
    reply = upload(server, alice.session, {"one_time_keys": {f"{OTK}:BBBB": alice.one_time_key(2)}})
    assert reply.json() == {"one_time_key_counts": {OTK: 2}}

    found = query(server, bob, {alice.user_id: []})
    assert found["failures"] == {}
    keys = found["device_keys"][alice.user_id][alice.session.device_id]
    assert keys["unsigned"] == {}
    assert {k: v for k, v in keys.items() if k != "unsigned"} == body["device_keys"]
    # what bob downloaded carries alice's device's own valid signature
    verify_json(keys, alice.user_id, {alice.signing.key_id: alice.signing.verify_key})
    # naming devices: a known one is there, an unknown one is left out
    named = query(server, bob, {alice.user_id: [alice.session.device_id, "NOSUCH"]})
    assert list(named["device_keys"][alice.user_id]) == [alice.session.device_id]
    assert query(server, bob, {alice.user_id: ["NOSUCH"]})["device_keys"] == {alice.user_id: {}}

    wanted = {alice.user_id: {alice.session.device_id: OTK}}
    first = claim(server, bob, wanted)
    assert first["failures"] == {}
    assert first["one_time_keys"] == {
        alice.user_id: {
            alice.session.device_id: {f"{OTK}:AAAA": body["one_time_keys"][f"{OTK}:AAAA"]}
        }
    }
    second = claim(server, bob, wanted)["one_time_keys"][alice.user_id][alice.session.device_id]
    assert list(second) == [f"{OTK}:BBBB"]
    # one-time keys exhausted: the fallback key, again and again
    for _ in range(2):
        fallback = claim(server, bob, wanted)["one_time_keys"][alice.user_id][
            alice.session.device_id
        ]
        assert fallback == {f"{OTK}:FFFF": body["fallback_keys"][f"{OTK}:FFFF"]}
    # an algorithm the device has no keys for, and an unknown device: nothing
    assert claim(server, bob, {alice.user_id: {alice.session.device_id: "other_algo"}}) == {
        "one_time_keys": {},
        "failures": {},
    }
    assert claim(server, bob, {alice.user_id: {"NOSUCH": OTK}})["one_time_keys"] == {}


def test_counts_and_fallback_use_reach_sync(server: RunningServer) -> None:
    alice, bob = Device(new_user(server, "alice")), new_user(server, "bob")
    initial = sync(server, alice.session)
    assert initial["device_one_time_keys_count"] == {}
    assert initial["device_unused_fallback_key_types"] == []
    upload(
        server,
        alice.session,
        {
            "device_keys": alice.device_keys(),
            "one_time_keys": {f"{OTK}:{n}": alice.one_time_key(n) for n in range(3)},
            "fallback_keys": {f"{OTK}:F1": alice.one_time_key(100, fallback=True)},
        },
    )
    body = sync(server, alice.session)
    assert body["device_one_time_keys_count"] == {OTK: 3}
    assert body["device_unused_fallback_key_types"] == [OTK]
    wanted = {alice.user_id: {alice.session.device_id: OTK}}
    for _ in range(4):
        claim(server, bob, wanted)
    # incremental, with nothing else new: the counts are still there
    later = sync(server, alice.session, body["next_batch"])
    assert later["device_one_time_keys_count"] == {}
    assert later["device_unused_fallback_key_types"] == []
    # the same fallback key again stays used; a new one replaces it, unused
    same = upload(
        server,
        alice.session,
        {"fallback_keys": {f"{OTK}:F1": alice.one_time_key(100, fallback=True)}},
    )
    assert same.status == 200
    assert sync(server, alice.session)["device_unused_fallback_key_types"] == []
    new = upload(
        server,
        alice.session,
        {"fallback_keys": {f"{OTK}:F2": alice.one_time_key(101, fallback=True)}},
    )
    assert new.status == 200
    assert sync(server, alice.session)["device_unused_fallback_key_types"] == [OTK]
    claimed = claim(server, bob, wanted)["one_time_keys"][alice.user_id][alice.session.device_id]
    assert list(claimed) == [f"{OTK}:F2"]


def test_upload_refusals_write_nothing(server: RunningServer) -> None:
    alice, bob = Device(new_user(server, "alice")), new_user(server, "bob")
    other = Device(bob)
    assert_error(
        upload(server, alice.session, {"device_keys": other.device_keys()}), 400, "M_INVALID_PARAM"
    )
    wrong_device = alice.device_keys()
    wrong_device["device_id"] = "SOMEOTHER"
    assert_error(
        upload(server, alice.session, {"device_keys": wrong_device}), 400, "M_INVALID_PARAM"
    )
    keys = alice.device_keys()
    otk = {f"{OTK}:A": alice.one_time_key(1)}
    assert upload(server, alice.session, {"device_keys": keys, "one_time_keys": otk}).status == 200
    # the same keys again are fine
    again = upload(server, alice.session, {"device_keys": keys, "one_time_keys": otk})
    assert again.json() == {"one_time_key_counts": {OTK: 1}}
    # a one-time key ID reused with other content: refused, and the new key beside it too
    clash = {f"{OTK}:A": alice.one_time_key(2), f"{OTK}:B": alice.one_time_key(3)}
    assert_error(upload(server, alice.session, {"one_time_keys": clash}), 400, "M_INVALID_PARAM")
    assert upload(server, alice.session, {}).json() == {"one_time_key_counts": {OTK: 1}}
    bad_bodies: list[dict[str, Any]] = [
        {"one_time_keys": {"no_colon": alice.one_time_key(4)}},
        {"one_time_keys": {f"{OTK}:C": 5}},
        {"one_time_keys": ["not", "an", "object"]},
        {"fallback_keys": {f"{OTK}:X": alice.one_time_key(6), f"{OTK}:Y": alice.one_time_key(7)}},
        {"device_keys": {"user_id": alice.user_id}},
        {"device_keys": "keys"},
    ]
    for body in bad_bodies:
        assert_error(upload(server, alice.session, body), 400, "M_BAD_JSON")
    assert upload(server, alice.session, {}).json() == {"one_time_key_counts": {OTK: 1}}
    stored = query(server, bob, {alice.user_id: []})["device_keys"][alice.user_id]
    assert {k: v for k, v in stored[alice.session.device_id].items() if k != "unsigned"} == keys
    unauthenticated = authed(
        Session(alice.user_id, "not-a-token", "X"), "POST", server.url + CLIENT + "/keys/upload", {}
    )
    assert_error(unauthenticated, 401, "M_UNKNOWN_TOKEN")


def test_query_and_claim_refusals_and_remote_users(server: RunningServer) -> None:
    alice = new_user(server, "alice")
    assert_error(post(server, alice, "/keys/query", {}), 400, "M_MISSING_PARAM")
    assert_error(post(server, alice, "/keys/query", {"device_keys": []}), 400, "M_BAD_JSON")
    assert_error(
        post(server, alice, "/keys/query", {"device_keys": {alice.user_id: [1]}}), 400, "M_BAD_JSON"
    )
    assert_error(
        post(server, alice, "/keys/query", {"device_keys": {"alice": []}}), 400, "M_INVALID_PARAM"
    )
    assert_error(post(server, alice, "/keys/claim", {}), 400, "M_MISSING_PARAM")
    assert_error(
        post(server, alice, "/keys/claim", {"one_time_keys": {alice.user_id: ["X"]}}),
        400,
        "M_BAD_JSON",
    )
    assert_error(
        post(server, alice, "/keys/claim", {"one_time_keys": {alice.user_id: {"X": 3}}}),
        400,
        "M_BAD_JSON",
    )
    # other servers cannot be reached without federation
    remote = query(server, alice, {"@someone:remote.example": []})
    assert remote["device_keys"] == {}
    assert list(remote["failures"]) == ["remote.example"]
    claimed = claim(server, alice, {"@someone:remote.example": {"DEV": OTK}})
    assert claimed["one_time_keys"] == {}
    assert list(claimed["failures"]) == ["remote.example"]


def test_concurrent_claims_never_hand_out_a_key_twice(server: RunningServer) -> None:
    alice, bob = Device(new_user(server, "alice")), new_user(server, "bob")
    keys = {f"{OTK}:K{n:02d}": alice.one_time_key(n) for n in range(20)}
    assert upload(server, alice.session, {"one_time_keys": keys}).status == 200
    wanted = {alice.user_id: {alice.session.device_id: OTK}}

    def one_claim(_: int) -> list[str]:
        body = claim(server, bob, wanted)
        return list(body["one_time_keys"].get(alice.user_id, {}).get(alice.session.device_id, {}))

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(one_claim, range(30)))
    handed_out = [key for result in results for key in result]
    assert sorted(handed_out) == sorted(keys)
    assert sum(1 for result in results if not result) == 10
    assert upload(server, alice.session, {}).json() == {"one_time_key_counts": {}}


# -- device lists -------------------------------------------------------------------------------


def test_device_lists_in_sync_for_room_mates_not_strangers(server: RunningServer) -> None:
    alice = Device(new_user(server, "alice"))
    bob, carol = new_user(server, "bob"), new_user(server, "carol")
    room = shared_room(server, alice.session, bob)
    bob_since = sync(server, bob)["next_batch"]
    carol_since = sync(server, carol)["next_batch"]
    alice_since = sync(server, alice.session)["next_batch"]
    assert upload(server, alice.session, {"device_keys": alice.device_keys()}).status == 200

    bob_sync = sync(server, bob, bob_since)
    assert device_lists(bob_sync) == ([alice.user_id], [])
    assert device_lists(sync(server, alice.session, alice_since))[0] == [alice.user_id]
    assert "device_lists" not in sync(server, carol, carol_since)
    # told once: the next sync from there has nothing more
    assert "device_lists" not in sync(server, bob, bob_sync["next_batch"])

    # carol joins: she and the members now share a room, both ways
    bob_since = bob_sync["next_batch"]
    carol_since = sync(server, carol)["next_batch"]
    join(server, carol, room)
    assert device_lists(sync(server, bob, bob_since)) == ([carol.user_id], [])
    carol_sync = sync(server, carol, carol_since)
    assert device_lists(carol_sync) == (sorted([alice.user_id, bob.user_id]), [])

    # carol leaves: no room shared any more
    bob_since = sync(server, bob)["next_batch"]
    carol_since = carol_sync["next_batch"]
    leave(server, carol, room)
    assert device_lists(sync(server, bob, bob_since)) == ([], [carol.user_id])
    assert device_lists(sync(server, carol, carol_since)) == (
        [],
        sorted([alice.user_id, bob.user_id]),
    )


def test_a_waiting_sync_wakes_when_a_room_mate_uploads_keys(server: RunningServer) -> None:
    alice, bob = Device(new_user(server, "alice")), new_user(server, "bob")
    shared_room(server, alice.session, bob)
    since = sync(server, bob)["next_batch"]
    result: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        result["body"] = sync(server, bob, since, timeout=8000)
        result["took"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    assert upload(server, alice.session, {"device_keys": alice.device_keys()}).status == 200
    waiter.join(15)
    assert result["took"] < 4
    assert device_lists(result["body"]) == ([alice.user_id], [])


def test_keys_changes_between_two_tokens(server: RunningServer) -> None:
    alice, bob = Device(new_user(server, "alice")), new_user(server, "bob")
    carol = Device(new_user(server, "carol"))
    shared_room(server, alice.session, bob)
    start = sync(server, bob)["next_batch"]
    upload(server, alice.session, {"device_keys": alice.device_keys()})
    upload(server, carol.session, {"device_keys": carol.device_keys()})
    end = sync(server, bob, start)["next_batch"]

    def changes(from_token: str, to_token: str) -> Reply:
        params = urllib.parse.urlencode({"from": from_token, "to": to_token})
        return authed(bob, "GET", f"{server.url}{CLIENT}/keys/changes?{params}")

    reply = changes(start, end)
    assert reply.status == 200, reply.body
    assert reply.json() == {"changed": [alice.user_id], "left": []}
    assert changes(end, end).json() == {"changed": [], "left": []}
    assert_error(changes("nonsense", end), 400, "M_INVALID_PARAM")
    missing = authed(bob, "GET", f"{server.url}{CLIENT}/keys/changes?from={start}")
    assert_error(missing, 400, "M_MISSING_PARAM")


def test_deleting_a_device_deletes_its_keys_and_tells_room_mates(server: RunningServer) -> None:
    alice_session = new_user(server, "alice")
    bob = new_user(server, "bob")
    phone = Device(login(server.url, alice_session.user_id.split(":")[0][1:]))
    shared_room(server, alice_session, bob)
    upload(
        server,
        phone.session,
        {
            "device_keys": phone.device_keys(),
            "one_time_keys": {f"{OTK}:A": phone.one_time_key(1)},
            "fallback_keys": {f"{OTK}:F": phone.one_time_key(2, fallback=True)},
        },
    )
    assert (
        phone.session.device_id
        in query(server, bob, {phone.user_id: []})["device_keys"][phone.user_id]
    )
    since = sync(server, bob)["next_batch"]
    url = f"{server.url}{CLIENT}/devices/{phone.session.device_id}"
    first = authed(alice_session, "DELETE", url, {})
    assert first.status == 401
    done = authed(
        alice_session,
        "DELETE",
        url,
        {"auth": password_auth(alice_session, first.json()["session"])},
    )
    assert done.status == 200, done.body
    assert query(server, bob, {phone.user_id: []})["device_keys"] == {phone.user_id: {}}
    assert (
        claim(server, bob, {phone.user_id: {phone.session.device_id: OTK}})["one_time_keys"] == {}
    )
    assert device_lists(sync(server, bob, since)) == ([phone.user_id], [])


def test_renaming_a_device_shows_in_queries_and_device_lists(server: RunningServer) -> None:
    alice, bob = Device(new_user(server, "alice")), new_user(server, "bob")
    shared_room(server, alice.session, bob)
    upload(server, alice.session, {"device_keys": alice.device_keys()})
    since = sync(server, bob)["next_batch"]
    url = f"{server.url}{CLIENT}/devices/{alice.session.device_id}"
    assert authed(alice.session, "PUT", url, {"display_name": "Alice's phone"}).status == 200
    keys = query(server, bob, {alice.user_id: []})["device_keys"][alice.user_id]
    assert keys[alice.session.device_id]["unsigned"] == {"device_display_name": "Alice's phone"}
    assert device_lists(sync(server, bob, since)) == ([alice.user_id], [])


# -- cross-signing ------------------------------------------------------------------------------


def device_signing_upload(server: RunningServer, session: Session, body: dict[str, Any]) -> Reply:
    return post(server, session, "/keys/device_signing/upload", body)


def test_cross_signing_upload_and_query(server: RunningServer) -> None:
    alice, bob = new_user(server, "alice"), new_user(server, "bob")
    keys = CrossSigning.for_user(alice.user_id)
    shared_room(server, alice, bob)
    since = sync(server, bob)["next_batch"]
    # the first upload needs no user-interactive auth
    reply = device_signing_upload(server, alice, keys.upload_body())
    assert reply.status == 200, reply.body
    assert device_lists(sync(server, bob, since)) == ([alice.user_id], [])
    seen_by_bob = query(server, bob, {alice.user_id: []})
    assert seen_by_bob["master_keys"] == {alice.user_id: keys.master.unsigned_json()}
    assert seen_by_bob["self_signing_keys"] == {
        alice.user_id: keys.self_signing.signed_by(keys.master)
    }
    assert seen_by_bob["user_signing_keys"] == {}
    seen_by_alice = query(server, alice, {alice.user_id: []})
    assert seen_by_alice["user_signing_keys"] == {
        alice.user_id: keys.user_signing.signed_by(keys.master)
    }
    # the same keys again (a retry) need no auth either
    assert device_signing_upload(server, alice, keys.upload_body()).status == 200
    # new keys do
    replacement = CrossSigning.for_user(alice.user_id)
    challenge = device_signing_upload(server, alice, replacement.upload_body())
    assert challenge.status == 401, challenge.body
    assert {"stages": ["m.login.password"]} in challenge.json()["flows"]
    assert query(server, bob, {alice.user_id: []})["master_keys"][alice.user_id] == (
        keys.master.unsigned_json()
    )
    authorised = device_signing_upload(
        server,
        alice,
        {**replacement.upload_body(), "auth": password_auth(alice, challenge.json()["session"])},
    )
    assert authorised.status == 200, authorised.body
    assert query(server, bob, {alice.user_id: []})["master_keys"][alice.user_id] == (
        replacement.master.unsigned_json()
    )
    # a new self-signing key alone is checked against the stored master key (auth needed)
    lone = CrossSigningKey(alice.user_id, "self_signing")
    challenge = device_signing_upload(
        server, alice, {"self_signing_key": lone.signed_by(keys.master)}
    )
    assert challenge.status == 401
    refused = device_signing_upload(
        server,
        alice,
        {
            "self_signing_key": lone.signed_by(keys.master),
            "auth": password_auth(alice, challenge.json()["session"]),
        },
    )
    assert_error(refused, 400, "M_INVALID_SIGNATURE")


def test_cross_signing_upload_refusals(server: RunningServer) -> None:
    alice = new_user(server, "alice")
    keys = CrossSigning.for_user(alice.user_id)
    body = keys.upload_body()
    wrong_usage = {**body, "master_key": {**body["master_key"], "usage": ["self_signing"]}}
    assert_error(device_signing_upload(server, alice, wrong_usage), 400, "M_INVALID_PARAM")
    wrong_user = {**body, "master_key": {**body["master_key"], "user_id": "@bob:test.localhost"}}
    assert_error(device_signing_upload(server, alice, wrong_user), 400, "M_INVALID_PARAM")
    two_keys = dict(body["master_key"])
    two_keys["keys"] = {**two_keys["keys"], "ed25519:other": "other"}
    assert_error(
        device_signing_upload(server, alice, {**body, "master_key": two_keys}),
        400,
        "M_INVALID_PARAM",
    )
    unsigned_ssk = {**body, "self_signing_key": keys.self_signing.unsigned_json()}
    assert_error(device_signing_upload(server, alice, unsigned_ssk), 400, "M_INVALID_SIGNATURE")
    wrongly_signed = {**body, "user_signing_key": keys.user_signing.signed_by(keys.self_signing)}
    assert_error(device_signing_upload(server, alice, wrongly_signed), 400, "M_INVALID_SIGNATURE")
    no_master = {"self_signing_key": keys.self_signing.signed_by(keys.master)}
    assert_error(device_signing_upload(server, alice, no_master), 400, "M_MISSING_PARAM")
    # nothing of the refused uploads was kept
    assert query(server, alice, {alice.user_id: []})["master_keys"] == {}
    # a public key that is one of the user's device IDs
    clash = CrossSigning.for_user(alice.user_id)
    localpart = alice.user_id.split(":")[0][1:]
    login(server.url, localpart, device_id=clash.master.public_key)
    assert_error(device_signing_upload(server, alice, clash.upload_body()), 403, "M_FORBIDDEN")


# -- signatures -------------------------------------------------------------------------------


def impostor(key: CrossSigningKey) -> ServerSigningKey:
    """Another private key that claims to be `key`: its signatures do not verify."""
    return ServerSigningKey(key.signing.key_id, SigningKey.generate())


def signatures_upload(server: RunningServer, session: Session, body: dict[str, Any]) -> Any:
    reply = post(server, session, "/keys/signatures/upload", body)
    assert reply.status == 200, reply.body
    return reply.json()


def test_signature_upload_and_what_queries_show(server: RunningServer) -> None:
    alice, bob = Device(new_user(server, "alice")), Device(new_user(server, "bob"))
    alice_keys = CrossSigning.for_user(alice.user_id)
    bob_keys = CrossSigning.for_user(bob.user_id)
    upload(server, alice.session, {"device_keys": alice.device_keys()})
    upload(server, bob.session, {"device_keys": bob.device_keys()})
    assert device_signing_upload(server, alice.session, alice_keys.upload_body()).status == 200
    assert device_signing_upload(server, bob.session, bob_keys.upload_body()).status == 200
    device_id = alice.session.device_id

    # alice's self-signing key signs her device; her device signs her master key
    signed_device = sign_json(alice.device_keys(), alice.user_id, alice_keys.self_signing.signing)
    signed_master = alice.sign(alice_keys.master.unsigned_json())
    # alice's user-signing key signs bob's master key
    signed_bob = sign_json(
        bob_keys.master.unsigned_json(), alice.user_id, alice_keys.user_signing.signing
    )
    answer = signatures_upload(
        server,
        alice.session,
        {
            alice.user_id: {device_id: signed_device, alice_keys.master.public_key: signed_master},
            bob.user_id: {bob_keys.master.public_key: signed_bob},
        },
    )
    assert answer == {"failures": {}}

    seen = query(server, alice.session, {alice.user_id: [], bob.user_id: []})
    device = seen["device_keys"][alice.user_id][device_id]
    ssk_id = alice_keys.self_signing.signing.key_id
    assert (
        device["signatures"][alice.user_id][ssk_id]
        == signed_device["signatures"][alice.user_id][ssk_id]
    )
    verify_json(device, alice.user_id, {ssk_id: alice_keys.self_signing.signing.verify_key})
    master = seen["master_keys"][alice.user_id]
    verify_json(master, alice.user_id, {alice.signing.key_id: alice.signing.verify_key})
    usk_id = alice_keys.user_signing.signing.key_id
    bob_master = seen["master_keys"][bob.user_id]
    verify_json(bob_master, alice.user_id, {usk_id: alice_keys.user_signing.signing.verify_key})
    # alice's signature of bob's key is hers: bob's view of his own key does not carry it
    bob_view = query(server, bob.session, {bob.user_id: []})["master_keys"][bob.user_id]
    assert alice.user_id not in bob_view.get("signatures", {})
    # but everyone sees alice's own signatures of her keys
    carol = new_user(server, "carol")
    carol_view = query(server, carol, {alice.user_id: []})
    assert (
        ssk_id in carol_view["device_keys"][alice.user_id][device_id]["signatures"][alice.user_id]
    )


def test_signature_upload_failures(server: RunningServer) -> None:
    alice, bob = Device(new_user(server, "alice")), Device(new_user(server, "bob"))
    alice_keys = CrossSigning.for_user(alice.user_id)
    bob_keys = CrossSigning.for_user(bob.user_id)
    upload(server, alice.session, {"device_keys": alice.device_keys()})
    device_id = alice.session.device_id
    # before any cross-signing keys: nothing to sign with
    early = signatures_upload(
        server,
        alice.session,
        {
            alice.user_id: {
                device_id: sign_json(
                    alice.device_keys(), alice.user_id, alice_keys.self_signing.signing
                )
            }
        },
    )
    assert early["failures"][alice.user_id][device_id]["errcode"] == "M_NOT_FOUND"
    assert device_signing_upload(server, alice.session, alice_keys.upload_body()).status == 200

    forged = sign_json(alice.device_keys(), alice.user_id, impostor(alice_keys.self_signing))
    changed = dict(alice.device_keys())
    changed["algorithms"] = ["something.else"]
    changed = sign_json(changed, alice.user_id, alice_keys.self_signing.signing)
    good = sign_json(alice.device_keys(), alice.user_id, alice_keys.self_signing.signing)
    answer = signatures_upload(
        server,
        alice.session,
        {
            alice.user_id: {"NOSUCHDEVICE": good, device_id: forged},
            bob.user_id: {"not-his-master": {"user_id": bob.user_id}},
            "@someone:remote.example": {"KEY": {}},
        },
    )
    failures = answer["failures"]
    assert failures[alice.user_id]["NOSUCHDEVICE"]["errcode"] == "M_NOT_FOUND"
    assert failures[alice.user_id][device_id]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures[bob.user_id]["not-his-master"]["errcode"] == "M_NOT_FOUND"
    assert "@someone:remote.example" in failures
    mismatch = signatures_upload(server, alice.session, {alice.user_id: {device_id: changed}})
    assert mismatch["failures"][alice.user_id][device_id]["errcode"] == "M_INVALID_PARAM"
    # nothing of the failed ones was kept; a good one in the same request as a bad one is
    ssk_id = alice_keys.self_signing.signing.key_id
    shown = query(server, alice.session, {alice.user_id: []})["device_keys"][alice.user_id]
    assert ssk_id not in shown[device_id]["signatures"][alice.user_id]
    both = signatures_upload(
        server,
        alice.session,
        {
            alice.user_id: {device_id: good},
            bob.user_id: {"not-his-master": {"user_id": bob.user_id}},
        },
    )
    assert list(both["failures"]) == [bob.user_id]
    shown = query(server, alice.session, {alice.user_id: []})["device_keys"][alice.user_id]
    assert ssk_id in shown[device_id]["signatures"][alice.user_id]
    assert device_signing_upload(server, bob.session, bob_keys.upload_body()).status == 200
    bad_usk = sign_json(
        bob_keys.master.unsigned_json(), alice.user_id, impostor(alice_keys.user_signing)
    )
    wrong = signatures_upload(
        server, alice.session, {bob.user_id: {bob_keys.master.public_key: bad_usk}}
    )
    assert (
        wrong["failures"][bob.user_id][bob_keys.master.public_key]["errcode"]
        == "M_INVALID_SIGNATURE"
    )
    # the master key signed by something that is not one of alice's devices
    by_stranger = sign_json(alice_keys.master.unsigned_json(), alice.user_id, bob.signing)
    stranger = signatures_upload(
        server, alice.session, {alice.user_id: {alice_keys.master.public_key: by_stranger}}
    )
    assert (
        stranger["failures"][alice.user_id][alice_keys.master.public_key]["errcode"]
        == "M_INVALID_SIGNATURE"
    )
    not_object = post(server, alice.session, "/keys/signatures/upload", {alice.user_id: []})
    assert_error(not_object, 400, "M_BAD_JSON")


def test_device_keys_again_with_more_signatures(server: RunningServer) -> None:
    # matrix-js-sdk's Rust crypto re-sends its first upload with its self-signing key's
    # signature added when cross-signing was set up before that upload was answered
    alice, bob = Device(new_user(server, "alice")), new_user(server, "bob")
    shared_room(server, alice.session, bob)
    keys = alice.device_keys()
    otk = {f"{OTK}:A": alice.one_time_key(1)}
    assert upload(server, alice.session, {"device_keys": keys, "one_time_keys": otk}).status == 200
    bob_since = sync(server, bob)["next_batch"]
    self_signing = CrossSigningKey(alice.user_id, "self_signing")
    more = sign_json(keys, alice.user_id, self_signing.signing)
    again = upload(server, alice.session, {"device_keys": more, "one_time_keys": otk})
    assert again.json() == {"one_time_key_counts": {OTK: 1}}

    shown = query(server, bob, {alice.user_id: []})["device_keys"][alice.user_id]
    signatures = shown[alice.session.device_id]["signatures"][alice.user_id]
    assert set(signatures) == {alice.signing.key_id, self_signing.signing.key_id}
    # room-mates hear of it, to fetch the keys again
    assert device_lists(sync(server, bob, bob_since)) == ([alice.user_id], [])
    # an upload without the new signature takes nothing away
    assert upload(server, alice.session, {"device_keys": keys}).status == 200
    shown = query(server, bob, {alice.user_id: []})["device_keys"][alice.user_id]
    assert set(shown[alice.session.device_id]["signatures"][alice.user_id]) == set(signatures)


def test_the_same_first_upload_sent_concurrently(server: RunningServer) -> None:
    # the Rust crypto SDK sends its first upload again before the first answer arrives;
    # a few fresh devices, as the collision depends on timing
    for _ in range(3):
        alice = Device(new_user(server, "alice"))
        otks = {f"{OTK}:K{n:02d}": alice.one_time_key(n) for n in range(50)}
        body = {"device_keys": alice.device_keys(), "one_time_keys": otks}
        with ThreadPoolExecutor(max_workers=4) as pool:
            sent = [pool.submit(upload, server, alice.session, body) for _ in range(4)]
            replies = [future.result() for future in sent]
        assert [(r.status, r.json()) for r in replies] == [
            (200, {"one_time_key_counts": {OTK: 50}})
        ] * 4
