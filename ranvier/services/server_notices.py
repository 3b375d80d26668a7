"""Server notices: messages from the server to one user, written by a system user into a
room of that user's own, tagged `m.server_notice` so clients can show it apart (spec:
client-server-api "Server Notices"). Configured by `server_notices`; the admin API's
`send_server_notice` is how an admin writes one.

The notices room is found from memberships (the system user joined, the user joined or
invited); one the user left is not reused, and the next notice makes a new one, as in
Synapse. Users cannot write in it: everyone but the system user has power level -10.
"""

from __future__ import annotations

from typing import Any

from ranvier.config.models import ServerNoticesConfig
from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.requester import UserRequester
from ranvier.services.account_data import AccountDataService
from ranvier.services.accounts import AccountService
from ranvier.services.profiles import AVATAR_URL, ProfileService
from ranvier.services.rooms.client_sends import EventSendingService
from ranvier.services.rooms.membership import MembershipService
from ranvier.services.rooms.room_creation import (
    CreateRoomRequest,
    InitialStateEvent,
    RoomCreationService,
)
from ranvier.storage.server_notices import ServerNoticeRooms
from ranvier.storage.users import UserStore

SERVER_NOTICE_TAG = "m.server_notice"
# as Synapse: the user reads notices but cannot answer in the room
_USERS_DEFAULT_POWER = -10


def _acting_as(user_id: str) -> UserRequester:
    # the server acts for the system user (and for the user it joins); no token is involved
    return UserRequester(
        user_id=user_id, device_id=None, is_guest=False, is_admin=False, access_token_id=None
    )


class ServerNoticesService:
    def __init__(
        self,
        config: ServerNoticesConfig,
        server_name: str,
        users: UserStore,
        accounts: AccountService,
        profiles: ProfileService,
        creation: RoomCreationService,
        membership: MembershipService,
        sending: EventSendingService,
        account_data: AccountDataService,
        rooms: ServerNoticeRooms,
    ) -> None:
        self._config = config
        self._server_name = server_name
        self._users = users
        self._accounts = accounts
        self._profiles = profiles
        self._creation = creation
        self._membership = membership
        self._sending = sending
        self._account_data = account_data
        self._rooms = rooms

    @property
    def enabled(self) -> bool:
        return self._config.system_mxid_localpart is not None

    @property
    def system_user_id(self) -> str:
        return f"@{self._config.system_mxid_localpart}:{self._server_name}"

    async def send_notice(
        self,
        admin_id: str,
        user_id: str,
        event_type: str,
        state_key: str | None,
        content: dict[str, Any],
        txn_id: str | None,
    ) -> str:
        """The notice's event ID. Checks in Synapse's order: enabled, local, existing."""
        if not self.enabled:
            raise MatrixError(400, "M_UNKNOWN", "Server notices are not enabled on this server")
        localpart, colon, server = user_id[1:].partition(":")
        if not user_id.startswith("@") or not localpart or not colon:
            raise MatrixError(400, "M_INVALID_PARAM", f"{user_id!r} is not a valid user ID")
        if server != self._server_name:
            raise MatrixError(400, "M_UNKNOWN", "Server notices can only be sent to local users")
        if await self._users.get_user(user_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", "User not found")
        room_id = await self.notice_room(user_id)
        system = _acting_as(self.system_user_id)
        if state_key is not None:
            event = await self._sending.send_state(system, room_id, event_type, state_key, content)
            return event.event_id
        template = EventTemplate(event_type, self.system_user_id, content, room_id)
        txn = None
        if txn_id is not None:
            # retries of the admin's request answer the first notice
            txn = (self.system_user_id, f"admin:{admin_id}", f"notice/{user_id}", txn_id)
        return (await self._sending.send(template, txn)).event_id

    async def is_notice_room(self, user_id: str, room_id: str) -> bool:
        """Whether `room_id` is `user_id`'s notices room (without making one)."""
        return await self._rooms.find(self.system_user_id, user_id) == room_id

    async def notice_room(self, user_id: str) -> str:
        """The user's notices room, made (and the user invited or joined) if there is none."""
        await self._ensure_system_user()
        existing = await self._rooms.find(self.system_user_id, user_id)
        if existing is not None:
            return existing
        config = self._config
        initial_state = []
        if config.room_avatar_url:
            initial_state.append(
                InitialStateEvent("m.room.avatar", "", {"url": config.room_avatar_url})
            )
        room_id = await self._creation.create_room(
            _acting_as(self.system_user_id),
            CreateRoomRequest(
                preset="private_chat",
                name=config.room_name,
                topic=config.room_topic,
                invite=[user_id],
                initial_state=initial_state,
                power_level_content_override={"users_default": _USERS_DEFAULT_POWER},
            ),
        )
        if config.auto_join:
            await self._membership.join(_acting_as(user_id), room_id)
        await self._account_data.add_tag(user_id, user_id, room_id, SERVER_NOTICE_TAG, {})
        return room_id

    async def _ensure_system_user(self) -> None:
        if await self._users.get_user(self.system_user_id) is not None:
            return
        config = self._config
        assert config.system_mxid_localpart is not None
        await self._accounts.register(
            localpart=config.system_mxid_localpart,
            password_hash=None,
            device_id=None,
            display_name=None,
            inhibit_login=True,
            refresh=False,
            displayname=config.system_mxid_display_name,
        )
        if config.system_mxid_avatar_url:
            await self._profiles.set_field(
                self.system_user_id,
                AVATAR_URL,
                config.system_mxid_avatar_url,
                requester=self.system_user_id,
                is_admin=True,
                is_guest=False,
            )
