"""Pushing to application services: `PUT {url}/_matrix/app/v1/transactions/{txnId}`
(spec: application-service-api "Pushing events").

One loop per service with a `url`. It reads the streams from the positions stored for the
service (appservice_state), keeps what the service is interested in (interest.py), and
stores the transaction body together with the positions it reaches before the first
attempt; it is sent, with the same ID and body, until the service answers 2xx, with a
delay doubling from 1 s to 5 minutes between attempts, and deleted then. So a service has
at most one transaction outstanding (a dead service costs one row, however long it stays
dead), nothing is lost or built twice over a restart (the stored transaction goes first),
and events arrive in stream order, at most MAX_EVENTS per transaction. A service seen for
the first time starts at the streams' current positions, not at the start of history.

The inputs only wake loops: `notify_new_events` (a PersistListener) and `notify_stream`
(the other streams' writers, through the notifier) return at once, so a slow or dead
service never slows a send. Everything a loop needs is in the database or asked of the
services that own the streams, so another process can run the sender alone later
(Synapse's notify_appservices_from_worker): `AppServicePusher` is that interface.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ranvier.config.appservices import AppService
from ranvier.metrics import appservice as appservice_metrics
from ranvier.protocol.events import Event
from ranvier.services.appservice.client import AppServiceClient
from ranvier.services.appservice.ephemeral import EphemeralCollector, Extras
from ranvier.services.appservice.interest import AppServiceInterest
from ranvier.services.rooms.client_events import ClientEventSerializer
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.storage.appservices import (
    AppServiceStore,
    AppServiceStreams,
    PendingTransaction,
    StreamPositions,
)

logger = logging.getLogger(__name__)

# events per transaction, as Synapse batches them
MAX_EVENTS = 100
# room events looked at per read while looking for those a service wants
SCAN_EVENTS = 1000
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0
# how long a loop that failed unexpectedly (a bug, the database) pauses
ERROR_PAUSE_SECONDS = 5.0
STOP_TIMEOUT_SECONDS = 2.0
# how often positions moved past what a service ignores are written: they only save a
# restart from looking at those events again
SAVE_POSITIONS_SECONDS = 5.0


# membership event ID -> the room's stripped state as of it, the event last (as /sync
# serves invite_state)
StrippedState = Callable[[str], Awaitable[list[dict[str, Any]]]]
# spec: what an invited or knocking user sees of the room, in the membership's unsigned
STRIPPED_STATE_KEYS = {"invite": "invite_room_state", "knock": "knock_room_state"}


class AppServicePusher(Protocol):
    """What the rest of the server tells the transaction sender; a process that does not
    run it (a worker, later) hands these on to the one that does."""

    async def notify_new_events(self, events: Sequence[Event], position: int) -> None: ...

    def notify_stream(
        self, stream: str, position: int, *, rooms: Iterable[str] = (), users: Iterable[str] = ()
    ) -> None: ...


@dataclass
class _ServiceLoop:
    service: AppService
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # set when the service showed it is back (a ping answered): a retry waits no longer
    reachable: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    # the typing stream is in memory only: its position is too
    typing_position: int = 0
    # when positions that carried no transaction were last written
    saved_at: float = 0.0


class AppServiceTransactionSender:
    def __init__(
        self,
        services: Sequence[AppService],
        *,
        client: AppServiceClient,
        store: AppServiceStore,
        streams: AppServiceStreams,
        interest: AppServiceInterest,
        loader: EventLoader,
        serializer: ClientEventSerializer,
        events_position: Callable[[], int],
        ephemeral: EphemeralCollector,
        stripped_state: StrippedState,
        first_retry_seconds: float = FIRST_RETRY_SECONDS,
    ) -> None:
        self._client = client
        self._store = store
        self._streams = streams
        self._interest = interest
        self._loader = loader
        self._serializer = serializer
        self._events_position = events_position
        self._ephemeral = ephemeral
        self._stripped_state = stripped_state
        self._first_retry = first_retry_seconds
        # a service without a url wants no transactions (spec: registration `url`)
        self._loops = [_ServiceLoop(service) for service in services if service.url is not None]
        self._running = False

    async def notify_new_events(self, events: Sequence[Event], position: int) -> None:
        """A PersistListener: wake every loop (they read the events from the database)."""
        for loop in self._loops:
            loop.wakeup.set()

    def notify_stream(
        self, stream: str, position: int, *, rooms: Iterable[str] = (), users: Iterable[str] = ()
    ) -> None:
        """A stream other than the room events moved: wake the loops that are sent it."""
        for loop in self._loops:
            if self._ephemeral.wants(loop.service, stream):
                loop.wakeup.set()

    def service_reachable(self, appservice_id: str) -> None:
        """The service answered a ping: a transaction waiting to be retried goes now, so a
        bridge back from a long outage does not wait out the rest of its backoff."""
        for loop in self._loops:
            if loop.service.id == appservice_id:
                loop.reachable.set()

    def start(self) -> None:
        self._running = True
        for loop in self._loops:
            loop.task = asyncio.create_task(self._run(loop), name=f"appservice {loop.service.id}")

    async def stop(self) -> None:
        """Stop every loop: a transaction in flight is abandoned, and sent again, with the
        same ID, at the next start."""
        self._running = False
        tasks = [loop.task for loop in self._loops if loop.task is not None]
        for task in tasks:
            task.cancel()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                await asyncio.gather(*tasks, return_exceptions=True)
        except TimeoutError:
            logger.warning("Some application service loops did not stop in time")
        for loop in self._loops:
            loop.task = None

    async def _current(self) -> StreamPositions:
        heads = self._ephemeral.positions()
        return StreamPositions(
            events=self._events_position(),
            receipts=heads.receipts,
            presence=heads.presence,
            to_device=heads.to_device,
            device_lists=heads.device_lists,
        )

    async def _run(self, loop: _ServiceLoop) -> None:
        service = loop.service
        positions: StreamPositions | None = None
        loop.typing_position = self._ephemeral.typing_position()
        while self._running:
            try:
                if positions is None:
                    positions = await self._store.positions(service.id, await self._current())
                pending = await self._store.pending(service.id)
                if pending is not None:
                    await self._deliver(loop, pending)
                    continue
                # cleared before reading: what is notified while we read wakes us again
                loop.wakeup.clear()
                moved = await self._next(loop, positions)
                if moved is None:
                    await loop.wakeup.wait()
                else:
                    positions = moved
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "Application service %s: building a transaction failed", service.id
                )
                positions = None
                await asyncio.sleep(ERROR_PAUSE_SECONDS)

    async def _next(self, loop: _ServiceLoop, positions: StreamPositions) -> StreamPositions | None:
        """Store the next transaction, or move the positions past what the service does
        not want; the new positions, or None when there was nothing new at all."""
        service = loop.service
        heads = await self._current()
        events, events_position = await self._events(service, positions.events, heads.events)
        extras, reached = await self._ephemeral.collect(
            service, positions, heads, loop.typing_position
        )
        new_positions = StreamPositions(
            events=events_position,
            receipts=reached.receipts,
            presence=reached.presence,
            to_device=reached.to_device,
            device_lists=reached.device_lists,
        )
        if events or not extras.empty:
            body = await self._body(service, events, extras)
            await self._store.add_transaction(service.id, body, new_positions)
            loop.typing_position = extras.typing_position
            return new_positions
        loop.typing_position = extras.typing_position
        if new_positions == positions:
            return None
        await self._save_positions(loop, new_positions)
        return new_positions

    async def _save_positions(self, loop: _ServiceLoop, positions: StreamPositions) -> None:
        """Write positions that carried no transaction, at most every few seconds: on a busy
        server every batch of events moves them, and a write per batch per service would
        compete with the sends."""
        now = time.monotonic()
        if now - loop.saved_at < SAVE_POSITIONS_SECONDS:
            return
        await self._store.set_positions(loop.service.id, positions)
        loop.saved_at = now

    async def _events(self, service: AppService, after: int, up_to: int) -> tuple[list[Event], int]:
        """Up to MAX_EVENTS events after `after` that the service wants, and the position
        the transaction carrying them reaches."""
        wanted: list[str] = []
        position = after
        while position < up_to and len(wanted) < MAX_EVENTS:
            scanned = await self._streams.events_after(position, up_to, SCAN_EVENTS)
            if not scanned:
                position = up_to
                break
            interesting = await self._interest.interesting_events(service, scanned)
            room = MAX_EVENTS - len(wanted)
            if len(interesting) > room:
                interesting = interesting[:room]
                position = interesting[-1].stream_ordering
            elif len(scanned) < SCAN_EVENTS:
                position = up_to
            else:
                position = scanned[-1].stream_ordering
            wanted.extend(event.event_id for event in interesting)
        loaded = await self._loader.get_events(wanted)
        return [loaded[event_id] for event_id in wanted if event_id in loaded], position

    async def _body(
        self, service: AppService, events: list[Event], extras: Extras
    ) -> dict[str, Any]:
        served = await self._serializer.serialize_events(
            events, requester_user_id=service.sender, hide_erased=False
        )
        for event, client_form in zip(events, served, strict=True):
            key = STRIPPED_STATE_KEYS.get(event.membership or "")
            if (
                key is not None
                and event.type == "m.room.member"
                and event.state_key is not None
                and service.is_user_in_namespace(event.state_key)
            ):
                # as Synapse: a bridge deciding on its puppet's invite sees what the
                # invitee would (the room's name, encryption, whether it is a DM)
                client_form["unsigned"][key] = await self._stripped_state(event.event_id)
        body: dict[str, Any] = {"events": served}
        body.update(await self._ephemeral.body_fields(service, events, extras))
        return body

    async def _deliver(self, loop: _ServiceLoop, pending: PendingTransaction) -> None:
        """Send until the service acknowledges it."""
        service = loop.service
        delay = self._first_retry
        while self._running:
            loop.reachable.clear()
            answer = await self._client.put_transaction(service, pending.txn_id, pending.body)
            if answer.ok:
                await self._store.acknowledged(service.id, pending.txn_id)
                body = pending.body
                appservice_metrics.transaction_sent(
                    service.id,
                    events=len(body.get("events", ())),
                    ephemeral=len(body.get("ephemeral", ())),
                    to_device=len(body.get("de.sorunome.msc2409.to_device", ())),
                )
                return
            appservice_metrics.transaction_failed(service.id)
            logger.info(
                "Application service %s: transaction %d not acknowledged (%s); again in %.0f s",
                service.id,
                pending.txn_id,
                answer.status if answer.status is not None else answer.error,
                delay,
            )
            try:
                async with asyncio.timeout(delay):
                    await loop.reachable.wait()
                delay = self._first_retry
            except TimeoutError:
                delay = min(delay * 2, MAX_RETRY_SECONDS)
