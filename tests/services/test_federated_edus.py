"""Typing and presence with other servers, where time matters: another server's typing
expires unless renewed, ours is said again while it lasts and a stop never overtakes its
start in the outbound queue; another server's silent user goes offline, ours are said
again before the other server would give up on them (presence on both engines)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable, Mapping
from dataclasses import replace
from typing import Any

import pytest

from ranvier.services import typing as typing_module
from ranvier.services.federation import presence_edus, typing_edus
from ranvier.services.federation.edu_outbox import EduOutbox
from ranvier.services.federation.presence_edus import PresenceFederation
from ranvier.services.federation.typing_edus import TypingFederation
from ranvier.services.presence import REMOTE_TIMEOUT_MS, PresenceService, remote_timed_out
from ranvier.services.typing import TypingService
from ranvier.storage.database import Database
from ranvier.storage.presence import PresenceState, PresenceStore
from tests.services.test_ephemeral_sources import Recorder, always_joined

SERVER = "here.example"
ALICE = f"@alice:{SERVER}"
REMOTE = "there.example"
ROOM = f"!room:{SERVER}"


class FakeQueue:
    """The outbound queue: records EDUs; the room's servers are here, there and there2.
    The first lookup can be made slow, as a database under load is."""

    def __init__(self, first_lookup_delay: float = 0.0) -> None:
        self.sent: list[tuple[str, str, dict[str, Any], Hashable | None]] = []
        self._delay = first_lookup_delay

    def send_edu(
        self,
        destination: str,
        edu_type: str,
        content: Mapping[str, Any],
        *,
        key: Hashable | None = None,
    ) -> None:
        self.sent.append((destination, edu_type, dict(content), key))

    async def joined_servers(self, room_ids: set[str]) -> dict[str, frozenset[str]]:
        delay, self._delay = self._delay, 0.0
        await asyncio.sleep(delay)
        return {room_id: frozenset({SERVER, REMOTE, "there2.example"}) for room_id in room_ids}


async def nobody_servers(room_ids: set[str]) -> dict[str, frozenset[str]]:
    return {}


async def any_server(server_name: str, room_id: str) -> bool:
    return True


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_remote_typing_expires_unless_renewed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(typing_module, "REMOTE_TIMEOUT_MS", 200)
    typing = TypingService(always_joined, Recorder())
    bob = f"@bob:{REMOTE}"
    typing.receive_remote(ROOM, bob, typing=True)
    await asyncio.sleep(0.12)
    # renewed: the timeout starts again
    typing.receive_remote(ROOM, bob, typing=True)
    await asyncio.sleep(0.12)
    assert typing.typing_in(ROOM) == [bob]
    await wait_for(lambda: typing.typing_in(ROOM) == [])
    typing.stop()


async def test_our_typing_goes_out_is_kept_alive_and_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(typing_edus, "KEEPALIVE_SECONDS", 0.1)
    queue = FakeQueue()
    typing = TypingService(always_joined, Recorder())
    federation = TypingFederation(
        typing, always_joined, nobody_servers, any_server, SERVER, EduOutbox(queue, SERVER)
    )
    await typing.set_typing(ALICE, ALICE, ROOM, typing=True, timeout_ms=30_000)
    await wait_for(lambda: len(queue.sent) >= 2)
    first = {(d, t, c["typing"]) for d, t, c, _ in queue.sent[:2]}
    assert first == {(REMOTE, "m.typing", True), ("there2.example", "m.typing", True)}
    assert queue.sent[0][2] == {"room_id": ROOM, "user_id": ALICE, "typing": True}
    assert queue.sent[0][3] == ("m.typing", ROOM, ALICE)
    # said again while it lasts
    await wait_for(lambda: len(queue.sent) >= 4)
    await typing.set_typing(ALICE, ALICE, ROOM, typing=False, timeout_ms=None)
    await wait_for(lambda: queue.sent[-1][2]["typing"] is False)
    count = len(queue.sent)
    await asyncio.sleep(0.25)
    # no keep-alive after the stop
    assert len(queue.sent) == count
    # another server's user is not ours to tell about
    typing.receive_remote(ROOM, f"@bob:{REMOTE}", typing=True)
    await asyncio.sleep(0.05)
    assert len(queue.sent) == count
    federation.stop()
    typing.stop()


async def test_a_stop_never_overtakes_its_start() -> None:
    # the start's lookup of the room's servers is slow, the stop's is not
    queue = FakeQueue(first_lookup_delay=0.1)
    typing = TypingService(always_joined, Recorder())
    federation = TypingFederation(
        typing, always_joined, nobody_servers, any_server, SERVER, EduOutbox(queue, SERVER)
    )
    await typing.set_typing(ALICE, ALICE, ROOM, typing=True, timeout_ms=30_000)
    await typing.set_typing(ALICE, ALICE, ROOM, typing=False, timeout_ms=None)
    await wait_for(lambda: len(queue.sent) == 4)
    to_remote = [content["typing"] for d, _, content, _ in queue.sent if d == REMOTE]
    assert to_remote == [True, False]
    federation.stop()
    typing.stop()


def remote_state(user_id: str, state: str, heard_at: int) -> PresenceState:
    return PresenceState(
        user_id=user_id,
        state=state,
        status_msg=None,
        last_active_ts=heard_at,
        last_user_sync_ts=heard_at,
        currently_active=False,
    )


def test_a_silent_remote_user_goes_offline_after_half_an_hour() -> None:
    heard = remote_state(f"@bob:{REMOTE}", "online", 1_000_000)
    assert remote_timed_out(heard, 1_000_000 + REMOTE_TIMEOUT_MS) is None
    moved = remote_timed_out(heard, 1_000_001 + REMOTE_TIMEOUT_MS)
    assert moved is not None and moved.state == "offline"
    assert remote_timed_out(replace(heard, state="offline"), 10**12) is None


async def test_presence_timeouts_of_remote_and_pings_of_ours(database: Database) -> None:
    async def rooms_of(user_id: str) -> list[str]:
        return [ROOM]

    async def shares(a: str, b: str) -> bool:
        return True

    presence = await PresenceService.create(
        PresenceStore(database), shares, rooms_of, Recorder(), server_name=SERVER, enabled=True
    )
    queue = FakeQueue()
    PresenceFederation(presence, rooms_of, database, EduOutbox(queue, SERVER))
    bob = f"@bob:{REMOTE}"
    now = int(time.time() * 1000)
    await presence.receive_remote(remote_state(bob, "online", now))
    assert (await presence.get_status(ALICE, bob))["presence"] == "online"
    await presence.set_status(ALICE, ALICE, "online", "here")
    await wait_for(lambda: len(queue.sent) == 2)
    assert queue.sent[0][2]["push"][0]["user_id"] == ALICE
    assert queue.sent[0][3] == ("m.presence", ALICE)

    # our user's timeouts leave alice online while she syncs; bob's server went silent
    later = now + REMOTE_TIMEOUT_MS + 1
    await presence.set_presence_from_sync(ALICE, "online")
    await presence.apply_timeouts(now + 1000)
    assert len(queue.sent) == 2
    await presence.apply_timeouts(later)
    assert (await presence.get_status(ALICE, bob))["presence"] == "offline"
    await presence.stop()


async def test_ours_are_said_again_before_the_other_server_gives_up(
    database: Database,
) -> None:
    async def rooms_of(user_id: str) -> list[str]:
        return [ROOM]

    async def shares(a: str, b: str) -> bool:
        return True

    presence = await PresenceService.create(
        PresenceStore(database), shares, rooms_of, Recorder(), server_name=SERVER, enabled=True
    )
    queue = FakeQueue()
    federation = PresenceFederation(presence, rooms_of, database, EduOutbox(queue, SERVER))
    alice = remote_state(ALICE, "online", 1_000)
    # not sent by this process yet (a restart): counted from the first look
    federation.unchanged(alice, 1_000)
    federation.unchanged(alice, 1_000 + presence_edus.PING_INTERVAL_MS - 1)
    await asyncio.sleep(0.05)
    assert queue.sent == []
    federation.unchanged(alice, 1_000 + presence_edus.PING_INTERVAL_MS)
    await wait_for(lambda: len(queue.sent) == 2)
    assert {d for d, *_ in queue.sent} == {REMOTE, "there2.example"}
    assert queue.sent[0][2]["push"][0]["presence"] == "online"


async def test_members_presence_in_one_read_and_none_taken_when_disabled(
    database: Database,
) -> None:
    async def rooms_of(user_id: str) -> list[str]:
        return [ROOM]

    async def shares(a: str, b: str) -> bool:
        return True

    store = PresenceStore(database)
    presence = await PresenceService.create(
        store, shares, rooms_of, Recorder(), server_name=SERVER, enabled=True
    )
    bob, carol = f"@bob:{SERVER}", f"@carol:{SERVER}"
    await presence.set_status(ALICE, ALICE, "online", "in memory")
    await presence.set_status(bob, bob, "offline", "stored")
    states = await presence.states_of([ALICE, bob, carol])
    assert [(s.user_id, s.state, s.status_msg) for s in states] == [
        (ALICE, "online", "in memory"),
        (bob, "offline", "stored"),
        (carol, "offline", None),
    ]

    disabled = await PresenceService.create(
        store, shares, rooms_of, Recorder(), server_name=SERVER, enabled=False
    )
    federation = PresenceFederation(disabled, rooms_of, database, None)
    remote = f"@dave:{REMOTE}"
    await federation.on_edu(REMOTE, {"push": [{"user_id": remote, "presence": "online"}]})
    assert await store.get(remote) is None
    enabled = PresenceFederation(presence, rooms_of, database, None)
    await enabled.on_edu(REMOTE, {"push": [{"user_id": remote, "presence": "online"}]})
    stored = await store.get(remote)
    assert stored is not None and stored.state == "online"


def test_a_server_new_to_a_room_hears_of_members_unless_long_offline() -> None:
    now = 10 * presence_edus.STALE_OFFLINE_MS
    week_ago = now - presence_edus.STALE_OFFLINE_MS
    assert presence_edus.worth_telling(remote_state(ALICE, "online", 0), now)
    assert presence_edus.worth_telling(remote_state(ALICE, "offline", week_ago + 1), now)
    assert not presence_edus.worth_telling(remote_state(ALICE, "offline", week_ago), now)
    # never seen: the default state is not news
    assert not presence_edus.worth_telling(remote_state(ALICE, "offline", 0), now)
    with_status = replace(remote_state(ALICE, "offline", 0), status_msg="on holiday")
    assert presence_edus.worth_telling(with_status, now)
