"""`presence.enabled: false`: presence is neither tracked nor shown, and clients setting it
are not refused (as Synapse), on both engines."""

from __future__ import annotations

from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, authed, register

CLIENT = "/_matrix/client/v3"


server = module_server(
    presence={"enabled": False},
    **REGISTRATION_CONFIG,
)


def test_presence_is_offline_and_setting_it_is_ignored(server: RunningServer) -> None:
    alice = register(server.url, "alice")
    bob = register(server.url, "bob")
    room = authed(alice, "POST", server.url + CLIENT + "/createRoom", {"preset": "public_chat"})
    room_id = room.json()["room_id"]
    assert authed(bob, "POST", f"{server.url}{CLIENT}/join/{room_id}", {}).status == 200
    url = f"{server.url}{CLIENT}/presence/{alice.user_id}/status"
    reply = authed(alice, "PUT", url, {"presence": "online", "status_msg": "hi"})
    assert reply.status == 200 and reply.json() == {}
    assert authed(bob, "GET", url).json() == {"presence": "offline"}
    assert authed(alice, "GET", url).json() == {"presence": "offline"}
    body = authed(bob, "GET", f"{server.url}{CLIENT}/sync").json()
    assert "presence" not in body
    # a bad request is still a bad request
    bad = authed(alice, "PUT", url, {"presence": "busy"})
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")
