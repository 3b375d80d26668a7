"""A real Matrix client, matrix-nio, through the account lifecycle against the real server."""

from __future__ import annotations

from nio import (
    AsyncClient,
    DevicesResponse,
    LoginResponse,
    LogoutResponse,
    ProfileGetDisplayNameResponse,
    ProfileSetDisplayNameResponse,
    RegisterResponse,
    WhoamiError,
    WhoamiResponse,
)

from tests.integration.homeserver import RunningServer


async def test_register_login_profile_devices_logout(server: RunningServer) -> None:
    registering = AsyncClient(server.url, "alice")
    try:
        registered = await registering.register("alice", "correct horse", device_name="nio-a")
        assert isinstance(registered, RegisterResponse), registered
        assert registered.user_id == "@alice:test.localhost"
    finally:
        await registering.close()

    client = AsyncClient(server.url, "@alice:test.localhost")
    try:
        login = await client.login("correct horse", device_name="laptop")
        assert isinstance(login, LoginResponse), login
        assert login.user_id == "@alice:test.localhost"

        whoami = await client.whoami()
        assert isinstance(whoami, WhoamiResponse), whoami
        assert (whoami.user_id, whoami.device_id) == (login.user_id, login.device_id)

        set_name = await client.set_displayname("Alice Liddell")
        assert isinstance(set_name, ProfileSetDisplayNameResponse), set_name
        name = await client.get_displayname()
        assert isinstance(name, ProfileGetDisplayNameResponse), name
        assert name.displayname == "Alice Liddell"

        devices = await client.devices()
        assert isinstance(devices, DevicesResponse), devices
        names = {device.id: device.display_name for device in devices.devices}
        assert names[login.device_id] == "laptop"
        assert names[registered.device_id] == "nio-a"

        logout = await client.logout()
        assert isinstance(logout, LogoutResponse), logout
        # the token is gone: the server must now refuse it
        client.access_token = login.access_token
        after = await client.whoami()
        assert isinstance(after, WhoamiError)
        assert after.status_code == "M_UNKNOWN_TOKEN"
    finally:
        await client.close()


async def test_wrong_password_is_refused(server: RunningServer) -> None:
    client = AsyncClient(server.url, "@nobody:test.localhost")
    try:
        login = await client.login("not the password")
        assert not isinstance(login, LoginResponse)
        assert login.status_code == "M_FORBIDDEN"
    finally:
        await client.close()
