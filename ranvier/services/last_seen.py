"""Where each session was last seen from: noted in memory on every authenticated request
(and at login), written to the database in batches.

A burst of requests costs one write: updates wait in memory for the next flush, a few
seconds away, and the latest one per session, address and client wins. A session that
keeps calling from the same address has its row rewritten at most once a minute; until
then its newer timestamp waits in memory, where `GET /devices` and the admin's whois read
it, so a client sees its own current address and time at once. Pending updates are
written at shutdown too; a crash loses at most the last minute of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

from cachetools import LRUCache

from ranvier.clock import now_ms
from ranvier.storage.devices import Connection, Device, DeviceStore, LastSeen

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 5.0
REWRITE_INTERVAL_MS = 60_000
# past this many pending updates a flush writes them all at once, due or not
MAX_PENDING = 10_000
# how many users' latest sightings memory keeps for answering /devices
SEEN_USERS_CACHE_SIZE = 10_000

# The user_ips unique index covers (user_id, ip, user_agent); a PostgreSQL B-tree entry must
# stay under about 2.7kB, and no one needs more of a user agent than this.
MAX_USER_AGENT_BYTES = 1024
# an address, or on a listener that trusts X-Forwarded-For, whatever the proxy passed on
MAX_IP_BYTES = 128

# (user_id, device_id, ip, user_agent)
SeenKey = tuple[str, str | None, str, str]


def storable_header(value: str, max_bytes: int) -> str:
    """Header text that both engines can store: aiohttp hands bytes that are not UTF-8 over
    as lone surrogates (surrogateescape), which neither SQLite nor PostgreSQL accept, and
    PostgreSQL refuses NUL. Such bytes become U+FFFD; the text is cut to `max_bytes`."""
    if value.isascii() and "\x00" not in value and len(value) <= max_bytes:
        return value
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # surrogates that are not escaped bytes; only a caller other than aiohttp makes them
        raw = value.encode("utf-8", "replace")
    text = raw.decode("utf-8", "replace").replace("\x00", "\ufffd")
    # cutting may split a character: drop the partial one
    return text.encode()[:max_bytes].decode("utf-8", "ignore")


class LastSeenRecorder:
    def __init__(
        self,
        devices: DeviceStore,
        *,
        flush_interval_seconds: float = FLUSH_INTERVAL_SECONDS,
        rewrite_interval_ms: int = REWRITE_INTERVAL_MS,
    ) -> None:
        self._devices = devices
        self._flush_interval = flush_interval_seconds
        self._rewrite_interval_ms = rewrite_interval_ms
        self._key_to_pending: dict[SeenKey, LastSeen] = {}
        self._key_to_written_ms: LRUCache[SeenKey, int] = LRUCache(MAX_PENDING)
        self._user_id_to_device_seen: LRUCache[str, dict[str, LastSeen]] = LRUCache(
            SEEN_USERS_CACHE_SIZE
        )
        self._flusher: asyncio.Task[None] | None = None
        self._flush_early = asyncio.Event()
        # one batch at a time, so an older batch never lands after a newer one
        self._write_lock = asyncio.Lock()

    def record(self, user_id: str, device_id: str | None, ip: str, user_agent: str) -> None:
        ip = storable_header(ip, MAX_IP_BYTES)
        user_agent = storable_header(user_agent, MAX_USER_AGENT_BYTES)
        seen = LastSeen(user_id, device_id, ip, user_agent, now_ms())
        self._key_to_pending[(user_id, device_id, ip, user_agent)] = seen
        if device_id is not None:
            device_seen = self._user_id_to_device_seen.get(user_id)
            if device_seen is None:
                device_seen = self._user_id_to_device_seen[user_id] = {}
            device_seen[device_id] = seen
        if len(self._key_to_pending) >= MAX_PENDING:
            self._flush_early.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_while_pending())

    async def _flush_while_pending(self) -> None:
        try:
            while self._key_to_pending:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._flush_interval):
                        await self._flush_early.wait()
                everything = self._flush_early.is_set()
                self._flush_early.clear()
                await self.flush(everything=everything)
        finally:
            self._flusher = None

    async def flush(self, *, everything: bool = False) -> None:
        """Write the pending updates that are due (all of them with `everything`)."""
        async with self._write_lock:
            now = now_ms()
            due: list[LastSeen] = []
            for key, seen in list(self._key_to_pending.items()):
                written = self._key_to_written_ms.get(key)
                if everything or written is None or now - written >= self._rewrite_interval_ms:
                    due.append(seen)
                    del self._key_to_pending[key]
                    self._key_to_written_ms[key] = now
            if not due:
                return
            await self._write(due)

    async def _write(self, due: list[LastSeen]) -> None:
        try:
            await self._devices.record_last_seen(due)
            return
        except Exception:
            if len(due) == 1:
                # informational data: dropped, never retried into a loop
                logger.warning("Could not record last-seen data", exc_info=True)
                return
            logger.warning("Could not record a batch of last-seen data", exc_info=True)
        # one update the database refuses must not cost the others theirs
        failed = 0
        for seen in due:
            try:
                await self._devices.record_last_seen([seen])
            except Exception:
                failed += 1
        if failed:
            logger.warning("%d of %d last-seen updates could not be recorded", failed, len(due))

    async def close(self) -> None:
        """Write everything pending (shutdown)."""
        flusher = self._flusher
        if flusher is not None:
            # not cancelled: that could abandon a batch half-written
            self._flush_early.set()
            await flusher
        await self.flush(everything=True)

    def freshest(self, user_id: str, devices: list[Device]) -> list[Device]:
        """`devices` with the sightings memory holds that are newer than the stored ones."""
        device_seen = self._user_id_to_device_seen.get(user_id)
        if not device_seen:
            return devices
        return [_with_newer(device, device_seen.get(device.device_id)) for device in devices]

    def freshest_connections(self, user_id: str, stored: list[Connection]) -> list[Connection]:
        """`stored` with the pending updates of `user_id` merged in, newest first."""
        address_to_connection = {(c.ip, c.user_agent): c for c in stored}
        for (pending_user_id, _, ip, user_agent), seen in self._key_to_pending.items():
            if pending_user_id != user_id:
                continue
            known = address_to_connection.get((ip, user_agent))
            if known is None or seen.ts > known.last_seen_ts:
                address_to_connection[(ip, user_agent)] = Connection(
                    seen.device_id, ip, user_agent, seen.ts
                )
        return sorted(address_to_connection.values(), key=lambda c: -c.last_seen_ts)


def _with_newer(device: Device, seen: LastSeen | None) -> Device:
    if seen is None or (device.last_seen_ts is not None and device.last_seen_ts >= seen.ts):
        return device
    return replace(
        device,
        last_seen_ts=seen.ts,
        last_seen_ip=seen.ip,
        last_seen_user_agent=seen.user_agent,
    )
