"""dehydrated_devices: each user's dehydrated device (MSC3814) and its opaque device data.

The device is an ordinary row of `devices`; this table only says which of the user's
devices is the dehydrated one. Deleting the device deletes the row (foreign key cascade).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Column, ForeignKeyConstraint, Table, Text, delete, insert, select

from ranvier.storage.database import Database
from ranvier.storage.metadata import metadata

dehydrated_devices = Table(
    "dehydrated_devices",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("device_id", Text, nullable=False),
    Column("device_data", Text, nullable=False),
    ForeignKeyConstraint(
        ["user_id", "device_id"],
        ["devices.user_id", "devices.device_id"],
        ondelete="CASCADE",
    ),
)

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class DehydratedDevice:
    device_id: str
    device_data: JsonObject


class DehydratedDeviceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: str) -> DehydratedDevice | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(dehydrated_devices.c.device_id, dehydrated_devices.c.device_data).where(
                        dehydrated_devices.c.user_id == user_id
                    )
                )
            ).first()
        if row is None:
            return None
        return DehydratedDevice(device_id=row.device_id, device_data=orjson.loads(row.device_data))

    async def set(self, user_id: str, device_id: str, device_data: JsonObject) -> None:
        """Make `device_id` (an existing device) the user's dehydrated device."""
        async with self._db.transaction() as conn:
            await conn.execute(
                delete(dehydrated_devices).where(dehydrated_devices.c.user_id == user_id)
            )
            await conn.execute(
                insert(dehydrated_devices).values(
                    user_id=user_id,
                    device_id=device_id,
                    # as sent: key order kept
                    device_data=orjson.dumps(device_data).decode(),
                )
            )
