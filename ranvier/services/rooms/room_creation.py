"""POST /createRoom: the spec's ordered list of initial events, built in one batch."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.errors import MatrixError
from ranvier.protocol.auth import AuthError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.requester import UserRequester
from ranvier.services.rooms.errors import as_matrix_error
from ranvier.services.rooms.membership import UserProvider
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage import aliases as alias_store

Preset = Literal["private_chat", "trusted_private_chat", "public_chat"]

# spec: createRoom, "The available presets do the following with respect to room state".
# public_chat sends no m.room.guest_access: a room without one already forbids guests
# (the table's `forbidden`), and Synapse, whose state clients and SyTest compare, sends it
# only for the presets that let guests join.
_PRESET_STATE: dict[str, dict[str, dict[str, str]]] = {
    "private_chat": {
        "m.room.join_rules": {"join_rule": "invite"},
        "m.room.history_visibility": {"history_visibility": "shared"},
        "m.room.guest_access": {"guest_access": "can_join"},
    },
    "trusted_private_chat": {
        "m.room.join_rules": {"join_rule": "invite"},
        "m.room.history_visibility": {"history_visibility": "shared"},
        "m.room.guest_access": {"guest_access": "can_join"},
    },
    "public_chat": {
        "m.room.join_rules": {"join_rule": "public"},
        "m.room.history_visibility": {"history_visibility": "shared"},
    },
}


@dataclass(frozen=True)
class InitialStateEvent:
    type: str
    state_key: str
    content: dict[str, Any]


@dataclass(frozen=True)
class CreateRoomRequest:
    visibility: Literal["public", "private"] = "private"
    preset: Preset | None = None
    room_version: str | None = None
    room_alias_name: str | None = None
    name: str | None = None
    topic: str | None = None
    invite: list[str] = field(default_factory=list)
    is_direct: bool = False
    creation_content: dict[str, Any] = field(default_factory=dict)
    initial_state: list[InitialStateEvent] = field(default_factory=list)
    power_level_content_override: dict[str, Any] | None = None


# (displayname, avatar_url) of a user, for their member events
ProfileLookup = Callable[[str], Awaitable[tuple[str | None, str | None]]]


class RemoteInviter(Protocol):
    """Invites a user of another server into an existing room, through that server's
    federation /invite (MembershipService.invite)."""

    async def __call__(
        self, requester: UserRequester, room_id: str, target: str, *, is_direct: bool = False
    ) -> None: ...


# (requester, alias): raises MatrixError if the requester may not create the alias (one an
# application service holds: AliasService.check_alias_namespace)
AliasCheck = Callable[[UserRequester, str], None]


class RoomCreationService:
    def __init__(
        self,
        sender: RoomEventSender,
        server_name: str,
        default_room_version: str,
        profile_lookup: ProfileLookup,
        remote_inviter: RemoteInviter | None = None,
        alias_check: AliasCheck | None = None,
        user_provider: UserProvider | None = None,
    ) -> None:
        self._alias_check = alias_check
        self._user_provider = user_provider
        self._sender = sender
        self._server_name = server_name
        self._default_room_version = default_room_version
        self._profile_lookup = profile_lookup
        self._remote_inviter = remote_inviter

    async def create_room(self, requester: UserRequester, request: CreateRoomRequest) -> str:
        version = self._room_version(request.room_version)
        creator = requester.user_id
        preset = request.preset or (
            "public_chat" if request.visibility == "public" else "private_chat"
        )
        create_content = dict(request.creation_content)
        if preset == "trusted_private_chat" and version.privileged_creators:
            # spec: createRoom - invitees of a trusted private chat become creators too
            extra = create_content.get("additional_creators", [])
            if not isinstance(extra, list):
                raise MatrixError(400, "M_BAD_JSON", "additional_creators must be a list")
            create_content["additional_creators"] = list(dict.fromkeys([*extra, *request.invite]))

        alias = None
        if request.room_alias_name is not None:
            alias = f"#{request.room_alias_name}:{self._server_name}"
            if not is_valid_alias_localpart(request.room_alias_name) or len(alias) > 255:
                raise MatrixError(
                    400, "M_INVALID_PARAM", f"{request.room_alias_name!r} is not a valid alias name"
                )
            if self._alias_check is not None:
                self._alias_check(requester, alias)
        if alias is not None and await alias_store.get_alias(self._sender.db, alias):
            raise MatrixError(400, "M_ROOM_IN_USE", f"The alias {alias} is already in use")
        profile = await self._profile_lookup(creator)
        if self._user_provider is not None:
            # as an /invite does: a bridge's puppet nobody registered yet is asked of the
            # bridge first (clients open direct chats with createRoom's `invite`)
            remote = set(self._remote_invitees(request))
            for invitee in dict.fromkeys(request.invite):
                if invitee not in remote:
                    await self._user_provider(invitee)
        templates = self._initial_events(requester, request, version, preset, alias, profile)

        async def reserve_alias(conn: AsyncConnection, room_id: str) -> None:
            if alias is not None:
                await alias_store.insert_alias(conn, alias, room_id, creator)

        try:
            room_id, _ = await self._sender.create_room(
                room_version=version,
                creator=creator,
                create_content=create_content,
                initial=templates,
                room_id=None
                if version.room_id_from_create_event
                else f"!{secrets.token_urlsafe(18)}:{self._server_name}",
                is_public=request.visibility == "public",
                in_transaction=reserve_alias,
            )
        except alias_store.AliasInUse:
            raise MatrixError(
                400, "M_ROOM_IN_USE", f"The alias {alias} is already in use"
            ) from None
        except AuthError as exc:
            # spec: createRoom - a request whose initial state breaks the rules
            raise MatrixError(400, "M_INVALID_ROOM_STATE", str(exc)) from None
        except Exception as exc:
            error = as_matrix_error(exc)
            if error is None:
                raise
            raise error from None
        if self._remote_inviter is not None:
            # As Synapse, after the room exists: the invitee's server must sign the invite
            # (server-server-api "Inviting to a room"), and a refusal fails the request,
            # the room and the local invites staying.
            for invitee in self._remote_invitees(request):
                await self._remote_inviter(requester, room_id, invitee, is_direct=request.is_direct)
        return room_id

    def _remote_invitees(self, request: CreateRoomRequest) -> list[str]:
        if self._remote_inviter is None:
            return []
        return [
            invitee
            for invitee in dict.fromkeys(request.invite)
            if invitee.partition(":")[2] != self._server_name
        ]

    def _room_version(self, identifier: str | None) -> RoomVersion:
        identifier = identifier or self._default_room_version
        version = KNOWN_ROOM_VERSIONS.get(identifier)
        if version is None:
            raise MatrixError(
                400, "M_UNSUPPORTED_ROOM_VERSION", f"Room version {identifier!r} is not supported"
            )
        return version

    def _initial_events(
        self,
        requester: UserRequester,
        request: CreateRoomRequest,
        version: RoomVersion,
        preset: str,
        alias: str | None,
        profile: tuple[str | None, str | None],
    ) -> list[EventTemplate]:
        creator = requester.user_id
        displayname, avatar_url = profile
        join: dict[str, Any] = {"membership": "join"}
        if displayname is not None:
            join["displayname"] = displayname
        if avatar_url is not None:
            join["avatar_url"] = avatar_url
        events = [EventTemplate("m.room.member", creator, join, state_key=creator)]

        power_levels = default_power_levels(version, creator, preset, request.invite)
        if request.power_level_content_override:
            power_levels.update(request.power_level_content_override)
        events.append(EventTemplate("m.room.power_levels", creator, power_levels, state_key=""))
        if alias is not None:
            events.append(
                EventTemplate("m.room.canonical_alias", creator, {"alias": alias}, state_key="")
            )
        preset_state = dict(_PRESET_STATE[preset])
        given = {(event.type, event.state_key) for event in request.initial_state}
        for event_type, preset_content in preset_state.items():
            if (event_type, "") not in given:
                events.append(EventTemplate(event_type, creator, preset_content, state_key=""))
        for event in request.initial_state:
            events.append(
                EventTemplate(event.type, creator, event.content, state_key=event.state_key)
            )
        if request.name is not None:
            events.append(
                EventTemplate("m.room.name", creator, {"name": request.name}, state_key="")
            )
        if request.topic is not None:
            events.append(
                EventTemplate("m.room.topic", creator, {"topic": request.topic}, state_key="")
            )
        remote = set(self._remote_invitees(request))
        for invitee in dict.fromkeys(request.invite):
            if invitee in remote:
                continue
            invite: dict[str, Any] = {"membership": "invite"}
            if request.is_direct:
                invite["is_direct"] = True
            events.append(EventTemplate("m.room.member", creator, invite, state_key=invitee))
        return events


def is_valid_alias_localpart(localpart: str) -> bool:
    # spec: appendices "Room aliases" - no colon; whitespace and '#' make unusable aliases
    return bool(localpart) and not any(c in ":#" or c.isspace() for c in localpart)


def default_power_levels(
    version: RoomVersion, creator: str, preset: str, invitees: list[str]
) -> dict[str, Any]:
    users: dict[str, int] = {}
    if not version.privileged_creators:
        # v12 creators have infinite power and must not be listed (rooms/v12 rule 10.4)
        users[creator] = 100
        if preset == "trusted_private_chat":
            users.update({invitee: 100 for invitee in invitees})
    events: Mapping[str, int] = {
        "m.room.name": 50,
        "m.room.power_levels": 100,
        "m.room.history_visibility": 100,
        "m.room.canonical_alias": 50,
        "m.room.avatar": 50,
        # spec: createRoom - from v12 the tombstone level must be above state_default's 100
        "m.room.tombstone": 150 if version.privileged_creators else 100,
        "m.room.server_acl": 100,
        "m.room.encryption": 100,
    }
    return {
        "users": users,
        "users_default": 0,
        "events": dict(events),
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        # anyone in a private chat may invite; public rooms leave it to moderators
        "invite": 50 if preset == "public_chat" else 0,
    }
