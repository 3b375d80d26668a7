"""The sliding sync scenarios (simplified sliding sync, MSC4186): a user in 1,000 rooms opens
a client that asks for the 20 most recent rooms with one event each, then keeps its list
up to date; the same data is built on every server under test, through the Client-Server API.

What is timed, on the client, from sending the request to reading the whole answer:
- the first response of a new connection (no `pos`) for a list with range 0-19,
  timeline_limit 1 and the room name and avatar as required state, several times (median);
- the delivery of one new message to a waiting long-poll (`pos` and a timeout): from the
  start of the send to the answer holding it, so it includes the send itself;
- a plain incremental request (`pos`, timeout 0) once a message is already there.

Run: .venv/bin/python -m bench.run --sliding-sync [--only ranvier] [--postgres] [--quick]
With --profile DIR, Ranvier is then sampled by py-spy under more of the same requests.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.load import Figure, Homeserver, RequestFailed, User, gather_limited, percentile
from bench.servers import RunningServer

PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
LONG_POLL_MS = 30_000
PASSWORD = "bench-password-1"
# requests in flight while building the rooms: enough to keep a server busy on two cores
BUILD_CONCURRENCY = 20
# requests of each kind made under the profiler
PROFILED_REQUESTS = 100
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=300)
# what a room list asks for: the first page, the newest event, the name and avatar to draw it
LIST = {
    "ranges": [[0, 19]],
    "timeline_limit": 1,
    "required_state": [["m.room.name", ""], ["m.room.avatar", ""]],
}


@dataclass
class SlidingSyncSizes:
    rooms: int = 1000
    messages_per_room: int = 3
    initial_runs: int = 5
    incremental_samples: int = 10

    @classmethod
    def quick(cls) -> SlidingSyncSizes:
        return cls(rooms=40, messages_per_room=2, initial_runs=3, incremental_samples=3)

    def initial_key(self) -> str:
        return f"first sliding sync, {self.rooms:,} rooms, range 0-19, timeline 1"


@dataclass
class Profile:
    """py-spy sampling the server's process `pid` into files `<prefix>-<what>.txt` (raw,
    collapsed stacks: one line a stack, with its sample count)."""

    pid: int
    prefix: Path

    @contextmanager
    def recording(self, what: str, log: Callable[[str], None]) -> Iterator[None]:
        py_spy = Path(sys.executable).with_name("py-spy")
        output = self.prefix.with_name(f"{self.prefix.name}-{what}.txt")
        argv = [str(py_spy), "record", "-p", str(self.pid), "-f", "raw", "-r", "200"]
        recorder = subprocess.Popen([*argv, "-o", str(output)], stdout=subprocess.DEVNULL)
        # py-spy takes a moment to attach; the first samples would otherwise be lost
        time.sleep(1.0)
        try:
            yield
        finally:
            # only the recorder this harness started, by its own PID
            os.kill(recorder.pid, signal.SIGINT)
            recorder.wait(60)
            log(f"profile written to {output}")


class NoSlidingSync(Exception):
    """The server does not answer the endpoint (404, 405 or M_UNRECOGNIZED)."""


class SlidingSyncBench:
    def __init__(
        self,
        url: str,
        name: str,
        sizes: SlidingSyncSizes,
        log: Callable[[str], None] = print,
        profile: Profile | None = None,
    ) -> None:
        self.url = url
        self.name = name
        self.sizes = sizes
        self.log = log
        self.profile = profile

    async def run(self) -> dict[str, Figure]:
        async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
            client = Homeserver(self.url, session)
            reader = await client.register(client.unique("reader"), PASSWORD)
            sender = await client.register(client.unique("sender"), PASSWORD)
            try:
                await sliding_sync(client, reader, {"lists": {}})
            except NoSlidingSync:
                self.log(f"{self.name}: no simplified sliding sync endpoint")
                return self._missing("no sliding sync")
            started = time.perf_counter()
            rooms = await create_rooms(client, reader, self.sizes.rooms)
            # the sender's room is among the oldest: each message moves it to the top; joined
            # first, as a join may count as activity on one server and not on another
            await client.call(
                "POST",
                f"/_matrix/client/v3/rooms/{quote(rooms[0])}/invite",
                reader,
                {"user_id": sender.user_id},
            )
            await client.join(sender, rooms[0])
            await fill_rooms(client, reader, rooms, self.sizes.messages_per_room)
            built = time.perf_counter() - started
            self.log(f"{self.name}: {len(rooms)} rooms built in {built:.1f}s")
            figures = {"build the rooms (setup, not a target)": Figure(built, "s", "lower")}
            figures |= await self.initial(client, reader, rooms)
            figures |= await self.incremental(client, reader, sender, rooms[0])
            if self.profile is not None:
                await self.profiled(client, reader, sender, rooms[0], self.profile)
            return figures

    async def profiled(
        self, client: Homeserver, reader: User, sender: User, room_id: str, profile: Profile
    ) -> None:
        """Under py-spy, after the timed runs (so sampling slows none of them): first responses,
        then plain incremental requests, enough of each for the samples to say where time goes."""
        body = {"lists": {"all": LIST}}
        with profile.recording("first", self.log):
            for _ in range(PROFILED_REQUESTS):
                await sliding_sync(client, reader, body)
        pos = (await sliding_sync(client, reader, body))["pos"]
        with profile.recording("incremental", self.log):
            for i in range(PROFILED_REQUESTS):
                await client.send(sender, room_id, f"profiled {i}")
                pos = (await sliding_sync(client, reader, body, pos))["pos"]

    def _missing(self, note: str) -> dict[str, Figure]:
        return {key: Figure(None, "ms", "lower", note) for key in self._keys()}

    def _keys(self) -> list[str]:
        initial = self.sizes.initial_key()
        return [
            f"{initial} p50",
            f"{initial}, cold (the first)",
            "new message to a waiting sliding sync p50",
            "incremental sliding sync, one new message p50",
        ]

    async def initial(
        self, client: Homeserver, reader: User, rooms: list[str]
    ) -> dict[str, Figure]:
        key, cold_key, *_ = self._keys()
        samples: list[float] = []
        for _ in range(self.sizes.initial_runs):
            started = time.perf_counter()
            answer = await sliding_sync(client, reader, {"lists": {"all": LIST}})
            samples.append((time.perf_counter() - started) * 1000)
            check_first_page(answer, rooms, self.sizes.rooms)
        self.log(f"{self.name}: first responses (ms) {[round(s, 1) for s in samples]}")
        return {
            key: Figure(statistics.median(samples), "ms", "lower"),
            cold_key: Figure(samples[0], "ms", "lower"),
        }

    async def incremental(
        self, client: Homeserver, reader: User, sender: User, room_id: str
    ) -> dict[str, Figure]:
        *_, waiting_key, plain_key = self._keys()
        body = {"lists": {"all": LIST}}
        pos = (await sliding_sync(client, reader, body))["pos"]
        waiting: list[float] = []
        plain: list[float] = []
        for i in range(self.sizes.incremental_samples):
            pos = await settled(client, reader, body, pos)
            text = f"ping {i} {uuid.uuid4().hex}"
            poll = asyncio.ensure_future(wait_for(client, reader, body, pos, room_id, text))
            # let the long-poll reach the server and park before the send starts
            await asyncio.sleep(0.05)
            started = time.perf_counter()
            await client.send(sender, room_id, text)
            pos = await poll
            waiting.append((time.perf_counter() - started) * 1000)

            pos = await settled(client, reader, body, pos)
            text = f"plain {i} {uuid.uuid4().hex}"
            await client.send(sender, room_id, text)
            started = time.perf_counter()
            answer = await sliding_sync(client, reader, body, pos, timeout_ms=0)
            plain.append((time.perf_counter() - started) * 1000)
            if text not in timeline_bodies(answer, room_id):
                raise AssertionError(f"{self.name}: the incremental answer lacks {text!r}")
            pos = answer["pos"]
        self.log(
            f"{self.name}: waiting (ms) {[round(s, 1) for s in waiting]}, "
            f"plain (ms) {[round(s, 1) for s in plain]}"
        )
        return {
            waiting_key: Figure(percentile(waiting, 0.5), "ms", "lower"),
            plain_key: Figure(percentile(plain, 0.5), "ms", "lower"),
        }


async def sliding_sync(
    client: Homeserver,
    user: User,
    body: dict[str, Any],
    pos: str | None = None,
    timeout_ms: int = 0,
) -> Any:
    params = {"timeout": str(timeout_ms)}
    if pos is not None:
        params["pos"] = pos
    try:
        _, answer = await client.call("POST", PATH, user, body, params=params)
    except RequestFailed as exc:
        unrecognized = isinstance(exc.body, dict) and exc.body.get("errcode") == "M_UNRECOGNIZED"
        if exc.status in (404, 405) or unrecognized:
            raise NoSlidingSync(str(exc)) from exc
        raise
    return answer


async def settled(client: Homeserver, user: User, body: dict[str, Any], pos: str) -> str:
    """The position once nothing more is waiting (the sender's earlier echoes, receipts)."""
    for _ in range(20):
        answer = await sliding_sync(client, user, body, pos, timeout_ms=0)
        if answer["pos"] == pos or not answer.get("rooms"):
            return str(answer["pos"])
        pos = answer["pos"]
    return pos


async def wait_for(
    client: Homeserver, user: User, body: dict[str, Any], pos: str, room_id: str, text: str
) -> str:
    while True:
        answer = await sliding_sync(client, user, body, pos, LONG_POLL_MS)
        pos = answer["pos"]
        if text in timeline_bodies(answer, room_id):
            return str(pos)


def timeline_bodies(answer: Any, room_id: str) -> list[str]:
    room = answer.get("rooms", {}).get(room_id, {})
    return [event.get("content", {}).get("body") for event in room.get("timeline", [])]


def check_first_page(answer: Any, rooms: list[str], total: int) -> None:
    """A timing of a wrong answer is worth nothing: the count, 20 rooms, the newest first."""
    listed = answer["lists"]["all"]
    if listed.get("count") != total:
        raise AssertionError(f"the list counts {listed.get('count')} rooms, not {total}")
    newest = set(rooms[-20:])
    got = set(answer.get("rooms", {}))
    if got != newest:
        raise AssertionError(f"{len(got - newest)} of the rooms sent are not the 20 newest")
    for room_id in newest:
        room = answer["rooms"][room_id]
        if len(room.get("timeline", [])) != 1 or not room.get("name"):
            raise AssertionError(f"{room_id}: {room}")


async def create_rooms(client: Homeserver, user: User, count: int) -> list[str]:
    """`count` named rooms of `user`, created concurrently."""

    async def create(number: int) -> str:
        _, answer = await client.call(
            "POST",
            "/_matrix/client/v3/createRoom",
            user,
            {"preset": "private_chat", "name": f"Room {number:04d}"},
        )
        room_id: str = answer["room_id"]
        return room_id

    jobs = [partial(create, number) for number in range(count)]
    return list(await gather_limited(jobs, BUILD_CONCURRENCY))


async def fill_rooms(client: Homeserver, user: User, rooms: list[str], per_room: int) -> None:
    """`per_room` messages in each room, concurrently but for the last 20 rooms' last
    messages, which go in one after another: so the 20 most recent rooms are known, newest
    last in `rooms`."""
    tail = rooms[-20:]
    jobs = [
        partial(client.send, user, room_id, f"message {m} in room {n}")
        for n, room_id in enumerate(rooms)
        for m in range(per_room if room_id not in tail else per_room - 1)
    ]
    await gather_limited(jobs, BUILD_CONCURRENCY)
    for room_id in tail:
        await client.send(user, room_id, f"last message in {room_id}")


def run_sliding_sync(
    server: RunningServer,
    sizes: SlidingSyncSizes,
    log: Callable[[str], None] = print,
    profile_dir: Path | None = None,
) -> dict[str, Figure]:
    """With `profile_dir`, Ranvier is also profiled (see `Profile`) into a new file there."""
    profile = None
    if profile_dir is not None and server.name == "ranvier":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        profile = Profile(server.pid, profile_dir / f"ranvier-sliding-sync-{stamp}")
    return asyncio.run(SlidingSyncBench(server.url, server.name, sizes, log, profile).run())
