"""The durable EDU path of the outbound queue (federation/queue.py send_durable_edus, the
federation outbox) on both engines, over a scripted remote: EDUs queued while the
destination fails are sent after a restart (a new FederationSender on the same database)
once it is back, oldest first, at most 100 per transaction, each acknowledged one once; a
failed transaction is retried holding the same ones; coalesced EDUs keep only the newest.
"""

from __future__ import annotations

import asyncio

from ranvier.federation.queue import MAX_EDUS_PER_TRANSACTION
from ranvier.storage.database import Database
from ranvier.storage.federation_outbox import FederationOutboxStore
from tests.services.test_federation_queue import (
    REMOTE,
    UNREACHABLE,
    ScriptedRemote,
    queue_for,
)


async def acknowledged(database: Database) -> None:
    """Wait until the outbox holds nothing for REMOTE (the answer is processed)."""
    outbox = FederationOutboxStore(database)
    async with asyncio.timeout(10):
        while await outbox.pending(REMOTE, 1):
            await asyncio.sleep(0.02)


def keys(remote: ScriptedRemote) -> list[object]:
    return [edu["content"]["n"] for put in remote.to(REMOTE) for edu in put.body["edus"]]


async def test_edus_queued_while_down_are_sent_after_a_restart_once_back(
    database: Database,
) -> None:
    down = ScriptedRemote()
    down.answer(REMOTE, UNREACHABLE)
    queue, backoff, _ = queue_for(database, down, min_retry_ms=3_600_000)
    queue.start()
    try:
        count = MAX_EDUS_PER_TRANSACTION + 20
        await queue.send_durable_edus([REMOTE], [("m.direct_to_device", {"n": 0})])
        await down.wait_for(1)
        for n in range(1, count):
            await queue.send_durable_edus([REMOTE], [("m.direct_to_device", {"n": n})])
    finally:
        await queue.stop()

    # a restart: nothing in memory; backing off for an hour, until the remote is back
    remote = ScriptedRemote()
    queue, backoff, _ = queue_for(database, remote, min_retry_ms=3_600_000)
    queue.start()
    try:
        await asyncio.sleep(0.5)
        assert remote.puts == []
        await backoff.heard_from(REMOTE)
        await remote.wait_for(2)
        first = remote.to(REMOTE)[0]
        assert len(first.body["edus"]) == MAX_EDUS_PER_TRANSACTION
        assert keys(remote) == list(range(count))
        # acknowledged: a later EDU goes alone
        await queue.send_durable_edus([REMOTE], [("m.direct_to_device", {"n": "later"})])
        await remote.wait_for(3)
        assert [edu["content"]["n"] for edu in remote.to(REMOTE)[2].body["edus"]] == ["later"]
        await acknowledged(database)
    finally:
        await queue.stop()

    # and after another restart, nothing is sent again
    again = ScriptedRemote()
    queue, _, _ = queue_for(database, again)
    queue.start()
    try:
        await queue.send_durable_edus([REMOTE], [("m.direct_to_device", {"n": "last"})])
        await again.wait_for(1)
        assert keys(again) == ["last"]
    finally:
        await queue.stop()


async def test_a_failed_transaction_is_retried_with_the_same_edus(database: Database) -> None:
    remote = ScriptedRemote()
    remote.answer(REMOTE, 502)
    queue, _, _ = queue_for(database, remote, min_retry_ms=50)
    queue.start()
    try:
        await queue.send_durable_edus([REMOTE], [("m.direct_to_device", {"n": 1})])
        await remote.wait_for(2)
        failed, retried = remote.to(REMOTE)[:2]
        assert failed.txn_id == retried.txn_id
        assert failed.body["edus"] == retried.body["edus"]
    finally:
        await queue.stop()


async def test_coalesced_edus_keep_the_newest_pending(database: Database) -> None:
    remote = ScriptedRemote()
    remote.answer(REMOTE, UNREACHABLE)
    queue, backoff, _ = queue_for(database, remote, min_retry_ms=3_600_000)
    queue.start()
    try:
        await queue.send_durable_edus([REMOTE], [("m.x", {"n": "first"})])
        await remote.wait_for(1)
        # queued newest first, as concurrent changes may be: the older never replaces
        for n in (5, 3, 4):
            await queue.send_durable_edus(
                [REMOTE], [("m.x", {"n": f"a{n}"}), ("m.x", {"n": f"b{n}"})], coalesce=("u", n)
            )
        await queue.send_durable_edus([REMOTE], [("m.x", {"n": "other"})], coalesce=("v", 1))
        await backoff.heard_from(REMOTE)
        await remote.wait_for(3)
        # the failed transaction again (its EDU stays its), then what is pending
        assert keys(remote) == ["first", "first", "a5", "b5", "other"]
    finally:
        await queue.stop()


async def test_a_destination_answering_another_request_ends_the_wait(database: Database) -> None:
    """A key fetch or query that the destination answers inside its backoff (it is back)
    wakes the queue, as a request from it does."""
    remote = ScriptedRemote()
    remote.answer(REMOTE, UNREACHABLE)
    queue, backoff, _ = queue_for(database, remote, min_retry_ms=3_600_000)
    queue.start()
    try:
        await queue.send_durable_edus([REMOTE], [("m.x", {"n": 1})])
        await remote.wait_for(1)
        await asyncio.sleep(0.3)
        assert len(remote.to(REMOTE)) == 1
        # what FederationClient reports when a request to it succeeds
        await backoff.succeeded(REMOTE)
        await remote.wait_for(2)
    finally:
        await queue.stop()
