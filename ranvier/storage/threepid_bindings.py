"""threepid_id_server_bindings: which identity server each of a user's third-party
identifiers was bound to through this homeserver (services/identity_server.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, PrimaryKeyConstraint, Table, Text, delete, select

from ranvier.storage.database import Database, insert_for
from ranvier.storage.metadata import metadata

threepid_id_server_bindings = Table(
    "threepid_id_server_bindings",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("medium", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("id_server", Text, nullable=False),
    PrimaryKeyConstraint("user_id", "medium", "address", "id_server"),
)


@dataclass(frozen=True)
class Binding:
    medium: str
    address: str
    id_server: str


class ThreepidBindingStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, user_id: str, binding: Binding) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                insert_for(conn)(threepid_id_server_bindings)
                .values(
                    user_id=user_id,
                    medium=binding.medium,
                    address=binding.address,
                    id_server=binding.id_server,
                )
                .on_conflict_do_nothing()
            )

    async def remove(self, user_id: str, binding: Binding) -> None:
        table = threepid_id_server_bindings
        async with self._db.transaction() as conn:
            await conn.execute(
                delete(table).where(
                    table.c.user_id == user_id,
                    table.c.medium == binding.medium,
                    table.c.address == binding.address,
                    table.c.id_server == binding.id_server,
                )
            )

    async def for_user(
        self, user_id: str, medium: str | None = None, address: str | None = None
    ) -> list[Binding]:
        table = threepid_id_server_bindings
        query = select(table).where(table.c.user_id == user_id)
        if medium is not None:
            query = query.where(table.c.medium == medium)
        if address is not None:
            query = query.where(table.c.address == address)
        async with self._db.read() as conn:
            return [
                Binding(row.medium, row.address, row.id_server)
                for row in await conn.execute(query.order_by(table.c.id_server))
            ]
