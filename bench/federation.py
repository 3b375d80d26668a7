"""The federation scenarios: a local user joins the scripted remote's room of 1,000 members,
then the remote pushes messages into it through /send, against any server under test.

Both servers under test are given the same federation settings (`ranvier_config`,
`synapse_config`): trust the remote's CA, may reach loopback, no notary, and on Synapse its
inbound federation rate limit lifted (Ranvier has none). The remote (bench/remote_room.py)
is reset before each server, so every one joins the same room.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.load import Figure, Homeserver, RequestFailed, User, percentile
from bench.remote_room import RemoteRoomServer
from bench.servers import SERVER_NAME, RunningServer

CLIENT = "/_matrix/client/v3"
# Ranvier refuses a larger join or transaction with a timeout of its own well before this
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=900)
VISIBLE_TIMEOUT = 600.0
POLL_SECONDS = 0.1


@dataclass
class FederationSizes:
    members: int = 1000
    pushed_pdus: int = 5000
    pdus_per_transaction: int = 50  # the spec's most
    senders: int = 20

    @classmethod
    def quick(cls) -> FederationSizes:
        return cls(members=50, pushed_pdus=200)

    def keys(self) -> tuple[str, str, str]:
        """The names of the headline figures, which carry the sizes."""
        return (
            f"join a remote room of {self.members:,} members",
            f"join to usable ({self.members + 1:,} members listed, a message sent)",
            f"inbound /send, {self.pushed_pdus:,} PDUs ({self.pdus_per_transaction} a transaction)",
        )


def _lifted(value: int) -> dict[str, int]:
    return {
        "window_size": 1000,
        "sleep_limit": value,
        "sleep_delay": 0,
        "reject_limit": value,
        "concurrent": value,
    }


def ranvier_config(remote: RemoteRoomServer) -> dict[str, Any]:
    return {
        "federation_custom_ca_list": [str(remote.ca_path)],
        "ip_range_whitelist": ["127.0.0.1"],
        "trusted_key_servers": [],
    }


def synapse_config(remote: RemoteRoomServer) -> dict[str, Any]:
    return {
        "federation_custom_ca_list": [str(remote.ca_path)],
        "ip_range_blacklist": [],
        "ip_range_whitelist": ["127.0.0.0/8"],
        "trusted_key_servers": [],
        # one transaction at a time from one origin never reaches Synapse's defaults'
        # concurrency, but the sleep limit (10 a second) would slow the pushing down
        "rc_federation": _lifted(1_000_000),
    }


async def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(POLL_SECONDS)


class FederationBench:
    def __init__(
        self,
        server: RunningServer,
        remote: RemoteRoomServer,
        sizes: FederationSizes,
        log: Callable[[str], None] = print,
    ) -> None:
        self.server = server
        self.remote = remote
        self.sizes = sizes
        self.log = log

    async def run(self) -> dict[str, Figure]:
        self.remote.reset()
        async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as session:
            client = Homeserver(self.server.url, session)
            user = await client.register(client.unique("joiner"), "bench-password-1")
            figures = await self.join(client, user)
            figures |= await self.inbound_send(client, user, session)
        asked = ", ".join(f"{path} x{n}" for path, n in sorted(self.remote.requests.items()))
        self.log(f"{self.server.name}: the remote was asked: {asked}")
        return figures

    async def join(self, client: Homeserver, user: User) -> dict[str, Figure]:
        join_key, usable_key, _ = self.sizes.keys()
        room_id = self.remote.room_id
        started = time.perf_counter()
        await client.call(
            "POST",
            f"{CLIENT}/join/{quote(room_id)}",
            user,
            {},
            params={"server_name": self.remote.server_name},
        )
        joined = time.perf_counter() - started
        self.log(f"{self.server.name}: joined in {joined:.2f}s")
        sent_id = await client.send(user, room_id, "hello from the joined server")
        _, members = await client.call(
            "GET", f"{CLIENT}/rooms/{quote(room_id)}/joined_members", user
        )
        usable = time.perf_counter() - started
        listed = len(members["joined"])
        if listed != self.sizes.members + 1:
            raise AssertionError(f"{self.server.name} lists {listed} members after the join")
        current_kib, _ = self.server.rss_kib()

        async def reached_remote() -> bool:
            return sent_id in self.remote.room.by_id

        # the pushed messages then build on it rather than fork beside it
        await _wait(reached_remote, 60, f"{self.server.name}'s message reaching the remote")
        return {
            join_key: Figure(joined, "s", "lower"),
            usable_key: Figure(usable, "s", "lower"),
            "RSS after the join": Figure(current_kib / 1024, "MiB", "lower"),
        }

    async def inbound_send(
        self, client: Homeserver, user: User, session: aiohttp.ClientSession
    ) -> dict[str, Figure]:
        *_, send_key = self.sizes.keys()
        stem = f"pushed-{secrets.token_hex(3)}"
        events = self.remote.build_messages(self.sizes.pushed_pdus, self.sizes.senders, stem)
        last_id = events[-1].event_id
        per = self.sizes.pdus_per_transaction
        batches = [events[i : i + per] for i in range(0, len(events), per)]
        latencies: list[float] = []
        refused = 0
        started = time.perf_counter()
        for number, batch in enumerate(batches):
            path, body, headers = self.remote.transaction(SERVER_NAME, f"{stem}-{number}", batch)
            sent = time.perf_counter()
            async with session.put(self.server.url + path, data=body, headers=headers) as reply:
                answer = await reply.json(content_type=None)
                if reply.status != 200:
                    raise RequestFailed("PUT", path, reply.status, answer)
            latencies.append((time.perf_counter() - sent) * 1000)
            refused += sum(1 for result in answer.get("pdus", {}).values() if result)
        all_sent = time.perf_counter() - started

        async def last_visible() -> bool:
            _, page = await client.call(
                "GET",
                f"{CLIENT}/rooms/{quote(self.remote.room_id)}/messages",
                user,
                params={"dir": "b", "limit": "1"},
            )
            return any(e.get("event_id") == last_id for e in page.get("chunk", []))

        async def all_visible() -> bool:
            return await self._count_visible(client, user, stem) == len(events)

        throughput: float | None = None
        try:
            await _wait(last_visible, VISIBLE_TIMEOUT, f"{self.server.name} showing the last PDU")
            elapsed = time.perf_counter() - started
            # a server that takes PDUs in out of order (Synapse does, from its staging area)
            # can show the last before the others: then the clock runs until they all show
            if not await all_visible():
                await _wait(all_visible, VISIBLE_TIMEOUT, f"{self.server.name} showing all")
                counted = time.perf_counter()
                elapsed = counted - started
                await all_visible()
                self.log(
                    f"{self.server.name}: the last PDU showed before the others; "
                    f"one count of all takes {time.perf_counter() - counted:.1f}s"
                )
            throughput = len(events) / elapsed
            self.log(
                f"{self.server.name}: {len(events)} PDUs sent in {all_sent:.1f}s, "
                f"all visible after {elapsed:.1f}s"
            )
        except TimeoutError as exc:
            self.log(f"{self.server.name}: {exc}")
        seen = await self._count_visible(client, user, stem)
        note = ""
        if seen != len(events) or refused:
            note = f"{seen} of {len(events)} visible, {refused} refused"
            self.log(f"{self.server.name}: {note}")
        return {
            send_key: Figure(throughput, "PDU/s", "higher", note),
            "/send transaction p50": Figure(percentile(latencies, 0.50), "ms", "lower"),
            "/send transaction p95": Figure(percentile(latencies, 0.95), "ms", "lower"),
        }

    async def _count_visible(self, client: Homeserver, user: User, stem: str) -> int:
        """How many pushed messages /messages shows, paging back until they are all read
        or history runs out (untimed)."""
        seen: set[str] = set()
        params = {"dir": "b", "limit": "100"}
        path = f"{CLIENT}/rooms/{quote(self.remote.room_id)}/messages"
        while len(seen) < self.sizes.pushed_pdus:
            _, page = await client.call("GET", path, user, params=params)
            for event in page.get("chunk", []):
                body = event.get("content", {}).get("body", "")
                if isinstance(body, str) and body.startswith(stem):
                    seen.add(event["event_id"])
            if not page.get("chunk") or not page.get("end"):
                break
            params["from"] = page["end"]
        return len(seen)


def run_federation(
    server: RunningServer,
    remote: RemoteRoomServer,
    sizes: FederationSizes,
    log: Callable[[str], None] = print,
) -> dict[str, Figure]:
    return asyncio.run(FederationBench(server, remote, sizes, log).run())
