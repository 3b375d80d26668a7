"""Message retention policies (Synapse's, after MSC1763; docs/retention.md).

A room's policy is its current `m.room.retention` state, a value it leaves out taken from
the server's default policy. Its `max_lifetime`, brought within the server's allowed
bounds, is how long the room's messages live: once older, an event is hidden from clients
at once (every endpoint that filters through `HistoryVisibility`), and the next purge job
that covers the room deletes it through the Purge History machinery. State events are
not subject to retention: they are neither hidden nor deleted (a purge keeps them as
outliers, because the room's state refers to them), and the room's latest events (its
forward extremities) always stay, as a room needs them to go on.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

from ranvier.clock import now_ms
from ranvier.config.retention import PurgeJob, RetentionConfig
from ranvier.errors import MatrixError
from ranvier.protocol.events import Event
from ranvier.protocol.redaction import redact
from ranvier.requester import UserRequester
from ranvier.services.periodic import PeriodicTask
from ranvier.services.rooms.deletion import RoomDeletionService
from ranvier.services.rooms.event_loader import EventLoader
from ranvier.services.rooms.purge_history import HistoryPurgeService
from ranvier.services.rooms.redaction_rules import Redactions
from ranvier.storage import retention as retention_store
from ranvier.storage.database import Database

logger = logging.getLogger(__name__)

RETENTION = retention_store.RETENTION


def lifetime_of(content: dict[str, Any], key: str) -> int | None:
    """A policy value as Synapse reads it: an integer number of milliseconds, else unset
    (another server's event may carry anything)."""
    value = content.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


async def check_retention_content(
    _requester: UserRequester, _room_id: str, _state_key: str, content: dict[str, Any]
) -> None:
    """A client's `m.room.retention`: each lifetime an integer of milliseconds, the
    minimum not above the maximum (Synapse's checks, with its errcode)."""
    for key in ("min_lifetime", "max_lifetime"):
        value = content.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise MatrixError(
                400, "M_BAD_JSON", f"'{key}' must be a non-negative integer of milliseconds"
            )
    minimum, maximum = content.get("min_lifetime"), content.get("max_lifetime")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise MatrixError(400, "M_BAD_JSON", "'min_lifetime' can't be greater than 'max_lifetime'")


class RoomRetention:
    """Rooms' policies, and which events have outlived them."""

    def __init__(self, config: RetentionConfig, db: Database, loader: EventLoader) -> None:
        self.config = config
        self._db = db
        self._loader = loader

    async def room_max_lifetimes(self, room_ids: Sequence[str]) -> dict[str, int | None]:
        """room ID -> the max_lifetime its policy names (the room's, else the default
        policy's), before the allowed bounds; None: no policy limits it."""
        ids = list(dict.fromkeys(room_ids))
        event_ids = await retention_store.policy_event_ids(self._db, ids)
        loaded = await self._loader.get_events(event_ids.values())
        lifetimes: dict[str, int | None] = {}
        for room_id in ids:
            policy = loaded.get(event_ids.get(room_id, ""))
            own = None if policy is None else lifetime_of(policy.content, "max_lifetime")
            lifetimes[room_id] = own if own is not None else self.config.default_policy.max_lifetime
        return lifetimes

    async def drop_expired(self, events: Sequence[Event]) -> list[Event]:
        """The events given, but for the messages older than their room's effective
        max_lifetime (by the time their sender's server stamped them, as Synapse)."""
        if not self.config.enabled or not events:
            return list(events)
        lifetimes = await self.room_max_lifetimes([e.room_id for e in events])
        now = now_ms()
        oldest_allowed: dict[str, int] = {}
        for room_id, lifetime in lifetimes.items():
            effective = self.config.effective_max_lifetime(lifetime)
            if effective is not None:
                oldest_allowed[room_id] = now - effective
        if not oldest_allowed:
            return list(events)
        return [
            e
            for e in events
            if e.state_key is not None
            or e.room_id not in oldest_allowed
            or e.origin_server_ts >= oldest_allowed[e.room_id]
        ]


class RetentionPurgeJobs:
    """The configured purge jobs, each on its own interval; a job purges, in each room its
    range covers, what is older than the room's effective max_lifetime."""

    def __init__(self, retention: RoomRetention, db: Database, purges: HistoryPurgeService) -> None:
        self._retention = retention
        self._config = retention.config
        self._db = db
        self._purges = purges
        self._tasks: list[PeriodicTask] = []

    def start(self) -> None:
        if not self._config.enabled:
            return
        for job in self._config.purge_jobs:
            task = PeriodicTask(
                job.interval,
                functools.partial(self.run, job),
                f"A retention purge job failed; it runs again in {job.interval} ms",
            )
            task.start()
            self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            await task.stop()
        self._tasks.clear()

    async def run(self, job: PurgeJob) -> list[str]:
        """Purge the expired history of every room the job covers; the rooms it purged."""
        room_ids = await retention_store.rooms_with_state(self._db)
        lifetimes = await self._retention.room_max_lifetimes(room_ids)
        purged: list[str] = []
        for room_id, lifetime in lifetimes.items():
            # the room's own value (or the default's) picks the job, the bounds apply after
            if lifetime is None or not job.covers(lifetime):
                continue
            effective = self._config.effective_max_lifetime(lifetime)
            assert effective is not None
            if await self._purges.purge_before(room_id, now_ms() - effective):
                purged.append(room_id)
        if purged:
            logger.info("Retention purged expired history in %d rooms", len(purged))
        return purged


# as Synapse: redactions are looked at every five minutes; a shorter period is looked at
# four times per period, so nothing outlives it by more than a quarter
REDACTION_CHECK_PERIOD_MS = 5 * 60 * 1000
SHORTEST_CHECK_PERIOD_MS = 1000
REDACTION_BATCH = 100


def redaction_check_period_ms(period_ms: int) -> int:
    return max(SHORTEST_CHECK_PERIOD_MS, min(REDACTION_CHECK_PERIOD_MS, period_ms // 4))


class RedactionPruner:
    """`redaction_retention_period`: once a redaction is that old, the event it redacts
    is stored pruned (what the room version's redaction algorithm keeps), so its original
    content leaves the database. Events are served redacted from the moment of the
    redaction anyway; this only stops the server keeping what they said. A redaction that
    does not take effect (its sender lacked the power) prunes nothing.

    Redactions are taken in the order they were received; how far this has got is kept in
    memory, so after a restart the first pass looks at every old redaction again (pruning
    an event twice changes nothing)."""

    def __init__(
        self,
        period_ms: int | None,
        db: Database,
        loader: EventLoader,
        redactions: Redactions,
    ) -> None:
        self._period_ms = period_ms
        self._db = db
        self._loader = loader
        self._redactions = redactions
        self._done_up_to_ts = 0
        self._task = (
            PeriodicTask(
                redaction_check_period_ms(period_ms),
                self.run,
                "Pruning redacted events failed; trying again later",
            )
            if period_ms is not None
            else None
        )

    def start(self) -> None:
        if self._task is not None:
            self._task.start()

    async def stop(self) -> None:
        if self._task is not None:
            await self._task.stop()

    async def run(self) -> int:
        """Prune the events of redactions older than the period; how many were pruned."""
        assert self._period_ms is not None
        cutoff = now_ms() - self._period_ms
        pruned = 0
        while True:
            batch = await retention_store.redactions_received_between(
                self._db, self._done_up_to_ts, cutoff, REDACTION_BATCH
            )
            if not batch:
                break
            pruned += await self._prune([record.redacts for record in batch])
            self._done_up_to_ts = batch[-1].received_ts
            if len(batch) < REDACTION_BATCH:
                break
        # nothing received up to the cutoff is left to look at
        self._done_up_to_ts = max(self._done_up_to_ts, cutoff)
        if pruned:
            logger.info("Pruned the original content of %d redacted events", pruned)
        return pruned

    async def _prune(self, event_ids: list[str]) -> int:
        targets = await self._loader.get_events(event_ids)
        applied = await self._redactions.applied(targets.values())
        replaced: dict[str, dict[str, Any]] = {}
        for event_id in applied:
            event = targets[event_id]
            original = event.pdu
            pruned = redact(original, event.room_version)
            # what the server noted beside the event is not what its sender said
            if "unsigned" in original:
                pruned["unsigned"] = original["unsigned"]
            if pruned != original:
                replaced[event_id] = pruned
        await retention_store.replace_event_json(self._db, replaced)
        self._loader.forget(replaced)
        return len(replaced)


FORGOTTEN_CHECK_PERIOD_MS = 60 * 60 * 1000


def forgotten_check_period_ms(period_ms: int) -> int:
    return max(SHORTEST_CHECK_PERIOD_MS, min(FORGOTTEN_CHECK_PERIOD_MS, period_ms // 4))


class ForgottenRoomPurger:
    """`forgotten_room_retention_period`: a room every local user has forgotten is purged
    from the database once that long has passed since the last membership change of a
    local user in it (their leave: a forget always comes after it, and it is what the
    database dates). A local user joining again before then keeps the room. Checked every
    hour, or four times per period when that is shorter than four hours."""

    def __init__(
        self,
        period_ms: int | None,
        db: Database,
        server_name: str,
        deletion: RoomDeletionService,
    ) -> None:
        self._period_ms = period_ms
        self._db = db
        self._server_name = server_name
        self._deletion = deletion
        self._task = (
            PeriodicTask(
                forgotten_check_period_ms(period_ms),
                self.run,
                "Purging forgotten rooms failed; trying again later",
            )
            if period_ms is not None
            else None
        )

    def start(self) -> None:
        if self._task is not None:
            self._task.start()

    async def stop(self) -> None:
        if self._task is not None:
            await self._task.stop()

    async def run(self) -> list[str]:
        """Purge the rooms forgotten long enough; the rooms purged."""
        assert self._period_ms is not None
        room_ids = await retention_store.rooms_forgotten_since(
            self._db, self._server_name, now_ms() - self._period_ms
        )
        purged = [room_id for room_id in room_ids if await self._deletion.purge_forgotten(room_id)]
        if purged:
            logger.info("Purged %d rooms every local user had forgotten", len(purged))
        return purged
