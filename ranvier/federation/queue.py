"""The outbound transaction queue: our room events and EDUs, delivered to each server that
should have them in `PUT /send/{txnId}` transactions.

spec: server-server-api "Transactions". One queue per destination, one transaction in
flight per destination, at most 50 PDUs and 100 EDUs in each. A transaction that fails is
kept and sent again, with the same transaction ID, once the destination's backoff
(federation/backoff.py) is over; the receiver answers a retry of a transaction it already
processed without processing it twice.

What must survive a restart or a long outage is in the database, not in memory: for each
(destination, room), the stream ordering of the newest event of ours the destination
should have (`destination_rooms`, written before the event is queued), and how far the
destination was delivered (`destinations.last_successful_stream_ordering`). A destination
that failed is *catching up*: its new events are only recorded there, not held in memory,
and once it answers again it is sent, for each room it is behind in, only our newest event
there (it fetches the gap with get_missing_events); then it is back on the live queue. At
start-up every destination behind is caught up the same way, in the background.

EDUs that must not be lost (to-device messages, device list updates: `send_durable_edus`)
are rows of the federation outbox (storage/federation_outbox.py) from when they are queued
until the destination acknowledges the transaction carrying them: a failed transaction is
retried holding the same ones, and after a restart or an outage the destination is sent
what is pending, oldest first, before the EDUs held in memory.

The inputs are `notify_new_events` (each committed batch of room events) and `send_edu`;
all the state another process would need is in the database, so a federation-sender
worker can run this object alone later.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ranvier.clock import now_ms
from ranvier.federation.backoff import Backoff
from ranvier.federation.errors import FederationError, NotRetrying, RemoteRequestFailed
from ranvier.metrics import federation as federation_metrics
from ranvier.metrics.blocks import measured
from ranvier.protocol.events import Event
from ranvier.storage.database import Database
from ranvier.storage.destinations import DestinationStore
from ranvier.storage.events import max_stream_ordering
from ranvier.storage.federation_outbox import FederationOutboxStore
from ranvier.storage.memberships import get_joined_servers

logger = logging.getLogger(__name__)

# spec: server-server-api "Transactions", the most a transaction may hold
MAX_PDUS_PER_TRANSACTION = 50
MAX_EDUS_PER_TRANSACTION = 100
# live PDUs held in memory for one destination before it is caught up from the database
# instead (a destination slower than we send)
MAX_QUEUED_PDUS = 1000
# EDUs without a key held for one destination; the oldest go first
MAX_QUEUED_EDUS = 5000
# destinations caught up at once (start-up recovery can name thousands)
CATCH_UP_CONCURRENCY = 10
# how long a loop that failed unexpectedly (a bug, the database) pauses
ERROR_PAUSE_SECONDS = 5.0
STOP_TIMEOUT_SECONDS = 2.0
# rooms whose joined servers are remembered (forgotten on any state event in the room)
JOINED_SERVERS_CACHE_SIZE = 10_000


class TransactionTransport(Protocol):
    """How a transaction is PUT (FederationClient): raises DestinationUnreachable or
    RemoteRequestFailed."""

    async def put_json(
        self,
        destination: str,
        path: str,
        body: Any,
        *,
        ignore_backoff: bool = False,
        long_retries: bool = False,
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class QueuedPdu:
    event_id: str
    pdu: Mapping[str, Any]
    stream_ordering: int


@dataclass(frozen=True, slots=True)
class Edu:
    edu_type: str
    content: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"edu_type": self.edu_type, "content": dict(self.content)}


@dataclass(frozen=True, slots=True)
class Transaction:
    txn_id: str
    origin_server_ts: int
    pdus: tuple[QueuedPdu, ...]
    edus: tuple[Edu, ...]
    # the federation outbox rows among `edus`, deleted once the destination acknowledges
    outbox_ids: tuple[int, ...] = ()

    @property
    def newest_stream_ordering(self) -> int | None:
        return max((pdu.stream_ordering for pdu in self.pdus), default=None)


@dataclass
class _DestinationQueue:
    destination: str
    pdus: deque[QueuedPdu] = field(default_factory=deque)
    # EDUs with a key: a newer one replaces the queued one (presence of one user, say)
    keyed_edus: OrderedDict[Hashable, Edu] = field(default_factory=OrderedDict)
    edus: deque[Edu] = field(default_factory=deque)
    # failed, to be sent again with the same ID before anything else
    retry: Transaction | None = None
    # behind: new PDUs are only recorded in destination_rooms, and sent from there
    catching_up: bool = False
    # a PDU was recorded for it while catching up: the catch-up looks once more
    missed: bool = False
    # how far it was delivered, as known in this process (None: read the database)
    delivered: int | None = None
    # the federation outbox may hold EDUs for it; bumped at each addition, so that a read
    # of the outbox that raced one does not clear the flag
    outbox_pending: bool = False
    outbox_generation: int = 0
    # backing off until then (ms): new work does not wake it before
    waiting_until: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def has_work(self) -> bool:
        return bool(
            self.retry is not None
            or self.catching_up
            or self.outbox_pending
            or self.pdus
            or self.keyed_edus
            or self.edus
        )

    def nudge(self) -> None:
        """New work: start on it, unless backing off (it waits for the backoff)."""
        if self.waiting_until <= now_ms():
            self.wakeup.set()

    def start_catching_up(self) -> None:
        # what is dropped here is in destination_rooms
        self.catching_up = True
        self.pdus.clear()

    def take_edus(self, room: int) -> list[Edu]:
        taken: list[Edu] = []
        while self.edus and len(taken) < room:
            taken.append(self.edus.popleft())
        while self.keyed_edus and len(taken) < room:
            taken.append(self.keyed_edus.popitem(last=False)[1])
        return taken


def server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


class FederationSender:
    def __init__(
        self,
        *,
        server_name: str,
        database: Database,
        store: DestinationStore,
        transport: TransactionTransport,
        backoff: Backoff,
        may_send_to: Callable[[str], bool] = lambda destination: True,
    ) -> None:
        """`may_send_to` is federation_domain_whitelist: other servers are not even
        recorded as owed anything."""
        self._server_name = server_name
        self._may_send_to = may_send_to
        self._db = database
        self._store = store
        self._outbox = FederationOutboxStore(database)
        self._transport = transport
        self._backoff = backoff
        self._destination_to_queue: dict[str, _DestinationQueue] = {}
        self._room_id_to_servers: OrderedDict[str, frozenset[str]] = OrderedDict()
        # unique per destination across restarts: the start time, then a counter
        self._txn_prefix = f"{now_ms()}_"
        self._txn_counter = itertools.count(1)
        self._catch_up_slots = asyncio.Semaphore(CATCH_UP_CONCURRENCY)
        self._running = False
        self._recovery: asyncio.Task[None] | None = None
        # the oldest event this process queued: what is older is from before the start
        self._first_queued: int | None = None
        backoff.on_reachable(self.wake)

    # -- inputs ------------------------------------------------------------------------------

    async def notify_new_events(self, events: Sequence[Event], position: int) -> None:
        """A PersistListener: queue each event of ours (sent by one of our users, and in
        the room's timeline) for every other server joined to its room, and for the
        server of the user a membership event is about."""
        try:
            await self._queue_events(events)
        except Exception:
            # the events are persisted and their sender answered; only the other servers
            # miss them (they fetch them when a later event names them)
            logger.exception("Could not queue %d events for other servers", len(events))

    async def relay(self, event: Event, origin: str) -> None:
        """Send on an event another server handed us to put in a room we host (a join,
        leave or knock through send_join/send_leave/send_knock: spec server-server-api
        "Joining Rooms"), to the room's other servers; `origin` has it already."""
        try:
            await self._queue_events([event], relayed_from=origin)
        except Exception:
            logger.exception("Could not queue %s for other servers", event.event_id)

    async def _queue_events(self, events: Sequence[Event], relayed_from: str | None = None) -> None:
        for event in events:
            if event.is_state():
                self._room_id_to_servers.pop(event.room_id, None)
        ours = [
            event
            for event in events
            if event.rejected_reason is None
            and (relayed_from is not None or server_of(event.sender) == self._server_name)
        ]
        if not ours:
            return
        room_servers = await self._joined_servers({event.room_id for event in ours})
        event_destinations: list[tuple[Event, set[str]]] = []
        for event in ours:
            destinations = set(room_servers[event.room_id])
            # the server of a user kicked, banned or let go hears of it even with nobody
            # left in the room; an invitee's server had its invite through /invite, and
            # a server outside the room must not get the room's events
            if (
                event.type == "m.room.member"
                and event.state_key
                and event.content.get("membership") != "invite"
            ):
                destinations.add(server_of(event.state_key))
            destinations = {
                destination
                for destination in destinations
                if destination
                and destination not in (self._server_name, relayed_from)
                and self._may_send_to(destination)
            }
            if destinations:
                event_destinations.append((event, destinations))
        if not event_destinations:
            return
        orderings = await self._store.sendable_stream_orderings(
            event.event_id for event, _ in event_destinations
        )
        entries: dict[tuple[str, str], int] = {}
        queued: list[tuple[QueuedPdu, set[str]]] = []
        for event, destinations in event_destinations:
            ordering = orderings.get(event.event_id)
            if ordering is None:
                continue
            for destination in destinations:
                key = (destination, event.room_id)
                entries[key] = max(entries.get(key, ordering), ordering)
            queued.append((QueuedPdu(event.event_id, event.pdu, ordering), destinations))
        # recorded before queued: from here a restart or an outage cannot lose it
        await self._store.record_destination_rooms(entries)
        if queued and self._first_queued is None:
            self._first_queued = min(pdu.stream_ordering for pdu, _ in queued)
        federation_metrics.pdus_queued(len(destinations) for _, destinations in queued)
        for pdu, destinations in sorted(queued, key=lambda item: item[0].stream_ordering):
            for destination in destinations:
                queue = self._queue(destination)
                if queue.catching_up:
                    queue.missed = True
                elif len(queue.pdus) >= MAX_QUEUED_PDUS:
                    logger.info("%s is slow: catching it up from the database", destination)
                    queue.start_catching_up()
                else:
                    queue.pdus.append(pdu)
                queue.nudge()

    def send_edu(
        self,
        destination: str,
        edu_type: str,
        content: Mapping[str, Any],
        *,
        key: Hashable | None = None,
    ) -> None:
        """Queue an EDU for `destination`, sent with the next transaction; with a `key`, it
        replaces the EDU queued under the same key (only the newest state matters)."""
        if destination == self._server_name or not self._may_send_to(destination):
            return
        queue = self._queue(destination)
        edu = Edu(edu_type, content)
        if key is not None:
            queue.keyed_edus.pop(key, None)
            queue.keyed_edus[key] = edu
        else:
            if len(queue.edus) >= MAX_QUEUED_EDUS:
                dropped = queue.edus.popleft()
                logger.warning(
                    "Dropped a %s EDU for %s: too many queued", dropped.edu_type, destination
                )
            queue.edus.append(edu)
        queue.nudge()

    async def send_durable_edus(
        self,
        destinations: Collection[str],
        edus: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        coalesce: tuple[str, int] | None = None,
    ) -> None:
        """Queue `edus` (type, content), in order, for each destination, in the database
        first: they are sent, however long it takes, until acknowledged. With `coalesce`
        (a key and an order), they replace the older ones queued under the key and still
        pending (FederationOutboxStore.add)."""
        wanted = sorted(
            destination
            for destination in set(destinations)
            if destination != self._server_name and self._may_send_to(destination)
        )
        if not wanted or not edus:
            return
        await self._outbox.add(wanted, edus, coalesce=coalesce)
        for destination in wanted:
            self._outbox_has(self._queue(destination))

    @staticmethod
    def _outbox_has(queue: _DestinationQueue) -> None:
        queue.outbox_pending = True
        queue.outbox_generation += 1
        queue.nudge()

    def wake(self, destination: str) -> None:
        """`destination` is reachable again (it contacted us, or the admin reset its
        backoff): try it now rather than when its backoff would have ended."""
        queue = self._destination_to_queue.get(destination)
        if queue is not None:
            queue.waiting_until = 0
            queue.wakeup.set()

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the queues, and in the background catch up the destinations the database
        says are behind (from before a restart)."""
        self._running = True
        for queue in self._destination_to_queue.values():
            self._start_loop(queue)
        self._recovery = asyncio.create_task(self._recover(), name="federation catch-up")

    async def stop(self) -> None:
        """Stop every loop: a transaction in flight is abandoned, and what it held is
        recorded in destination_rooms, so the next start catches the destination up."""
        self._running = False
        tasks = [queue.task for queue in self._destination_to_queue.values() if queue.task]
        if self._recovery is not None:
            tasks.append(self._recovery)
        for task in tasks:
            task.cancel()
        for queue in self._destination_to_queue.values():
            queue.wakeup.set()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                await asyncio.gather(*tasks, return_exceptions=True)
        except TimeoutError:
            logger.warning("Some federation sender loops did not stop in time")
        for queue in self._destination_to_queue.values():
            queue.task = None
        self._recovery = None

    async def _recover(self) -> None:
        try:
            pending = await self._outbox.destinations_with_pending()
        except Exception:
            logger.exception("Could not read which destinations have EDUs pending")
            pending = set()
        for destination in sorted(pending):
            if self._may_send_to(destination):
                # the loop's backoff check holds back a destination still failing
                self._outbox_has(self._queue(destination))
        try:
            # only what was owed before this process queued anything: the live queues
            # deliver the rest
            up_to = await max_stream_ordering(self._db)
            if self._first_queued is not None:
                up_to = min(up_to, self._first_queued - 1)
            behind = await self._store.destinations_behind(up_to)
        except Exception:
            logger.exception("Could not read which destinations to catch up")
            return
        if behind:
            logger.info("Catching up %d destinations after a restart", len(behind))
        for destination in behind:
            if not self._may_send_to(destination):
                # owed from before federation_domain_whitelist left it out
                continue
            queue = self._queue(destination)
            if not queue.catching_up:
                queue.start_catching_up()
            queue.wakeup.set()

    def _queue(self, destination: str) -> _DestinationQueue:
        queue = self._destination_to_queue.get(destination)
        if queue is None:
            queue = self._destination_to_queue[destination] = _DestinationQueue(destination)
        if self._running and queue.task is None:
            self._start_loop(queue)
        return queue

    def _start_loop(self, queue: _DestinationQueue) -> None:
        queue.task = asyncio.create_task(
            self._run(queue), name=f"federation sender {queue.destination}"
        )

    async def _run(self, queue: _DestinationQueue) -> None:
        destination = queue.destination
        # not `while True`: a cancellation swallowed below (Python 3.11's wait_for can, in
        # the database's SQLite write lock) must still end the loop at stop()
        while self._running:
            if not queue.has_work():
                queue.wakeup.clear()
                await queue.wakeup.wait()
                continue
            try:
                await self._backoff.check(destination)
            except NotRetrying as exc:
                if queue.pdus:
                    queue.start_catching_up()
                queue.wakeup.clear()
                queue.waiting_until = exc.retry_at_ms
                delay = max(0.0, (exc.retry_at_ms - now_ms()) / 1000)
                try:
                    async with asyncio.timeout(delay):
                        await queue.wakeup.wait()
                except TimeoutError:
                    pass
                queue.waiting_until = 0
                continue
            try:
                await self._send_next(queue)
            except asyncio.CancelledError:
                raise
            except Exception:
                # a bug or the database: keep the loop, try again later
                logger.exception("Sending to %s failed", destination)
                await asyncio.sleep(ERROR_PAUSE_SECONDS)

    async def _send_next(self, queue: _DestinationQueue) -> None:
        transaction = queue.retry
        if transaction is None and queue.catching_up:
            async with self._catch_up_slots:
                transaction = await self._next_catch_up(queue)
            if transaction is None:
                return
        if transaction is None:
            pdus: list[QueuedPdu] = []
            while queue.pdus and len(pdus) < MAX_PDUS_PER_TRANSACTION:
                pdus.append(queue.pdus.popleft())
            edus, outbox_ids = await self._take_edus(queue)
            if not pdus and not edus:
                # the outbox held nothing after all
                return
            transaction = self._new_transaction(pdus, edus, outbox_ids)
        if await self._deliver(queue.destination, transaction):
            federation_metrics.transaction_sent(
                queue.destination,
                len(transaction.pdus),
                (edu.edu_type for edu in transaction.edus),
            )
            queue.retry = None
            await self._delivered(queue, transaction)
        else:
            queue.retry = transaction
            queue.start_catching_up()

    async def _next_catch_up(self, queue: _DestinationQueue) -> Transaction | None:
        """The next catch-up transaction, or None (and the queue live again) when the
        destination is owed nothing more."""
        if queue.delivered is None:
            row = await self._store.get(queue.destination)
            queue.delivered = (row.last_successful_stream_ordering if row else None) or 0
        queue.missed = False
        owed = await self._store.catch_up_events(
            queue.destination, queue.delivered, MAX_PDUS_PER_TRANSACTION
        )
        if not owed:
            if not queue.missed:
                # caught up: the live queue sends the EDUs waiting
                queue.catching_up = False
            # (else recorded while we looked: look again)
            return None
        pdus = [QueuedPdu(row.event_id, row.pdu, row.stream_ordering) for row in owed]
        edus, outbox_ids = await self._take_edus(queue)
        return self._new_transaction(pdus, edus, outbox_ids)

    async def _take_edus(self, queue: _DestinationQueue) -> tuple[list[Edu], tuple[int, ...]]:
        """The EDUs of the next transaction: the outbox's oldest first, then those in
        memory, at most MAX_EDUS_PER_TRANSACTION in all; and the outbox rows among them."""
        durable: list[Edu] = []
        outbox_ids: tuple[int, ...] = ()
        if queue.outbox_pending:
            generation = queue.outbox_generation
            rows = await self._outbox.pending(queue.destination, MAX_EDUS_PER_TRANSACTION)
            if len(rows) < MAX_EDUS_PER_TRANSACTION and generation == queue.outbox_generation:
                queue.outbox_pending = False
            durable = [Edu(row.edu_type, row.content) for row in rows]
            outbox_ids = tuple(row.outbox_id for row in rows)
        return durable + queue.take_edus(MAX_EDUS_PER_TRANSACTION - len(durable)), outbox_ids

    def _new_transaction(
        self, pdus: Sequence[QueuedPdu], edus: Sequence[Edu], outbox_ids: tuple[int, ...] = ()
    ) -> Transaction:
        return Transaction(
            txn_id=f"{self._txn_prefix}{next(self._txn_counter)}",
            origin_server_ts=now_ms(),
            pdus=tuple(pdus),
            edus=tuple(edus),
            outbox_ids=outbox_ids,
        )

    @measured("send_transaction")
    async def _deliver(self, destination: str, transaction: Transaction) -> bool:
        """PUT the transaction; False if it should be sent again later."""
        body = {
            "origin": self._server_name,
            "origin_server_ts": transaction.origin_server_ts,
            "pdus": [dict(pdu.pdu) for pdu in transaction.pdus],
            "edus": [edu.as_json() for edu in transaction.edus],
        }
        path = f"/_matrix/federation/v1/send/{transaction.txn_id}"
        try:
            answer = await self._transport.put_json(
                destination, path, body, ignore_backoff=True, long_retries=True
            )
        except RemoteRequestFailed as exc:
            if exc.status >= 500 or exc.status == 429:
                logger.info("Transaction %s to %s failed: %s", transaction.txn_id, destination, exc)
                await self._backoff.failed(destination)
                return False
            # the destination refuses it, and would again: not retried
            logger.warning("%s refused transaction %s: %s", destination, transaction.txn_id, exc)
            await self._backoff.succeeded(destination)
            return True
        except FederationError as exc:
            logger.info("Transaction %s to %s failed: %s", transaction.txn_id, destination, exc)
            await self._backoff.failed(destination)
            return False
        await self._backoff.succeeded(destination)
        _log_pdu_errors(destination, transaction, answer)
        return True

    async def _delivered(self, queue: _DestinationQueue, transaction: Transaction) -> None:
        # if this fails the EDUs go again: the receiver drops a to-device message it has
        # (its message_id), and a device list update it already applied
        await self._outbox.remove(transaction.outbox_ids)
        newest = transaction.newest_stream_ordering
        if newest is None:
            return
        # not past a PDU still waiting in memory, which a restart would otherwise skip
        if queue.pdus:
            newest = min(newest, min(pdu.stream_ordering for pdu in queue.pdus) - 1)
        if queue.delivered is not None and newest <= queue.delivered:
            return
        queue.delivered = newest
        await self._store.set_last_successful_stream_ordering(queue.destination, newest)

    def pending(self) -> tuple[int, int, int]:
        """(destinations with work waiting, PDUs and EDUs waiting in memory), for metrics."""
        queues = list(self._destination_to_queue.values())
        return (
            sum(1 for queue in queues if queue.has_work()),
            sum(len(queue.pdus) for queue in queues),
            sum(len(queue.edus) + len(queue.keyed_edus) for queue in queues),
        )

    async def joined_servers(self, room_ids: set[str]) -> dict[str, frozenset[str]]:
        """room_id -> the servers with a member joined to it (ours included), from the
        cache the events queue keeps: the destinations of a room's EDUs."""
        return await self._joined_servers(room_ids)

    async def _joined_servers(self, room_ids: set[str]) -> dict[str, frozenset[str]]:
        found: dict[str, frozenset[str]] = {}
        missing: list[str] = []
        for room_id in room_ids:
            servers = self._room_id_to_servers.get(room_id)
            if servers is None:
                missing.append(room_id)
            else:
                self._room_id_to_servers.move_to_end(room_id)
                found[room_id] = servers
        if missing:
            for room_id, joined in (await get_joined_servers(self._db, missing)).items():
                found[room_id] = self._room_id_to_servers[room_id] = frozenset(joined)
            while len(self._room_id_to_servers) > JOINED_SERVERS_CACHE_SIZE:
                self._room_id_to_servers.popitem(last=False)
        return found


def _log_pdu_errors(destination: str, transaction: Transaction, answer: Any) -> None:
    """spec: the answer maps each PDU's event ID to {} or an error; errors are logged, not
    retried (sending the same event again gets the same answer)."""
    results = answer.get("pdus") if isinstance(answer, dict) else None
    if not isinstance(results, dict):
        return
    for event_id, result in results.items():
        if isinstance(result, dict) and result.get("error"):
            logger.info(
                "%s refused %s in transaction %s: %s",
                destination,
                event_id,
                transaction.txn_id,
                result["error"],
            )
