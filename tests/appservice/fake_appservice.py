"""A scripted application service on loopback: it records what the homeserver sends it
and answers as a test tells it to, and writes the registration file that points at it.

It runs its own event loop in a thread, so synchronous tests and async ones alike can
read what it received (`transactions`, `requests`) while the homeserver talks to it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

from bench.threaded_https import ThreadedHttpsServer, bound_socket


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any


@dataclass
class FakeAppService:
    """`answers` maps (method, path) to a callable returning (status, JSON body); what it
    does not name gets 200 `{}` for transactions and pings, 404 for queries."""

    id: str = "fake_bridge"
    sender_localpart: str = "_fake_bot"
    user_regex: str = "@_fake_.*"
    alias_regex: str = "#_fake_.*"
    room_regex: str | None = None
    exclusive: bool = True
    protocols: tuple[str, ...] = ()
    extra_registration: dict[str, Any] = field(default_factory=dict)
    as_token: str = field(default_factory=lambda: secrets.token_hex(16))
    hs_token: str = field(default_factory=lambda: secrets.token_hex(16))
    answers: dict[tuple[str, str], Callable[[Received], tuple[int, Any]]] = field(
        default_factory=dict
    )
    # a transaction answered with a non-2xx status by `fail_transactions` is not recorded
    fail_transactions: int = 0
    requests: list[Received] = field(default_factory=list)
    transactions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._socket = bound_socket()
        self.port = self._socket.getsockname()[1]
        self._server = ThreadedHttpsServer(self._handle, None, self._socket, f"as-{self.id}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeAppService:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeAppService:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def registration(self) -> dict[str, Any]:
        namespaces: dict[str, list[dict[str, Any]]] = {
            "users": [{"exclusive": self.exclusive, "regex": self.user_regex}],
            "aliases": [{"exclusive": self.exclusive, "regex": self.alias_regex}],
            "rooms": [],
        }
        if self.room_regex is not None:
            namespaces["rooms"].append({"exclusive": False, "regex": self.room_regex})
        return {
            "id": self.id,
            "url": self.url,
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": self.sender_localpart,
            "namespaces": namespaces,
            "rate_limited": False,
            "protocols": list(self.protocols),
            **self.extra_registration,
        }

    def write_registration(self, directory: Path) -> str:
        path = directory / f"{self.id}.yaml"
        path.write_text(yaml.safe_dump(self.registration()))
        return str(path)

    def events(self) -> list[dict[str, Any]]:
        """Every event of every recorded transaction, in the order received."""
        with self._lock:
            return [event for _, body in self.transactions for event in body.get("events", [])]

    def wait_for_event(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if predicate(event):
                    return event
            time.sleep(0.05)
        raise AssertionError(f"no matching event reached the service; it has {self.events()}")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode(errors="replace")
        received = Received(
            request.method,
            request.path,
            dict(request.query),
            request.headers.get("Authorization"),
            body,
        )
        with self._lock:
            self.requests.append(received)
        answer = self.answers.get((request.method, request.path))
        if answer is not None:
            status, reply = answer(received)
            if status < 300 and request.path.startswith("/_matrix/app/v1/transactions/"):
                self._record_transaction(received)
            return web.json_response(reply, status=status)
        if request.path.startswith("/_matrix/app/v1/transactions/") and request.method == "PUT":
            with self._lock:
                if self.fail_transactions > 0:
                    self.fail_transactions -= 1
                    return web.json_response({"errcode": "M_UNKNOWN"}, status=500)
            self._record_transaction(received)
            return web.json_response({})
        if request.path == "/_matrix/app/v1/ping" and request.method == "POST":
            return web.json_response({})
        return web.json_response({"errcode": "M_NOT_FOUND", "error": "not here"}, status=404)

    def _record_transaction(self, received: Received) -> None:
        txn_id = received.path.rsplit("/", 1)[1]
        with self._lock:
            self.transactions.append((txn_id, received.body))
