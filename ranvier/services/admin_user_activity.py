"""What a server admin may see and do of a user's activity (Synapse's user admin API): their
devices (list, look up, rename, log out), a session as them ("login as user", for support),
the rooms they are joined to, their account data, and how many invites they sent and rooms
they joined.

Every call names a local user that must exist: another server's user is 400
M_INVALID_PARAM, an unknown one 404 M_NOT_FOUND, before anything is read or written.
"""

from __future__ import annotations

from typing import Any

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.services.account_data import AccountDataService
from ranvier.services.devices import DeviceService
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.tokens import AccessTokens
from ranvier.storage.devices import Device
from ranvier.storage.user_events import UserEventQueries
from ranvier.storage.users import User, UserStore


def admin_device_json(device: Device) -> dict[str, Any]:
    """Synapse's admin shape: every field present, null when unknown (the client API leaves
    unknown ones out)."""
    return {
        "user_id": device.user_id,
        "device_id": device.device_id,
        "display_name": device.display_name,
        "last_seen_ip": device.last_seen_ip,
        "last_seen_ts": device.last_seen_ts,
        "last_seen_user_agent": device.last_seen_user_agent,
    }


class AdminUserActivity:
    def __init__(
        self,
        server_name: str,
        users: UserStore,
        devices: DeviceService,
        access_tokens: AccessTokens,
        membership: MembershipService,
        account_data: AccountDataService,
        user_events: UserEventQueries,
    ) -> None:
        self._server_name = server_name
        self._users = users
        self._devices = devices
        self._access_tokens = access_tokens
        self._membership = membership
        self._account_data = account_data
        self._user_events = user_events

    async def existing_local_user(self, user_id: str) -> User:
        localpart, colon, server = user_id[1:].partition(":")
        if not user_id.startswith("@") or not localpart or not colon:
            raise MatrixError(400, "M_INVALID_PARAM", f"{user_id!r} is not a valid user ID")
        if server != self._server_name:
            raise MatrixError(400, "M_INVALID_PARAM", "Can only look up local users")
        user = await self._users.get_user(user_id)
        if user is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown user")
        return user

    # -- devices --

    async def list_devices(self, user_id: str) -> dict[str, Any]:
        await self.existing_local_user(user_id)
        devices = await self._devices.list_devices(user_id)
        return {"devices": [admin_device_json(d) for d in devices], "total": len(devices)}

    async def get_device(self, user_id: str, device_id: str) -> dict[str, Any]:
        await self.existing_local_user(user_id)
        device = await self._devices.get_device(user_id, device_id)
        if device is None:
            raise MatrixError(404, "M_NOT_FOUND", "No device found")
        return admin_device_json(device)

    async def rename_device(self, user_id: str, device_id: str, display_name: str | None) -> None:
        await self.existing_local_user(user_id)
        if display_name is None:
            found = await self._devices.get_device(user_id, device_id) is not None
        else:
            found = await self._devices.rename_device(user_id, device_id, display_name)
        if not found:
            raise MatrixError(404, "M_NOT_FOUND", "No device found")

    async def create_device(self, user_id: str, device_id: str) -> None:
        """For bridges that make devices for their users (MSC4190's admin form)."""
        await self.existing_local_user(user_id)
        await self._devices.ensure_device(user_id, device_id, None)

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        """As Synapse: unknown device IDs are skipped, not refused."""
        await self.existing_local_user(user_id)
        await self._devices.delete_devices(user_id, device_ids)

    # -- login as the user --

    async def login_as(self, admin_id: str, user_id: str, valid_until_ms: int | None) -> str:
        """An access token acting as `user_id`, with no device (the user's device list and
        end-to-end keys stay as they are), recorded as puppeted by the admin."""
        if user_id == admin_id:
            raise MatrixError(400, "M_UNKNOWN", "Cannot use admin API to login as self")
        user = await self.existing_local_user(user_id)
        if user.deactivated:
            raise MatrixError(400, "M_UNKNOWN", "The user is deactivated")
        if valid_until_ms is not None and valid_until_ms <= now_ms():
            raise MatrixError(400, "M_INVALID_PARAM", "valid_until_ms is in the past")
        issued = await self._access_tokens.issue(
            user_id, None, valid_until_ms=valid_until_ms, puppets_user_id=admin_id
        )
        return issued.token

    # -- rooms and account data --

    async def joined_rooms(self, user_id: str) -> dict[str, Any]:
        await self.existing_local_user(user_id)
        room_ids = await self._membership.joined_rooms(user_id)
        return {"joined_rooms": room_ids, "total": len(room_ids)}

    async def account_data(self, user_id: str) -> dict[str, Any]:
        await self.existing_local_user(user_id)
        everything = await self._account_data.changes_since(user_id, None)
        return {"account_data": {"global": everything.global_data, "rooms": everything.room_data}}

    async def sent_invite_count(self, user_id: str, from_ts: int) -> dict[str, Any]:
        await self.existing_local_user(user_id)
        return {"invite_count": await self._user_events.count_invites_sent(user_id, from_ts)}

    async def cumulative_joined_room_count(self, user_id: str, from_ts: int) -> dict[str, Any]:
        await self.existing_local_user(user_id)
        count = await self._user_events.count_rooms_joined(user_id, from_ts)
        return {"cumulative_joined_room_count": count}
