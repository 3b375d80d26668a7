"""What the retention tests read: the events a room has in the database, and the
message bodies a client is served."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from ranvier.config.models import DatabaseConfig
from ranvier.storage.database import open_database
from ranvier.storage.events import events
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed


def stored_event_ids(database: dict[str, Any], room_id: str) -> set[str]:
    """The room's events in the database, outliers included: what a purge must delete."""

    async def read() -> set[str]:
        db = await open_database(DatabaseConfig(**database))
        try:
            async with db.read() as conn:
                rows = await conn.execute(
                    select(events.c.event_id).where(events.c.room_id == room_id)
                )
                return {row.event_id for row in rows}
        finally:
            await db.close()

    return asyncio.run(read())


def message_bodies(server: RunningServer, who: Session, room_id: str) -> list[str]:
    url = f"{server.url}{CLIENT}/rooms/{quote(room_id)}/messages?dir=b&limit=100"
    reply = authed(who, "GET", url)
    assert reply.status == 200, reply.body
    return [e["content"]["body"] for e in reply.json()["chunk"] if e["type"] == "m.room.message"]
