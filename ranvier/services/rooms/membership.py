"""Room membership: join, invite, leave, forget, kick, ban, unban, knock, restricted joins,
and keeping member events in step with profiles.

spec: client-server-api "Room membership" (joining.yaml, inviting.yaml, leaving.yaml,
kicking.yaml, banning.yaml, knocking.yaml, "Restricted rooms"). The auth rules of the room
version decide every transition in the event pipeline; the checks here come first only
where the spec or Synapse give a more precise answer than the rule that would fail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.protocol.power_levels import PowerLevels, is_valid_user_id
from ranvier.requester import UserRequester
from ranvier.services.profiles import ProfileChange
from ranvier.services.rooms.errors import as_matrix_error
from ranvier.services.rooms.sender import (
    RoomEventSender,
    RoomHead,
    RoomNotFound,
)
from ranvier.storage import aliases as alias_store
from ranvier.storage import memberships as membership_store
from ranvier.storage import state as state_store

logger = logging.getLogger(__name__)

MEMBER = "m.room.member"
JOIN_RULES = ("m.room.join_rules", "")
GUEST_ACCESS = ("m.room.guest_access", "")
POWER_LEVELS = ("m.room.power_levels", "")
CREATE = ("m.room.create", "")
# spec: m.room.member - the key naming the user who authorised a restricted join
AUTHORISING_USER = "join_authorised_via_users_server"

# (displayname, avatar_url) of a user, for their member events
ProfileLookup = Callable[[str], Awaitable[tuple[str | None, str | None]]]

# a local alias -> the room it points at, or None (AliasService.local_room_id, which also
# asks the application service whose namespace the alias is in)
LocalAliasLookup = Callable[[str], Awaitable[str | None]]

# a local user about to be invited -> whether an application service whose namespace holds
# them, if nobody registered them, says it has just created them
# (services/appservice/queries.py)
UserProvider = Callable[[str], Awaitable[bool]]


async def _no_user_provider(_user_id: str) -> bool:
    return False


class RemoteMembershipHandler(Protocol):
    """Membership changes of our users that go through other servers
    (services/federation/remote_memberships.py)."""

    async def invite(self, template: EventTemplate) -> Event: ...

    async def in_room(self, room_id: str) -> bool: ...

    async def servers_for(self, user_id: str, room_id: str) -> list[str]: ...

    async def leave_out_of_band(
        self, user_id: str, room_id: str, content: Mapping[str, Any]
    ) -> None: ...

    async def knock(
        self, user_id: str, room_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> None: ...


class RemoteJoinHandler(Protocol):
    """Joins of our users to rooms this server is not in, through a resident server
    (services/federation/remote_joins.py)."""

    async def locate(
        self, room_id_or_alias: str, via: Sequence[str], *, user_id: str | None = None
    ) -> tuple[str, list[str]] | None: ...

    async def in_room(self, room_id: str) -> bool: ...

    async def join(
        self, user_id: str, room_id: str, servers: Sequence[str], content: Mapping[str, Any]
    ) -> None: ...


def forbidden(error: str) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", error)


def not_found(error: str) -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", error)


def _domain(identifier: str) -> str:
    return identifier.partition(":")[2]


class MembershipService:
    def __init__(
        self,
        sender: RoomEventSender,
        server_name: str,
        profile_lookup: ProfileLookup,
        remote_memberships: RemoteMembershipHandler | None = None,
        remote_joins: RemoteJoinHandler | None = None,
        local_alias: LocalAliasLookup | None = None,
        user_provider: UserProvider = _no_user_provider,
    ) -> None:
        self._sender = sender
        self._local_alias = local_alias or (lambda alias: alias_store.get_alias(self._db, alias))
        self._user_provider = user_provider
        self._remote_joins = remote_joins
        # invites of other servers' users, and memberships in rooms this server is not in
        self._remote = remote_memberships
        self._db = sender.db
        self._server_name = server_name
        self._profile_lookup = profile_lookup
        # raise to refuse joins and knocks to a room ID before the room is looked up, so
        # that rules about a room hold even once it is gone here (a blocked, purged room)
        self.join_checks: list[Callable[[str], Awaitable[None]]] = []
        # told (user ID, room ID) when a room is forgotten: its rows change in place, which
        # no stream position shows
        self.forget_listeners: list[Callable[[str, str], None]] = []

    # -- queries -------------------------------------------------------------------------

    async def shares_room(self, user_a: str, user_b: str) -> bool:
        """Whether the two users are joined to a common room now."""
        if user_a == user_b:
            return True
        return await state_store.users_share_room(self._db, user_a, user_b)

    async def joined_rooms(self, user_id: str) -> list[str]:
        """GET /joined_rooms"""
        return sorted(await state_store.get_rooms_for_user(self._db, user_id))

    async def resolve_room(self, room_id_or_alias: str, via: Sequence[str] = ()) -> str:
        """The ID of a room known here, named by ID or by a local alias; 404 otherwise."""
        if room_id_or_alias.startswith("#"):
            if ":" not in room_id_or_alias:
                raise MatrixError(
                    400, "M_INVALID_PARAM", f"{room_id_or_alias!r} is not a valid room alias"
                )
            if _domain(room_id_or_alias) != self._server_name:
                raise not_found(
                    f"{room_id_or_alias} is an alias on another server; "
                    "remote rooms need federation, which this server does not have yet"
                )
            room_id = await self._local_alias(room_id_or_alias)
            if room_id is None:
                raise not_found(f"Room alias {room_id_or_alias} not found")
            return room_id
        if not room_id_or_alias.startswith("!"):
            raise MatrixError(
                400, "M_INVALID_PARAM", f"{room_id_or_alias!r} is not a room ID or room alias"
            )
        try:
            await self._sender.head(room_id_or_alias)
        except RoomNotFound:
            remote = [server for server in via if server != self._server_name]
            if remote or (
                ":" in room_id_or_alias and _domain(room_id_or_alias) != self._server_name
            ):
                raise not_found(
                    "This server is not in that room; remote rooms need federation, "
                    "which this server does not have yet"
                ) from None
            raise not_found(f"Unknown room {room_id_or_alias}") from None
        return room_id_or_alias

    # -- joining -------------------------------------------------------------------------

    async def join(
        self,
        requester: UserRequester,
        room_id_or_alias: str,
        *,
        reason: str | None = None,
        via: Sequence[str] = (),
        extra_content: Mapping[str, Any] | None = None,
    ) -> str:
        """POST /join/{roomIdOrAlias} and /rooms/{roomId}/join; returns the room ID.

        `extra_content` is kept in the member event; its displayname and avatar_url (a
        per-room profile) win over the global profile."""
        await self._check_join(room_id_or_alias)
        if self._remote is not None and room_id_or_alias.startswith("!"):
            # accepting an invite (or a knock's answer) to a room this server is not in:
            # through the inviting server, as Synapse (a v12 room ID names no server)
            inviting = await self._remote.servers_for(requester.user_id, room_id_or_alias)
            via = [*via, *inviting]
        located = None
        if self._remote_joins is not None:
            located = await self._remote_joins.locate(
                room_id_or_alias, via, user_id=requester.user_id
            )
        if located is not None and not await self._remote_joins_in_room(located[0]):
            room_id, servers = located
            await self._check_join(room_id)
            content = await self._content_with_profile("join", requester.user_id, reason)
            if extra_content:
                extra = {k: v for k, v in extra_content.items() if k != AUTHORISING_USER}
                content = {**content, **extra, "membership": "join"}
            assert self._remote_joins is not None
            await self._remote_joins.join(requester.user_id, room_id, servers, content)
            return room_id
        if located is not None:
            room_id = located[0]
        else:
            room_id = await self.resolve_room(room_id_or_alias, via)
        user_id = requester.user_id
        head = await self._head(room_id, missing=not_found(f"Unknown room {room_id}"))
        current = await self._state_event(head, (MEMBER, user_id))
        if current is not None and current.membership == "ban":
            raise forbidden("You are banned from this room")
        if requester.is_guest and not await self._guests_can_join(head):
            # spec: guest access - guests join only rooms with guest_access can_join
            raise forbidden("Guest access is not allowed in this room")
        content = await self._content_with_profile("join", user_id, reason)
        if requester.is_guest:
            # as Synapse: marks the member as a guest, to be made to leave if guest access
            # is revoked (on_guest_access_changed)
            content["kind"] = "guest"
        if extra_content:
            # only the server may name who authorised a restricted join (as Synapse)
            extra = {k: v for k, v in extra_content.items() if k != AUTHORISING_USER}
            content = {**content, **extra, "membership": "join"}
        if current is None or current.membership not in ("join", "invite"):
            authoriser = await self._restricted_join_authoriser(head, room_id, user_id)
            if authoriser is not None:
                content[AUTHORISING_USER] = authoriser
        await self._update(room_id, user_id, user_id, content, current)
        return room_id

    async def knock(
        self,
        requester: UserRequester,
        room_id_or_alias: str,
        *,
        reason: str | None = None,
        via: Sequence[str] = (),
    ) -> str:
        """POST /knock/{roomIdOrAlias}; returns the room ID."""
        await self._check_join(room_id_or_alias)
        user_id = requester.user_id
        located = await self._locate_remote(room_id_or_alias, via)
        if located is not None:
            # spec: server-server-api "Knocking upon a room" - through a resident server:
            # via (server_name), the room ID's, or for another server's alias its answer
            room_id, servers = located
            await self._check_join(room_id)
            if await self._current_membership(room_id, user_id) == "ban":
                raise forbidden("You are banned from this room")
            content = await self._content_with_profile("knock", user_id, reason)
            assert self._remote is not None
            await self._remote.knock(user_id, room_id, servers, content)
            return room_id
        room_id = await self.resolve_room(room_id_or_alias, via)
        head = await self._head(room_id, missing=not_found(f"Unknown room {room_id}"))
        current = await self._state_event(head, (MEMBER, user_id))
        if current is not None and current.membership == "ban":
            raise forbidden("You are banned from this room")
        content = await self._content_with_profile("knock", user_id, reason)
        await self._update(room_id, user_id, user_id, content, current)
        return room_id

    async def _locate_remote(
        self, room_id_or_alias: str, via: Sequence[str]
    ) -> tuple[str, list[str]] | None:
        """(room ID, servers to ask) when the room is one this server is not in and
        others may be asked about; None when it is for this server to answer."""
        if self._remote is None:
            return None
        if self._remote_joins is not None:
            located = await self._remote_joins.locate(room_id_or_alias, via)
        elif room_id_or_alias.startswith("!"):
            located = (room_id_or_alias, [*via, _domain(room_id_or_alias)])
        else:
            located = None
        if located is None or await self._remote.in_room(located[0]):
            return None
        return located

    async def _remote_joins_in_room(self, room_id: str) -> bool:
        return self._remote_joins is None or await self._remote_joins.in_room(room_id)

    async def _check_join(self, room_id_or_alias: str) -> None:
        if room_id_or_alias.startswith("!"):
            for check in self.join_checks:
                await check(room_id_or_alias)

    async def _restricted_join_authoriser(
        self, head: RoomHead, room_id: str, user_id: str
    ) -> str | None:
        """For a restricted room (v8+) the joined local user with invite power who vouches
        for the join, if the user is in one of the allowed rooms; None if the room is not
        restricted. spec: client-server-api "Restricted rooms"."""
        version = head.room_version
        rules = await self._state_event(head, JOIN_RULES)
        if rules is None:
            return None
        rule = rules.content.get("join_rule")
        restricted = (rule == "restricted" and version.restricted_join_rule) or (
            rule == "knock_restricted" and version.knock_restricted_join_rule
        )
        if not restricted:
            return None
        allowed = _allowed_room_ids(rules.content)
        joined = await state_store.get_rooms_for_user(self._db, user_id)
        if not any(allowed_room in joined for allowed_room in allowed):
            if _domain(user_id) != self._server_name and not await self._in_any(allowed):
                # spec: make_join - this server cannot tell whether a user of another server
                # is in rooms it is not in itself
                raise MatrixError(
                    400,
                    "M_UNABLE_TO_AUTHORISE_JOIN",
                    "This server is in none of the rooms this room allows joining from",
                )
            raise forbidden(
                "You do not belong to any of the rooms or spaces this room allows joining from"
            )
        levels = await self._power_levels(head)
        members = await state_store.get_members(self._db, room_id)
        local = sorted(member for member in members if _domain(member) == self._server_name)
        # as Synapse: the local member with the highest level, if that level may invite
        chosen = max(local, key=levels.user_level, default=None)
        if chosen is None or levels.user_level(chosen) < levels.invite:
            raise MatrixError(
                400,
                "M_UNABLE_TO_GRANT_JOIN",
                "No member of this room on this server may invite you; ask for an invite",
            )
        return chosen

    async def join_authoriser(self, room_id: str, user_id: str) -> str | None:
        """The local member who vouches for `user_id` (of this or another server: make_join
        asks for remote users) joining a restricted room, for the join's
        join_authorised_via_users_server; None if the room is not restricted or the user is
        invited or joined already. Raises 403 when the user is in none of the allowed rooms,
        400 M_UNABLE_TO_AUTHORISE_JOIN when this server cannot tell, 400
        M_UNABLE_TO_GRANT_JOIN when no member here may invite."""
        head = await self._head(room_id, missing=not_found(f"Unknown room {room_id}"))
        current = await self._state_event(head, (MEMBER, user_id))
        if current is not None and current.membership in ("join", "invite"):
            return None
        return await self._restricted_join_authoriser(head, room_id, user_id)

    async def _in_any(self, room_ids: Sequence[str]) -> bool:
        """Whether a user of this server is joined to one of the rooms."""
        for room_id in room_ids:
            members = await state_store.get_members(self._db, room_id)
            if any(_domain(member) == self._server_name for member in members):
                return True
        return False

    async def _guests_can_join(self, head: RoomHead) -> bool:
        event = await self._state_event(head, GUEST_ACCESS)
        return event is not None and event.content.get("guest_access") == "can_join"

    async def on_guest_access_changed(self, event: Event) -> None:
        """Guest access revoked (m.room.guest_access other than can_join): every local guest
        joined or invited leaves, as Synapse does (SyTest "Guest users are kicked from
        guest_access rooms on revocation of guest_access"). The guests leave themselves
        rather than being kicked, so no power level is needed; a failure is logged."""
        if event.content.get("guest_access") == "can_join":
            return
        try:
            head = await self._sender.head(event.room_id)
        except RoomNotFound:
            return
        member_ids = [
            event_id
            for (event_type, state_key), event_id in head.state.items()
            if event_type == MEMBER and _domain(state_key) == self._server_name
        ]
        members = await self._sender.loader.get_events(member_ids)
        for member in members.values():
            if member.membership not in ("join", "invite"):
                continue
            if member.content.get("kind") != "guest" or member.state_key is None:
                continue
            guest = member.state_key
            try:
                await self._sender.send(
                    EventTemplate(MEMBER, guest, {"membership": "leave"}, event.room_id, guest)
                )
            except Exception as exc:
                logger.warning("Could not remove guest %s from %s: %s", guest, event.room_id, exc)

    # -- acting on others ----------------------------------------------------------------

    async def invite(
        self,
        requester: UserRequester,
        room_id: str,
        target: str,
        *,
        reason: str | None = None,
        is_direct: bool = False,
    ) -> None:
        """POST /rooms/{roomId}/invite (and createRoom's invites of remote users)"""
        _check_user_id(target)
        remote = self._remote if _domain(target) != self._server_name else None
        if remote is None and _domain(target) != self._server_name:
            raise forbidden(
                "Users on other servers cannot be invited: this server does not federate"
            )
        head = await self._head(room_id)
        inviter = await self._state_event(head, (MEMBER, requester.user_id))
        current = await self._state_event(head, (MEMBER, target))
        # Only members learn the target's membership from the answer; for others the
        # auth rules refuse the invite ("sender is not joined").
        if inviter is not None and inviter.membership == "join" and current is not None:
            if current.membership == "ban":
                raise forbidden(f"{target} is banned from the room")
            if current.membership == "join":
                raise forbidden(f"{target} is already in the room")
        if remote is None:
            # spec: application-service-api "Querying" - as Synapse, the invite goes ahead
            # whatever the service answers
            await self._user_provider(target)
        content = await self._content_with_profile("invite", target, reason)
        if is_direct:
            content["is_direct"] = True
        await self._update(
            room_id,
            requester.user_id,
            target,
            content,
            current,
            # spec: server-server-api "Inviting to a room" - the invitee's server signs first
            send=None if remote is None else remote.invite,
        )

    async def kick(
        self, requester: UserRequester, room_id: str, target: str, *, reason: str | None = None
    ) -> None:
        """POST /rooms/{roomId}/kick"""
        _check_user_id(target)
        head = await self._head(room_id)
        current = await self._state_event(head, (MEMBER, target))
        if current is None or current.membership in ("leave", "ban"):
            raise forbidden(f"{target} is not in the room")
        await self._update(
            room_id, requester.user_id, target, _content("leave", reason), current, dedupe=False
        )

    async def ban(
        self, requester: UserRequester, room_id: str, target: str, *, reason: str | None = None
    ) -> None:
        """POST /rooms/{roomId}/ban"""
        _check_user_id(target)
        head = await self._head(room_id)
        current = await self._state_event(head, (MEMBER, target))
        await self._update(room_id, requester.user_id, target, _content("ban", reason), current)

    async def unban(
        self, requester: UserRequester, room_id: str, target: str, *, reason: str | None = None
    ) -> None:
        """POST /rooms/{roomId}/unban"""
        _check_user_id(target)
        head = await self._head(room_id)
        current = await self._state_event(head, (MEMBER, target))
        if current is None or current.membership != "ban":
            # as Synapse: unbanning someone who is not banned is a state error
            membership = current.membership if current is not None else "none"
            raise MatrixError(
                403, "M_BAD_STATE", f"{target} is not banned (membership is {membership})"
            )
        await self._update(
            room_id, requester.user_id, target, _content("leave", reason), current, dedupe=False
        )

    # -- leaving -------------------------------------------------------------------------

    async def leave(
        self, requester: UserRequester, room_id: str, *, reason: str | None = None
    ) -> None:
        """POST /rooms/{roomId}/leave: leave, reject an invite or retract a knock."""
        user_id = requester.user_id
        if self._remote is not None and not await self._remote.in_room(room_id):
            current = await self._current_membership(room_id, user_id)
            if current in ("invite", "knock"):
                # spec: server-server-api "Leaving Rooms (Rejecting Invites)" - through a
                # server that is in the room
                await self._remote.leave_out_of_band(user_id, room_id, _content("leave", reason))
                return
        head = await self._head(room_id)
        current_event = await self._state_event(head, (MEMBER, user_id))
        await self._update(room_id, user_id, user_id, _content("leave", reason), current_event)

    async def forget(self, requester: UserRequester, room_id: str) -> None:
        """POST /rooms/{roomId}/forget"""
        user_id = requester.user_id
        membership = (
            await state_store.get_rooms_for_user(self._db, user_id, ("join", "invite", "knock"))
        ).get(room_id)
        if membership is not None:
            # as Synapse: only rooms one has left (or been banned from) can be forgotten
            raise MatrixError(400, "M_UNKNOWN", f"User {user_id} is in room {room_id}")
        await membership_store.forget_room(self._db, user_id, room_id)
        for listener in self.forget_listeners:
            listener(user_id, room_id)

    # -- profiles ------------------------------------------------------------------------

    async def on_profile_change(self, change: ProfileChange) -> None:
        """Send a fresh join event, with the new name and avatar, into every joined room."""
        if not change.membership_fields_changed:
            return
        user_id = change.user_id
        rooms = await state_store.get_rooms_for_user(self._db, user_id)
        content: dict[str, Any] = {"membership": "join"}
        if change.after.displayname is not None:
            content["displayname"] = change.after.displayname
        if change.after.avatar_url is not None:
            content["avatar_url"] = change.after.avatar_url
        room_ids = sorted(rooms)
        contents = [await self._rejoin_content(room_id, user_id, content) for room_id in room_ids]
        results = await asyncio.gather(
            *(
                self._sender.send(EventTemplate(MEMBER, user_id, joined, room_id, user_id))
                for room_id, joined in zip(room_ids, contents, strict=True)
            ),
            return_exceptions=True,
        )
        for room_id, result in zip(sorted(rooms), results, strict=True):
            if isinstance(result, BaseException):
                logger.warning(
                    "Could not update %s's member event in %s: %s", user_id, room_id, result
                )

    async def _rejoin_content(
        self, room_id: str, user_id: str, content: dict[str, Any]
    ) -> dict[str, Any]:
        """A profile update's join content for one room: a guest stays marked as one, so
        that revoking guest access still finds them (as Synapse, which marks every
        membership change a guest makes)."""
        try:
            head = await self._sender.head(room_id)
        except RoomNotFound:
            return content
        current = await self._state_event(head, (MEMBER, user_id))
        if current is not None and current.content.get("kind") == "guest":
            return {**content, "kind": "guest"}
        return content

    # -- helpers -------------------------------------------------------------------------

    async def _head(self, room_id: str, missing: MatrixError | None = None) -> RoomHead:
        try:
            return await self._sender.head(room_id)
        except RoomNotFound:
            # the same answer as for a room one is not in: room IDs are not to be probed
            raise missing or forbidden("You are not in this room") from None

    async def _state_event(self, head: RoomHead, key: tuple[str, str]) -> Event | None:
        event_id = head.state.get(key)
        return None if event_id is None else await self._sender.loader.get_event(event_id)

    async def _power_levels(self, head: RoomHead) -> PowerLevels:
        create = await self._state_event(head, CREATE)
        levels = await self._state_event(head, POWER_LEVELS)
        return PowerLevels.from_events(head.room_version, create, levels)

    async def _content_with_profile(
        self, membership: str, user_id: str, reason: str | None
    ) -> dict[str, Any]:
        # as Synapse: joins, knocks and invites carry the user's global profile
        content = _content(membership, reason)
        if _domain(user_id) == self._server_name:
            displayname, avatar_url = await self._profile_lookup(user_id)
            if displayname is not None:
                content["displayname"] = displayname
            if avatar_url is not None:
                content["avatar_url"] = avatar_url
        return content

    async def _current_membership(self, room_id: str, user_id: str) -> str | None:
        """The user's latest membership in the room, out of band ones included."""
        history = await membership_store.get_membership_history(self._db, room_id, user_id)
        return history.latest_membership

    async def _update(
        self,
        room_id: str,
        sender: str,
        target: str,
        content: dict[str, Any],
        current: Event | None,
        *,
        dedupe: bool = True,
        send: Callable[[EventTemplate], Awaitable[Event]] | None = None,
    ) -> Event:
        if (
            dedupe
            and current is not None
            and current.sender == sender
            and current.content == content
        ):
            # as Synapse: repeating a membership change is answered with the event already
            # there (spec: inviting.yaml "or was already invited")
            return current
        template = EventTemplate(MEMBER, sender, content, room_id, target)
        try:
            return await (send or self._sender.send)(template)
        except Exception as exc:
            error = as_matrix_error(exc)
            if error is None:
                raise
            raise error from None


def _content(membership: str, reason: str | None) -> dict[str, Any]:
    content: dict[str, Any] = {"membership": membership}
    if reason is not None:
        content["reason"] = reason
    return content


def _check_user_id(user_id: str) -> None:
    if not is_valid_user_id(user_id):
        raise MatrixError(400, "M_INVALID_PARAM", f"{user_id!r} is not a valid user ID")


def _allowed_room_ids(content: Mapping[str, Any]) -> list[str]:
    """The rooms of the `allow` conditions of a join rule; malformed entries are skipped."""
    allow = content.get("allow")
    if not isinstance(allow, list):
        return []
    return [
        entry["room_id"]
        for entry in allow
        if isinstance(entry, Mapping)
        and entry.get("type") == "m.room_membership"
        and isinstance(entry.get("room_id"), str)
    ]
