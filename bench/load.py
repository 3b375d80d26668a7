"""A load generator that drives any homeserver over the Client-Server API, as clients do.

It needs only a base URL of a server with open registration (m.login.dummy): it registers its
own users, creates its own rooms and sends its own traffic, then reports figures per scenario.

Run alone: .venv/bin/python -m bench.load http://127.0.0.1:8008   (prints the figures as JSON)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import quote

import aiohttp

LONG_POLL_MS = 30_000
PASSWORD = "bench-password-1"
DELIVERY = "delivery to a waiting /sync"
# how many requests of one kind the generator keeps in flight where a scenario is concurrent
SETUP_CONCURRENCY = 10


class RequestFailed(Exception):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Figure:
    """One measured number: `better` says which way is good, for the ratio column."""

    value: float | None
    unit: str
    better: str  # "higher" or "lower"
    note: str = ""


@dataclass
class User:
    user_id: str
    token: str


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class Homeserver:
    """A thin Client-Server API client over one aiohttp session."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self._txn = itertools.count()
        self._prefix = uuid.uuid4().hex[:8]

    async def call(
        self,
        method: str,
        path: str,
        user: User | None = None,
        body: Any = None,
        params: dict[str, str] | None = None,
        ok: Iterable[int] = (200,),
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {user.token}"} if user else {}
        async with self.session.request(
            method, self.base_url + path, json=body, params=params, headers=headers
        ) as response:
            payload = await response.json(content_type=None)
            if response.status not in ok:
                raise RequestFailed(method, path, response.status, payload)
            return response.status, payload

    def unique(self, stem: str) -> str:
        return f"{stem}{self._prefix}{next(self._txn)}"

    async def register(self, localpart: str, password: str | None) -> User:
        body: dict[str, Any] = {"username": localpart, "auth": {"type": "m.login.dummy"}}
        if password is not None:
            body["password"] = password
        status, payload = await self.call(
            "POST", "/_matrix/client/v3/register", None, body, ok=(200, 401)
        )
        if status == 401:
            # a server that wants the session first: answer the dummy stage inside it
            body["auth"]["session"] = payload["session"]
            _, payload = await self.call("POST", "/_matrix/client/v3/register", None, body)
        return User(payload["user_id"], payload["access_token"])

    async def create_room(self, user: User, preset: str = "public_chat") -> str:
        _, payload = await self.call(
            "POST", "/_matrix/client/v3/createRoom", user, {"preset": preset}
        )
        room_id: str = payload["room_id"]
        return room_id

    async def join(self, user: User, room_id: str) -> None:
        await self.call("POST", f"/_matrix/client/v3/join/{quote(room_id)}", user, {})

    async def send(self, user: User, room_id: str, text: str) -> str:
        txn = self.unique("t")
        path = f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{txn}"
        _, payload = await self.call("PUT", path, user, {"msgtype": "m.text", "body": text})
        event_id: str = payload["event_id"]
        return event_id

    async def sync(self, user: User, since: str | None = None, timeout_ms: int = 0) -> Any:
        params = {"timeout": str(timeout_ms)}
        if since is not None:
            params["since"] = since
        _, payload = await self.call("GET", "/_matrix/client/v3/sync", user, params=params)
        return payload

    async def has_sync(self, user: User) -> bool:
        status, _ = await self.call(
            "GET",
            "/_matrix/client/v3/sync",
            user,
            params={"timeout": "0", "filter": '{"room":{"rooms":[]}}'},
            ok=(200, 404, 405),
        )
        return status == 200


async def gather_limited(jobs: Iterable[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    """Run the jobs at most `limit` at a time, keeping their order in the results."""
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


async def timed(job: Awaitable[Any], samples: list[float]) -> Any:
    started = time.perf_counter()
    result = await job
    samples.append((time.perf_counter() - started) * 1000)
    return result


async def timed_call(samples: list[float], call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    return await timed(call(*args), samples)


def latency_figures(prefix: str, samples: list[float]) -> dict[str, Figure]:
    return {
        f"{prefix} p50": Figure(percentile(samples, 0.50), "ms", "lower"),
        f"{prefix} p95": Figure(percentile(samples, 0.95), "ms", "lower"),
        f"{prefix} p99": Figure(percentile(samples, 0.99), "ms", "lower"),
    }


@dataclass
class Sizes:
    """How big each scenario is; the defaults are the ones issue 9 names."""

    register_users: int = 50
    create_rooms: int = 50
    sequential_messages: int = 500
    concurrent_senders: int = 20
    messages_per_sender: int = 25
    sync_rooms: int = 100
    sync_messages_per_room: int = 20
    sync_members_per_room: int = 10
    sync_runs: int = 5
    delivery_samples: int = 30
    joiners: int = 200
    pagination_events: int = 2000
    pagination_page: int = 100

    @classmethod
    def quick(cls) -> Sizes:
        return cls(10, 10, 100, 5, 10, 10, 5, 3, 3, 10, 20, 300, 50)


@dataclass
class LoadGenerator:
    server: Homeserver
    sizes: Sizes = field(default_factory=Sizes)
    log: Callable[[str], None] = print
    pool: list[User] = field(default_factory=list)

    async def _users(self, count: int) -> list[User]:
        """`count` users for setting up scenarios (with a password: not every server allows
        registering without one)."""
        while len(self.pool) < count:
            missing = count - len(self.pool)
            self.pool += await gather_limited(
                [
                    lambda: self.server.register(self.server.unique("pool"), PASSWORD)
                    for _ in range(missing)
                ],
                SETUP_CONCURRENCY,
            )
        return self.pool[:count]

    async def register(self) -> dict[str, Figure]:
        """Register N users with a password, ten at a time, as a sign-up burst would."""
        samples: list[float] = []
        n = self.sizes.register_users
        started = time.perf_counter()
        await gather_limited(
            [
                lambda: timed(self.server.register(self.server.unique("reg"), PASSWORD), samples)
                for _ in range(n)
            ],
            SETUP_CONCURRENCY,
        )
        elapsed = time.perf_counter() - started
        return {
            "register (10 concurrent)": Figure(n / elapsed, "users/s", "higher"),
            "register latency p50": Figure(percentile(samples, 0.5), "ms", "lower"),
        }

    async def create_rooms(self) -> dict[str, Figure]:
        (alice,) = await self._users(1)
        samples: list[float] = []
        started = time.perf_counter()
        for _ in range(self.sizes.create_rooms):
            await timed(self.server.create_room(alice), samples)
        elapsed = time.perf_counter() - started
        return {
            "createRoom (sequential)": Figure(
                self.sizes.create_rooms / elapsed, "rooms/s", "higher"
            ),
            "createRoom p50": Figure(percentile(samples, 0.5), "ms", "lower"),
        }

    async def sequential_send(self) -> tuple[dict[str, Figure], str]:
        (alice,) = await self._users(1)
        room_id = await self.server.create_room(alice)
        samples: list[float] = []
        n = self.sizes.sequential_messages
        started = time.perf_counter()
        for i in range(n):
            await timed(self.server.send(alice, room_id, f"message {i}"), samples)
        elapsed = time.perf_counter() - started
        figures = {f"send {n} in sequence": Figure(n / elapsed, "msg/s", "higher")}
        figures |= latency_figures("send latency", samples)
        return figures, room_id

    async def concurrent_send(self, shared_room: bool) -> dict[str, Figure]:
        senders = await self._users(self.sizes.concurrent_senders)
        if shared_room:
            room_id = await self.server.create_room(senders[0])
            await gather_limited(
                [partial(self.server.join, u, room_id) for u in senders[1:]],
                SETUP_CONCURRENCY,
            )
            rooms = [room_id] * len(senders)
        else:
            rooms = await gather_limited(
                [partial(self.server.create_room, u) for u in senders], SETUP_CONCURRENCY
            )
        samples: list[float] = []

        async def send_all(user: User, room_id: str) -> None:
            for i in range(self.sizes.messages_per_sender):
                await timed(self.server.send(user, room_id, f"burst {i}"), samples)

        started = time.perf_counter()
        await asyncio.gather(*(send_all(u, r) for u, r in zip(senders, rooms, strict=True)))
        elapsed = time.perf_counter() - started
        where = "one room" if shared_room else "own rooms"
        label = f"{len(senders)} senders, {where}"
        return {
            label: Figure(len(samples) / elapsed, "msg/s", "higher"),
            f"{label} p99": Figure(percentile(samples, 0.99), "ms", "lower"),
        }

    async def initial_sync(self) -> dict[str, Figure]:
        s = self.sizes
        # a user of its own, so the sync holds exactly these rooms and nothing from elsewhere
        owner = await self.server.register(self.server.unique("syncer"), PASSWORD)
        others = await self._users(s.sync_members_per_room - 1)
        label = f"initial sync {s.sync_rooms} rooms x {s.sync_messages_per_room} msgs"
        if not await self.server.has_sync(owner):
            self.log("  initial sync skipped: this server has no /sync yet")
            return {f"{label} p50": Figure(None, "ms", "lower", "no /sync")}
        rooms = await gather_limited(
            [lambda: self.server.create_room(owner) for _ in range(s.sync_rooms)],
            SETUP_CONCURRENCY,
        )
        await gather_limited(
            [partial(self.server.join, u, r) for r in rooms for u in others],
            SETUP_CONCURRENCY,
        )

        async def fill(room_id: str) -> None:
            for i in range(s.sync_messages_per_room):
                await self.server.send(owner, room_id, f"history {i}")

        await gather_limited([partial(fill, r) for r in rooms], SETUP_CONCURRENCY)
        samples: list[float] = []
        for _ in range(s.sync_runs):
            payload = await timed(self.server.sync(owner), samples)
            joined = payload.get("rooms", {}).get("join", {})
            if len(joined) < s.sync_rooms:
                raise RuntimeError(f"initial sync returned {len(joined)} of {s.sync_rooms} rooms")
        return {
            f"{label} p50": Figure(statistics.median(samples), "ms", "lower"),
        }

    async def delivery_latency(self) -> dict[str, Figure]:
        sender, receiver = await self._users(2)
        if not await self.server.has_sync(receiver):
            self.log("  delivery latency skipped: this server has no /sync yet")
            return {
                f"{DELIVERY} {p}": Figure(None, "ms", "lower", "no /sync")
                for p in ("p50", "p95", "p99")
            }
        room_id = await self.server.create_room(sender)
        await self.server.join(receiver, room_id)
        since = (await self.server.sync(receiver))["next_batch"]
        samples: list[float] = []
        for i in range(self.sizes.delivery_samples):
            text = f"ping {i} {uuid.uuid4().hex}"
            poll = asyncio.ensure_future(self._wait_for(receiver, since, room_id, text))
            # let the long-poll reach the server and park before the send starts
            await asyncio.sleep(0.05)
            started = time.perf_counter()
            await self.server.send(sender, room_id, text)
            since = await poll
            samples.append((time.perf_counter() - started) * 1000)
        return latency_figures(DELIVERY, samples)

    async def _wait_for(self, user: User, since: str, room_id: str, text: str) -> str:
        while True:
            payload = await self.server.sync(user, since, LONG_POLL_MS)
            since = payload["next_batch"]
            room = payload.get("rooms", {}).get("join", {}).get(room_id, {})
            for event in room.get("timeline", {}).get("events", []):
                if event.get("content", {}).get("body") == text:
                    return since

    async def joins(self) -> dict[str, Figure]:
        users = await self._users(self.sizes.joiners + 1)
        owner, joiners = users[0], users[1:]
        room_id = await self.server.create_room(owner)
        samples: list[float] = []
        started = time.perf_counter()
        await gather_limited(
            [partial(timed_call, samples, self.server.join, u, room_id) for u in joiners],
            SETUP_CONCURRENCY,
        )
        elapsed = time.perf_counter() - started
        label = f"{len(joiners)} users join one room"
        return {
            f"{label} (10 at a time)": Figure(len(joiners) / elapsed, "joins/s", "higher"),
            "join latency p50": Figure(percentile(samples, 0.5), "ms", "lower"),
        }

    async def pagination(self, room_id: str, already: int) -> dict[str, Figure]:
        """Page backwards from the end of a room holding at least `pagination_events` events."""
        (alice,) = await self._users(1)
        missing = max(0, self.sizes.pagination_events - already)
        await gather_limited(
            [partial(self.server.send, alice, room_id, f"filler {i}") for i in range(missing)],
            SETUP_CONCURRENCY,
        )
        samples: list[float] = []
        seen = 0
        params = {"dir": "b", "limit": str(self.sizes.pagination_page)}
        path = f"/_matrix/client/v3/rooms/{quote(room_id)}/messages"
        started = time.perf_counter()
        while seen < self.sizes.pagination_events:
            _, page = await timed(self.server.call("GET", path, alice, params=params), samples)
            seen += len(page.get("chunk", []))
            if "end" not in page or not page.get("chunk"):
                break
            params["from"] = page["end"]
        elapsed = time.perf_counter() - started
        if seen < self.sizes.pagination_events:
            raise RuntimeError(f"pagination stopped after {seen} events")
        return {
            f"paginate {seen} events back": Figure(seen / elapsed, "events/s", "higher"),
            "/messages page p50": Figure(percentile(samples, 0.5), "ms", "lower"),
        }

    async def run_all(self, only: Iterable[str] | None = None) -> dict[str, Figure]:
        wanted = set(only) if only else None

        def on(name: str) -> bool:
            return wanted is None or name in wanted

        figures: dict[str, Figure] = {}
        steps: list[tuple[str, Callable[[], Awaitable[dict[str, Figure]]]]] = [
            ("register", self.register),
            ("create_rooms", self.create_rooms),
            ("concurrent_one_room", lambda: self.concurrent_send(shared_room=True)),
            ("concurrent_own_rooms", lambda: self.concurrent_send(shared_room=False)),
            ("joins", self.joins),
            ("initial_sync", self.initial_sync),
            ("delivery", self.delivery_latency),
        ]
        if on("sequential_send") or on("pagination"):
            self.log("  sequential_send")
            sequential, room_id = await self.sequential_send()
            figures |= sequential
            if on("pagination"):
                self.log("  pagination")
                figures |= await self.pagination(room_id, self.sizes.sequential_messages)
        for name, step in steps:
            if on(name):
                self.log(f"  {name}")
                figures |= await step()
        return figures


# in the order run_all runs them
SCENARIOS = [
    "sequential_send",
    "pagination",
    "register",
    "create_rooms",
    "concurrent_one_room",
    "concurrent_own_rooms",
    "joins",
    "initial_sync",
    "delivery",
]


async def run_against(
    base_url: str,
    sizes: Sizes | None = None,
    only: Iterable[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Figure]:
    # one connection per request in flight, as many clients would hold
    connector = aiohttp.TCPConnector(limit=100)
    timeout = aiohttp.ClientTimeout(total=LONG_POLL_MS / 1000 + 60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        generator = LoadGenerator(Homeserver(base_url, session), sizes or Sizes(), log)
        return await generator.run_all(only)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    args = parser.parse_args()
    sizes = Sizes.quick() if args.quick else Sizes()
    figures = asyncio.run(run_against(args.base_url, sizes, args.scenario))
    print(json.dumps({k: [v.value, v.unit] for k, v in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
