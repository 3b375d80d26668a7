"""ui_auth_sessions and their completed stages (user-interactive auth, spec: client-server
"User-interactive authentication API"). In the database so any process can continue a
session another one started.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    PrimaryKeyConstraint,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

ui_auth_sessions = Table(
    "ui_auth_sessions",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("creation_ts", BigInteger, nullable=False),
    Column("operation", Text, nullable=False),
    Column("clientdict", Text, nullable=False),
    Column("serverdict", Text, nullable=False),
)

ui_auth_sessions_credentials = Table(
    "ui_auth_sessions_credentials",
    metadata,
    Column(
        "session_id",
        Text,
        ForeignKey("ui_auth_sessions.session_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("stage_type", Text, nullable=False),
    Column("result", Text, nullable=False),
    PrimaryKeyConstraint("session_id", "stage_type"),
)


@dataclass(frozen=True)
class StoredSession:
    session_id: str
    creation_ts: int
    operation: str
    clientdict: dict[str, Any]
    serverdict: dict[str, Any]


class UIAuthStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_session(
        self, session_id: str, operation: str, clientdict: dict[str, Any], now_ms: int
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                insert(ui_auth_sessions).values(
                    session_id=session_id,
                    creation_ts=now_ms,
                    operation=operation,
                    clientdict=orjson.dumps(clientdict).decode(),
                    serverdict="{}",
                )
            )

    async def get_session(self, session_id: str) -> StoredSession | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(ui_auth_sessions).where(ui_auth_sessions.c.session_id == session_id)
                )
            ).first()
        if row is None:
            return None
        return StoredSession(
            session_id=row.session_id,
            creation_ts=row.creation_ts,
            operation=row.operation,
            clientdict=orjson.loads(row.clientdict),
            serverdict=orjson.loads(row.serverdict),
        )

    async def set_server_value(self, session_id: str, key: str, value: Any) -> None:
        """Store one value in the session's server-side data (for stages' own use)."""
        async with self._db.transaction() as conn:
            raw = (
                await conn.execute(
                    select(ui_auth_sessions.c.serverdict).where(
                        ui_auth_sessions.c.session_id == session_id
                    )
                )
            ).scalar_one_or_none()
            if raw is None:
                return
            data = orjson.loads(raw)
            data[key] = value
            await conn.execute(
                update(ui_auth_sessions)
                .where(ui_auth_sessions.c.session_id == session_id)
                .values(serverdict=orjson.dumps(data).decode())
            )

    async def mark_stage_complete(self, session_id: str, stage_type: str, result: Any) -> None:
        async with self._db.transaction() as conn:
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(ui_auth_sessions_credentials).values(
                            session_id=session_id,
                            stage_type=stage_type,
                            result=orjson.dumps(result).decode(),
                        )
                    )
            except IntegrityError:
                # completed again (a retried request): the latest proof stands
                await conn.execute(
                    update(ui_auth_sessions_credentials)
                    .where(
                        ui_auth_sessions_credentials.c.session_id == session_id,
                        ui_auth_sessions_credentials.c.stage_type == stage_type,
                    )
                    .values(result=orjson.dumps(result).decode())
                )

    async def get_completed_stages(self, session_id: str) -> dict[str, Any]:
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        ui_auth_sessions_credentials.c.stage_type,
                        ui_auth_sessions_credentials.c.result,
                    ).where(ui_auth_sessions_credentials.c.session_id == session_id)
                )
            ).all()
        return {row.stage_type: orjson.loads(row.result) for row in rows}

    async def delete_session(self, session_id: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                delete(ui_auth_sessions_credentials).where(
                    ui_auth_sessions_credentials.c.session_id == session_id
                )
            )
            await conn.execute(
                delete(ui_auth_sessions).where(ui_auth_sessions.c.session_id == session_id)
            )

    async def delete_sessions_created_before(self, before_ts: int) -> None:
        async with self._db.transaction() as conn:
            old = select(ui_auth_sessions.c.session_id).where(
                ui_auth_sessions.c.creation_ts < before_ts
            )
            await conn.execute(
                delete(ui_auth_sessions_credentials).where(
                    ui_auth_sessions_credentials.c.session_id.in_(old)
                )
            )
            await conn.execute(
                delete(ui_auth_sessions).where(ui_auth_sessions.c.creation_ts < before_ts)
            )
