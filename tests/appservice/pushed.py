"""What the transaction tests share: acting as a service's users over the client API, and
waiting until a service has been pushed something."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

from tests.appservice.fake_appservice import FakeAppService, Received
from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed

TRANSACTIONS = "/_matrix/app/v1/transactions/"


def fresh_service(**fields: Any) -> Iterator[FakeAppService]:
    """A FakeAppService with `fields` (its registration's options) for one server."""
    with FakeAppService(**fields) as fake:
        yield fake


def as_service(
    server: RunningServer,
    service: FakeAppService,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    **query: str,
) -> Reply:
    """A client-server request (under /_matrix/client/v3) with the service's as_token."""
    url = server.url + CLIENT + path
    if query:
        url += "?" + urlencode(query)
    return request(method, url, body, {"Authorization": f"Bearer {service.as_token}"})


def bot_joins(
    server: RunningServer, service: FakeAppService, inviter: Session, room_id: str
) -> str:
    """The service's sender invited to the room and joined; its user ID."""
    bot = f"@{service.sender_localpart}:test.localhost"
    invite = authed(
        inviter,
        "POST",
        f"{server.url}{CLIENT}/rooms/{quote(room_id)}/invite",
        {"user_id": bot},
    )
    assert invite.status == 200, invite.body
    joined = as_service(server, service, "POST", f"/join/{quote(room_id)}", {})
    assert joined.status == 200, joined.body
    return bot


def send(server: RunningServer, session: Session, room_id: str, text: str) -> str:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/send/m.room.message"
    reply = authed(session, "POST", url, {"msgtype": "m.text", "body": text})
    assert reply.status == 200, reply.body
    event_id: str = reply.json()["event_id"]
    return event_id


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def transaction_requests(service: FakeAppService) -> list[Received]:
    """Every PUT of a transaction, acknowledged or not, in the order received."""
    return [
        received
        for received in list(service.requests)
        if received.method == "PUT" and received.path.startswith(TRANSACTIONS)
    ]


def txn_id_of(received: Received) -> str:
    return received.path.rsplit("/", 1)[1]


def events_in(service: FakeAppService, room_id: str) -> list[dict[str, Any]]:
    return [event for event in service.events() if event.get("room_id") == room_id]


def ephemeral_in(service: FakeAppService, key: str = "ephemeral") -> list[dict[str, Any]]:
    """Every entry of `key` of every acknowledged transaction, in order."""
    return [entry for _, body in list(service.transactions) for entry in body.get(key, [])]
