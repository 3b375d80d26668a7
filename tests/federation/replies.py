"""What federation tests ask of an answer and of /sync, on a Ranvier or a Synapse server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

from tests.integration.client import Reply
from tests.integration.matrix import CLIENT, Session


class ClientServer(Protocol):
    """A server tests reach through its client API: FederatingServer or SynapsePeer."""

    def authed(
        self, session: Session, method: str, path: str, body: dict[str, Any] | None = None
    ) -> Reply: ...


def ok(reply: Reply) -> Any:
    assert reply.status == 200, reply.body
    return reply.json()


def refused(reply: Reply, status: int, errcode: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    body: dict[str, Any] = reply.json()
    assert body["errcode"] == errcode, body
    return body


def sync_until(
    server: ClientServer,
    session: Session,
    found: Callable[[dict[str, Any]], bool],
    timeout: float = 30.0,
    since: str | None = None,
) -> dict[str, Any]:
    """The first sync response for which `found(response)` holds: an initial sync, then
    incremental ones from its token (an initial sync's answer may be a cached one); with
    `since`, incremental ones from there only (to see a change after that response, such
    as typing that stopped, which an initial sync would not mention)."""
    deadline = time.monotonic() + timeout
    path = CLIENT + "/sync?timeout=0"
    if since is not None:
        path = f"{CLIENT}/sync?since={quote(since)}&timeout=1000"
    response: dict[str, Any] = ok(server.authed(session, "GET", path))
    while not found(response):
        assert time.monotonic() < deadline, response
        since = quote(response["next_batch"])
        response = ok(server.authed(session, "GET", f"{CLIENT}/sync?since={since}&timeout=1000"))
    return response


def has_message(room_id: str, body: str) -> Callable[[dict[str, Any]], bool]:
    """A sync response whose timeline of `room_id` holds a message `body`."""

    def found(response: dict[str, Any]) -> bool:
        room = response.get("rooms", {}).get("join", {}).get(room_id)
        events = room["timeline"]["events"] if room else []
        return any(e.get("content", {}).get("body") == body for e in events)

    return found


def in_section(section: str, room_id: str) -> Callable[[dict[str, Any]], bool]:
    """A sync response listing `room_id` under rooms.`section` (join, invite, leave, knock)."""
    return lambda response: room_id in response.get("rooms", {}).get(section, {})


def ephemeral(response: dict[str, Any], room_id: str, event_type: str) -> list[dict[str, Any]]:
    """The ephemeral events of one type a /sync response gives for a joined room."""
    room = response.get("rooms", {}).get("join", {}).get(room_id, {})
    return [e for e in room.get("ephemeral", {}).get("events", []) if e["type"] == event_type]


def typists_are(room_id: str, user_ids: list[str]) -> Callable[[dict[str, Any]], bool]:
    """A /sync response whose latest m.typing in the room names exactly these users."""

    def found(response: dict[str, Any]) -> bool:
        shown = ephemeral(response, room_id, "m.typing")
        return bool(shown) and sorted(shown[-1]["content"]["user_ids"]) == sorted(user_ids)

    return found
