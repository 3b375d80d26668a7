"""device_inbox and device_inbox_txns: to-device messages waiting for their device.

A send takes one position in the to_device stream and writes one row per recipient device,
in one transaction with its transaction ID, so a retried send is recognised and never
half-written. Rows stay until the device acknowledges them by syncing past them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    PrimaryKeyConstraint,
    Table,
    Text,
    delete,
    select,
)

from ranvier.storage.database import Database, insert_for
from ranvier.storage.devices import devices
from ranvier.storage.metadata import metadata
from ranvier.storage.stream_ids import current_position, next_position

TO_DEVICE_STREAM = "to_device"
# "" stands for "no device" (an access token without one) in the transaction table
NO_DEVICE = ""
# how long a transaction ID is remembered: a client retries within minutes, and Synapse
# forgets them after 30 minutes; a day leaves room for a client that was offline a while
TXN_ID_LIFETIME_MS = 24 * 60 * 60 * 1000

device_inbox = Table(
    "device_inbox",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("stream_id", BigInteger, nullable=False),
    Column("message", Text, nullable=False),
    PrimaryKeyConstraint("user_id", "device_id", "stream_id"),
    ForeignKeyConstraint(
        ["user_id", "device_id"], ["devices.user_id", "devices.device_id"], ondelete="CASCADE"
    ),
)

device_inbox_txns = Table(
    "device_inbox_txns",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("txn_id", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_id", "device_id", "event_type", "txn_id"),
)

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class SendResult:
    # None when the transaction ID was seen before and nothing was written
    position: int | None
    # the users that got at least one message
    recipients: set[str]
    # the transaction ID had been used already: nothing was sent
    repeated: bool = False


@dataclass(frozen=True)
class InboxMessage:
    stream_id: int
    event: JsonDict


class DeviceInboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def send(
        self,
        sender: str,
        sender_device: str | None,
        event_type: str,
        txn_id: str,
        now_ms: int,
        # user_id -> device_id or "*" -> content
        messages: Mapping[str, Mapping[str, JsonDict]],
    ) -> SendResult:
        """Queue the messages for every existing device they name ("*": all of the user's
        devices); devices that do not exist are skipped. Idempotent per sender device, event
        type and transaction ID."""
        async with self._db.transaction() as conn:
            insert = insert_for(conn)
            # the sending device's old transaction IDs go as it sends new ones (primary
            # key prefix), so the table stays small without a cleanup job
            await conn.execute(
                delete(device_inbox_txns).where(
                    device_inbox_txns.c.user_id == sender,
                    device_inbox_txns.c.device_id == (sender_device or NO_DEVICE),
                    device_inbox_txns.c.ts < now_ms - TXN_ID_LIFETIME_MS,
                )
            )
            claimed = await conn.execute(
                insert(device_inbox_txns)
                .values(
                    user_id=sender,
                    device_id=sender_device or NO_DEVICE,
                    event_type=event_type,
                    txn_id=txn_id,
                    ts=now_ms,
                )
                .on_conflict_do_nothing()
            )
            if claimed.rowcount == 0:
                return SendResult(position=None, recipients=set(), repeated=True)
            rows: list[dict[str, Any]] = []
            position: int | None = None
            for user_id, by_device in messages.items():
                known = set(
                    (
                        await conn.execute(
                            select(devices.c.device_id).where(devices.c.user_id == user_id)
                        )
                    ).scalars()
                )
                targets: dict[str, JsonDict] = {}
                for device_id, content in by_device.items():
                    if device_id == "*":
                        # a message for one device wins over the wildcard for that device
                        for each in known:
                            targets.setdefault(each, content)
                    elif device_id in known:
                        targets[device_id] = content
                if not targets:
                    continue
                if position is None:
                    position = await next_position(conn, TO_DEVICE_STREAM)
                for device_id, content in targets.items():
                    event = {"type": event_type, "sender": sender, "content": content}
                    rows.append(
                        {
                            "user_id": user_id,
                            "device_id": device_id,
                            "stream_id": position,
                            "message": orjson.dumps(event).decode(),
                        }
                    )
            if rows:
                await conn.execute(insert(device_inbox), rows)
        return SendResult(position=position, recipients={row["user_id"] for row in rows})

    async def current_stream_position(self) -> int:
        async with self._db.read() as conn:
            return await current_position(conn, TO_DEVICE_STREAM)

    async def get_messages(
        self, user_id: str, device_id: str, after: int, up_to: int, limit: int
    ) -> list[InboxMessage]:
        """The device's messages with a position in (after, up_to], oldest first."""
        query = (
            select(device_inbox.c.stream_id, device_inbox.c.message)
            .where(
                device_inbox.c.user_id == user_id,
                device_inbox.c.device_id == device_id,
                device_inbox.c.stream_id > after,
                device_inbox.c.stream_id <= up_to,
            )
            .order_by(device_inbox.c.stream_id)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [
                InboxMessage(stream_id=int(row.stream_id), event=orjson.loads(row.message))
                for row in await conn.execute(query)
            ]

    async def delete_messages(self, user_id: str, device_id: str, up_to: int) -> int:
        """Delete the device's messages with a position up to `up_to`; returns how many."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                delete(device_inbox).where(
                    device_inbox.c.user_id == user_id,
                    device_inbox.c.device_id == device_id,
                    device_inbox.c.stream_id <= up_to,
                )
            )
        return int(result.rowcount)
