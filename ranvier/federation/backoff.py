"""Backing off from servers that fail: how long to wait, kept in the `destinations` table
so a restart does not forget it.

As Synapse: the first failure waits `destination_min_retry_interval`; each failure after
the wait grows it by `destination_retry_multiplier` (with some jitter, so servers that
failed together do not all come back at once), up to `destination_max_retry_interval`.
A success ends the backoff.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ranvier.clock import now_ms as wall_clock_ms
from ranvier.federation.errors import NotRetrying
from ranvier.storage.destinations import DestinationStore

# the jitter on each growth, as Synapse's
JITTER = (0.8, 1.4)


@dataclass(frozen=True)
class BackoffSettings:
    min_retry_interval_ms: int = 10 * 60 * 1000
    retry_multiplier: float = 2.0
    max_retry_interval_ms: int = 7 * 24 * 3600 * 1000


def next_interval(previous_ms: int, settings: BackoffSettings, jitter: float) -> int:
    """The wait after a failure, given the wait before it (0 when none)."""
    if previous_ms <= 0:
        return settings.min_retry_interval_ms
    grown = int(previous_ms * settings.retry_multiplier * jitter)
    return max(settings.min_retry_interval_ms, min(grown, settings.max_retry_interval_ms))


class Backoff:
    def __init__(
        self,
        store: DestinationStore,
        settings: BackoffSettings,
        *,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        # destinations whose row says they answer, so a success writes nothing
        self._known_good: set[str] = set()
        # told when a destination's backoff ends early (the outbound queue's wake-up)
        self._on_reachable: list[Callable[[str], None]] = []

    def on_reachable(self, callback: Callable[[str], None]) -> None:
        """Call `callback(destination)` when a backoff ends before its time: the server
        contacted us, or the admin reset it."""
        self._on_reachable.append(callback)

    async def check(self, destination: str) -> None:
        """Raise NotRetrying if `destination` is waiting out a backoff."""
        if destination in self._known_good:
            return
        row = await self._store.get(destination)
        if row is None or not row.backing_off:
            return
        retry_at = row.retry_last_ts + row.retry_interval
        if retry_at > self._clock():
            raise NotRetrying(destination, retry_at)

    async def succeeded(self, destination: str) -> None:
        if destination in self._known_good:
            return
        row = await self._store.get(destination)
        if row is None or row.backing_off or row.failure_ts is not None:
            await self._store.set_retry_timings(destination, None, 0, 0)
        self._known_good.add(destination)
        if row is not None and row.backing_off:
            # answered inside its backoff (a key fetch, a query): the queue waiting it out
            # can send now, as when it contacts us (heard_from, which this makes a no-op)
            self._reachable(destination)

    async def failed(self, destination: str) -> None:
        self._known_good.discard(destination)
        now = self._clock()
        row = await self._store.get(destination)
        if row is not None and row.backing_off and row.retry_last_ts + row.retry_interval > now:
            # a request that ignored the backoff failed inside it: the wait stands
            return
        previous = row.retry_interval if row is not None else 0
        failure_ts = row.failure_ts if row is not None and row.failure_ts is not None else now
        interval = next_interval(previous, self._settings, random.uniform(*JITTER))
        await self._store.set_retry_timings(destination, failure_ts, now, interval)

    async def heard_from(self, destination: str) -> None:
        """`destination` just sent us a signed request: it is up, so a backoff from it
        ends (as Synapse does); nothing is written for a server not backed off from."""
        if destination in self._known_good:
            return
        row = await self._store.get(destination)
        if row is not None and (row.backing_off or row.failure_ts is not None):
            await self._store.set_retry_timings(destination, None, 0, 0)
            self._reachable(destination)

    def forget(self, destination: str) -> None:
        """After the admin reset `destination`'s row, stop trusting what was remembered."""
        self._known_good.discard(destination)
        self._reachable(destination)

    def _reachable(self, destination: str) -> None:
        for callback in self._on_reachable:
            callback(destination)
