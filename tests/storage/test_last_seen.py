"""Last-seen data on both engines: the batched store write, the recorder that collects
sightings in memory and flushes them, header text neither engine could store, and tokens
that cannot be tokens."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import string
from collections.abc import Iterator, Sequence

import pytest

from ranvier.services import last_seen
from ranvier.services.last_seen import (
    MAX_IP_BYTES,
    MAX_USER_AGENT_BYTES,
    LastSeenRecorder,
    storable_header,
)
from ranvier.services.tokens import AccessTokens
from ranvier.storage.database import Database
from ranvier.storage.devices import DeviceStore, LastSeen
from ranvier.storage.tokens import TokenStore
from ranvier.storage.users import UserStore

ALICE = "@alice:test"
BOB = "@bob:test"
# no flush happens on its own during a test unless it asks for one
NEVER = 3600.0


class CountingDeviceStore(DeviceStore):
    """Counts the last-seen writes: each call is one transaction."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.batches: list[list[LastSeen]] = []

    async def record_last_seen(self, seen: Sequence[LastSeen]) -> None:
        self.batches.append(list(seen))
        await super().record_last_seen(seen)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[itertools.count[int]]:
    """The recorder's clock, one millisecond further at each reading."""
    ticks = itertools.count(1_700_000_000_000)
    monkeypatch.setattr(last_seen, "now_ms", lambda: next(ticks))
    yield ticks


async def make_devices(db: Database) -> CountingDeviceStore:
    users = UserStore(db)
    devices = CountingDeviceStore(db)
    for user_id in (ALICE, BOB):
        await users.create_user(user_id, password_hash=None, creation_ts=0, displayname=None)
        for device_id in ("PHONE", "LAPTOP"):
            await devices.ensure_device(user_id, device_id, None, 0)
    return devices


def seen(device_id: str | None, ip: str, ts: int, user_agent: str = "ua") -> LastSeen:
    return LastSeen(ALICE, device_id, ip, user_agent, ts)


# -- the store --


async def test_a_batch_writes_the_newest_per_device_and_every_connection(
    database: Database,
) -> None:
    store = await make_devices(database)
    await store.record_last_seen(
        [
            seen("PHONE", "10.0.0.1", 10),
            seen("PHONE", "10.0.0.2", 20),
            seen("LAPTOP", "10.0.0.3", 15, "laptop"),
            # an admin puppeting the user: no device, only a connection
            seen(None, "10.0.0.4", 12, "admin tool"),
            # a device deleted since: nothing to update, and no error
            seen("GONE", "10.0.0.5", 13),
        ]
    )
    devices = {d.device_id: d for d in await store.get_devices(ALICE)}
    phone, laptop = devices["PHONE"], devices["LAPTOP"]
    assert (phone.last_seen_ip, phone.last_seen_ts, phone.last_seen_user_agent) == (
        "10.0.0.2",
        20,
        "ua",
    )
    assert (laptop.last_seen_ip, laptop.last_seen_ts) == ("10.0.0.3", 15)
    assert all(d.last_seen_ts is None for d in await store.get_devices(BOB))
    connections = await store.get_connections(ALICE)
    assert [(c.ip, c.device_id, c.last_seen_ts) for c in connections] == [
        ("10.0.0.2", "PHONE", 20),
        ("10.0.0.3", "LAPTOP", 15),
        ("10.0.0.5", "GONE", 13),
        ("10.0.0.4", None, 12),
        ("10.0.0.1", "PHONE", 10),
    ]


async def test_an_older_batch_never_overwrites_a_newer_one(database: Database) -> None:
    store = await make_devices(database)
    await store.record_last_seen([seen("PHONE", "10.0.0.1", 30)])
    await store.record_last_seen([seen("PHONE", "10.0.0.2", 20), seen("LAPTOP", "10.0.0.1", 5)])
    phone = await store.get_device(ALICE, "PHONE")
    assert phone is not None and (phone.last_seen_ip, phone.last_seen_ts) == ("10.0.0.1", 30)
    # the same address and client seen again from another device, but earlier: kept as it was
    assert [(c.ip, c.device_id, c.last_seen_ts) for c in await store.get_connections(ALICE)] == [
        ("10.0.0.1", "PHONE", 30),
        ("10.0.0.2", "PHONE", 20),
    ]


# -- the recorder --


async def test_a_burst_of_requests_costs_one_write(
    database: Database, clock: itertools.count[int]
) -> None:
    store = await make_devices(database)
    recorder = LastSeenRecorder(store, flush_interval_seconds=NEVER)
    addresses = ["10.0.0.1", "10.0.0.2"]
    for i in range(1000):
        recorder.record(ALICE, ["PHONE", "LAPTOP"][i % 2], addresses[i // 2 % 2], "ua")
    await recorder.flush()
    assert len(store.batches) == 1
    # one update per session, address and client, carrying its latest time
    assert len(store.batches[0]) == 4
    phone = await store.get_device(ALICE, "PHONE")
    laptop = await store.get_device(ALICE, "LAPTOP")
    assert phone is not None and laptop is not None
    # requests 998 and 999 were the last: PHONE and LAPTOP from the second address
    assert (phone.last_seen_ip, laptop.last_seen_ip) == ("10.0.0.2", "10.0.0.2")
    assert laptop.last_seen_ts is not None and phone.last_seen_ts == laptop.last_seen_ts - 1

    # the same sessions again within the minute: memory has them, the database waits
    for _ in range(1000):
        recorder.record(ALICE, "PHONE", "10.0.0.1", "ua")
    await recorder.flush()
    assert len(store.batches) == 1
    stored = await store.get_devices(ALICE)
    fresh = {d.device_id: d for d in recorder.freshest(ALICE, stored)}
    assert fresh["PHONE"].last_seen_ip == "10.0.0.1"
    assert fresh["PHONE"].last_seen_ts is not None and phone.last_seen_ts is not None
    assert fresh["PHONE"].last_seen_ts > phone.last_seen_ts
    assert fresh["LAPTOP"] == laptop
    connections = recorder.freshest_connections(ALICE, await store.get_connections(ALICE))
    assert (connections[0].ip, connections[0].last_seen_ts) == (
        "10.0.0.1",
        fresh["PHONE"].last_seen_ts,
    )

    # shutdown writes what waited, in one more batch
    await recorder.close()
    assert [len(batch) for batch in store.batches] == [4, 1]
    assert fresh["PHONE"] == await store.get_device(ALICE, "PHONE")


async def test_updates_are_rewritten_once_due(
    database: Database, clock: itertools.count[int]
) -> None:
    store = await make_devices(database)
    recorder = LastSeenRecorder(store, flush_interval_seconds=NEVER, rewrite_interval_ms=0)
    recorder.record(ALICE, "PHONE", "10.0.0.1", "ua")
    await recorder.flush()
    recorder.record(ALICE, "PHONE", "10.0.0.1", "ua")
    await recorder.flush()
    await recorder.flush()
    assert [len(batch) for batch in store.batches] == [1, 1]
    await recorder.close()


async def test_the_recorder_flushes_on_its_own(database: Database) -> None:
    store = await make_devices(database)
    recorder = LastSeenRecorder(store, flush_interval_seconds=0.01)
    for _ in range(100):
        recorder.record(ALICE, "PHONE", "10.0.0.1", "ua")
    recorder.record(BOB, "LAPTOP", "10.0.0.9", "ua")
    for _ in range(500):
        if store.batches:
            break
        await asyncio.sleep(0.01)
    assert [len(batch) for batch in store.batches] == [2]
    device = await store.get_device(BOB, "LAPTOP")
    assert device is not None and device.last_seen_ip == "10.0.0.9"
    await recorder.close()
    assert len(store.batches) == 1


async def test_header_text_no_engine_could_store_is_written_all_the_same(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    store = await make_devices(database)
    recorder = LastSeenRecorder(store, flush_interval_seconds=NEVER)
    # what aiohttp makes of the bytes b"x\xff\xfe\x00y": lone surrogates and a NUL
    recorder.record(ALICE, "PHONE", "10.0.0.1\udcff", "x\udcff\udcfe\x00y")
    # a user agent as long as a header may be, in characters that do not compress
    long_agent = "".join(random.choices(string.ascii_letters + string.digits, k=8000))
    recorder.record(ALICE, "LAPTOP", "10.0.0.2", long_agent)
    with caplog.at_level(logging.WARNING, logger=last_seen.__name__):
        await recorder.close()
    assert not caplog.records
    phone = await store.get_device(ALICE, "PHONE")
    laptop = await store.get_device(ALICE, "LAPTOP")
    assert phone is not None and laptop is not None
    assert (phone.last_seen_ip, phone.last_seen_user_agent) == (
        "10.0.0.1\ufffd",
        "x\ufffd\ufffd\ufffdy",
    )
    assert laptop.last_seen_user_agent == long_agent[:MAX_USER_AGENT_BYTES]


async def test_an_update_the_database_refuses_costs_the_others_nothing(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    store = await make_devices(database)
    recorder = LastSeenRecorder(store, flush_interval_seconds=NEVER)
    recorder.record(ALICE, "PHONE", "10.0.0.1", "ua")
    # a user the users table does not know: its connection row breaks the foreign key
    recorder.record("@nobody:test", None, "10.0.0.2", "ua")
    recorder.record(BOB, "LAPTOP", "10.0.0.3", "ua")
    with caplog.at_level(logging.WARNING, logger=last_seen.__name__):
        await recorder.close()
    assert "1 of 3 last-seen updates could not be recorded" in caplog.text
    phone = await store.get_device(ALICE, "PHONE")
    laptop = await store.get_device(BOB, "LAPTOP")
    assert phone is not None and phone.last_seen_ip == "10.0.0.1"
    assert laptop is not None and laptop.last_seen_ip == "10.0.0.3"


def test_storable_header() -> None:
    assert storable_header("Element/1.11 (Linux)", 100) == "Element/1.11 (Linux)"
    # valid UTF-8 that aiohttp escaped byte by byte comes back whole
    assert storable_header("caf\udcc3\udca9", 100) == "café"
    assert storable_header("\ud800", 100) == "?"
    assert storable_header("a\x00b", 100) == "a\ufffdb"
    # cut on a character boundary
    assert storable_header("aé" * 10, 4) == "aéa"
    assert storable_header("1" * 500, MAX_IP_BYTES) == "1" * MAX_IP_BYTES


# -- token lookups --


async def test_a_token_that_cannot_be_one_is_unknown(database: Database) -> None:
    await UserStore(database).create_user(
        ALICE, password_hash=None, creation_ts=0, displayname=None
    )
    tokens = AccessTokens(TokenStore(database), DeviceStore(database))
    issued = await tokens.issue(ALICE, None, valid_until_ms=None)
    info = await tokens.lookup(issued.token)
    assert info is not None and info.user_id == ALICE
    for token in ("\udcff\udcfe", issued.token + "\udcff", "caf\u00e9", "a b", "a\x01b", ""):
        assert await tokens.lookup(token) is None
    await tokens.wait_idle()
