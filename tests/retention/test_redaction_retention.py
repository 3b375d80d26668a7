"""redaction_retention_period over real HTTP on both engines (2s here, checked every
second): once a redaction is that old, the redacted event's original content is gone from
the database, while clients keep seeing the event redacted; events nobody redacted keep
theirs."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select

from ranvier.config.models import DatabaseConfig
from ranvier.services.retention import redaction_check_period_ms
from ranvier.storage.database import open_database
from ranvier.storage.events import events
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import (
    CLIENT,
    REGISTRATION_CONFIG,
    Session,
    authed,
    create_room,
    register,
    send_text,
)

server = module_server(**REGISTRATION_CONFIG, redaction_retention_period="2s")


@pytest.fixture(scope="module")
def alice(server: RunningServer) -> Session:
    return register(server.url, "alice")


def stored_content(database: dict[str, Any], event_id: str) -> dict[str, Any]:
    """The event's content as the database holds it."""

    async def read() -> dict[str, Any]:
        db = await open_database(DatabaseConfig(**database))
        try:
            async with db.read() as conn:
                row = (
                    await conn.execute(select(events.c.json).where(events.c.event_id == event_id))
                ).one()
        finally:
            await db.close()
        content: dict[str, Any] = json.loads(row.json)["content"]
        return content

    return asyncio.run(read())


def redact(server: RunningServer, who: Session, room_id: str, event_id: str, txn: str) -> None:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/redact/{quote(event_id)}/{txn}"
    reply = authed(who, "PUT", url, {"reason": "oops"})
    assert reply.status == 200, reply.body


def served_content(server: RunningServer, who: Session, room_id: str, event_id: str) -> Any:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/event/{quote(event_id)}"
    reply = authed(who, "GET", url)
    assert reply.status == 200, reply.body
    return reply.json()["content"]


def test_the_check_period_follows_short_periods() -> None:
    assert redaction_check_period_ms(7 * 86_400_000) == 300_000
    assert redaction_check_period_ms(60_000) == 15_000
    assert redaction_check_period_ms(0) == 1000


def test_redacted_content_leaves_the_database_after_the_period(
    server: RunningServer, alice: Session, module_database: dict[str, Any]
) -> None:
    bob = register(server.url, "bob")
    room_id = create_room(server.url, alice, preset="public_chat")
    assert authed(bob, "POST", f"{server.url}{CLIENT}/join/{quote(room_id)}", {}).status == 200
    secret = send_text(server.url, alice, room_id, "my secret")
    kept = send_text(server.url, alice, room_id, "not redacted")
    redact(server, alice, room_id, secret, "t1")
    redacted_at = time.monotonic()

    # served redacted at once, still whole in the database until the period ends
    assert served_content(server, bob, room_id, secret) == {}
    assert stored_content(module_database, secret)["body"] == "my secret"

    deadline = redacted_at + 15
    while stored_content(module_database, secret) != {}:
        assert time.monotonic() < deadline, "the redacted content was not pruned"
        time.sleep(0.2)
    assert time.monotonic() - redacted_at >= 2.0 - 0.1

    assert served_content(server, bob, room_id, secret) == {}
    assert stored_content(module_database, kept)["body"] == "not redacted"
    # the room goes on, and its history still reads
    send_text(server.url, alice, room_id, "after")
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/messages?dir=b&limit=10"
    bodies = [
        e["content"].get("body")
        for e in authed(bob, "GET", url).json()["chunk"]
        if e["type"] == "m.room.message"
    ]
    assert bodies == ["after", "not redacted", None]
