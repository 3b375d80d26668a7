"""Spaces: the space hierarchy (spec client-server-api "Spaces", space_hierarchy.yaml, and
its federation twin) and room summaries (room_summary.yaml, MSC3266).

A room this server is joined to is summarised from its current state; any other room is
asked of the servers its `m.space.child` event names, through /federation/v1/hierarchy,
whose answer also summarises that room's children, so a remote space costs one request.
Who sees a room follows the spec's list: its members and invitees, anyone when its join
rule is public or knock or its history world readable, and the members of a room a
restricted join rule allows. Another server asking sees what any of its users could, and
learns which children it cannot see (`inaccessible_children`).

The client walk is depth first over the children in the spec's order. Its pages share one
walk: the token names what is left of it, kept here for a few minutes (as Synapse does), with
the parameters it was made for, so a token reused with others fails cleanly.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from cachetools import TTLCache

from ranvier.errors import MatrixError
from ranvier.federation.client import FederationRequests
from ranvier.federation.errors import FederationError
from ranvier.protocol.events import Event
from ranvier.protocol.server_acl import server_allowed
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.persist_batch import RoomNotFound
from ranvier.services.rooms.public_rooms import directory_entry
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage import state as state_store
from ranvier.storage.database import Database

SPACE_CHILD = "m.space.child"
DEFAULT_LIMIT = 50
MAX_LIMIT = 50
# bounds on what one space makes this server do (Synapse's are the same)
MAX_CHILDREN_PER_SPACE = 50
MAX_SERVERS_PER_CHILD = 3
WALK_TTL_SECONDS = 5 * 60
MAX_WALKS = 10_000
# join rules under which anyone may ask to get in, so anyone may see the room
_OPEN_JOIN_RULES = frozenset({"public", "knock", "knock_restricted"})
_RESTRICTED_JOIN_RULES = frozenset({"restricted", "knock_restricted"})
_SUMMARY_STATE = frozenset(
    {
        "m.room.create",
        "m.room.name",
        "m.room.topic",
        "m.room.canonical_alias",
        "m.room.avatar",
        "m.room.join_rules",
        "m.room.history_visibility",
        "m.room.guest_access",
        "m.room.encryption",
        "m.room.server_acl",
    }
)


# -- m.space.child events, as plain data -------------------------------------------------------


def _via(content: Mapping[str, Any]) -> list[str]:
    via = content.get("via")
    if not isinstance(via, list):
        return []
    return [server for server in via if isinstance(server, str) and server]


def is_valid_child(child: Mapping[str, Any]) -> bool:
    """spec: an m.space.child event without a non-empty `via` is not a child."""
    content = child.get("content")
    return (
        child.get("type") == SPACE_CHILD
        and isinstance(child.get("state_key"), str)
        and bool(child["state_key"])
        and isinstance(content, dict)
        and bool(_via(content))
    )


def _order(content: Mapping[str, Any]) -> str | None:
    # spec: m.space.child - `order` is up to 50 printable ASCII characters; any other is
    # treated as absent
    order = content.get("order")
    if (
        isinstance(order, str)
        and len(order) <= 50
        and all("\x20" <= char <= "\x7e" for char in order)
    ):
        return order
    return None


def child_order_key(child: Mapping[str, Any]) -> tuple[int, str, int, str]:
    """spec "Ordering of children within a space": by `order` (children with one first),
    then by the event's origin_server_ts, then by room ID."""
    order = _order(child["content"])
    ts = child.get("origin_server_ts")
    return (
        0 if order is not None else 1,
        order or "",
        ts if isinstance(ts, int) else 0,
        child["state_key"],
    )


def ordered_children(
    children: Iterable[Mapping[str, Any]], *, suggested_only: bool
) -> list[dict[str, Any]]:
    valid = [
        dict(child)
        for child in children
        if is_valid_child(child)
        and (not suggested_only or child["content"].get("suggested") is True)
    ]
    return sorted(valid, key=child_order_key)


def stripped_child(event: Event) -> dict[str, Any]:
    # spec: a stripped state event with its origin_server_ts
    return {
        "type": event.type,
        "state_key": event.state_key,
        "content": dict(event.content),
        "sender": event.sender,
        "origin_server_ts": event.origin_server_ts,
    }


def is_open(entry: Mapping[str, Any]) -> bool:
    """Whether anyone may see the room: they could ask to get in, or read it."""
    return entry.get("join_rule") in _OPEN_JOIN_RULES or entry.get("world_readable") is True


def allowed_room_ids(entry: Mapping[str, Any]) -> list[str]:
    rooms = entry.get("allowed_room_ids")
    if not isinstance(rooms, list):
        return []
    return [room_id for room_id in rooms if isinstance(room_id, str)]


# -- summaries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoomSummary:
    # the room as the spec's room_summary.yaml shows it, with `allowed_room_ids` for a
    # restricted room
    entry: dict[str, Any]
    # its m.space.child events, stripped, valid, in the spec's order; empty unless a space
    children: list[dict[str, Any]]
    # the room's m.room.server_acl content, for a room summarised here
    acl: Mapping[str, Any] | None = None

    @property
    def room_id(self) -> str:
        return str(self.entry["room_id"])

    def chunk(self) -> dict[str, Any]:
        return {**self.entry, "children_state": self.children}


def _restricted_rooms(join_rules: Event | None) -> list[str]:
    if join_rules is None or join_rules.content.get("join_rule") not in _RESTRICTED_JOIN_RULES:
        return []
    allow = join_rules.content.get("allow")
    return [
        rule["room_id"]
        for rule in (allow if isinstance(allow, list) else [])
        if isinstance(rule, dict)
        and rule.get("type") == "m.room_membership"
        and isinstance(rule.get("room_id"), str)
    ]


def _remote_summary(room: Any, *, suggested_only: bool) -> RoomSummary | None:
    """A room as another server summarised it, or None if it is not a summary."""
    if not isinstance(room, dict) or not isinstance(room.get("room_id"), str):
        return None
    if not isinstance(room.get("num_joined_members"), int):
        return None
    entry = {key: value for key, value in room.items() if key != "children_state"}
    state = room.get("children_state")
    children = ordered_children(
        (child for child in (state if isinstance(state, list) else []) if isinstance(child, dict)),
        suggested_only=suggested_only,
    )
    return RoomSummary(entry, children if entry.get("room_type") == "m.space" else [])


# -- the walk ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Queued:
    room_id: str
    via: tuple[str, ...]
    depth: int


@dataclass(frozen=True)
class HierarchyQuery:
    room_id: str
    suggested_only: bool = False
    max_depth: int | None = None
    limit: int | None = None
    from_token: str | None = None


@dataclass(frozen=True)
class _Walk:
    """What is left of one client's walk, as its next page starts it."""

    user_id: str
    root: str
    suggested_only: bool
    max_depth: int | None
    # rooms still to visit, the next one last
    queue: tuple[_Queued, ...]
    processed: frozenset[str]
    # summaries of remote rooms, from the answer about their parent
    known: Mapping[str, RoomSummary] = field(default_factory=dict)


class SpaceHierarchyService:
    def __init__(
        self,
        db: Database,
        sender: RoomEventSender,
        loader: EventLoader,
        federation: FederationRequests,
        server_name: str,
        resolve_alias: Callable[[str], Awaitable[tuple[str, list[str]]]],
    ) -> None:
        self._db = db
        self._resolve_alias = resolve_alias
        self._sender = sender
        self._loader = loader
        self._federation = federation
        self._server_name = server_name
        self._token_to_walk: TTLCache[str, _Walk] = TTLCache(MAX_WALKS, WALK_TTL_SECONDS)

    # -- GET /_matrix/client/v1/rooms/{roomId}/hierarchy ------------------------------------

    async def hierarchy(self, user_id: str, query: HierarchyQuery) -> dict[str, Any]:
        limit = min(query.limit or DEFAULT_LIMIT, MAX_LIMIT)
        # read once a page: the rooms a user is in decide what they see
        user_rooms = await self._rooms_of(user_id)
        if query.from_token is not None:
            walk = self._resumed_walk(user_id, query)
        else:
            root = await self.local_summary(query.room_id, suggested_only=query.suggested_only)
            if root is None or not self._visible_to_user(user_rooms, root.entry):
                raise MatrixError(403, "M_FORBIDDEN", "You are not allowed to view this room.")
            walk = _Walk(
                user_id,
                query.room_id,
                query.suggested_only,
                query.max_depth,
                (_Queued(query.room_id, (), 0),),
                frozenset(),
            )
        queue = list(walk.queue)
        processed = set(walk.processed)
        known = dict(walk.known)
        rooms: list[dict[str, Any]] = []
        while queue and len(rooms) < limit:
            item = queue.pop()
            if item.room_id in processed:
                continue
            processed.add(item.room_id)
            summary = await self._summary_for_walk(item, walk.suggested_only, known, processed)
            if summary is None or not self._visible_to_user(user_rooms, summary.entry):
                continue
            rooms.append(summary.chunk())
            if walk.max_depth is None or item.depth < walk.max_depth:
                children = summary.children[:MAX_CHILDREN_PER_SPACE]
                queue.extend(
                    _Queued(
                        child["state_key"],
                        tuple(_via(child["content"])[:MAX_SERVERS_PER_CHILD]),
                        item.depth + 1,
                    )
                    for child in reversed(children)
                )
        page: dict[str, Any] = {"rooms": rooms}
        if queue:
            token = secrets.token_urlsafe(16)
            self._token_to_walk[token] = replace(
                walk, queue=tuple(queue), processed=frozenset(processed), known=known
            )
            page["next_batch"] = token
        return page

    def _resumed_walk(self, user_id: str, query: HierarchyQuery) -> _Walk:
        walk = self._token_to_walk.get(query.from_token or "")
        if walk is None or walk.user_id != user_id or walk.root != query.room_id:
            raise MatrixError(400, "M_INVALID_PARAM", "Unknown pagination token")
        if walk.suggested_only != query.suggested_only or walk.max_depth != query.max_depth:
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                "suggested_only and max_depth cannot change on paginated requests",
            )
        return walk

    async def _summary_for_walk(
        self,
        item: _Queued,
        suggested_only: bool,
        known: dict[str, RoomSummary],
        processed: set[str],
    ) -> RoomSummary | None:
        local = await self.local_summary(item.room_id, suggested_only=suggested_only)
        if local is not None:
            return local
        summary = known.get(item.room_id)
        # the parent's answer summarises a child, but lists no grandchildren
        if summary is not None and summary.entry.get("room_type") != "m.space":
            return summary
        answer = await self._ask_servers(item.room_id, item.via, suggested_only)
        if answer is None:
            return summary
        summary, children, inaccessible = answer
        for child in children:
            known.setdefault(child.room_id, child)
        # spec: the answering server says no one of ours could see these: not asked again
        processed.update(inaccessible)
        return summary

    # -- summaries of rooms here and elsewhere -----------------------------------------------

    async def local_summary(self, room_id: str, *, suggested_only: bool) -> RoomSummary | None:
        """The room's summary from its current state, if this server is in it."""
        joined_members = await state_store.get_members(self._db, room_id)
        if not any(user.partition(":")[2] == self._server_name for user in joined_members):
            return None
        try:
            head = await self._sender.head(room_id)
        except RoomNotFound:
            return None
        wanted = {
            key: event_id
            for key, event_id in head.state.items()
            if (key[1] == "" and key[0] in _SUMMARY_STATE) or key[0] == SPACE_CHILD
        }
        events = await self._loader.get_events(wanted.values())
        room_state = {
            key[0]: events[event_id]
            for key, event_id in wanted.items()
            if key[1] == "" and key[0] != SPACE_CHILD and event_id in events
        }
        entry = directory_entry(room_id, len(joined_members), room_state)
        entry["room_version"] = head.room_version.identifier
        encryption = room_state.get("m.room.encryption")
        algorithm = encryption.content.get("algorithm") if encryption is not None else None
        if isinstance(algorithm, str):
            entry["encryption"] = algorithm
        restricted = _restricted_rooms(room_state.get("m.room.join_rules"))
        if restricted:
            entry["allowed_room_ids"] = restricted
        children: list[dict[str, Any]] = []
        if entry.get("room_type") == "m.space":
            children = ordered_children(
                (
                    stripped_child(events[event_id])
                    for key, event_id in wanted.items()
                    if key[0] == SPACE_CHILD and event_id in events
                ),
                suggested_only=suggested_only,
            )
        acl = room_state.get("m.room.server_acl")
        return RoomSummary(entry, children, acl.content if acl is not None else None)

    async def _ask_servers(
        self, room_id: str, via: Sequence[str], suggested_only: bool
    ) -> tuple[RoomSummary, list[RoomSummary], list[str]] | None:
        """The room's summary, its children's and the children we may not see, from the
        first of `via` that answers with them."""
        path = f"/_matrix/federation/v1/hierarchy/{quote(room_id, safe='')}"
        args = {"suggested_only": "true" if suggested_only else "false"}
        for server in via:
            if server == self._server_name:
                continue
            try:
                answer = await self._federation.get_json(server, path, query=args)
            except FederationError:
                continue
            if not isinstance(answer, dict):
                continue
            room = _remote_summary(answer.get("room"), suggested_only=suggested_only)
            if room is None or room.room_id != room_id:
                continue
            # only its own children's summaries: a server does not speak for other rooms
            child_ids = {child["state_key"] for child in room.children}
            listed = answer.get("children")
            children = [
                summary
                for summary in (
                    _remote_summary(child, suggested_only=suggested_only)
                    for child in (listed if isinstance(listed, list) else [])
                )
                if summary is not None and summary.room_id in child_ids
            ]
            inaccessible = answer.get("inaccessible_children")
            return (
                room,
                children,
                [r for r in inaccessible if isinstance(r, str) and r in child_ids]
                if isinstance(inaccessible, list)
                else [],
            )
        return None

    # -- who sees what ----------------------------------------------------------------------

    async def _rooms_of(self, user_id: str) -> dict[str, str]:
        """room ID -> the user's membership, for the rooms they are joined or invited to."""
        return await state_store.get_rooms_for_user(self._db, user_id, ("join", "invite"))

    @staticmethod
    def _visible_to_user(rooms: Mapping[str, str], entry: Mapping[str, Any]) -> bool:
        """Whether a user in `rooms` (see _rooms_of) may see the room."""
        if is_open(entry) or entry["room_id"] in rooms:
            return True
        return any(rooms.get(room_id) == "join" for room_id in allowed_room_ids(entry))

    async def _visible_to_server(self, origin: str, summary: RoomSummary) -> bool:
        if not server_allowed(summary.acl, origin):
            return False
        if is_open(summary.entry):
            return True
        # a server with a member may see the room; one with a member in a room the join
        # rule allows could bring its users in
        for room_id in (summary.room_id, *allowed_room_ids(summary.entry)):
            if await state_store.server_has_joined_member(self._db, room_id, origin):
                return True
        return False

    # -- GET /_matrix/federation/v1/hierarchy/{roomId} -------------------------------------

    async def federation_hierarchy(
        self, origin: str, room_id: str, *, suggested_only: bool
    ) -> dict[str, Any]:
        root = await self.local_summary(room_id, suggested_only=suggested_only)
        if root is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
        if not server_allowed(root.acl, origin):
            raise MatrixError(403, "M_FORBIDDEN", "Server is banned from this room by its ACL")
        if not await self._visible_to_server(origin, root):
            raise MatrixError(404, "M_NOT_FOUND", "Room not found or is not accessible")
        children: list[dict[str, Any]] = []
        inaccessible: list[str] = []
        for child in root.children[:MAX_CHILDREN_PER_SPACE]:
            summary = await self.local_summary(child["state_key"], suggested_only=suggested_only)
            if summary is None:
                # spec: rooms we cannot tell about are left out altogether
                continue
            if await self._visible_to_server(origin, summary):
                children.append(summary.chunk())
            else:
                inaccessible.append(summary.room_id)
        return {"room": root.chunk(), "children": children, "inaccessible_children": inaccessible}

    # -- GET /_matrix/client/v1/room_summary/{roomIdOrAlias} -------------------------------

    async def room_summary(
        self, user_id: str | None, room_id_or_alias: str, via: Sequence[str]
    ) -> dict[str, Any]:
        room_id = room_id_or_alias
        if room_id_or_alias.startswith("#"):
            room_id, servers = await self._resolve_alias(room_id_or_alias)
            via = [*via, *servers]
        elif not room_id_or_alias.startswith("!"):
            raise MatrixError(400, "M_INVALID_PARAM", "Expected a room ID or a room alias")
        summary = await self.local_summary(room_id, suggested_only=False)
        if summary is None:
            answer = await self._ask_servers(room_id, via, False)
            summary = answer[0] if answer is not None else None
        visible = summary is not None and (
            is_open(summary.entry)
            if user_id is None
            else self._visible_to_user(await self._rooms_of(user_id), summary.entry)
        )
        if summary is None or not visible:
            raise MatrixError(404, "M_NOT_FOUND", "Room not found or is not accessible")
        result = dict(summary.entry)
        if user_id is not None:
            memberships = await state_store.get_rooms_for_user(
                self._db, user_id, ("join", "invite", "knock", "leave", "ban")
            )
            result["membership"] = memberships.get(room_id, "leave")
        return result
