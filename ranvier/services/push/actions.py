"""What every new event means to each member's notifications (spec: client-server-api
"Push Notifications", "Receiving notifications", "Marking notifications as read").

Before a batch of events persists, each is evaluated against the push rules of every local
member it concerns (joined members and an invited user), except its sender; notifying
actions are written with the event's thread in the events' own transaction, so a sync woken
by the events already reads their counts. Receipts move read positions, which clear counts.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.clock import now_ms
from ranvier.errors import MatrixError
from ranvier.protocol.events import Event
from ranvier.protocol.power_levels import PowerLevels
from ranvier.protocol.push_rules import PushContext, evaluate, outcome
from ranvier.services.push.rules import PushRuleService
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.storage import events as event_store
from ranvier.storage.database import Database
from ranvier.storage.event_push_actions import (
    MAIN_THREAD,
    UNTHREADED,
    EventPushActionStore,
    PushAction,
)
from ranvier.storage.state import StateMap

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
# users with new actions: pushers deliver them
ActionsListener = Callable[[Collection[str]], Awaitable[None]]
# what was found for one event, before the event has its stream ordering
_Found = tuple[Event, str, list[Any], bool]  # event, user_id, actions, highlight
ActionsWriter = Callable[[AsyncConnection, Mapping[str, int]], Awaitable[None]]
MAX_NOTIFICATIONS_LIMIT = 1000


def thread_of(event: Event) -> str:
    """spec: "Threading" - an event in a thread names its root with rel_type m.thread."""
    relates = event.content.get("m.relates_to")
    if isinstance(relates, dict) and relates.get("rel_type") == "m.thread":
        root = relates.get("event_id")
        if isinstance(root, str):
            return root
    return MAIN_THREAD


# membership events kept in memory, over all rooms: a room's member count is read for every
# batch sent into it
MEMBER_EVENTS_REMEMBERED = 200_000


@dataclass(frozen=True)
class _Room:
    # joined local user -> display name in the room
    local_joined: dict[str, str | None]
    # the room's joined members, of every server
    member_count: int
    levels: PowerLevels


class PushActionService:
    def __init__(
        self,
        db: Database,
        store: EventPushActionStore,
        rules: PushRuleService,
        loader: EventLoader,
        serializer: ClientEventSerializer,
        server_name: str,
    ) -> None:
        self._db = db
        self._store = store
        self._rules = rules
        self._loader = loader
        self._serializer = serializer
        self._local_suffix = ":" + server_name
        self.on_new_actions: list[ActionsListener] = []
        # called with the user after a receipt moved their read position: pushers send the
        # new badge count
        self.on_read: list[Callable[[str], Awaitable[None]]] = []
        # first event of a batch -> users it gave new actions, until the batch committed
        self._batch_to_users: dict[str, set[str]] = {}
        # room -> its current membership events' IDs -> (member, whether it is a join);
        # an event's membership survives its redaction, so this never goes stale
        self._room_to_member_joins: LRUCache[str, dict[str, tuple[str, bool]]] = LRUCache(
            maxsize=MEMBER_EVENTS_REMEMBERED, getsizeof=len
        )

    # -- recording -----------------------------------------------------------------------

    async def prepare(self, events: Sequence[Event], state: StateMap) -> ActionsWriter | None:
        """RoomEventSender.prepare_persist: evaluate a batch of one room against the room's
        state after it (the spec's member count and power levels). A failure is logged,
        never raised: the events are sent without notifications rather than not at all."""
        try:
            found = await self._evaluate_batch(events, state)
        except Exception:
            logger.exception("Evaluating push rules failed for %d events", len(events))
            found = []
        # Counts start at a local user's join (as Synapse, which counts from the user's
        # current membership event, so a profile change moves the start too): what
        # notified them before, an invite among it, is read once they join. Recorded as a
        # read position at the join, which a later receipt moves on from.
        joins = [
            (event.state_key, event)
            for event in events
            if event.type == "m.room.member"
            and event.membership == "join"
            and event.state_key is not None
            and event.state_key.endswith(self._local_suffix)
        ]
        if not found and not joins:
            return None
        now = now_ms()

        async def write(conn: AsyncConnection, orderings: Mapping[str, int]) -> None:
            await self._store.add_in(
                conn,
                [
                    PushAction(
                        event_id=event.event_id,
                        user_id=user_id,
                        room_id=event.room_id,
                        stream_ordering=orderings[event.event_id],
                        thread_id=thread_of(event),
                        actions=actions,
                        highlight=highlight,
                        received_ts=now,
                    )
                    for event, user_id, actions, highlight in found
                ],
            )
            for user_id, join in joins:
                await self._store.mark_read_in(
                    conn, user_id, join.room_id, UNTHREADED, orderings[join.event_id]
                )
            if found:
                self._batch_to_users[events[0].event_id] = {user_id for _, user_id, _, _ in found}

        return write

    async def on_persisted(self, events: Sequence[Event], position: int) -> None:
        """RoomEventSender.on_persisted: tell the pushers about committed actions."""
        users = self._batch_to_users.pop(events[0].event_id, None) if events else None
        if not users:
            return
        for listener in self.on_new_actions:
            await listener(users)

    async def _evaluate_batch(self, events: Sequence[Event], state: StateMap) -> list[_Found]:
        if not events:
            return []
        room = await self._room(state, events[0])
        found: list[_Found] = []
        for event in events:
            found += await self._evaluate(event, room)
        return found

    async def _room(self, state: StateMap, event: Event) -> _Room:
        """Who of this server is joined (with display names, which the rules match) and
        how many are joined in all: only the local members' events are read each time."""
        member_event_ids = [eid for (kind, _), eid in state.items() if kind == "m.room.member"]
        known = self._room_to_member_joins.get(event.room_id, {})
        unknown = [eid for eid in member_event_ids if eid not in known]
        if unknown:
            # only the room's current membership events are kept
            known = {eid: known[eid] for eid in member_event_ids if eid in known}
            for member_event in (await self._loader.get_events(unknown)).values():
                if member_event.state_key is not None:
                    known[member_event.event_id] = (
                        member_event.state_key,
                        member_event.membership == "join",
                    )
            if len(known) <= MEMBER_EVENTS_REMEMBERED:
                self._room_to_member_joins[event.room_id] = known
        joined = [known[eid] for eid in member_event_ids if eid in known]
        local = [
            state[("m.room.member", user_id)]
            for user_id, is_join in joined
            if is_join and user_id.endswith(self._local_suffix)
        ]
        local_joined: dict[str, str | None] = {}
        for member_event in (await self._loader.get_events(local)).values():
            if member_event.membership == "join" and member_event.state_key is not None:
                name = member_event.content.get("displayname")
                local_joined[member_event.state_key] = name if isinstance(name, str) else None
        return _Room(
            local_joined,
            sum(1 for _, is_join in joined if is_join),
            await self._power_levels(event, state),
        )

    async def _evaluate(self, event: Event, room: _Room) -> list[_Found]:
        joined, levels = room.local_joined, room.levels
        targets = set(joined)
        if event.type == "m.room.member" and event.membership == "invite" and event.state_key:
            targets.add(event.state_key)
        targets = {u for u in targets if u.endswith(self._local_suffix) and u != event.sender}
        if not targets:
            return []
        sender_level = levels.user_level(event.sender)
        member_count = room.member_count
        sender_power = sender_level if isinstance(sender_level, int) else 2**53
        notification_levels = {
            key: levels.notification_level(key) for key in ("room", *levels.notifications)
        }
        matchable = {**event.pdu, "event_id": event.event_id}
        found: list[_Found] = []
        for user_id in sorted(targets):
            ctx = PushContext(
                user_id=user_id,
                display_name=joined.get(user_id),
                member_count=member_count,
                sender_power_level=sender_power,
                notification_levels=notification_levels,
            )
            chosen = evaluate(await self._rules.ruleset(user_id), matchable, ctx)
            result = outcome(chosen)
            if not result.notify:
                continue
            found.append((event, user_id, chosen, result.highlight))
        return found

    async def _power_levels(self, event: Event, state: StateMap) -> PowerLevels:
        wanted = [
            state[key]
            for key in (("m.room.create", ""), ("m.room.power_levels", ""))
            if key in state
        ]
        loaded = await self._loader.get_events(wanted)
        create = loaded.get(state.get(("m.room.create", ""), ""))
        power = loaded.get(state.get(("m.room.power_levels", ""), ""))
        return PowerLevels.from_events(event.room_version, create, power)

    # -- reading and clearing ------------------------------------------------------------

    async def on_receipt(
        self, user_id: str, room_id: str, event_id: str, thread_id: str | None
    ) -> None:
        """ReceiptService.on_receipt: a read receipt reads everything up to its event, in
        its thread ("main" or a root) or, unthreaded, in every thread."""
        orderings = await event_store.get_stream_orderings(self._db, [event_id])
        if event_id not in orderings:
            return
        thread = UNTHREADED if thread_id is None else thread_id
        await self._store.mark_read(user_id, room_id, thread, orderings[event_id])
        for listener in self.on_read:
            await listener(user_id)

    async def unread_counts(self, user_id: str, room_ids: Collection[str]) -> dict[str, JsonDict]:
        """{room_id: {"notification_count", "highlight_count", "threads": {root: {...}}}} for
        rooms with anything unread. The room's counts include every thread; "threads" lists
        the threads other than the main timeline, so the main timeline's own counts are the
        room's minus the threads'."""
        counts = await self._store.unread_counts(user_id, room_ids)
        result: dict[str, JsonDict] = {}
        for room_id, room in counts.items():
            threads = {
                thread_id: {
                    "notification_count": c.notifications,
                    "highlight_count": c.highlights,
                }
                for thread_id, c in room.threads.items()
                if thread_id != MAIN_THREAD
            }
            result[room_id] = {
                "notification_count": sum(c.notifications for c in room.threads.values()),
                "highlight_count": sum(c.highlights for c in room.threads.values()),
                "threads": threads,
            }
        return result

    async def pending(self, user_id: str, after: int, limit: int) -> list[PushAction]:
        """The user's notifying actions after stream ordering `after`, oldest first."""
        return await self._store.actions_after(user_id, after, limit)

    async def unread_pending(self, user_id: str, after: int, limit: int) -> list[PushAction]:
        """As `pending`, leaving out what receipts have read: what an email tells about."""
        return await self._store.unread_after(user_id, after, limit)

    async def received_ts_before(self, user_id: str, stream_ordering: int) -> int | None:
        return await self._store.received_ts_before(user_id, stream_ordering)

    async def notifications(
        self, user_id: str, from_token: str | None, limit: int, only: str | None
    ) -> JsonDict:
        """GET /notifications: newest first, `from` is the previous page's next_token."""
        before: int | None = None
        if from_token is not None:
            if not from_token.isdigit():
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid 'from' token")
            before = int(from_token)
        limit = min(limit, MAX_NOTIFICATIONS_LIMIT)
        rows = await self._store.notifications(
            user_id, before, limit, only_highlight=only == "highlight"
        )
        events = await self._loader.get_events(action.event_id for action, _ in rows)
        shown = [(action, read) for action, read in rows if action.event_id in events]
        served = await self._serializer.serialize_events(
            [events[action.event_id] for action, _ in shown], requester_user_id=user_id
        )
        body: JsonDict = {
            "notifications": [
                {
                    "actions": action.actions,
                    "event": client_event,
                    "profile_tag": None,
                    "read": read,
                    "room_id": action.room_id,
                    "ts": action.received_ts,
                }
                for (action, read), client_event in zip(shown, served, strict=True)
            ]
        }
        if rows:
            body["next_token"] = str(rows[-1][0].stream_ordering)
        return body
