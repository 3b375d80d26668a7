"""The outbound transaction queue (federation/queue.py) on both engines, over the real room
sender and a scripted remote: a transport that records every PUT and answers with the
status each test chooses. Over TLS with a real receiver: tests/federation/test_outbound_queue.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest

from ranvier.federation.backoff import Backoff, BackoffSettings
from ranvier.federation.errors import DestinationUnreachable, RemoteRequestFailed
from ranvier.federation.queue import FederationSender
from ranvier.protocol.event_builder import EventTemplate
from ranvier.protocol.events import Event
from ranvier.protocol.room_versions import KNOWN_ROOM_VERSIONS
from ranvier.services.rooms.sender import RoomEventSender
from ranvier.storage import events as event_store
from ranvier.storage import state as state_store
from ranvier.storage.database import Database
from ranvier.storage.destinations import DestinationStore
from tests.services.test_room_sender import ALICE, SERVER, create_room, message, new_sender

REMOTE = "remote.example"
OTHER = "other.example:8448"
CAROL = f"@carol:{REMOTE}"
DAN = f"@dan:{OTHER}"
VERSION = KNOWN_ROOM_VERSIONS["10"]
UNREACHABLE = -1


@dataclass
class Put:
    destination: str
    path: str
    body: dict[str, Any]
    at: float
    long_retries: bool

    @property
    def txn_id(self) -> str:
        return self.path.rsplit("/", 1)[1]


@dataclass
class ScriptedRemote:
    """Answers each PUT with the next status scripted for its destination (200 once the
    script runs out); UNREACHABLE raises as a connection failure does. While `held` is
    set, an answer waits for it to be cleared."""

    puts: list[Put] = field(default_factory=list)
    script: dict[str, deque[int]] = field(default_factory=dict)
    held: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    # answer every PDU with an error (the transaction itself is accepted)
    refuse_pdus: bool = False

    def answer(self, destination: str, *statuses: int) -> None:
        self.script.setdefault(destination, deque()).extend(statuses)

    async def put_json(
        self,
        destination: str,
        path: str,
        body: Any,
        *,
        ignore_backoff: bool = False,
        long_retries: bool = False,
    ) -> Any:
        self.puts.append(Put(destination, path, body, time.monotonic(), long_retries))
        self.arrived.set()
        if self.held is not None:
            await self.held.wait()
        statuses = self.script.get(destination)
        status = statuses.popleft() if statuses else 200
        if status == UNREACHABLE:
            raise DestinationUnreachable(destination, "connection refused")
        if status >= 400:
            raise RemoteRequestFailed(destination, status, "M_UNKNOWN", {"errcode": "M_UNKNOWN"})
        if self.refuse_pdus:
            refused = {f"$pdu{n}": {"error": "refused"} for n in range(len(body["pdus"]))}
            return {"pdus": refused}
        return {"pdus": {}}

    def to(self, destination: str) -> list[Put]:
        return [put for put in self.puts if put.destination == destination]

    async def wait_for(self, count: int, destination: str = REMOTE, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while len(self.to(destination)) < count:
                self.arrived.clear()
                await self.arrived.wait()


@dataclass
class Setup:
    database: Database
    sender: RoomEventSender
    queue: FederationSender
    remote: ScriptedRemote
    backoff: Backoff
    store: DestinationStore
    room_id: str
    # a second room, its remote member joined (as given to setup)
    second_room: str
    events: list[Event] = field(default_factory=list)


def queue_for(
    database: Database,
    remote: ScriptedRemote,
    min_retry_ms: int = 200,
    refused: frozenset[str] = frozenset(),
) -> tuple[FederationSender, Backoff, DestinationStore]:
    store = DestinationStore(database)
    backoff = Backoff(store, BackoffSettings(min_retry_interval_ms=min_retry_ms))
    queue = FederationSender(
        server_name=SERVER,
        database=database,
        store=store,
        transport=remote,
        backoff=backoff,
        may_send_to=lambda destination: destination not in refused,
    )
    return queue, backoff, store


async def join_remote(database: Database, room_id: str, user_id: str) -> None:
    """A remote member joined (as inbound federation would have stored it)."""
    async with database.transaction() as conn:
        await state_store.apply_current_state_delta(
            conn, room_id, {("m.room.member", user_id): (f"$join-{user_id}", "join")}
        )


async def setup(
    database: Database, min_retry_ms: int = 200, second_room_member: str = CAROL
) -> Setup:
    """Rooms with a remote member each, joined before the queue listens (remote joins come
    through the sender's listeners, which the joined-servers cache follows; these are
    written straight into the current state)."""
    sender = await new_sender(database)
    room_id = await create_room(sender, VERSION)
    await join_remote(database, room_id, CAROL)
    second_room = await create_room(sender, VERSION)
    await join_remote(database, second_room, second_room_member)
    remote = ScriptedRemote()
    queue, backoff, store = queue_for(database, remote, min_retry_ms)
    sender.listeners.connect(persisted=[queue.notify_new_events])
    return Setup(database, sender, queue, remote, backoff, store, room_id, second_room)


async def say(s: Setup, body: str, room_id: str | None = None) -> Event:
    event = await s.sender.send(message(room_id or s.room_id, body))
    s.events.append(event)
    return event


async def failure_recorded(store: DestinationStore, destination: str = REMOTE) -> None:
    """Wait until `destination`'s failed attempt is stored (its backoff started)."""
    async with asyncio.timeout(10):
        while True:
            row = await store.get(destination)
            if row is not None and row.failure_ts is not None:
                return
            await asyncio.sleep(0.02)


async def delivered(store: DestinationStore, position: int, destination: str = REMOTE) -> None:
    """Wait until `destination` is recorded as delivered up to `position`."""
    async with asyncio.timeout(10):
        while True:
            row = await store.get(destination)
            if row is not None and row.last_successful_stream_ordering == position:
                return
            await asyncio.sleep(0.02)


def bodies(put: Put) -> list[str]:
    return [pdu["content"]["body"] for pdu in put.body["pdus"]]


async def ordering(database: Database, event: Event) -> int:
    return (await event_store.get_stream_orderings(database, [event.event_id]))[event.event_id]


async def test_transactions_hold_at_most_50_pdus_and_100_edus(database: Database) -> None:
    s = await setup(database)
    for n in range(120):
        await say(s, f"m{n}")
    for n in range(250):
        s.queue.send_edu(REMOTE, "m.test", {"n": n})
    s.queue.start()
    try:
        await s.remote.wait_for(3)
        # delivered: the destination's row says how far
        await delivered(s.store, await ordering(database, s.events[-1]))
    finally:
        await s.queue.stop()
    puts = s.remote.to(REMOTE)
    assert [len(put.body["pdus"]) for put in puts] == [50, 50, 20]
    assert [len(put.body["edus"]) for put in puts] == [100, 100, 50]
    assert [b for put in puts for b in bodies(put)] == [f"m{n}" for n in range(120)]
    assert [edu["content"]["n"] for put in puts for edu in put.body["edus"]] == list(range(250))
    first = puts[0]
    assert first.path.startswith("/_matrix/federation/v1/send/")
    assert first.body["origin"] == SERVER
    assert isinstance(first.body["origin_server_ts"], int)
    assert first.body["pdus"][0] == s.events[0].pdu
    assert first.body["edus"][0] == {"edu_type": "m.test", "content": {"n": 0}}
    assert first.long_retries
    assert len({put.txn_id for put in puts}) == 3


async def test_one_transaction_in_flight_per_destination(database: Database) -> None:
    s = await setup(database)
    s.remote.held = asyncio.Event()
    s.queue.start()
    try:
        await say(s, "first")
        await s.remote.wait_for(1)
        for n in range(5):
            await say(s, f"while in flight {n}")
        await asyncio.sleep(0.2)
        assert len(s.remote.to(REMOTE)) == 1
        s.remote.held.set()
        await s.remote.wait_for(2)
        await asyncio.sleep(0.1)
    finally:
        await s.queue.stop()
    puts = s.remote.to(REMOTE)
    assert [bodies(put) for put in puts] == [
        ["first"],
        [f"while in flight {n}" for n in range(5)],
    ]


async def test_a_failed_transaction_is_retried_with_its_id_after_the_backoff(
    database: Database,
) -> None:
    s = await setup(database, min_retry_ms=300)
    s.remote.answer(REMOTE, 500)
    s.queue.start()
    try:
        await say(s, "hello")
        await s.remote.wait_for(1)
        await asyncio.sleep(0.05)
        row = await s.store.get(REMOTE)
        assert row is not None and row.retry_interval == 300
        await s.remote.wait_for(2)
        await delivered(s.store, await ordering(database, s.events[0]))
    finally:
        await s.queue.stop()
    first, second = s.remote.to(REMOTE)
    assert second.txn_id == first.txn_id
    assert second.body == first.body
    # not before the backoff ran out
    assert second.at - first.at >= 0.29
    row = await s.store.get(REMOTE)
    assert row is not None and not row.backing_off and row.failure_ts is None


async def test_a_refused_transaction_is_not_retried(database: Database) -> None:
    s = await setup(database)
    s.remote.answer(REMOTE, 400)
    s.queue.start()
    try:
        await say(s, "refused")
        await s.remote.wait_for(1)
        await say(s, "next")
        await s.remote.wait_for(2)
        await asyncio.sleep(0.3)
    finally:
        await s.queue.stop()
    assert [bodies(put) for put in s.remote.to(REMOTE)] == [["refused"], ["next"]]


async def test_catch_up_sends_only_the_newest_event_of_each_room(database: Database) -> None:
    s = await setup(database, min_retry_ms=3_600_000)
    second_room = s.second_room
    s.remote.answer(REMOTE, UNREACHABLE)
    s.queue.start()
    try:
        await say(s, "lost")
        await s.remote.wait_for(1)
        await asyncio.sleep(0.05)
        # backing off for an hour: nothing is sent, nothing held in memory
        for n in range(3):
            await say(s, f"a{n}")
        for n in range(2):
            await say(s, f"b{n}", second_room)
        await asyncio.sleep(0.2)
        assert len(s.remote.to(REMOTE)) == 1
        # it contacted us (a signed request): the backoff ends and the queue wakes
        await s.backoff.heard_from(REMOTE)
        await s.remote.wait_for(3)
        await asyncio.sleep(0.1)
        # back on the live queue
        live_event = await say(s, "live")
        await s.remote.wait_for(4)
        await delivered(s.store, await ordering(database, live_event))
    finally:
        await s.queue.stop()
    failed, retried, catch_up, live = s.remote.to(REMOTE)
    assert retried.txn_id == failed.txn_id and bodies(retried) == ["lost"]
    assert bodies(catch_up) == ["a2", "b1"]
    assert catch_up.txn_id != failed.txn_id
    assert bodies(live) == ["live"]


async def test_edus_with_a_key_replace_the_queued_one(database: Database) -> None:
    s = await setup(database)
    s.queue.send_edu(REMOTE, "m.presence", {"v": 1}, key=("presence", ALICE))
    s.queue.send_edu(REMOTE, "m.typing", {"v": "a"})
    s.queue.send_edu(REMOTE, "m.presence", {"v": 2}, key=("presence", ALICE))
    s.queue.send_edu(REMOTE, "m.typing", {"v": "b"})
    s.queue.send_edu(REMOTE, "m.presence", {"v": 3}, key=("presence", "@bob:" + SERVER))
    s.queue.send_edu(SERVER, "m.typing", {"v": "to ourselves"})
    s.queue.start()
    try:
        await s.remote.wait_for(1)
        await asyncio.sleep(0.1)
    finally:
        await s.queue.stop()
    (put,) = s.remote.puts
    assert put.body["pdus"] == []
    assert [(edu["edu_type"], edu["content"]["v"]) for edu in put.body["edus"]] == [
        ("m.typing", "a"),
        ("m.typing", "b"),
        ("m.presence", 2),
        ("m.presence", 3),
    ]


async def test_destinations_are_the_joined_servers_and_the_affected_user(
    database: Database,
) -> None:
    s = await setup(database)
    # a second member on the same server: still one destination
    await join_remote(database, s.room_id, "@erin:" + REMOTE)
    s.queue.start()
    try:
        await say(s, "to remote")
        invite = await s.sender.send(
            EventTemplate("m.room.member", ALICE, {"membership": "invite"}, s.room_id, DAN)
        )
        ban = await s.sender.send(
            EventTemplate("m.room.member", ALICE, {"membership": "ban"}, s.room_id, DAN)
        )
        await s.remote.wait_for(1, OTHER)
        await s.remote.wait_for(1)
        await asyncio.sleep(0.2)
        # an event from another server is never sent on
        foreign = Event(
            {**s.events[0].pdu, "sender": CAROL, "content": {"body": "carol's"}},
            VERSION,
            "$foreign",
        )
        await s.queue.notify_new_events([foreign], 0)
        await asyncio.sleep(0.2)
    finally:
        await s.queue.stop()
    assert {put.destination for put in s.remote.puts} == {REMOTE, OTHER}
    # the banned user's server hears only of the ban: an invite reaches a server outside
    # the room through /invite, never by /send
    (to_other,) = s.remote.to(OTHER)
    assert to_other.body["pdus"] == [ban.pdu]
    # one transaction per event or per batch, but each event once, ours only
    sent = [pdu for put in s.remote.to(REMOTE) for pdu in put.body["pdus"]]
    assert sent == [s.events[0].pdu, invite.pdu, ban.pdu]


async def test_a_restart_catches_up_from_the_database(database: Database) -> None:
    s = await setup(database, second_room_member=DAN)
    second_room = s.second_room
    # never started (a crash before sending): recorded, not delivered
    for n in range(3):
        await say(s, f"a{n}")
    await say(s, "b0", second_room)
    await s.queue.stop()

    remote = ScriptedRemote()
    restarted, _, store = queue_for(database, remote)
    restarted.start()
    try:
        await remote.wait_for(1)
        await remote.wait_for(1, OTHER)
        await delivered(store, await ordering(database, s.events[2]))
        await delivered(store, await ordering(database, s.events[3]), OTHER)
    finally:
        await restarted.stop()
    (to_remote,) = remote.to(REMOTE)
    assert bodies(to_remote) == ["a2"]
    (to_other,) = remote.to(OTHER)
    assert bodies(to_other) == ["b0"]
    assert await store.destinations_behind() == []

    # a further restart has nothing to send
    quiet = ScriptedRemote()
    again, _, _ = queue_for(database, quiet)
    again.start()
    await asyncio.sleep(0.3)
    await again.stop()
    assert quiet.puts == []


async def test_a_stop_during_a_failure_leaves_the_destination_to_catch_up(
    database: Database,
) -> None:
    s = await setup(database, min_retry_ms=3_600_000)
    s.remote.answer(REMOTE, UNREACHABLE)
    s.queue.start()
    await say(s, "one")
    await s.remote.wait_for(1)
    # the remote has seen the attempt; the stop comes once its failure is recorded
    await failure_recorded(s.store)
    await say(s, "two")
    await s.queue.stop()
    store = DestinationStore(database)
    assert await store.destinations_behind() == [REMOTE]
    # the admin resets the backoff before the restart
    assert await store.clear_retry_timings(REMOTE)
    remote = ScriptedRemote()
    restarted, _, _ = queue_for(database, remote)
    restarted.start()
    try:
        await remote.wait_for(1)
    finally:
        await restarted.stop()
    assert bodies(remote.puts[0]) == ["two"]


@pytest.mark.parametrize("status", [UNREACHABLE, 502])
async def test_the_admin_reset_wakes_a_destination_in_backoff(
    database: Database, status: int
) -> None:
    s = await setup(database, min_retry_ms=3_600_000)
    s.remote.answer(REMOTE, status)
    s.queue.start()
    try:
        await say(s, "one")
        await s.remote.wait_for(1)
        await asyncio.sleep(0.1)
        assert await s.store.clear_retry_timings(REMOTE)
        s.backoff.forget(REMOTE)
        await s.remote.wait_for(2)
    finally:
        await s.queue.stop()
    first, second = s.remote.to(REMOTE)
    assert second.txn_id == first.txn_id


async def test_servers_outside_the_domain_whitelist_are_not_sent_to(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, VERSION)
    await join_remote(database, room_id, CAROL)
    await join_remote(database, room_id, DAN)
    remote = ScriptedRemote()
    queue, _, store = queue_for(database, remote, refused=frozenset({OTHER}))
    sender.listeners.connect(persisted=[queue.notify_new_events])
    queue.send_edu(OTHER, "m.typing", {})
    queue.start()
    try:
        await sender.send(message(room_id, "whitelisted only"))
        await remote.wait_for(1)
        await asyncio.sleep(0.2)
    finally:
        await queue.stop()
    assert [put.destination for put in remote.puts] == [REMOTE]
    # nothing owed to it either
    assert await store.get(OTHER) is None
    assert await store.destinations_behind() == []


async def test_a_failure_to_queue_does_not_fail_the_send(database: Database) -> None:
    sender = await new_sender(database)
    room_id = await create_room(sender, VERSION)
    await join_remote(database, room_id, CAROL)
    store = DestinationStore(database)

    def broken(destination: str) -> bool:
        raise RuntimeError("broken")

    queue = FederationSender(
        server_name=SERVER,
        database=database,
        store=store,
        transport=ScriptedRemote(),
        backoff=Backoff(store, BackoffSettings()),
        may_send_to=broken,
    )
    sender.listeners.connect(persisted=[queue.notify_new_events])
    event = await sender.send(message(room_id, "stored all the same"))
    stored = await event_store.get_events(database, [event.event_id])
    assert stored[event.event_id].pdu["content"]["body"] == "stored all the same"


async def test_per_pdu_errors_are_logged_not_retried(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    s = await setup(database)
    s.remote.refuse_pdus = True
    s.queue.start()
    try:
        with caplog.at_level(logging.INFO, logger="ranvier.federation.queue"):
            event = await say(s, "refused by the receiver")
            await s.remote.wait_for(1)
            await delivered(s.store, await ordering(database, event))
            await say(s, "next")
            await s.remote.wait_for(2)
    finally:
        await s.queue.stop()
    assert [bodies(put) for put in s.remote.to(REMOTE)] == [["refused by the receiver"], ["next"]]
    assert f"{REMOTE} refused $pdu0 in transaction" in caplog.text


async def test_a_restart_skips_servers_the_whitelist_now_refuses(database: Database) -> None:
    s = await setup(database, second_room_member=DAN)
    await say(s, "to remote")
    await say(s, "to other", s.second_room)
    await s.queue.stop()
    remote = ScriptedRemote()
    restarted, _, store = queue_for(database, remote, refused=frozenset({OTHER}))
    restarted.start()
    try:
        await remote.wait_for(1)
        await asyncio.sleep(0.3)
    finally:
        await restarted.stop()
    assert [put.destination for put in remote.puts] == [REMOTE]
    assert await store.get(OTHER) is None
