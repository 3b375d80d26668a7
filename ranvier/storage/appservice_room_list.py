"""The rooms application services publish in their networks' room directories.

A row says that service `appservice_id` lists `room_id` in the directory of its network
`network_id` (spec: application-service-api "Published room directories"); a room leaves
that directory by losing its row.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, PrimaryKeyConstraint, Table, Text, and_, delete, func, select

from ranvier.storage.database import Database, insert_for
from ranvier.storage.metadata import metadata
from ranvier.storage.state import current_state_events

appservice_room_list = Table(
    "appservice_room_list",
    metadata,
    Column("appservice_id", Text, nullable=False),
    Column("network_id", Text, nullable=False),
    Column("room_id", Text, nullable=False),
    PrimaryKeyConstraint("appservice_id", "network_id", "room_id"),
    Index("ix_appservice_room_list_room_id", "room_id"),
)


async def set_listed(
    db: Database, appservice_id: str, network_id: str, room_id: str, listed: bool
) -> None:
    async with db.transaction() as conn:
        if listed:
            await conn.execute(
                insert_for(conn)(appservice_room_list)
                .values(appservice_id=appservice_id, network_id=network_id, room_id=room_id)
                .on_conflict_do_nothing()
            )
        else:
            await conn.execute(
                delete(appservice_room_list).where(
                    appservice_room_list.c.appservice_id == appservice_id,
                    appservice_room_list.c.network_id == network_id,
                    appservice_room_list.c.room_id == room_id,
                )
            )


async def get_listed_rooms(db: Database, network: tuple[str, str] | None) -> list[tuple[str, int]]:
    """(room_id, joined member count) of the rooms listed in the directory of `network`
    ((appservice_id, network_id)), or in any network's with None; each room once."""
    joined = and_(
        current_state_events.c.room_id == appservice_room_list.c.room_id,
        current_state_events.c.type == "m.room.member",
        current_state_events.c.membership == "join",
    )
    query = select(
        appservice_room_list.c.room_id,
        func.count(func.distinct(current_state_events.c.state_key)).label("joined"),
    ).select_from(appservice_room_list.outerjoin(current_state_events, joined))
    if network is not None:
        query = query.where(
            appservice_room_list.c.appservice_id == network[0],
            appservice_room_list.c.network_id == network[1],
        )
    query = query.group_by(appservice_room_list.c.room_id)
    async with db.read() as conn:
        return [(row.room_id, int(row.joined)) for row in await conn.execute(query)]
