"""What an application service is interested in (spec: application-service-api
"Pushing events"; Synapse's ApplicationService.is_interested_in_event).

A room interests a service when its room ID matches the service's rooms namespace, when
one of its local aliases or its canonical alias (or alt_aliases) matches the aliases
namespace, or when a local user of the users namespace (or the service's own sender) is
joined to it. An event interests it when its room does, when its sender is one of its
users, or when it is a membership event about one of its users.

Lookups are batched per call: one query for the members of every room not yet known, one
for their aliases. Whether a service has a member in a room is cached per service, and
forgotten for a room at every membership event of one of this server's users there
(`on_persisted`); aliases are read each time (local aliases change without an event), but
only for rooms nothing else made interesting.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from cachetools import LRUCache

from ranvier.config.appservices import AppService
from ranvier.protocol.events import Event
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.storage.appservices import AppServiceStreams, StreamEvent

# rooms per service whose "one of its users is joined" answer is remembered
MEMBER_INTEREST_CACHE_SIZE = 50_000


class AppServiceInterest:
    def __init__(self, streams: AppServiceStreams, loader: EventLoader, server_name: str) -> None:
        self._streams = streams
        self._loader = loader
        self._server_name = server_name
        self._local_suffix = ":" + server_name
        self._service_to_room_has_member: dict[str, LRUCache[str, bool]] = {}
        # bumped at every invalidation: an answer read from the database while one ran
        # may predate it, and is used but not cached
        self._generation = 0

    async def on_persisted(self, events: Sequence[Event], _position: int) -> None:
        """A PersistListener: a local user's membership changed in these rooms."""
        rooms = {
            event.room_id
            for event in events
            if event.type == "m.room.member"
            and event.state_key is not None
            and event.state_key.endswith(self._local_suffix)
        }
        if not rooms:
            return
        self._generation += 1
        for cache in self._service_to_room_has_member.values():
            for room_id in rooms:
                cache.pop(room_id, None)

    async def interesting_events(
        self, service: AppService, candidates: Sequence[StreamEvent]
    ) -> list[StreamEvent]:
        """The candidates the service is interested in, in the order given."""
        direct = {event.event_id for event in candidates if self._about_its_user(service, event)}
        rooms = await self.interesting_rooms(
            service, {event.room_id for event in candidates if event.event_id not in direct}
        )
        return [event for event in candidates if event.event_id in direct or event.room_id in rooms]

    def _about_its_user(self, service: AppService, event: StreamEvent) -> bool:
        if service.is_user_in_namespace(event.sender):
            return True
        return (
            event.type == "m.room.member"
            and event.state_key is not None
            and service.is_user_in_namespace(event.state_key)
        )

    async def interesting_rooms(self, service: AppService, room_ids: Collection[str]) -> set[str]:
        """Those of `room_ids` the service is interested in."""
        found = {room_id for room_id in room_ids if service.is_room_in_namespace(room_id)}
        rest = [room_id for room_id in room_ids if room_id not in found]
        if not rest:
            return found
        has_member = await self._has_member(service, rest)
        found.update(room_id for room_id in rest if has_member[room_id])
        rest = [room_id for room_id in rest if not has_member[room_id]]
        if rest and service.aliases:
            found.update(await self._rooms_with_its_aliases(service, rest))
        return found

    async def interested_in_users(self, service: AppService, user_ids: Collection[str]) -> set[str]:
        """Those of `user_ids` that are its users or joined to a room it is interested in
        (whose presence and device lists it is sent)."""
        found = {user_id for user_id in user_ids if service.is_user_in_namespace(user_id)}
        rest = [user_id for user_id in user_ids if user_id not in found]
        if not rest:
            return found
        user_to_rooms = await self._streams.joined_rooms_of(rest)
        rooms = await self.interesting_rooms(
            service, {room_id for room_ids in user_to_rooms.values() for room_id in room_ids}
        )
        found.update(user_id for user_id, joined in user_to_rooms.items() if joined & rooms)
        return found

    async def _has_member(self, service: AppService, room_ids: Iterable[str]) -> dict[str, bool]:
        cache = self._service_to_room_has_member.get(service.id)
        if cache is None:
            cache = self._service_to_room_has_member[service.id] = LRUCache(
                MEMBER_INTEREST_CACHE_SIZE
            )
        answers: dict[str, bool] = {}
        missing: list[str] = []
        for room_id in room_ids:
            known = cache.get(room_id)
            if known is None:
                missing.append(room_id)
            else:
                answers[room_id] = known
        if missing:
            generation = self._generation
            members = await self._streams.joined_local_members(missing, self._server_name)
            for room_id in missing:
                answer = any(service.is_user_in_namespace(user) for user in members[room_id])
                answers[room_id] = answer
                if generation == self._generation:
                    cache[room_id] = answer
        return answers

    async def _rooms_with_its_aliases(self, service: AppService, room_ids: list[str]) -> set[str]:
        room_to_aliases: dict[str, list[str]] = {
            room_id: list(aliases)
            for room_id, aliases in (await self._streams.local_aliases(room_ids)).items()
        }
        canonical = await self._streams.canonical_alias_events(room_ids)
        loaded = await self._loader.get_events(canonical.values())
        for room_id, event_id in canonical.items():
            event = loaded.get(event_id)
            if event is not None:
                room_to_aliases.setdefault(room_id, []).extend(_canonical_aliases(event.content))
        return {
            room_id
            for room_id, aliases in room_to_aliases.items()
            if any(service.is_alias_in_namespace(alias) for alias in aliases)
        }


def _canonical_aliases(content: dict[str, Any]) -> list[str]:
    aliases = [content.get("alias")]
    alt = content.get("alt_aliases")
    if isinstance(alt, list):
        aliases.extend(alt)
    return [alias for alias in aliases if isinstance(alias, str)]
