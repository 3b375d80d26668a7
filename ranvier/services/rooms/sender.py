"""Sending events into rooms: built, authorised and persisted through `protocol/`.

Sends to one room are serialised in memory: a per-room worker drains the room's queue,
builds each event on top of the previous one (so prev_events chain within a batch),
checks it against the auth rules, and persists the whole batch in one transaction. Other
rooms proceed in parallel. The room's head (forward extremities, current state, state
group) is kept in memory between batches.

Events from other servers enter through the same queue (`persist_federated`), already
checked by the caller; federated_persistence.py decides their state groups, forward
extremities and the room's new current state. Both kinds are written by one `_commit`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.clock import now_ms
from ranvier.metrics.blocks import measured
from ranvier.protocol.auth import AuthError, check_auth
from ranvier.protocol.auth_selection import auth_types_for_event
from ranvier.protocol.event_builder import (
    EventTemplate,
    PrevEvent,
    build_create_event,
    build_event,
    build_unsigned_pdu,
)
from ranvier.protocol.event_ids import compute_event_id
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.federated_persistence import (
    FederatedEvent,
    FederatedPersistence,
    FederatedWork,
)
from ranvier.services.rooms.persist_batch import (
    MAX_PREV_EVENTS,
    MAX_STATE_CHAIN_LENGTH,
    BuiltEvent,
    IdCounter,
    NewStateGroup,
    RoomHead,
    RoomNotFound,
    StateChanges,
    Txn,
)
from ranvier.storage import events as event_store
from ranvier.storage import rooms as room_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.events import EventRow
from ranvier.storage.memberships import MembershipRow, insert_memberships, move_memberships
from ranvier.storage.state import StateKey, StateMap
from ranvier.streams.change_log import ChangeLog
from ranvier.streams.positions import StreamPositions

logger = logging.getLogger(__name__)

MAX_BATCH = 100
# transaction IDs of recent sends answered from memory when a client retries
TXNS_REMEMBERED = 10_000

PersistedCallback = Callable[[Sequence[Event], int], Awaitable[None]]
# writes that must commit together with the events, e.g. the search index
PersistHook = Callable[[AsyncConnection, Sequence[Event]], Awaitable[None]]
# work done before the transaction (reads, evaluation) whose rows commit with the events:
# given the batch and the room's state after it, returns the writer to run in the
# transaction (with each event's stream ordering), or None when there is nothing to write
PersistWriter = Callable[[AsyncConnection, Mapping[str, int]], Awaitable[None]]
PersistPreparer = Callable[[Sequence[Event], StateMap], Awaitable[PersistWriter | None]]
# raises (e.g. MatrixError) to refuse an event before it is built: rules of this server,
# not of the room, such as joins to a room the admins blocked
SendCheck = Callable[[EventTemplate], Awaitable[None]]
# run with an event built and authorised but not yet persisted, while nothing else can be
# sent into its room; raising refuses the event (a room upgrade creates the replacement
# room here, so that the new room can name the tombstone that points to it); returning an
# event persists it instead: the same event with more signatures (an invite of a user of
# another server comes back signed by that server too)
BeforePersist = Callable[[Event], Awaitable[Event | None]]


class PersistListeners:
    """Who hears of each committed batch, with the position up to which everything has
    committed, in one fixed order: first `readable`, cheap in-memory updates readers
    depend on (cache invalidation) and then waking the readers; then `persisted`, the
    slower bookkeeping. A send answers once all of them have run.

    The sender holds this from construction, and the server's wiring connects it once,
    before any start-up work sends an event: most listeners are services built on the
    sender (presence and typing follow room membership, which sends through it), so they
    cannot exist yet when it is constructed. Connecting again is refused: the whole
    order is decided in one place.
    """

    def __init__(self) -> None:
        self._listeners: tuple[PersistedCallback, ...] = ()
        self._connected = False

    def connect(
        self,
        *,
        readable: Sequence[PersistedCallback] = (),
        persisted: Sequence[PersistedCallback] = (),
    ) -> None:
        if self._connected:
            raise RuntimeError("persist listeners are connected once")
        self._connected = True
        self._listeners = (*readable, *persisted)

    async def __call__(self, events: Sequence[Event], current: int) -> None:
        for listener in self._listeners:
            await listener(events, current)


@dataclass
class _Pending:
    template: EventTemplate
    txn: Txn | None
    future: asyncio.Future[Event]
    before_persist: BeforePersist | None = None


@dataclass
class RoomEventSender:
    db: Database
    loader: EventLoader
    server_name: str
    signing_key: ServerSigningKey
    positions: StreamPositions
    state_group_ids: IdCounter
    heads_cache_size: int = 1000
    listeners: PersistListeners = field(default_factory=PersistListeners)
    prepare_persist: list[PersistPreparer] = field(default_factory=list)
    in_persist_transaction: list[PersistHook] = field(default_factory=list)
    before_send: list[SendCheck] = field(default_factory=list)

    # outliers, rejected and soft-failed events take positions below zero, counting down:
    # every reader of the stream reads above a position it has seen, so never reaches them
    hidden_orderings: IdCounter = field(default_factory=lambda: IdCounter(0))

    def __post_init__(self) -> None:
        self._room_id_to_head: LRUCache[str, RoomHead] = LRUCache(maxsize=self.heads_cache_size)
        # counts the heads set or dropped by room workers (any room: kept small)
        self._heads_moved = 0
        self._room_id_to_queue: dict[str, list[_Pending | FederatedWork]] = {}
        self._room_id_to_worker: dict[str, asyncio.Task[None]] = {}
        self._txn_to_future: dict[Txn, asyncio.Future[Event]] = {}
        self._txn_to_event_id: LRUCache[Txn, str] = LRUCache(maxsize=TXNS_REMEMBERED)
        # room ID -> its newest event's position
        self.room_changes = ChangeLog(self.positions.current)
        # user ID -> the position of their newest membership row (room_memberships)
        self.member_changes = ChangeLog(self.positions.current)
        # told of each room whose rows were purged, to drop what they keep of it
        self.purge_listeners: list[Callable[[str], None]] = []
        # from room version 12 a room's ID is its create event's hash: two creates by one
        # user with the same content in the same millisecond would get the same ID
        self._last_create_ts = 0
        self._federated = FederatedPersistence(
            self.db, self.loader, self.state_group_ids, self._commit
        )

    @classmethod
    async def create(
        cls, db: Database, loader: EventLoader, server_name: str, signing_key: ServerSigningKey
    ) -> RoomEventSender:
        positions = StreamPositions(await event_store.max_stream_ordering(db))
        groups = IdCounter(await state_store.max_state_group_id(db))
        hidden = IdCounter(-(await event_store.min_stream_ordering(db)))
        return cls(db, loader, server_name, signing_key, positions, groups, hidden_orderings=hidden)

    # -- sending -------------------------------------------------------------------------

    async def send(
        self,
        template: EventTemplate,
        txn: Txn | None = None,
        before_persist: BeforePersist | None = None,
    ) -> Event:
        """Build, authorise and persist one event; the same txn returns the same event.

        Raises RoomNotFound, AuthError (the rules refuse it), EventBuildError or
        PDUValidationError (the event cannot exist in this room version), or what
        `before_persist` raised.
        """
        assert template.room_id is not None
        for check in self.before_send:
            await check(template)
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        if txn is not None:
            in_flight = self._txn_to_future.get(txn)
            if in_flight is not None:
                return await asyncio.shield(in_flight)
            # registered before the first await, so a concurrent retry joins this send
            self._txn_to_future[txn] = future
            future.add_done_callback(lambda _: self._txn_to_future.pop(txn, None))
            # a retry of a send made here; one this process never saw (made before a
            # restart) is found when its transaction ID fails to insert (_send_batch)
            event_id = self._txn_to_event_id.get(txn)
            if event_id is not None:
                event = await self.loader.get_event(event_id)
                assert event is not None
                future.set_result(event)
                return event
        self._enqueue(template.room_id, _Pending(template, txn, future, before_persist))
        return await asyncio.shield(future)

    async def persist_federated(
        self,
        room_id: str,
        room_version: RoomVersion,
        items: Sequence[FederatedEvent],
        *,
        new_room: bool = False,
        backfilled: bool = False,
    ) -> None:
        """Persist events that came from other servers, in order, in the room's queue (so
        they serialise with local sends).

        `backfilled`: history older than the room's timeline here (pulled with /backfill).
        The events get state groups and their place in the timeline by depth, but stream
        positions below zero (no /sync shows them as new) and no listener hears of them;
        forward extremities, current state and memberships stay as they are.

        `new_room`: the room is not known here yet (a remote join), its row is created.
        Accepted non-outliers get stream positions and wake the listeners; every
        non-outlier gets the state after it (its state_before, plus itself if it is
        accepted state). Accepted ones that are not soft-failed become forward
        extremities in place of their prev_events, and the room's current state becomes
        the extremities' state, resolved when they disagree. Raises RoomNotFound for an
        unknown room without `new_room`.
        """
        if not items:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(room_id, FederatedWork(room_version, items, new_room, future, backfilled))
        await asyncio.shield(future)

    def _enqueue(self, room_id: str, work: _Pending | FederatedWork) -> None:
        self._room_id_to_queue.setdefault(room_id, []).append(work)
        if room_id not in self._room_id_to_worker:
            self._room_id_to_worker[room_id] = asyncio.create_task(self._drain(room_id))

    async def wait_idle(self) -> None:
        """Shutdown: let every send already queued persist, even if its request is gone."""
        while self._room_id_to_worker:
            await asyncio.gather(*self._room_id_to_worker.values(), return_exceptions=True)

    async def _drain(self, room_id: str) -> None:
        try:
            while queue := self._room_id_to_queue.get(room_id):
                first = queue[0]
                if isinstance(first, FederatedWork):
                    self._room_id_to_queue[room_id] = queue[1:]
                    head: RoomHead | None = None
                    try:
                        head = await self._federated.persist(
                            room_id, first, self._room_id_to_head.get(room_id)
                        )
                    except Exception as exc:
                        if not isinstance(exc, RoomNotFound):
                            logger.exception("Persisting remote events in %s failed", room_id)
                        first.future.set_exception(exc)
                    else:
                        first.future.set_result(None)
                    finally:
                        # the head the events moved to; on failure, reloaded from what was
                        # written at the next send
                        self._set_head(room_id, head)
                    continue
                count = next(
                    (i for i, w in enumerate(queue) if isinstance(w, FederatedWork)), len(queue)
                )
                count = min(count, MAX_BATCH)
                batch = [w for w in queue[:count] if isinstance(w, _Pending)]
                self._room_id_to_queue[room_id] = queue[count:]
                try:
                    await self._send_batch(room_id, batch)
                except Exception as exc:
                    logger.exception("Persisting events in %s failed", room_id)
                    self._set_head(room_id, None)
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
        finally:
            self._room_id_to_queue.pop(room_id, None)
            self._room_id_to_worker.pop(room_id, None)

    async def _send_batch(self, room_id: str, batch: list[_Pending]) -> None:
        try:
            head = await self.head(room_id)
        except RoomNotFound as exc:
            for pending in batch:
                pending.future.set_exception(exc)
            return
        working = RoomHead(
            head.room_version,
            list(head.extremities),
            dict(head.state),
            head.state_group,
            head.chain_length,
            list(head.unnamed_extremities),
        )
        built: list[BuiltEvent] = []
        refused: list[tuple[_Pending, Exception]] = []
        for pending in batch:
            try:
                event = await self._build_and_check(pending.template, working)
                if pending.before_persist is not None:
                    replacement = await pending.before_persist(event)
                    if replacement is not None:
                        assert replacement.event_id == event.event_id
                        event = replacement
            except Exception as exc:
                refused.append((pending, exc))
                continue
            built.append(self._advance(working, event, pending.txn, pending.future))
        if refused:
            # a retry of a send persisted before is answered with that event, even if the
            # same request would be refused now
            await self._answer_retries([pending for pending, _ in refused])
            for pending, error in refused:
                if not pending.future.done():
                    pending.future.set_exception(error)
        if built:
            try:
                await self._persist(room_id, built, working)
            except event_store.TransactionAlreadySent:
                pending_built = [p for p in batch if not p.future.done()]
                await self._answer_retries(pending_built)
                still = [p for p in pending_built if not p.future.done()]
                if len(still) == len(pending_built):
                    raise
                # the others were built on a head that never committed: build them again
                await self._send_batch(room_id, still)
                return
        for item in built:
            assert item.future is not None
            item.future.set_result(item.event)

    async def _answer_retries(self, pending: list[_Pending]) -> None:
        """Resolve the sends whose transaction ID already has an event with that event."""
        txns = [p.txn for p in pending if p.txn is not None]
        if not txns:
            return
        found = await event_store.get_event_ids_for_txns(self.db, txns)
        events = await self.loader.get_events(found.values())
        for p in pending:
            event_id = found.get(p.txn) if p.txn is not None else None
            if event_id is not None and event_id in events and not p.future.done():
                p.future.set_result(events[event_id])

    async def build_template(self, template: EventTemplate) -> tuple[RoomVersion, dict[str, Any]]:
        """The unsigned PDU `template` would become if it were sent now: on the room's
        current extremities, with its auth events, checked against this server's rules
        (`before_send`) and the room's auth rules, and not persisted. Another server
        completes and signs it (make_join). Raises RoomNotFound, AuthError,
        EventBuildError, or what a `before_send` check raised."""
        assert template.room_id is not None
        for check in self.before_send:
            await check(template)
        head = await self.head(template.room_id)
        version = head.room_version
        auth_state = await self._auth_state(template, head)
        pdu = build_unsigned_pdu(
            template,
            room_version=version,
            prev_events=head.extremities,
            current_state=auth_state,
            server_name=self.server_name,
        )
        # a join_authorised_via_users_server of this server is signed for when the event
        # comes back (send_join): count this server's signature as there, and no other
        check_auth(
            Event(pdu, version, compute_event_id(pdu, version)),
            auth_state,
            version,
            signature_checker=lambda _event, server: server == self.server_name,
        )
        return version, pdu

    async def _auth_state(self, template: EventTemplate, head: RoomHead) -> dict[StateKey, Event]:
        keys = auth_types_for_event(
            head.room_version, template.type, template.sender, template.state_key, template.content
        )
        keys.add(("m.room.create", ""))
        wanted = {key: head.state[key] for key in keys if key in head.state}
        loaded = await self.loader.get_events(wanted.values())
        return {key: loaded[event_id] for key, event_id in wanted.items()}

    async def _build_and_check(self, template: EventTemplate, head: RoomHead) -> Event:
        version = head.room_version
        auth_state = await self._auth_state(template, head)
        event = build_event(
            template,
            room_version=version,
            prev_events=head.extremities,
            current_state=auth_state,
            server_name=self.server_name,
            signing_key=self.signing_key,
            origin_server_ts=template.origin_server_ts,
        )
        check_auth(event, auth_state, version)
        return event

    def _advance(
        self, head: RoomHead, event: Event, txn: Txn | None, future: asyncio.Future[Event] | None
    ) -> BuiltEvent:
        """Move the working head past `event`, allocating a state group if it is state."""
        head.extremities = [PrevEvent.of(event)]
        if not event.is_state() and head.state_group is not None:
            return BuiltEvent(event, txn, head.state_group, future=future)
        key = (event.type, event.state_key or "")
        if event.is_state():
            head.state[key] = event.event_id
        group = self.state_group_ids.next()
        if head.state_group is None or head.chain_length >= MAX_STATE_CHAIN_LENGTH:
            new_group: NewStateGroup = (None, 0, dict(head.state))
        else:
            new_group = (head.state_group, head.chain_length + 1, {key: event.event_id})
        head.state_group, head.chain_length = group, new_group[1]
        return BuiltEvent(event, txn, group, new_group, future)

    # -- creating rooms ------------------------------------------------------------------

    async def create_room(
        self,
        *,
        room_version: RoomVersion,
        creator: str,
        create_content: Mapping[str, Any],
        initial: Sequence[EventTemplate],
        room_id: str | None = None,
        is_public: bool = False,
        in_transaction: Callable[[AsyncConnection, str], Awaitable[None]] | None = None,
    ) -> tuple[str, list[Event]]:
        """Create a room from its create event and the initial events, in one transaction.

        `initial` templates carry no room_id; it is filled in. `in_transaction` writes what
        must exist only if the room does (an alias). Raises AuthError, EventBuildError or
        PDUValidationError without writing anything.
        """
        # this server's rules (before_send) see the create event too: its sender is the one
        # who asked for the room
        for check in self.before_send:
            await check(EventTemplate("m.room.create", creator, create_content))
        create = build_create_event(
            room_version=room_version,
            sender=creator,
            content=create_content,
            server_name=self.server_name,
            signing_key=self.signing_key,
            room_id=None if room_version.room_id_from_create_event else room_id,
            origin_server_ts=self._next_create_ts(),
        )
        check_auth(create, {}, room_version)
        room_id = create.room_id
        key = ("m.room.create", "")
        head = RoomHead(room_version, [PrevEvent.of(create)], {key: create.event_id}, 0, 0)
        group = self.state_group_ids.next()
        head.state_group = group
        built = [BuiltEvent(create, None, group, (None, 0, {key: create.event_id}))]
        self.loader.remember([create])
        for template in initial:
            template = _with_room(template, room_id)
            event = await self._build_and_check(template, head)
            self.loader.remember([event])
            built.append(self._advance(head, event, None, None))
        await self._persist(
            room_id, built, head, new_room=(creator, is_public), in_transaction=in_transaction
        )
        return room_id, [item.event for item in built]

    def _next_create_ts(self) -> int:
        self._last_create_ts = max(now_ms(), self._last_create_ts + 1)
        return self._last_create_ts

    def forget_room(self, room_id: str) -> None:
        """Drop what is kept in memory about a room whose rows were purged, so that the
        next send finds the room gone instead of building on its old head."""
        self._set_head(room_id, None)
        for listener in self.purge_listeners:
            listener(room_id)

    # -- heads and persistence ------------------------------------------------------------

    def _set_head(self, room_id: str, head: RoomHead | None) -> None:
        self._heads_moved += 1
        if head is None:
            self._room_id_to_head.pop(room_id, None)
        else:
            self._room_id_to_head[room_id] = head

    def cached_head(self, room_id: str) -> RoomHead | None:
        """The room's head if it is in memory (never read from the database)."""
        return self._room_id_to_head.get(room_id)

    async def current_state(self, room_id: str) -> StateMap:
        """The room's current state, from its head when it is in memory."""
        head = self._room_id_to_head.get(room_id)
        if head is not None:
            return head.state
        return await state_store.get_current_state_ids(self.db, room_id)

    async def head(self, room_id: str) -> RoomHead:
        head = self._room_id_to_head.get(room_id)
        if head is not None:
            return head
        # a head read while a worker moved a head on is returned but not kept: it may be
        # older than the one the worker set
        moved = self._heads_moved
        room = await room_store.get_room(self.db, room_id)
        if room is None:
            raise RoomNotFound(room_id)
        version = KNOWN_ROOM_VERSIONS[room.room_version]
        # deepest last; a room with forks (from federation) has several, and a new event
        # names the deepest MAX_PREV_EVENTS of them, on the current state, which is their
        # resolution (kept so by _commit)
        all_extremity_ids = [
            eid for eid, _ in await event_store.get_forward_extremities(self.db, room_id)
        ]
        extremity_ids = all_extremity_ids[-MAX_PREV_EVENTS:]
        if not extremity_ids:
            # a room known only by a local user's invite or knock from another server
            # (services/federation/out_of_band.py): this server is not in it
            raise RoomNotFound(room_id)
        extremities = await self.loader.get_events(extremity_ids)
        groups = await self.loader.state_groups_of(extremity_ids)
        distinct = {groups.get(eid) for eid in extremity_ids}
        state_group = distinct.pop() if len(distinct) == 1 else None
        head = RoomHead(
            room_version=version,
            extremities=[PrevEvent.of(extremities[eid]) for eid in extremity_ids],
            state=await state_store.get_current_state_ids(self.db, room_id),
            state_group=state_group,
            chain_length=(
                0
                if state_group is None
                else await state_store.get_state_group_chain_length(self.db, state_group)
            ),
            unnamed_extremities=all_extremity_ids[:-MAX_PREV_EVENTS],
        )
        if self._heads_moved == moved:
            self._room_id_to_head[room_id] = head
        return head

    async def _persist(
        self,
        room_id: str,
        built: list[BuiltEvent],
        head: RoomHead,
        new_room: tuple[str, bool] | None = None,
        in_transaction: Callable[[AsyncConnection, str], Awaitable[None]] | None = None,
    ) -> None:
        """Persist a batch of local events built on `head`, which they moved."""
        changes: dict[StateKey, tuple[str, str | None] | None] = {}
        for item in built:
            event = item.event
            if event.is_state():
                changes[(event.type, event.state_key or "")] = (
                    event.event_id,
                    event.membership if event.type == "m.room.member" else None,
                )
        await self._commit(
            room_id,
            head.room_version,
            built,
            extremities=[*head.unnamed_extremities, *(p.event_id for p in head.extremities)],
            state_after=head.state,
            changes=changes,
            new_room=new_room,
            in_transaction=in_transaction,
        )
        self._set_head(room_id, head)

    @measured("persist_events")
    async def _commit(
        self,
        room_id: str,
        room_version: RoomVersion,
        built: list[BuiltEvent],
        *,
        extremities: Sequence[str],
        state_after: StateMap,
        changes: StateChanges,
        new_room: tuple[str, bool] | None = None,
        in_transaction: Callable[[AsyncConnection, str], Awaitable[None]] | None = None,
        backfilled: bool = False,
        resolved_members: Sequence[Event] = (),
    ) -> None:
        """Write a batch: the events (those in the timeline with stream positions, the
        others below zero), their state groups, the current state delta, memberships and
        forward extremities, in one transaction; then tell the listeners of the events
        clients see. `backfilled`: old history, every event below zero, no listener.
        `resolved_members`: membership events outside the batch's timeline that became
        current (a fork's resolution); each membership takes effect again at the batch's
        last position."""
        timeline = [item for item in built if item.in_timeline and not backfilled]
        events = [item.event for item in timeline]
        # before positions are taken: a batch holding positions keeps later ones unreadable
        writers = []
        if events:
            writers = [
                writer
                for prepare in self.prepare_persist
                if (writer := await prepare(events, state_after)) is not None
            ]
        positions = self.positions.allocate(len(timeline))
        position_of = {
            item.event.event_id: position
            for item, position in zip(timeline, positions, strict=True)
        }
        now = now_ms()
        rows: list[EventRow] = []
        memberships: list[MembershipRow] = []
        for item in built:
            event = item.event
            position = position_of.get(event.event_id)
            if position is None:
                position = -self.hidden_orderings.next()
            rows.append(_event_row(event, position, now, item.txn, item))
            if (
                item.in_timeline
                and not backfilled
                and event.type == "m.room.member"
                and event.state_key is not None
            ):
                memberships.append(
                    MembershipRow(
                        event.event_id,
                        room_id,
                        event.state_key,
                        event.sender,
                        event.membership or "",
                        position,
                    )
                )
        moved = [
            MembershipRow(
                member.event_id,
                room_id,
                member.state_key,
                member.sender,
                member.membership or "",
                positions[-1],
            )
            for member in resolved_members
            if positions and member.state_key is not None
        ]
        with_groups = {
            item.event.event_id: item.state_group for item in built if item.state_group is not None
        }
        try:
            async with self.db.transaction() as conn:
                if new_room is not None:
                    await room_store.insert_room(
                        conn, room_id, room_version.identifier, new_room[0], now, new_room[1]
                    )
                promoted = {item.event.event_id for item in built if item.promoted}
                await event_store.insert_events(
                    conn, [row for row in rows if row.event_id not in promoted]
                )
                if promoted:
                    await event_store.promote_outliers(
                        conn, [row for row in rows if row.event_id in promoted]
                    )
                for item in built:
                    if item.new_group is not None and item.state_group is not None:
                        prev_group, chain_length, entries = item.new_group
                        await state_store.insert_state_group(
                            conn,
                            item.state_group,
                            room_id,
                            item.event.event_id,
                            prev_group,
                            chain_length,
                            entries,
                        )
                await state_store.set_event_state_groups(conn, with_groups)
                await state_store.apply_current_state_delta(conn, room_id, changes)
                await insert_memberships(conn, memberships)
                await move_memberships(conn, moved)
                await event_store.replace_forward_extremities(conn, room_id, extremities)
                if events:
                    for hook in self.in_persist_transaction:
                        await hook(conn, events)
                    for writer in writers:
                        await writer(conn, position_of)
                if in_transaction is not None:
                    await in_transaction(conn, room_id)
            # committed; known before the position is, so no reader can miss the room
            if positions:
                self.room_changes.record(room_id, positions[-1])
            for member in (*memberships, *moved):
                self.member_changes.record(member.user_id, member.stream_ordering)
        finally:
            current = self.positions.finish(positions)
        self.loader.remember(item.event for item in built)
        for item in built:
            if item.txn is not None:
                self._txn_to_event_id[item.txn] = item.event.event_id
        self.loader.remember_state_groups(with_groups)
        self.loader.remember_txns(
            {
                item.event.event_id: None if item.txn is None else (*item.txn[:2], item.txn[3])
                for item in built
            }
        )
        if events:
            await self.listeners(events, current)


def _with_room(template: EventTemplate, room_id: str) -> EventTemplate:
    return EventTemplate(
        template.type,
        template.sender,
        template.content,
        room_id,
        template.state_key,
        template.redacts,
    )


def _event_row(
    event: Event, position: int, now: int, txn: Txn | None, item: BuiltEvent | None = None
) -> EventRow:
    relates = event.content.get("m.relates_to")
    relation = None
    if isinstance(relates, dict):
        parent, rel_type = relates.get("event_id"), relates.get("rel_type")
        if isinstance(parent, str) and isinstance(rel_type, str):
            key = relates.get("key")
            relation = (parent, rel_type, key if isinstance(key, str) else None)
    return EventRow(
        event_id=event.event_id,
        room_id=event.room_id,
        pdu=event.pdu,
        type=event.type,
        state_key=event.state_key,
        sender=event.sender,
        depth=event.depth,
        origin_server_ts=event.origin_server_ts,
        prev_event_ids=event.prev_event_ids,
        auth_event_ids=event.auth_event_ids,
        stream_ordering=position,
        received_ts=now,
        redacts=event.redacts if event.type == "m.room.redaction" else None,
        relation=relation,
        txn=txn,
        outlier=item is not None and item.outlier,
        soft_failed=item is not None and item.soft_failed,
        rejected_reason=None if item is None else item.rejected_reason,
    )


__all__ = [
    "AuthError",
    "FederatedEvent",
    "PersistListeners",
    "RoomEventSender",
    "RoomHead",
    "RoomNotFound",
    "Txn",
]
