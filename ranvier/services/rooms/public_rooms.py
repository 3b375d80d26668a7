"""The published room directory (spec: client-server-api "Published room directory",
list_public_rooms.yaml): which rooms are listed, and the listing itself.

Rooms are ordered by joined members, largest first, then by room ID, and paginated with
keyset tokens over that order. A published room is only listed while someone is joined and
while one could get in or read it (join rule public or knock, or world readable history), as
Synapse does; the spec lets servers apply such filters.

Other servers read the listing through /federation/v1/publicRooms when
`allow_public_rooms_over_federation` lets them; our users read another server's with
`/publicRooms?server=`, which asks that server the same way.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ranvier.errors import MatrixError
from ranvier.federation.client import FederationRequests
from ranvier.federation.errors import DestinationUnreachable, RemoteRequestFailed
from ranvier.protocol.events import Event
from ranvier.requester import UserRequester
from ranvier.services.appservice.room_list import AppServiceRoomList, parse_instance_id
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.room_access import RoomAccess
from ranvier.storage import rooms as room_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
LISTABLE_JOIN_RULES = frozenset({"public", "knock", "knock_restricted"})

# the room-wide state a directory entry is made of
_ENTRY_STATE = (
    "m.room.create",
    "m.room.name",
    "m.room.topic",
    "m.room.canonical_alias",
    "m.room.avatar",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
)

Visibility = Literal["public", "private"]
# (joined members, room ID): a room's place in the listing
SortKey = tuple[int, str]


@dataclass(frozen=True)
class PublicRoomsQuery:
    limit: int | None = None
    since: str | None = None
    generic_search_term: str | None = None
    # None in the list stands for rooms without a type
    room_types: list[str | None] | None = None
    include_all_networks: bool = False
    third_party_instance_id: str | None = None
    server: str | None = None


@dataclass(frozen=True)
class PageToken:
    forwards: bool
    key: SortKey

    def encode(self) -> str:
        payload = base64.urlsafe_b64encode(orjson.dumps(list(self.key))).decode().rstrip("=")
        return ("n" if self.forwards else "p") + payload

    @classmethod
    def decode(cls, token: str) -> PageToken:
        try:
            direction, payload = token[0], token[1:]
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            joined, room_id = orjson.loads(raw)
            if direction not in "np" or not isinstance(joined, int) or not isinstance(room_id, str):
                raise ValueError(token)
        except (IndexError, ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise MatrixError(400, "M_INVALID_PARAM", "Unknown pagination token") from None
        return cls(direction == "n", (joined, room_id))


def _order(key: SortKey) -> tuple[int, str]:
    return (-key[0], key[1])


def paginate(entries: list[dict[str, Any]], limit: int, since: PageToken | None) -> dict[str, Any]:
    """One page of entries (sorted largest first), with the tokens around it."""
    keys = [(entry["num_joined_members"], entry["room_id"]) for entry in entries]
    if since is None:
        start = 0
        end = min(limit, len(entries))
    elif since.forwards:
        start = next(
            (i for i, key in enumerate(keys) if _order(key) > _order(since.key)), len(keys)
        )
        end = min(start + limit, len(entries))
    else:
        end = next((i for i, key in enumerate(keys) if _order(key) >= _order(since.key)), len(keys))
        start = max(0, end - limit)
    page: dict[str, Any] = {"chunk": entries[start:end]}
    if end < len(entries) and end > start:
        page["next_batch"] = PageToken(True, keys[end - 1]).encode()
    if start > 0 and end > start:
        page["prev_batch"] = PageToken(False, keys[start]).encode()
    return page


def directory_entry(room_id: str, joined: int, state: Mapping[str, Event]) -> dict[str, Any]:
    """A room as the spec's PublishedRoomsChunk shows it."""

    def content(event_type: str) -> Mapping[str, Any]:
        event = state.get(event_type)
        return event.content if event is not None else {}

    entry: dict[str, Any] = {
        "room_id": room_id,
        "num_joined_members": joined,
        "world_readable": content("m.room.history_visibility").get("history_visibility")
        == "world_readable",
        "guest_can_join": content("m.room.guest_access").get("guest_access") == "can_join",
    }
    name = content("m.room.name").get("name")
    if isinstance(name, str) and name:
        entry["name"] = name
    topic = plain_text_topic(content("m.room.topic"))
    if topic:
        entry["topic"] = topic
    alias = content("m.room.canonical_alias").get("alias")
    if isinstance(alias, str) and alias:
        entry["canonical_alias"] = alias
    avatar_url = content("m.room.avatar").get("url")
    if isinstance(avatar_url, str) and avatar_url:
        entry["avatar_url"] = avatar_url
    join_rule = content("m.room.join_rules").get("join_rule")
    if isinstance(join_rule, str):
        entry["join_rule"] = join_rule
    room_type = content("m.room.create").get("type")
    if isinstance(room_type, str):
        entry["room_type"] = room_type
    return entry


def plain_text_topic(content: Mapping[str, Any]) -> str | None:
    # spec: m.room.topic - `topic` is the plain text; m.topic may carry it as text/plain
    topic = content.get("topic")
    if isinstance(topic, str) and topic:
        return topic
    block = content.get("m.topic")
    texts = block.get("m.text") if isinstance(block, dict) else None
    for text in texts if isinstance(texts, list) else []:
        if (
            isinstance(text, dict)
            and text.get("mimetype", "text/plain") == "text/plain"
            and isinstance(text.get("body"), str)
            and text["body"]
        ):
            return str(text["body"])
    return None


def is_listable(entry: Mapping[str, Any]) -> bool:
    return entry["num_joined_members"] > 0 and (
        entry.get("join_rule", "public") in LISTABLE_JOIN_RULES or entry["world_readable"]
    )


def matches(
    entry: Mapping[str, Any], search_term: str | None, room_types: Iterable[str | None] | None
) -> bool:
    if room_types is not None:
        wanted = set(room_types)
        if wanted and entry.get("room_type") not in wanted:
            return False
    if search_term:
        term = search_term.casefold()
        fields = (entry.get("name"), entry.get("topic"), entry.get("canonical_alias"))
        in_text = any(isinstance(value, str) and term in value.casefold() for value in fields)
        if not in_text and search_term != entry["room_id"]:
            return False
    return True


class PublicRoomsService:
    def __init__(
        self,
        db: Database,
        loader: EventLoader,
        access: RoomAccess,
        server_name: str,
        federation: FederationRequests,
        network_lists: AppServiceRoomList,
        *,
        enable_room_list_search: bool,
        allow_over_federation: bool,
    ) -> None:
        self._db = db
        self._network_lists = network_lists
        self._loader = loader
        self._access = access
        self._server_name = server_name
        self._federation = federation
        self._enable_room_list_search = enable_room_list_search
        self._allow_over_federation = allow_over_federation

    async def get_visibility(self, room_id: str) -> Visibility:
        """GET /directory/list/room/{roomId}"""
        room = await room_store.get_room(self._db, room_id)
        if room is None:
            raise MatrixError(404, "M_NOT_FOUND", "Room not found")
        return "public" if room.is_public else "private"

    async def set_visibility(
        self, requester: UserRequester, room_id: str, visibility: Visibility
    ) -> None:
        """PUT /directory/list/room/{roomId}: moderators of the room and server admins."""
        if requester.is_guest:
            raise MatrixError(403, "M_FORBIDDEN", "Guests cannot edit the published room list")
        room = await room_store.get_room(self._db, room_id)
        if room is None:
            raise MatrixError(404, "M_NOT_FOUND", "Room not found")
        if visibility == "public" and not self._enable_room_list_search:
            raise MatrixError(403, "M_FORBIDDEN", "This server does not publish a room directory")
        if not await self._access.can_edit_directory(requester, room_id):
            raise MatrixError(
                403,
                "M_FORBIDDEN",
                "You need to be a moderator in the room to change its directory visibility",
            )
        if room.is_public != (visibility == "public"):
            await room_store.set_room_public(self._db, room_id, visibility == "public")

    async def list_rooms(self, query: PublicRoomsQuery) -> dict[str, Any]:
        """GET and POST /publicRooms"""
        if query.server is not None and query.server != self._server_name:
            return await self._remote_rooms(query.server, query)
        return await self._local_rooms(query)

    async def list_rooms_for_server(self, origin: str, query: PublicRoomsQuery) -> dict[str, Any]:
        """GET and POST /_matrix/federation/v1/publicRooms"""
        self.check_federation_access(origin)
        return await self._local_rooms(query)

    def check_federation_access(self, origin: str) -> None:
        if not self._allow_over_federation:
            # as Synapse answers while allow_public_rooms_over_federation is off
            raise MatrixError(403, "M_FORBIDDEN", f"Federation denied with {origin}.")

    async def _remote_rooms(self, server: str, query: PublicRoomsQuery) -> dict[str, Any]:
        path = "/_matrix/federation/v1/publicRooms"
        try:
            if query.generic_search_term is not None or query.room_types is not None:
                # only the POST form carries a filter
                answer = await self._federation.post_json(server, path, _remote_body(query))
            else:
                answer = await self._federation.get_json(server, path, query=_remote_args(query))
        except DestinationUnreachable:
            raise MatrixError(
                502, "M_UNKNOWN", f"Failed to fetch the room list of {server}"
            ) from None
        except RemoteRequestFailed as failed:
            if 400 <= failed.status < 500 and failed.errcode:
                # the other server's refusal (403 while it keeps its directory to itself)
                raise MatrixError(
                    failed.status, failed.errcode, failed.message or str(failed)
                ) from None
            raise MatrixError(
                502, "M_UNKNOWN", f"Failed to fetch the room list of {server}"
            ) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("chunk"), list):
            raise MatrixError(502, "M_UNKNOWN", f"{server} sent a room list that is not one")
        return answer

    async def _local_rooms(self, query: PublicRoomsQuery) -> dict[str, Any]:
        if query.include_all_networks and query.third_party_instance_id is not None:
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                "third_party_instance_id can only be used if include_all_networks is false",
            )
        since = PageToken.decode(query.since) if query.since is not None else None
        limit = query.limit if query.limit else DEFAULT_LIMIT
        limit = min(limit, MAX_LIMIT)
        instance = query.third_party_instance_id
        network = parse_instance_id(instance) if instance is not None else None
        if not self._enable_room_list_search or (instance is not None and network is None):
            return {"chunk": [], "total_room_count_estimate": 0}
        # as Synapse: the server's own directory alone, one service network's alone when
        # named, or both with include_all_networks
        if network is not None:
            published = await self._network_lists.listed_rooms(network)
        elif query.include_all_networks:
            published = list(
                dict(
                    [
                        *await room_store.get_published_rooms(self._db),
                        *await self._network_lists.listed_rooms(None),
                    ]
                ).items()
            )
        else:
            published = await room_store.get_published_rooms(self._db)
        entries = await self._entries(published)
        entries = [
            entry
            for entry in entries
            if is_listable(entry) and matches(entry, query.generic_search_term, query.room_types)
        ]
        entries.sort(key=lambda entry: (-entry["num_joined_members"], entry["room_id"]))
        page = paginate(entries, limit, since)
        page["total_room_count_estimate"] = len(entries)
        return page

    async def _entries(self, published: list[tuple[str, int]]) -> list[dict[str, Any]]:
        state_ids = await state_store.get_current_state_ids_for_rooms(
            self._db, [room_id for room_id, _ in published], _ENTRY_STATE
        )
        events = await self._loader.get_events(
            event_id for by_type in state_ids.values() for event_id in by_type.values()
        )
        return [
            directory_entry(
                room_id,
                joined,
                {
                    event_type: events[event_id]
                    for event_type, event_id in state_ids[room_id].items()
                    if event_id in events
                },
            )
            for room_id, joined in published
        ]


def _remote_args(query: PublicRoomsQuery) -> dict[str, str]:
    args: dict[str, str] = {}
    if query.limit:
        args["limit"] = str(query.limit)
    if query.since is not None:
        args["since"] = query.since
    if query.include_all_networks:
        args["include_all_networks"] = "true"
    if query.third_party_instance_id is not None:
        args["third_party_instance_id"] = query.third_party_instance_id
    return args


def _remote_body(query: PublicRoomsQuery) -> dict[str, Any]:
    search_filter: dict[str, Any] = {}
    if query.generic_search_term is not None:
        search_filter["generic_search_term"] = query.generic_search_term
    if query.room_types is not None:
        search_filter["room_types"] = query.room_types
    body: dict[str, Any] = {
        "filter": search_filter,
        "include_all_networks": query.include_all_networks,
    }
    if query.limit:
        body["limit"] = query.limit
    if query.since is not None:
        body["since"] = query.since
    if query.third_party_instance_id is not None:
        body["third_party_instance_id"] = query.third_party_instance_id
    return body
