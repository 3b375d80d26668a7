"""POST /rooms/{roomId}/upgrade: replace a room by a new one of another room version.

spec: client-server-api "Room Upgrades", "Server behaviour". The old room's tombstone is
built first and the new room created, in one transaction with the copied state, the bans
and the moved aliases, before the tombstone is persisted: the new room's create event names
the tombstone (predecessor.event_id), and a refusal leaves nothing behind. (From room
version 12 the new room's ID hashes its create event, so that room comes first and names
no event.) Then the old room's canonical alias loses the moved aliases, its power levels
are restricted, and local members' m.direct, tags and push rules follow (on_upgraded).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.errors import MatrixError
from ranvier.protocol.auth import AuthError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.protocol.power_levels import (
    SCALAR_KEYS,
    PowerLevels,
    is_valid_user_id,
    parse_level,
)
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.requester import UserRequester
from ranvier.services.rooms.errors import as_matrix_error
from ranvier.services.rooms.membership import ProfileLookup
from ranvier.services.rooms.room_creation import default_power_levels
from ranvier.services.rooms.sender import (
    BeforePersist,
    RoomEventSender,
    RoomHead,
    RoomNotFound,
)
from ranvier.storage import aliases as alias_store
from ranvier.storage import rooms as room_store

logger = logging.getLogger(__name__)

CREATE = ("m.room.create", "")
POWER_LEVELS = ("m.room.power_levels", "")
CANONICAL_ALIAS = ("m.room.canonical_alias", "")
TOMBSTONE = "m.room.tombstone"
SPACE_CHILD = "m.space.child"

# spec: "Server behaviour" step 3, the recommended state to transfer (and the legacy
# related groups, which Synapse copied too); power levels are handled on their own
COPIED_STATE = (
    "m.room.join_rules",
    "m.room.name",
    "m.room.topic",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
    "m.room.related_groups",
)
# as Synapse: the new room is made with the private_chat preset, overridden by the copies
PRESET_STATE: dict[str, dict[str, str]] = {
    "m.room.join_rules": {"join_rule": "invite"},
    "m.room.history_visibility": {"history_visibility": "shared"},
    "m.room.guest_access": {"guest_access": "can_join"},
}
TOMBSTONE_BODY = "This room has been replaced"
# (old room ID, new room ID, local users joined to the old room): run once an upgrade is done
UpgradeListener = Callable[[str, str, list[str]], Awaitable[None]]


class RoomUpgradeService:
    def __init__(
        self, sender: RoomEventSender, server_name: str, profile_lookup: ProfileLookup
    ) -> None:
        self._sender = sender
        self._server_name = server_name
        self._profile_lookup = profile_lookup
        # as Synapse: a retried request joins the upgrade in flight instead of making another
        self._in_flight: dict[tuple[str, str], asyncio.Future[str]] = {}
        # what members keep in the new room (m.direct, tags, push rules), wired by the server
        # once the services holding them exist
        self.on_upgraded: list[UpgradeListener] = []

    async def upgrade(
        self,
        requester: UserRequester,
        room_id: str,
        new_version: str,
        additional_creators: list[str] | None = None,
    ) -> str:
        """The replacement room's ID."""
        key = (room_id, requester.user_id)
        running = self._in_flight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await self._upgrade(requester, room_id, new_version, additional_creators)
        except BaseException as exc:
            future.set_exception(exc)
            # nobody else may be waiting; keep asyncio from warning about it
            future.exception()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            self._in_flight.pop(key, None)

    async def _upgrade(
        self,
        requester: UserRequester,
        old_room_id: str,
        new_version_id: str,
        additional_creators: list[str] | None,
    ) -> str:
        new_version = KNOWN_ROOM_VERSIONS.get(new_version_id)
        if new_version is None:
            raise MatrixError(
                400,
                "M_UNSUPPORTED_ROOM_VERSION",
                f"Room version {new_version_id!r} is not supported by this server",
            )
        user_id = requester.user_id
        try:
            head = await self._sender.head(old_room_id)
        except RoomNotFound:
            # as Synapse (SyTest "/upgrade of a bogus room fails gracefully")
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown room {old_room_id}") from None
        old_version = head.room_version
        state = await self._state_events(head)
        create = state.get(CREATE)
        assert create is not None
        old_levels = PowerLevels.from_events(old_version, create, state.get(POWER_LEVELS))
        member = state.get(("m.room.member", user_id))
        if member is None or member.membership != "join":
            raise MatrixError(403, "M_FORBIDDEN", "You are not in this room")
        # spec: step 1 - the upgrader must be able to send the tombstone
        needed = old_levels.send_level(TOMBSTONE, True)
        if old_levels.user_level(user_id) < needed:
            raise MatrixError(
                403,
                "M_FORBIDDEN",
                f"You cannot upgrade this room: sending {TOMBSTONE} needs power level {needed}",
            )

        creators = _new_creators(new_version, user_id, additional_creators)
        create_content: dict[str, Any] = {
            "room_version": new_version.identifier,
            "predecessor": {"room_id": old_room_id},
        }
        if "type" in create.content:
            create_content["type"] = create.content["type"]
        if create.content.get("m.federate", True) is False:
            create_content["m.federate"] = False
        if new_version.privileged_creators and creators - {user_id}:
            create_content["additional_creators"] = sorted(creators - {user_id})

        templates = await self._initial_events(
            requester, state, old_version, new_version, creators, old_levels
        )
        room = await room_store.get_room(self._sender.db, old_room_id)
        is_public = room.is_public if room is not None else False

        async def create_new_room(new_room_id: str | None) -> str:
            async def move_aliases(conn: AsyncConnection, created_room_id: str) -> None:
                # spec: step 4, in the creating transaction so that aliases never dangle
                await alias_store.move_aliases(conn, old_room_id, created_room_id)

            try:
                created, _ = await self._sender.create_room(
                    room_version=new_version,
                    creator=user_id,
                    create_content=create_content,
                    initial=templates,
                    room_id=new_room_id,
                    is_public=is_public,
                    in_transaction=move_aliases,
                )
            except AuthError as exc:
                raise MatrixError(
                    400, "M_INVALID_ROOM_STATE", f"The room's state cannot be copied: {exc}"
                ) from None
            except Exception as exc:
                error = as_matrix_error(exc)
                if error is None:
                    raise
                raise error from None
            return created

        if new_version.room_id_from_create_event:
            # The new room's ID is the hash of its create event, which must therefore exist
            # before the tombstone can name it; spec (v1.16): predecessor.event_id MAY then
            # be omitted, and clients look for the tombstone instead (as Synapse does).
            new_room_id = await create_new_room(None)
            await self._send_tombstone(user_id, old_room_id, new_room_id, None)
        else:
            new_room_id = f"!{secrets.token_urlsafe(18)}:{self._server_name}"

            async def create_with_tombstone(tombstone: Event) -> None:
                # Clients follow predecessor.event_id back to the tombstone (SyTest checks
                # they are the same event, as Synapse makes them): the tombstone is built
                # first, the new room created while nothing else can enter the old room,
                # and the tombstone persisted only once the new room exists.
                create_content["predecessor"]["event_id"] = tombstone.event_id
                await create_new_room(new_room_id)

            await self._send_tombstone(user_id, old_room_id, new_room_id, create_with_tombstone)
        if is_public:
            # the directory lists the replacement instead
            await room_store.set_room_public(self._sender.db, old_room_id, False)

        await self._retire_old_room(requester, old_room_id, state, old_version)
        local_members = sorted(
            target
            for (event_type, target), event in state.items()
            if event_type == "m.room.member"
            and event.membership == "join"
            and target.partition(":")[2] == self._server_name
        )
        for listener in self.on_upgraded:
            await listener(old_room_id, new_room_id, local_members)
        logger.info(
            "%s upgraded %s to %s (room version %s)",
            user_id,
            old_room_id,
            new_room_id,
            new_version.identifier,
        )
        return new_room_id

    async def _send_tombstone(
        self,
        user_id: str,
        old_room_id: str,
        new_room_id: str,
        before_persist: BeforePersist | None,
    ) -> None:
        # spec: step 5 - a refusal is the client's error
        tombstone = EventTemplate(
            TOMBSTONE,
            user_id,
            {"body": TOMBSTONE_BODY, "replacement_room": new_room_id},
            old_room_id,
            state_key="",
        )
        try:
            await self._sender.send(tombstone, before_persist=before_persist)
        except Exception as exc:
            error = as_matrix_error(exc)
            if error is None:
                raise
            raise error from None

    async def _initial_events(
        self,
        requester: UserRequester,
        state: Mapping[tuple[str, str], Event],
        old_version: RoomVersion,
        new_version: RoomVersion,
        creators: frozenset[str],
        old_levels: PowerLevels,
    ) -> list[EventTemplate]:
        user_id = requester.user_id
        join: dict[str, Any] = {"membership": "join"}
        displayname, avatar_url = await self._profile_lookup(user_id)
        if displayname is not None:
            join["displayname"] = displayname
        if avatar_url is not None:
            join["avatar_url"] = avatar_url
        templates = [EventTemplate("m.room.member", user_id, join, state_key=user_id)]

        old_pl = state.get(POWER_LEVELS)
        if old_pl is None:
            final = default_power_levels(new_version, user_id, "private_chat", [])
        else:
            final = _fixed_up_levels(old_pl.content, old_version)
        users: dict[str, int] = dict(final.get("users", {}))
        if old_version.privileged_creators and not new_version.privileged_creators:
            # the old creators had unlimited power, which this version cannot express
            for creator in old_levels.creators:
                users.setdefault(creator, 100)
        if new_version.privileged_creators:
            # rooms/v12 auth rule: creators may not be listed
            users = {user: level for user, level in users.items() if user not in creators}
        final["users"] = users

        initial = dict(final)
        if not new_version.privileged_creators:
            # as Synapse: raised for as long as the copying takes, then restored
            needed = max(
                int(final.get("state_default", 50)),
                int(final.get("ban", 50)),
                *(int(level) for level in final.get("events", {}).values()),
            )
            if users.get(user_id, int(final.get("users_default", 0))) < needed:
                initial["users"] = {**users, user_id: needed}
        templates.append(EventTemplate("m.room.power_levels", user_id, initial, state_key=""))

        for event_type, content in PRESET_STATE.items():
            if (event_type, "") not in state:
                templates.append(EventTemplate(event_type, user_id, content, state_key=""))
        for event_type in COPIED_STATE:
            event = state.get((event_type, ""))
            if event is not None:
                templates.append(EventTemplate(event_type, user_id, event.content, state_key=""))
        create = state[CREATE]
        if create.content.get("type") == "m.space":
            for (event_type, state_key), event in sorted(state.items()):
                # an emptied m.space.child is a removed child
                if event_type == SPACE_CHILD and event.content:
                    templates.append(
                        EventTemplate(event_type, user_id, event.content, state_key=state_key)
                    )
        canonical = _moved_canonical_alias(state.get(CANONICAL_ALIAS), self._server_name)
        if canonical:
            templates.append(
                EventTemplate("m.room.canonical_alias", user_id, canonical, state_key="")
            )

        # spec: membership is not transferred, but bans are (as Synapse does)
        new_levels = PowerLevels.from_content(new_version, initial, creators)
        upgrader_level = new_levels.user_level(user_id)
        for (event_type, target), event in sorted(state.items()):
            if (
                event_type == "m.room.member"
                and event.membership == "ban"
                and new_levels.user_level(target) < upgrader_level
                and upgrader_level >= new_levels.ban
            ):
                templates.append(
                    EventTemplate("m.room.member", user_id, event.content, state_key=target)
                )
        if initial != final:
            templates.append(EventTemplate("m.room.power_levels", user_id, final, state_key=""))
        return templates

    async def _retire_old_room(
        self,
        requester: UserRequester,
        old_room_id: str,
        state: Mapping[tuple[str, str], Event],
        old_version: RoomVersion,
    ) -> None:
        """After the tombstone (as Synapse, so that it is the first thing clients see)."""
        user_id = requester.user_id
        canonical = state.get(CANONICAL_ALIAS)
        if canonical is not None:
            remaining = _remaining_canonical_alias(canonical.content, self._server_name)
            if remaining != canonical.content:
                await self._try_send(
                    EventTemplate(
                        "m.room.canonical_alias", user_id, remaining, old_room_id, state_key=""
                    )
                )
        # spec: step 6 - stop ordinary members from speaking and inviting in the old room
        old_pl = state.get(POWER_LEVELS)
        if old_pl is None:
            return
        content = _fixed_up_levels(old_pl.content, old_version)
        restricted = max(int(content.get("users_default", 0)) + 1, 50)
        changed = False
        for key in ("events_default", "invite"):
            if int(content.get(key, 0)) < restricted:
                content[key] = restricted
                changed = True
        if changed:
            await self._try_send(
                EventTemplate("m.room.power_levels", user_id, content, old_room_id, state_key="")
            )

    async def _try_send(self, template: EventTemplate) -> None:
        """Send a follow-up the upgrade can do without (as Synapse, a refusal is logged)."""
        try:
            await self._sender.send(template)
        except AuthError as exc:
            logger.warning("Could not send %s into %s: %s", template.type, template.room_id, exc)

    async def _state_events(self, head: RoomHead) -> dict[tuple[str, str], Event]:
        wanted = {
            key: event_id
            for key, event_id in head.state.items()
            if key[0] in ("m.room.member", SPACE_CHILD)
            or key in (CREATE, POWER_LEVELS, CANONICAL_ALIAS)
            or (key[0] in COPIED_STATE and key[1] == "")
        }
        loaded = await self._sender.loader.get_events(wanted.values())
        return {key: loaded[event_id] for key, event_id in wanted.items() if event_id in loaded}


def _new_creators(
    version: RoomVersion, user_id: str, additional: list[str] | None
) -> frozenset[str]:
    """The creators of the new room: the upgrader, plus (v12+) the additional creators."""
    if not version.privileged_creators:
        return frozenset([user_id])
    extra = additional or []
    invalid = [user for user in extra if not is_valid_user_id(user)]
    if invalid:
        raise MatrixError(
            400, "M_INVALID_PARAM", f"additional_creators: {invalid[0]!r} is not a user ID"
        )
    return frozenset([user_id, *extra])


def _fixed_up_levels(content: Mapping[str, Any], version: RoomVersion) -> dict[str, Any]:
    """A copy of power levels content with every level a real integer (as v10+ require);
    values the old room version did not accept either are dropped."""
    fixed: dict[str, Any] = {}
    for key, value in content.items():
        if key in SCALAR_KEYS:
            level = parse_level(value, version)
            if level is not None:
                fixed[key] = level
        elif key in ("users", "events", "notifications"):
            if isinstance(value, Mapping):
                levels = {name: parse_level(raw, version) for name, raw in value.items()}
                fixed[key] = {name: level for name, level in levels.items() if level is not None}
        else:
            fixed[key] = value
    return fixed


def _is_local_alias(alias: Any, server_name: str) -> bool:
    return isinstance(alias, str) and alias.partition(":")[2] == server_name


def _moved_canonical_alias(event: Event | None, server_name: str) -> dict[str, Any]:
    """The canonical alias content of the new room: the local aliases, which move with it."""
    if event is None:
        return {}
    content: dict[str, Any] = {}
    alias = event.content.get("alias")
    if _is_local_alias(alias, server_name):
        content["alias"] = alias
    alt = event.content.get("alt_aliases")
    if isinstance(alt, list):
        local = [a for a in alt if _is_local_alias(a, server_name)]
        if local:
            content["alt_aliases"] = local
    return content


def _remaining_canonical_alias(content: Mapping[str, Any], server_name: str) -> dict[str, Any]:
    """The old room's canonical alias content without the aliases that moved away."""
    remaining = dict(content)
    if _is_local_alias(remaining.get("alias"), server_name):
        del remaining["alias"]
    alt = remaining.get("alt_aliases")
    if isinstance(alt, list):
        remaining["alt_aliases"] = [a for a in alt if not _is_local_alias(a, server_name)]
        if not remaining["alt_aliases"]:
            del remaining["alt_aliases"]
    return remaining
