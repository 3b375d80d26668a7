"""SyncToken and Notifier, without a server."""

from __future__ import annotations

import asyncio
import time

import pytest

from ranvier.streams.notifier import Notifier
from ranvier.streams.sync_token import InvalidSyncToken, SyncToken
from ranvier.streams.tokens import RoomPosition, StreamToken, parse_token


def test_token_round_trips() -> None:
    token = SyncToken(1, 2, 3, 4, 5, 6, 7, 8)
    assert str(token) == "s1_2_3_4_5_6_7_8"
    assert SyncToken.parse(str(token)) == token


def test_missing_trailing_parts_read_as_zero() -> None:
    assert SyncToken.parse("s42") == SyncToken(events=42)
    assert SyncToken.parse("s42_7") == SyncToken(events=42, account_data=7)


@pytest.mark.parametrize(
    "text",
    ["", "s", "x1", "s1_", "s-1", "s1__2", "s1_2_3_4_5_6_7_8_9", "t1-2", "s1 ", "s" + "9" * 20],
)
def test_invalid_tokens_are_refused(text: str) -> None:
    with pytest.raises(InvalidSyncToken):
        SyncToken.parse(text)


def test_sync_token_is_a_room_stream_pagination_token() -> None:
    # /messages accepts a sync token as `from`: the room-events position comes first
    assert parse_token(str(SyncToken(events=12, receipts=3))) == StreamToken(12)


def test_a_point_in_backfilled_history_round_trips() -> None:
    # backfilled events sit below zero in the stream, so their points do too
    point = RoomPosition.before(4, -2)
    assert str(point) == "t4--3"
    assert parse_token(str(point)) == point


def test_is_after_compares_every_stream() -> None:
    base = SyncToken(5, 5)
    assert not base.is_after(base)
    assert base.advanced(typing=1).is_after(base)
    assert not SyncToken(4, 5).is_after(base)


async def test_notify_wakes_a_waiter_for_its_room_at_once() -> None:
    notifier = Notifier()
    since = SyncToken(events=10)
    waiting = asyncio.create_task(notifier.wait("@a:hs", ["!r:hs"], since, 10_000))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    notifier.notify("events", 11, rooms=["!r:hs"])
    await asyncio.wait_for(waiting, 1)
    assert time.monotonic() - started < 0.05
    assert notifier.waiting == 0


async def test_notify_for_others_does_not_wake() -> None:
    notifier = Notifier()
    since = SyncToken(events=10)
    waiting = asyncio.create_task(notifier.wait("@a:hs", ["!r:hs"], since, 200))
    await asyncio.sleep(0.01)
    notifier.notify("events", 11, rooms=["!other:hs"], users=["@b:hs"])
    started = time.monotonic()
    await waiting
    assert time.monotonic() - started > 0.1


async def test_notify_for_the_user_wakes() -> None:
    notifier = Notifier()
    waiting = asyncio.create_task(notifier.wait("@a:hs", [], SyncToken(), 10_000))
    await asyncio.sleep(0.01)
    notifier.notify("to_device", 1, users=["@a:hs"])
    await asyncio.wait_for(waiting, 1)


async def test_a_change_notified_before_waiting_is_not_missed() -> None:
    notifier = Notifier()
    notifier.notify("events", 11, rooms=["!r:hs"])
    started = time.monotonic()
    await notifier.wait("@a:hs", ["!r:hs"], SyncToken(events=10), 10_000)
    assert time.monotonic() - started < 0.05
    # but one the token has already seen does not count
    started = time.monotonic()
    await notifier.wait("@a:hs", ["!r:hs"], SyncToken(events=11), 100)
    assert time.monotonic() - started >= 0.09


async def test_close_wakes_every_waiter_and_later_waits_return_at_once() -> None:
    notifier = Notifier()
    waiting = [
        asyncio.create_task(notifier.wait(f"@u{n}:hs", ["!r:hs"], SyncToken(), 30_000))
        for n in range(10)
    ]
    await asyncio.sleep(0.01)
    notifier.close()
    await asyncio.wait_for(asyncio.gather(*waiting), 1)
    assert notifier.waiting == 0
    started = time.monotonic()
    await notifier.wait("@late:hs", ["!r:hs"], SyncToken(), 30_000)
    assert time.monotonic() - started < 0.05
