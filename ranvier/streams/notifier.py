"""The notifier: wakes long-polling /sync requests when something they care about changes.

Writers call `notify(stream, position, rooms=..., users=...)` once a change is committed
and readable. A waiter waits for its user and rooms; it is woken by the first notify that
names one of them. The last position notified per (room or user, stream) is remembered,
so a change notified between a sync reading the streams and starting to wait is not
missed: `wait` returns at once if a relevant position is already past the waiter's token.
At shutdown, `close` wakes every waiter and later waits return at once, so long-polls
answer with what they have instead of holding the process. Nothing here touches the
database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Collection, Iterable

from cachetools import LRUCache

from ranvier.streams.sync_token import SyncToken

# keys (room and user IDs) whose last notified positions are remembered; a key that falls
# out merely costs one extra sync round for a waiter whose token predates its last change
MAX_REMEMBERED_KEYS = 100_000


class Notifier:
    def __init__(self, remembered_keys: int = MAX_REMEMBERED_KEYS) -> None:
        self._key_to_waiters: dict[str, set[asyncio.Event]] = {}
        self._key_to_positions: LRUCache[str, dict[str, int]] = LRUCache(remembered_keys)
        self._closed = False
        # told of every notification, after the waiters: writers elsewhere that follow
        # streams (the application service sender)
        self.listeners: list[Callable[..., None]] = []
        # long-polls woken, by the stream that woke them (for metrics)
        self.woken_by_stream: Counter[str] = Counter()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Shutdown: wake every waiter now and let no one wait again."""
        self._closed = True
        for waiters in self._key_to_waiters.values():
            for waiter in waiters:
                waiter.set()

    def notify(
        self, stream: str, position: int, *, rooms: Iterable[str] = (), users: Iterable[str] = ()
    ) -> None:
        rooms, users = tuple(rooms), tuple(users)
        woken = 0
        for key in (*rooms, *users):
            positions = self._key_to_positions.get(key)
            if positions is None:
                positions = {}
                self._key_to_positions[key] = positions
            if position > positions.get(stream, 0):
                positions[stream] = position
            for waiter in self._key_to_waiters.get(key, ()):
                if not waiter.is_set():
                    waiter.set()
                    woken += 1
        if woken:
            self.woken_by_stream[stream] += woken
        for listener in self.listeners:
            listener(stream, position, rooms=rooms, users=users)

    def _already_past(self, keys: Collection[str], since: SyncToken) -> bool:
        for key in keys:
            positions = self._key_to_positions.get(key)
            if positions and any(pos > since.get(stream) for stream, pos in positions.items()):
                return True
        return False

    async def wait(
        self, user_id: str, room_ids: Collection[str], since: SyncToken, timeout_ms: int
    ) -> None:
        """Return when something for the user or one of the rooms is notified past `since`,
        or after `timeout_ms`."""
        keys = [user_id, *room_ids]
        if self._closed or timeout_ms <= 0 or self._already_past(keys, since):
            return
        waiter = asyncio.Event()
        for key in keys:
            self._key_to_waiters.setdefault(key, set()).add(waiter)
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                await waiter.wait()
        except TimeoutError:
            pass
        finally:
            for key in keys:
                waiters = self._key_to_waiters.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._key_to_waiters[key]

    def waiting_counts(self) -> tuple[int, int, int]:
        """(long-polls waiting, rooms and users they wait on), for metrics: counted when
        asked, so waiting costs nothing more."""
        waiters: set[int] = set()
        users = 0
        for key, key_waiters in list(self._key_to_waiters.items()):
            waiters.update(id(waiter) for waiter in key_waiters)
            users += key.startswith("@")
        return len(waiters), len(self._key_to_waiters) - users, users

    @property
    def waiting(self) -> int:
        """How many keys have waiters (for tests and metrics)."""
        return len(self._key_to_waiters)
