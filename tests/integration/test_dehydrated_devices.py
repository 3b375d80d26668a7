"""Dehydrated devices (MSC3814, org.matrix.msc3814.v1) over real HTTP on both engines: a
client stores a device with its keys, others send it to-device messages, and a later login
reads them back page by page."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from nacl.signing import SigningKey

from ranvier.protocol.signing import sign_json
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.protocol.unpadded_base64 import encode_base64
from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    DEFAULT_PASSWORD,
    REGISTRATION_CONFIG,
    Session,
    admin_deactivate,
    authed,
    make_admin,
    reactivated,
    register,
)

DEHYDRATED = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"
ALGORITHMS = ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"]
DEVICE_DATA = {"algorithm": "m.dehydration.v1.olm", "device_pickle": "b64+pickle", "nonce": "n"}

_counter = iter(range(1_000_000))


server = module_server(
    caches={"sync_response_cache_duration": 0},
    **REGISTRATION_CONFIG,
)


def new_user(server: RunningServer) -> Session:
    return register(server.url, f"hydra{next(_counter)}")


def device_keys(user_id: str, device_id: str, **extra: Any) -> dict[str, Any]:
    signing = ServerSigningKey(f"ed25519:{device_id}", SigningKey.generate())
    keys = {
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ALGORITHMS,
        "keys": {
            f"curve25519:{device_id}": encode_base64(b"c" * 32),
            f"ed25519:{device_id}": encode_base64(bytes(signing.signing_key.verify_key)),
        },
        **extra,
    }
    return sign_json(keys, user_id, signing)


def dehydration_body(user_id: str, device_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "device_id": device_id,
        "device_data": DEVICE_DATA,
        "initial_device_display_name": "Dehydrated device",
        # the flag clients set so others do not show it as a device (MSC3814)
        "device_keys": device_keys(user_id, device_id, dehydrated=True),
        "one_time_keys": {"curve25519:AAAAAQ": encode_base64(b"o" * 32)},
        "fallback_keys": {"curve25519:AAAAAg": {"key": encode_base64(b"f" * 32), "fallback": True}},
    }
    body.update(overrides)
    return body


def call(server: RunningServer, who: Session, method: str, path: str, body: Any = None) -> Reply:
    return authed(who, method, server.url + path, body)


def put_dehydrated(server: RunningServer, who: Session, body: dict[str, Any]) -> Reply:
    return call(server, who, "PUT", DEHYDRATED, body)


def events(server: RunningServer, who: Session, device_id: str, body: Any = None) -> Reply:
    return call(server, who, "POST", f"{DEHYDRATED}/{quote(device_id, safe='')}/events", body or {})


def assert_error(reply: Reply, status: int, errcode: str) -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply.body


def queried_devices(server: RunningServer, who: Session, user_id: str) -> dict[str, Any]:
    reply = call(server, who, "POST", CLIENT + "/keys/query", {"device_keys": {user_id: []}})
    assert reply.status == 200, reply.body
    found: dict[str, Any] = reply.json()["device_keys"].get(user_id, {})
    return found


def device_ids(server: RunningServer, who: Session) -> set[str]:
    reply = call(server, who, "GET", CLIENT + "/devices")
    return {device["device_id"] for device in reply.json()["devices"]}


def send_to_device(
    server: RunningServer, sender: Session, user_id: str, device_id: str, n: int
) -> None:
    reply = call(
        server,
        sender,
        "PUT",
        f"{CLIENT}/sendToDevice/m.room.encrypted/txn{next(_counter)}",
        {"messages": {user_id: {device_id: {"n": n}}}},
    )
    assert reply.status == 200, reply.body


def test_no_dehydrated_device(server: RunningServer) -> None:
    alice = new_user(server)
    assert_error(call(server, alice, "GET", DEHYDRATED), 404, "M_NOT_FOUND")
    assert_error(call(server, alice, "DELETE", DEHYDRATED), 404, "M_NOT_FOUND")
    assert_error(events(server, alice, "ANYTHING"), 403, "M_FORBIDDEN")


def test_the_feature_is_advertised(server: RunningServer) -> None:
    reply = request("GET", server.url + "/_matrix/client/versions")
    assert reply.json()["unstable_features"]["org.matrix.msc3814"] is True


def test_store_and_fetch_a_dehydrated_device(server: RunningServer) -> None:
    alice, bob = new_user(server), new_user(server)
    body = dehydration_body(alice.user_id, "DEHYDRATED1")
    reply = put_dehydrated(server, alice, body)
    assert (reply.status, reply.json()) == (200, {"device_id": "DEHYDRATED1"})
    got = call(server, alice, "GET", DEHYDRATED)
    assert (got.status, got.json()) == (
        200,
        {"device_id": "DEHYDRATED1", "device_data": DEVICE_DATA},
    )
    # its keys are published like any device's, so others can encrypt to it
    published = queried_devices(server, bob, alice.user_id)["DEHYDRATED1"]
    assert published["keys"] == body["device_keys"]["keys"]
    assert published["dehydrated"] is True
    claimed = call(
        server,
        bob,
        "POST",
        CLIENT + "/keys/claim",
        {"one_time_keys": {alice.user_id: {"DEHYDRATED1": "curve25519"}}},
    )
    assert claimed.json()["one_time_keys"][alice.user_id]["DEHYDRATED1"] == {
        "curve25519:AAAAAQ": body["one_time_keys"]["curve25519:AAAAAQ"]
    }
    # a device of the account, with the name the client gave it
    listed = call(server, alice, "GET", CLIENT + "/devices/DEHYDRATED1").json()
    assert listed["display_name"] == "Dehydrated device"


def test_a_new_dehydrated_device_replaces_the_old_one(server: RunningServer) -> None:
    alice = new_user(server)
    assert put_dehydrated(server, alice, dehydration_body(alice.user_id, "OLD")).status == 200
    new_data = {"algorithm": "m.dehydration.v1.olm", "device_pickle": "newer"}
    reply = put_dehydrated(
        server, alice, dehydration_body(alice.user_id, "NEW", device_data=new_data)
    )
    assert (reply.status, reply.json()) == (200, {"device_id": "NEW"})
    assert call(server, alice, "GET", DEHYDRATED).json() == {
        "device_id": "NEW",
        "device_data": new_data,
    }
    # (alice's own device has uploaded no keys)
    assert set(queried_devices(server, alice, alice.user_id)) == {"NEW"}
    assert device_ids(server, alice) == {alice.device_id, "NEW"}
    # storing one under the same ID again replaces it too
    again = put_dehydrated(server, alice, dehydration_body(alice.user_id, "NEW"))
    assert again.status == 200, again.body
    assert call(server, alice, "GET", DEHYDRATED).json()["device_data"] == DEVICE_DATA


def test_to_device_messages_are_read_in_pages_and_deleted_once_acknowledged(
    server: RunningServer,
) -> None:
    alice, bob = new_user(server), new_user(server)
    assert put_dehydrated(server, alice, dehydration_body(alice.user_id, "HYDRA")).status == 200
    for n in range(120):
        send_to_device(server, bob, alice.user_id, "HYDRA", n)

    first = events(server, alice, "HYDRA")
    assert first.status == 200, first.body
    page = first.json()
    assert [event["content"]["n"] for event in page["events"]] == list(range(100))
    assert page["events"][0] == {
        "type": "m.room.encrypted",
        "sender": bob.user_id,
        "content": {"n": 0},
    }
    assert isinstance(page["next_batch"], str)
    # asking again without the token hands out the same page: nothing was acknowledged
    assert events(server, alice, "HYDRA").json() == page

    second = events(server, alice, "HYDRA", {"next_batch": page["next_batch"]}).json()
    assert [event["content"]["n"] for event in second["events"]] == list(range(100, 120))
    last = events(server, alice, "HYDRA", {"next_batch": second["next_batch"]}).json()
    assert last["events"] == []
    # the acknowledged messages are gone: a fresh start sees none
    assert events(server, alice, "HYDRA").json()["events"] == []
    # a message sent later is there for the next page
    send_to_device(server, bob, alice.user_id, "HYDRA", 999)
    more = events(server, alice, "HYDRA", {"next_batch": last["next_batch"]}).json()
    assert [event["content"]["n"] for event in more["events"]] == [999]


def test_a_wildcard_to_device_message_reaches_the_dehydrated_device(server: RunningServer) -> None:
    alice, bob = new_user(server), new_user(server)
    assert put_dehydrated(server, alice, dehydration_body(alice.user_id, "HYDRA")).status == 200
    send_to_device(server, bob, alice.user_id, "*", 7)
    got = events(server, alice, "HYDRA").json()
    assert [event["content"] for event in got["events"]] == [{"n": 7}]


def test_events_refusals(server: RunningServer) -> None:
    alice, bob = new_user(server), new_user(server)
    assert put_dehydrated(server, alice, dehydration_body(alice.user_id, "HYDRA")).status == 200
    # only the dehydrated device's messages, and only its owner's
    assert_error(events(server, alice, alice.device_id), 403, "M_FORBIDDEN")
    assert_error(events(server, bob, "HYDRA"), 403, "M_FORBIDDEN")
    for token in ["12", "dx", "d", "d-1", "s5"]:
        assert_error(events(server, alice, "HYDRA", {"next_batch": token}), 400, "M_INVALID_PARAM")
    assert_error(events(server, alice, "HYDRA", {"next_batch": 5}), 400, "M_BAD_JSON")
    assert_error(events(server, alice, "HYDRA", b"not json"), 400, "M_NOT_JSON")


def test_delete_the_dehydrated_device(server: RunningServer) -> None:
    alice = new_user(server)
    assert put_dehydrated(server, alice, dehydration_body(alice.user_id, "HYDRA")).status == 200
    reply = call(server, alice, "DELETE", DEHYDRATED)
    assert (reply.status, reply.json()) == (200, {"device_id": "HYDRA"})
    assert_error(call(server, alice, "GET", DEHYDRATED), 404, "M_NOT_FOUND")
    assert_error(call(server, alice, "DELETE", DEHYDRATED), 404, "M_NOT_FOUND")
    assert_error(events(server, alice, "HYDRA"), 403, "M_FORBIDDEN")
    assert "HYDRA" not in queried_devices(server, alice, alice.user_id)
    assert device_ids(server, alice) == {alice.device_id}


def test_deleting_the_device_itself_removes_the_dehydrated_device(server: RunningServer) -> None:
    localpart = f"hydra{next(_counter)}"
    alice = register(server.url, localpart)
    assert put_dehydrated(server, alice, dehydration_body(alice.user_id, "HYDRA")).status == 200
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": DEFAULT_PASSWORD,
    }
    done = call(server, alice, "DELETE", CLIENT + "/devices/HYDRA", {"auth": auth})
    assert done.status == 200, done.body
    assert_error(call(server, alice, "GET", DEHYDRATED), 404, "M_NOT_FOUND")


@pytest.mark.parametrize(
    ("change", "status", "errcode"),
    [
        ({"device_id": None}, 400, "M_MISSING_PARAM"),
        ({"device_id": 5}, 400, "M_BAD_JSON"),
        ({"device_id": ""}, 400, "M_INVALID_PARAM"),
        ({"device_data": None}, 400, "M_MISSING_PARAM"),
        ({"device_data": "pickle"}, 400, "M_BAD_JSON"),
        ({"device_data": {"device_pickle": "p"}}, 400, "M_MISSING_PARAM"),
        ({"device_data": {"algorithm": 1}}, 400, "M_BAD_JSON"),
        ({"initial_device_display_name": 7}, 400, "M_BAD_JSON"),
        ({"device_keys": None}, 400, "M_MISSING_PARAM"),
        ({"device_keys": "keys"}, 400, "M_BAD_JSON"),
        ({"one_time_keys": {"no-colon": "k"}}, 400, "M_BAD_JSON"),
        ({"one_time_keys": []}, 400, "M_BAD_JSON"),
    ],
)
def test_store_refusals(
    server: RunningServer, change: dict[str, Any], status: int, errcode: str
) -> None:
    alice = new_user(server)
    body = dehydration_body(alice.user_id, "HYDRA")
    for key, value in change.items():
        if value is None:
            del body[key]
        else:
            body[key] = value
    assert_error(put_dehydrated(server, alice, body), status, errcode)
    # nothing of it was kept
    assert_error(call(server, alice, "GET", DEHYDRATED), 404, "M_NOT_FOUND")
    assert device_ids(server, alice) == {alice.device_id}


def test_keys_of_another_device_are_refused(server: RunningServer) -> None:
    alice, bob = new_user(server), new_user(server)
    for keys in [device_keys(alice.user_id, "OTHER"), device_keys(bob.user_id, "HYDRA")]:
        reply = put_dehydrated(
            server, alice, dehydration_body(alice.user_id, "HYDRA", device_keys=keys)
        )
        assert_error(reply, 400, "M_INVALID_PARAM")
    assert_error(call(server, alice, "GET", DEHYDRATED), 404, "M_NOT_FOUND")
    assert device_ids(server, alice) == {alice.device_id}


def test_a_logged_in_device_cannot_become_the_dehydrated_one(server: RunningServer) -> None:
    alice = new_user(server)
    reply = put_dehydrated(server, alice, dehydration_body(alice.user_id, alice.device_id))
    assert_error(reply, 400, "M_INVALID_PARAM")
    assert_error(call(server, alice, "GET", DEHYDRATED), 404, "M_NOT_FOUND")
    # the device is untouched and still logged in
    assert call(server, alice, "GET", CLIENT + "/account/whoami").status == 200


def test_another_user_cannot_see_or_delete_it(server: RunningServer) -> None:
    alice, bob = new_user(server), new_user(server)
    assert put_dehydrated(server, alice, dehydration_body(alice.user_id, "HYDRA")).status == 200
    assert_error(call(server, bob, "GET", DEHYDRATED), 404, "M_NOT_FOUND")
    assert_error(call(server, bob, "DELETE", DEHYDRATED), 404, "M_NOT_FOUND")
    assert call(server, alice, "GET", DEHYDRATED).json()["device_id"] == "HYDRA"


def test_every_endpoint_needs_an_access_token(server: RunningServer) -> None:
    for method, path in [
        ("PUT", DEHYDRATED),
        ("GET", DEHYDRATED),
        ("DELETE", DEHYDRATED),
        ("POST", DEHYDRATED + "/HYDRA/events"),
    ]:
        assert_error(request(method, server.url + path, {}), 401, "M_MISSING_TOKEN")


def test_deactivation_deletes_the_dehydrated_device(server: RunningServer) -> None:
    admin = make_admin(server.config_path, f"admin{next(_counter)}")
    localpart = f"hydra{next(_counter)}"
    alice = register(server.url, localpart)
    assert put_dehydrated(server, alice, dehydration_body(alice.user_id, "HYDRA")).status == 200
    admin_deactivate(server.url, admin, alice.user_id)
    alice = reactivated(server.url, admin, alice.user_id)
    assert_error(call(server, alice, "GET", DEHYDRATED), 404, "M_NOT_FOUND")
    assert "HYDRA" not in queried_devices(server, alice, alice.user_id)
