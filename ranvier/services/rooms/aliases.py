"""Room aliases (spec: client-server-api "Room aliases", directory.yaml) and the check that
an m.room.canonical_alias event only names aliases that point at its room.

Only aliases on this server are hosted here. Another server's aliases are resolved by asking
that server (/query/directory, through `RemoteDirectoryQuery`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.requester import UserRequester
from ranvier.services.appservice.registry import AppServiceRegistry
from ranvier.services.rooms.room_access import CANONICAL_ALIAS, RoomAccess
from ranvier.services.rooms.room_creation import is_valid_alias_localpart
from ranvier.services.rooms.sender import RoomEventSender, RoomNotFound
from ranvier.storage import aliases as alias_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database

logger = logging.getLogger(__name__)

# spec: appendices "Room aliases" - at most 255 bytes including the sigil and domain
MAX_ALIAS_LENGTH = 255

# an alias of another server -> (room_id, servers) as that server answers it, or the
# MatrixError to answer (services/federation/queries.py asks with /query/directory)
RemoteDirectoryQuery = Callable[[str], Awaitable[tuple[str, list[str]]]]

# a local alias nobody created -> whether an application service whose namespace it is in
# says it has just created it (services/appservice/queries.py asks them)
AliasProvider = Callable[[str], Awaitable[bool]]


async def no_alias_provider(_alias: str) -> bool:
    return False


@dataclass(frozen=True)
class RoomAlias:
    localpart: str
    server_name: str

    def __str__(self) -> str:
        return f"#{self.localpart}:{self.server_name}"


def parse_room_alias(value: Any) -> RoomAlias:
    """The alias, or 400 M_INVALID_PARAM saying what is wrong with it."""
    if not isinstance(value, str) or not value.startswith("#") or ":" not in value:
        raise MatrixError(400, "M_INVALID_PARAM", f"{value!r} is not a room alias (#name:server)")
    if len(value.encode()) > MAX_ALIAS_LENGTH:
        raise MatrixError(
            400, "M_INVALID_PARAM", f"Room aliases are at most {MAX_ALIAS_LENGTH} bytes long"
        )
    localpart, _, server_name = value[1:].partition(":")
    if not is_valid_alias_localpart(localpart) or not server_name:
        raise MatrixError(400, "M_INVALID_PARAM", f"{value!r} is not a valid room alias")
    return RoomAlias(localpart, server_name)


class AliasService:
    def __init__(
        self,
        db: Database,
        sender: RoomEventSender,
        access: RoomAccess,
        server_name: str,
        *,
        require_membership: bool,
        remote: RemoteDirectoryQuery,
        appservices: AppServiceRegistry,
        provider: AliasProvider = no_alias_provider,
    ) -> None:
        self._appservices = appservices
        self._db = db
        self._sender = sender
        self._access = access
        self._server_name = server_name
        self._require_membership = require_membership
        self._remote = remote
        self._provider = provider

    async def create(self, requester: UserRequester, alias_text: str, room_id: str) -> None:
        """PUT /directory/room/{roomAlias}"""
        alias = parse_room_alias(alias_text)
        if alias.server_name != self._server_name:
            raise MatrixError(
                400, "M_INVALID_PARAM", f"Aliases can only be created on {self._server_name}"
            )
        if not isinstance(room_id, str) or not room_id.startswith("!"):
            raise MatrixError(400, "M_INVALID_PARAM", f"{room_id!r} is not a room ID")
        self.check_alias_namespace(requester, str(alias))
        # admins may alias rooms they are not in, as in Synapse, and so may a service in
        # its namespace (spec: application-service-api "Server admin style permissions")
        if self._require_membership and not requester.is_admin and requester.app_service is None:
            if not await self._access.is_joined(room_id, requester.user_id):
                raise MatrixError(403, "M_FORBIDDEN", "You must be in the room to alias it")
        elif not await self._access.room_exists(room_id):
            raise MatrixError(404, "M_NOT_FOUND", f"Room {room_id} not found")
        try:
            await alias_store.create_alias(self._db, str(alias), room_id, requester.user_id)
        except alias_store.AliasInUse:
            # spec: directory.yaml PUT - 409 when the alias exists
            raise MatrixError(409, "M_ROOM_IN_USE", f"Room alias {alias} already exists") from None

    def check_alias_namespace(self, requester: UserRequester, alias: str) -> None:
        """400 M_EXCLUSIVE, as Synapse answers: a service may create or delete aliases of
        its own namespace only; anyone else none that a service holds exclusively (also
        through createRoom's room_alias_name)."""
        service = requester.app_service
        if service is not None:
            if not service.is_alias_in_namespace(alias):
                raise MatrixError(
                    400,
                    "M_EXCLUSIVE",
                    "This application service has not reserved this kind of alias.",
                )
            return
        if self._appservices.exclusive_owner_of_alias(alias) is not None:
            raise MatrixError(
                400, "M_EXCLUSIVE", "This alias is reserved by an application service."
            )

    async def resolve(self, alias_text: str) -> tuple[str, list[str]]:
        """GET /directory/room/{roomAlias}: (room_id, servers that know the room)."""
        alias = parse_room_alias(alias_text)
        if alias.server_name != self._server_name:
            room_id, servers = await self._remote(str(alias))
            # as Synapse: the alias's server's list, with the servers of the members this
            # server knows of added, this server first if it is among them
            return room_id, await self._with_joined_servers(room_id, servers)
        return await self._resolve_local(alias)

    async def federation_query(self, alias_text: str) -> tuple[str, list[str]]:
        """GET /_matrix/federation/v1/query/directory: an alias of this server for another."""
        alias = parse_room_alias(alias_text)
        if alias.server_name != self._server_name:
            raise MatrixError(
                400, "M_INVALID_PARAM", f"Room alias {alias} is not hosted on this homeserver"
            )
        return await self._resolve_local(alias)

    async def _resolve_local(self, alias: RoomAlias) -> tuple[str, list[str]]:
        room_id = await self.local_room_id(str(alias))
        if room_id is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Room alias {alias} not found")
        return room_id, await self._with_joined_servers(room_id, [self._server_name])

    async def local_room_id(self, alias: str) -> str | None:
        """The room a local alias points at; if none, the one an application service
        creates for it when asked (spec: application-service-api "Querying")."""
        room_id = await alias_store.get_alias(self._db, alias)
        if room_id is None and await self._provider(alias):
            room_id = await alias_store.get_alias(self._db, alias)
        return room_id

    async def _with_joined_servers(self, room_id: str, servers: Sequence[str]) -> list[str]:
        members = await state_store.get_members(self._db, room_id)
        joined = sorted({member.partition(":")[2] for member in members})
        found = list(dict.fromkeys([*servers, *joined]))
        if self._server_name in found:
            found.remove(self._server_name)
            found.insert(0, self._server_name)
        return found

    async def delete(self, requester: UserRequester, alias_text: str) -> None:
        """DELETE /directory/room/{roomAlias}: by the alias's creator, a server admin, or
        someone with the power to change the room's canonical alias."""
        alias = parse_room_alias(alias_text)
        record = None
        if alias.server_name == self._server_name:
            record = await alias_store.get_alias_record(self._db, str(alias))
        if record is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Room alias {alias} not found")
        # a service manages the aliases of its namespace whoever created them
        if (
            requester.app_service is None
            and record.creator != requester.user_id
            and not await self._access.can_edit_directory(requester, record.room_id)
        ):
            raise MatrixError(403, "M_FORBIDDEN", "You don't have permission to delete the alias")
        self.check_alias_namespace(requester, str(alias))
        room_id = await alias_store.delete_alias(self._db, str(alias))
        if room_id is None:
            # deleted by someone else since the lookup
            raise MatrixError(404, "M_NOT_FOUND", f"Room alias {alias} not found")
        await self._drop_from_canonical_alias(requester, room_id, str(alias))

    async def local_aliases(self, requester: UserRequester, room_id: str) -> list[str]:
        """GET /rooms/{roomId}/aliases: members (and anyone, if the room is world readable)."""
        if not room_id.startswith("!"):
            raise MatrixError(400, "M_INVALID_PARAM", f"{room_id!r} is not a room ID")
        allowed = (
            requester.is_admin
            or await self._access.is_joined(room_id, requester.user_id)
            or await self._access.is_world_readable(room_id)
        )
        if not allowed:
            raise MatrixError(403, "M_FORBIDDEN", "You are not a member of the room")
        return await alias_store.get_aliases_for_room(self._db, room_id)

    async def check_canonical_alias(
        self, requester: UserRequester, room_id: str, state_key: str, content: dict[str, Any]
    ) -> None:
        """Refuse an m.room.canonical_alias whose newly named aliases are malformed (400
        M_INVALID_PARAM) or do not point at the room (400 M_BAD_ALIAS). Aliases the current
        event already names are let through, so that one alias drifting elsewhere does not
        block every later change."""
        if state_key != "":
            return
        try:
            current = await self._access.current_state_event(room_id, CANONICAL_ALIAS)
        except RoomNotFound:
            return  # the send itself refuses it
        before = current.content if current is not None else {}
        named_before = {before.get("alias"), *_string_list(before.get("alt_aliases"))}

        wanted: list[Any] = []
        alias = content.get("alias")
        if alias is not None and alias != "":
            wanted.append(alias)
        alt_aliases = content.get("alt_aliases")
        if alt_aliases is not None:
            if not isinstance(alt_aliases, list):
                raise MatrixError(400, "M_INVALID_PARAM", "alt_aliases must be a list of aliases")
            wanted.extend(alt_aliases)
        for value in wanted:
            if isinstance(value, str) and value in named_before:
                continue
            parsed = parse_room_alias(value)
            target = None
            if parsed.server_name == self._server_name:
                target = await alias_store.get_alias(self._db, str(parsed))
            if target != room_id:
                raise MatrixError(
                    400, "M_BAD_ALIAS", f"The alias {parsed} does not point to this room"
                )

    async def _drop_from_canonical_alias(
        self, requester: UserRequester, room_id: str, alias: str
    ) -> None:
        # spec: directory.yaml DELETE - servers may update alt_aliases; the deletion stands
        # even if the requester may not change the canonical alias event
        try:
            current = await self._access.current_state_event(room_id, CANONICAL_ALIAS)
        except RoomNotFound:
            return
        if current is None:
            return
        content = dict(current.content)
        changed = False
        if content.get("alias") == alias:
            del content["alias"]
            changed = True
        alt_aliases = content.get("alt_aliases")
        if isinstance(alt_aliases, list) and alias in alt_aliases:
            remaining = [value for value in alt_aliases if value != alias]
            if remaining:
                content["alt_aliases"] = remaining
            else:
                del content["alt_aliases"]
            changed = True
        if not changed:
            return
        template = EventTemplate(CANONICAL_ALIAS, requester.user_id, content, room_id, "")
        try:
            await self._sender.send(template)
        except Exception as exc:  # the alias is gone either way; the event is a courtesy
            logger.info(
                "Not updating the canonical alias of %s after deleting %s: %s", room_id, alias, exc
            )


def _string_list(value: Any) -> Sequence[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
