"""A service acting through the Client-Server API with its as_token (spec:
application-service-api "Identity assertion", "Timestamp massaging", "Published room
directories"): as its sender or a registered user of its namespace, on one of their devices,
only from its allowed addresses, outside rate limits as its registration says."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from nacl.signing import SigningKey

from ranvier.protocol.unpadded_base64 import encode_base64
from tests.appservice.client_side import (
    as_request,
    irc_service,
    register_puppet,
    room_path,
    services_server,
    user_id,
    walled_service,
)
from tests.appservice.fake_appservice import FakeAppService
from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT

# small enough that the fourth message in a row is refused to whoever is limited
MESSAGE_BURST = 3


@pytest.fixture(scope="module")
def irc() -> Iterator[FakeAppService]:
    with irc_service() as fake:
        yield fake


@pytest.fixture(scope="module")
def walled() -> Iterator[FakeAppService]:
    with walled_service() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    module_database: dict[str, Any],
    appservice: FakeAppService,
    irc: FakeAppService,
    walled: FakeAppService,
) -> Iterator[RunningServer]:
    # registration closed: services register their users all the same
    yield from services_server(
        tmp_path_factory,
        module_database,
        [appservice, irc, walled],
        enable_registration=False,
        track_appservice_user_ips=True,
        rc_message={"per_second": 0.01, "burst_count": MESSAGE_BURST},
    )


def assert_error(reply: Reply, status: int, errcode: str) -> None:
    assert (reply.status, reply.errcode) == (status, errcode), reply.body


def puppet(server: RunningServer, service: FakeAppService, localpart: str, **extra: Any) -> str:
    reply = register_puppet(server, service, localpart, **extra)
    assert reply.status == 200, reply.body
    registered: str = reply.json()["user_id"]
    return registered


def whoami(server: RunningServer, service: FakeAppService, **query: str) -> Reply:
    return as_request(server, service, "GET", "/account/whoami", **query)


# -- who the request acts as --


def test_the_as_token_acts_as_the_sender_which_exists_without_registering(
    server: RunningServer, appservice: FakeAppService
) -> None:
    me = whoami(server, appservice)
    assert me.json() == {"user_id": user_id("_fake_bot"), "is_guest": False}
    in_query = request(
        "GET", server.url + CLIENT + f"/account/whoami?access_token={appservice.as_token}"
    )
    assert in_query.json()["user_id"] == user_id("_fake_bot")
    profile = request("GET", server.url + CLIENT + f"/profile/{user_id('_fake_bot')}")
    assert profile.json() == {"displayname": "_fake_bot"}
    # the service's users are not server admins
    admin_api = request(
        "GET",
        server.url + "/_synapse/admin/v2/users",
        headers={"Authorization": f"Bearer {appservice.as_token}"},
    )
    assert_error(admin_api, 403, "M_FORBIDDEN")


def test_user_id_masquerades_as_a_registered_user_of_the_namespace(
    server: RunningServer, appservice: FakeAppService
) -> None:
    frank = puppet(server, appservice, "_fake_frank", inhibit_login=True)
    assert whoami(server, appservice, user_id=frank).json() == {
        "user_id": frank,
        "is_guest": False,
    }
    sender = whoami(server, appservice, user_id=user_id("_fake_bot"))
    assert sender.json()["user_id"] == user_id("_fake_bot")


def test_user_id_outside_the_namespace_or_never_registered_is_forbidden(
    server: RunningServer, appservice: FakeAppService, irc: FakeAppService
) -> None:
    puppet(server, irc, "irc_gina", inhibit_login=True)
    for outside in (user_id("irc_gina"), user_id("irc_bot"), "@_fake_frank:elsewhere.example"):
        assert_error(whoami(server, appservice, user_id=outside), 403, "M_FORBIDDEN")
    never = whoami(server, appservice, user_id=user_id("_fake_nobody"))
    assert_error(never, 403, "M_FORBIDDEN")
    assert "has not registered this user" in never.json()["error"]


def test_device_id_acts_on_one_of_the_users_devices(
    server: RunningServer, appservice: FakeAppService
) -> None:
    hana = puppet(server, appservice, "_fake_hana", device_id="HANAPHONE")
    for param in ("device_id", "org.matrix.msc3202.device_id"):
        me = whoami(server, appservice, user_id=hana, **{param: "HANAPHONE"})
        assert me.json() == {"user_id": hana, "is_guest": False, "device_id": "HANAPHONE"}
    assert_error(
        whoami(server, appservice, user_id=hana, device_id="NOSUCH"), 400, "M_UNKNOWN_DEVICE"
    )
    # the device must be the acting user's: without user_id that is the sender
    assert_error(whoami(server, appservice, device_id="HANAPHONE"), 400, "M_UNKNOWN_DEVICE")


def test_track_appservice_user_ips_records_where_a_device_was_used(
    server: RunningServer, appservice: FakeAppService
) -> None:
    ivan = puppet(server, appservice, "_fake_ivan", device_id="IVANDESK")
    device = as_request(
        server, appservice, "GET", "/devices/IVANDESK", user_id=ivan, device_id="IVANDESK"
    )
    assert device.json()["last_seen_ip"] == "127.0.0.1"


def test_a_request_from_outside_the_ip_range_whitelist_is_an_unknown_token(
    server: RunningServer, walled: FakeAppService
) -> None:
    assert_error(whoami(server, walled), 401, "M_UNKNOWN_TOKEN")
    assert_error(register_puppet(server, walled, "walled_x"), 401, "M_UNKNOWN_TOKEN")


# -- rate limits --


def send(
    server: RunningServer, service: FakeAppService, room_id: str, txn: str, **query: str
) -> Reply:
    return as_request(
        server,
        service,
        "PUT",
        room_path(room_id) + f"/send/m.room.message/{txn}",
        {"msgtype": "m.text", "body": txn},
        **query,
    )


def public_room(server: RunningServer, service: FakeAppService) -> str:
    reply = as_request(server, service, "POST", "/createRoom", {"preset": "public_chat"})
    assert reply.status == 200, reply.body
    room_id: str = reply.json()["room_id"]
    return room_id


def join(server: RunningServer, service: FakeAppService, room_id: str, who: str) -> None:
    reply = as_request(server, service, "POST", room_path(room_id) + "/join", {}, user_id=who)
    assert reply.status == 200, reply.body


def test_senders_and_users_of_unlimited_services_are_not_rate_limited(
    server: RunningServer, appservice: FakeAppService, irc: FakeAppService
) -> None:
    fake_room, irc_room = public_room(server, appservice), public_room(server, irc)
    joan = puppet(server, appservice, "_fake_joan", inhibit_login=True)
    join(server, appservice, fake_room, joan)
    for n in range(MESSAGE_BURST * 2):
        assert send(server, appservice, fake_room, f"bot{n}").status == 200
        assert send(server, appservice, fake_room, f"joan{n}", user_id=joan).status == 200
        # irc is rate_limited: true, which never holds its sender back
        assert send(server, irc, irc_room, f"irc{n}").status == 200


def test_users_of_a_rate_limited_service_are_limited(
    server: RunningServer, irc: FakeAppService
) -> None:
    room_id = public_room(server, irc)
    kate = puppet(server, irc, "irc_kate", inhibit_login=True)
    join(server, irc, room_id, kate)
    for n in range(MESSAGE_BURST):
        assert send(server, irc, room_id, f"kate{n}", user_id=kate).status == 200
    assert_error(send(server, irc, room_id, "onetoomany", user_id=kate), 429, "M_LIMIT_EXCEEDED")


# -- ts --


def event(server: RunningServer, service: FakeAppService, room_id: str, event_id: str) -> Any:
    reply = as_request(server, service, "GET", room_path(room_id) + f"/event/{event_id}")
    assert reply.status == 200, reply.body
    return reply.json()


def test_ts_sets_the_timestamp_of_a_services_messages_and_state(
    server: RunningServer, appservice: FakeAppService
) -> None:
    room_id = public_room(server, appservice)
    sent = send(server, appservice, room_id, "dated", ts="1234567890123")
    assert event(server, appservice, room_id, sent.json()["event_id"])["origin_server_ts"] == (
        1234567890123
    )
    state = as_request(
        server,
        appservice,
        "PUT",
        room_path(room_id) + "/state/m.room.topic",
        {"topic": "bridged"},
        ts="1000",
    )
    assert state.status == 200, state.body
    assert event(server, appservice, room_id, state.json()["event_id"])["origin_server_ts"] == 1000
    for bad in ("yesterday", "-5", str(2**53)):
        assert_error(
            send(server, appservice, room_id, f"bad{len(bad)}", ts=bad), 400, "M_INVALID_PARAM"
        )


def test_ts_from_an_ordinary_session_is_ignored(
    server: RunningServer, appservice: FakeAppService
) -> None:
    room_id = public_room(server, appservice)
    lena = puppet(server, appservice, "_fake_lena")
    join(server, appservice, room_id, lena)
    login = as_request(
        server, appservice, "POST", "/login", {"type": "m.login.application_service", "user": lena}
    )
    token = login.json()["access_token"]
    url = server.url + CLIENT + room_path(room_id) + "/send/m.room.message/own?ts=1000"
    sent = request(
        "PUT", url, {"msgtype": "m.text", "body": "now"}, {"Authorization": f"Bearer {token}"}
    )
    assert sent.status == 200, sent.body
    assert event(server, appservice, room_id, sent.json()["event_id"])["origin_server_ts"] > 10**12


# -- network room directories --


def listed(server: RunningServer, service: FakeAppService, **query: Any) -> list[str]:
    get = as_request(
        server,
        service,
        "GET",
        "/publicRooms",
        **{k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()},
    )
    post = as_request(server, service, "POST", "/publicRooms", query)
    assert get.status == 200 and post.status == 200, (get.body, post.body)
    from_get = [room["room_id"] for room in get.json()["chunk"]]
    assert sorted(from_get) == sorted(room["room_id"] for room in post.json()["chunk"])
    return from_get


def set_network_visibility(
    server: RunningServer, service: FakeAppService, network: str, room_id: str, body: Any
) -> Reply:
    path = f"/directory/list/appservice/{network}/{room_id}"
    return as_request(server, service, "PUT", path, body)


def test_a_service_publishes_rooms_in_its_networks_directory(
    server: RunningServer, appservice: FakeAppService
) -> None:
    bridged = public_room(server, appservice)
    ordinary = public_room(server, appservice)
    assert (
        as_request(
            server, appservice, "PUT", f"/directory/list/room/{ordinary}", {"visibility": "public"}
        ).status
        == 200
    )
    reply = set_network_visibility(server, appservice, "gitter", bridged, {"visibility": "public"})
    assert reply.status == 200, reply.body
    instance = f"{appservice.id}|gitter"
    assert listed(server, appservice, third_party_instance_id=instance) == [bridged]
    assert listed(server, appservice, third_party_instance_id=f"{appservice.id}|slack") == []
    assert bridged not in listed(server, appservice)
    assert ordinary in listed(server, appservice)
    everything = listed(server, appservice, include_all_networks=True)
    assert bridged in everything and ordinary in everything
    set_network_visibility(server, appservice, "gitter", bridged, {"visibility": "private"})
    assert listed(server, appservice, third_party_instance_id=instance) == []


def test_a_service_unlists_a_room_from_its_network_with_delete(
    server: RunningServer, appservice: FakeAppService
) -> None:
    # Synapse's DELETE twin of the PUT, which SyTest and older bridges use
    room_id = public_room(server, appservice)
    path = f"/directory/list/appservice/irc/{room_id}"
    assert as_request(server, appservice, "PUT", path, {"visibility": "public"}).status == 200
    assert listed(server, appservice, third_party_instance_id=f"{appservice.id}|irc") == [room_id]

    reply = as_request(server, appservice, "DELETE", path)

    assert reply.status == 200, reply.body
    assert listed(server, appservice, third_party_instance_id=f"{appservice.id}|irc") == []
    assert room_id not in listed(server, appservice, include_all_networks=True)
    # a user's own session may not
    mona = puppet(server, appservice, "_fake_unlister")
    login = as_request(
        server, appservice, "POST", "/login", {"type": "m.login.application_service", "user": mona}
    )
    refused = request(
        "DELETE",
        server.url + CLIENT + path,
        None,
        {"Authorization": f"Bearer {login.json()['access_token']}"},
    )
    assert_error(refused, 403, "M_FORBIDDEN")


def test_a_service_deactivates_its_user_without_user_interactive_auth(
    server: RunningServer, appservice: FakeAppService
) -> None:
    ghost = puppet(server, appservice, "_fake_ghost_to_go")

    reply = as_request(server, appservice, "POST", "/account/deactivate", {}, user_id=ghost)

    assert reply.status == 200, reply.body
    # gone: the service can no longer act as them
    whoami = as_request(server, appservice, "GET", "/account/whoami", user_id=ghost)
    assert whoami.status == 403, whoami.body
    assert whoami.json()["errcode"] == "M_USER_DEACTIVATED"


def test_network_directory_refusals(server: RunningServer, appservice: FakeAppService) -> None:
    room_id = public_room(server, appservice)
    mona = puppet(server, appservice, "_fake_mona")
    login = as_request(
        server, appservice, "POST", "/login", {"type": "m.login.application_service", "user": mona}
    )
    url = server.url + CLIENT + f"/directory/list/appservice/gitter/{room_id}"
    as_user = request(
        "PUT",
        url,
        {"visibility": "public"},
        {"Authorization": f"Bearer {login.json()['access_token']}"},
    )
    assert_error(as_user, 403, "M_FORBIDDEN")
    assert_error(
        set_network_visibility(
            server, appservice, "gitter", "!nowhere:test.localhost", {"visibility": "public"}
        ),
        404,
        "M_NOT_FOUND",
    )
    assert_error(
        set_network_visibility(server, appservice, "gitter", room_id, {"visibility": "hidden"}),
        400,
        "M_INVALID_PARAM",
    )
    # an instance ID not of the form /thirdparty/protocols gives names no network here
    assert listed(server, appservice, third_party_instance_id="irc-freenode") == []


# -- device management (spec v1.17) --


def test_a_service_creates_and_deletes_its_users_devices_without_uia(
    server: RunningServer, appservice: FakeAppService
) -> None:
    nina = puppet(server, appservice, "_fake_nina")
    made = as_request(
        server, appservice, "PUT", "/devices/NINABRIDGE", {"display_name": "b"}, user_id=nina
    )
    assert made.status == 201, made.body
    again = as_request(
        server, appservice, "PUT", "/devices/NINABRIDGE", {"display_name": "c"}, user_id=nina
    )
    assert again.status == 200, again.body
    assert whoami(server, appservice, user_id=nina, device_id="NINABRIDGE").status == 200
    deleted = as_request(server, appservice, "DELETE", "/devices/NINABRIDGE", user_id=nina)
    assert deleted.status == 200, deleted.body
    assert_error(
        whoami(server, appservice, user_id=nina, device_id="NINABRIDGE"), 400, "M_UNKNOWN_DEVICE"
    )
    for device_id in ("NINA1", "NINA2"):
        as_request(server, appservice, "PUT", f"/devices/{device_id}", {}, user_id=nina)
    bulk = as_request(
        server, appservice, "POST", "/delete_devices", {"devices": ["NINA1", "NINA2"]}, user_id=nina
    )
    assert bulk.status == 200, bulk.body
    listed_ids = {
        d["device_id"]
        for d in as_request(server, appservice, "GET", "/devices", user_id=nina).json()["devices"]
    }
    assert not listed_ids & {"NINA1", "NINA2", "NINABRIDGE"}


def test_an_ordinary_session_neither_creates_devices_nor_deletes_them_without_uia(
    server: RunningServer, appservice: FakeAppService
) -> None:
    oscar = puppet(server, appservice, "_fake_oscar")
    login = as_request(
        server, appservice, "POST", "/login", {"type": "m.login.application_service", "user": oscar}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    url = server.url + CLIENT + "/devices/"
    assert_error(
        request("PUT", url + "OSCARNEW", {"display_name": "x"}, headers), 404, "M_NOT_FOUND"
    )
    challenge = request("DELETE", url + login.json()["device_id"], {}, headers)
    assert challenge.status == 401 and "flows" in challenge.json(), challenge.body


def test_a_service_replaces_its_users_cross_signing_keys_without_uia(
    server: RunningServer, appservice: FakeAppService
) -> None:
    paula = puppet(server, appservice, "_fake_paula")

    def master_key() -> dict[str, Any]:
        public = encode_base64(bytes(SigningKey.generate().verify_key))
        return {"user_id": paula, "usage": ["master"], "keys": {f"ed25519:{public}": public}}

    first, second = master_key(), master_key()
    for key in (first, second):
        upload = as_request(
            server,
            appservice,
            "POST",
            "/keys/device_signing/upload",
            {"master_key": key},
            user_id=paula,
        )
        assert upload.status == 200, upload.body
    query = as_request(
        server, appservice, "POST", "/keys/query", {"device_keys": {paula: []}}, user_id=paula
    )
    assert query.json()["master_keys"][paula]["keys"] == second["keys"]


def test_a_services_retried_send_is_the_same_event(
    server: RunningServer, appservice: FakeAppService
) -> None:
    room_id = public_room(server, appservice)
    first = send(server, appservice, room_id, "retried")
    assert first.status == 200, first.body
    assert send(server, appservice, room_id, "retried").json() == first.json()
    assert send(server, appservice, room_id, "another").json() != first.json()
