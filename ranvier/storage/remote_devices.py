"""Other servers' users' device lists, cached while we share a room with them (spec:
server-server-api "Device Management").

A user has a `remote_device_lists` row only while the cache holds their whole list, as of
the `stream_id` their server gave it; `remote_devices` holds the devices of that list.
Every change to a cached or shared remote user's devices or cross-signing keys also takes
a position in our own device_lists stream (storage/device_lists.py), in the same
transaction, so room-mates' /sync and /keys/changes name them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    PrimaryKeyConstraint,
    Table,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.database import Database
from ranvier.storage.device_lists import USER_KEYS, record_device_list_change
from ranvier.storage.metadata import metadata
from ranvier.storage.state import current_state_events

JsonDict = dict[str, Any]
_CHUNK = 500

remote_device_lists = Table(
    "remote_device_lists",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("stream_id", BigInteger, nullable=False),
    Column("master_key_json", Text, nullable=True),
    Column("self_signing_key_json", Text, nullable=True),
    PrimaryKeyConstraint("user_id"),
)

remote_devices = Table(
    "remote_devices",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("keys_json", Text, nullable=True),
    Column("display_name", Text, nullable=True),
    PrimaryKeyConstraint("user_id", "device_id"),
)


@dataclass(frozen=True)
class RemoteDevice:
    device_id: str
    keys: JsonDict | None
    display_name: str | None


@dataclass(frozen=True)
class RemoteDeviceList:
    user_id: str
    stream_id: int
    devices: dict[str, RemoteDevice] = field(default_factory=dict)
    master_key: JsonDict | None = None
    self_signing_key: JsonDict | None = None


@dataclass(frozen=True)
class DeviceUpdate:
    """One m.device_list_update: a device added or changed (with its keys, if any) or
    deleted, at `stream_id`, following `prev_ids`."""

    user_id: str
    device_id: str
    stream_id: int
    prev_ids: Sequence[int]
    deleted: bool
    keys: JsonDict | None
    display_name: str | None


class UpdateOutcome:
    APPLIED = "applied"
    ALREADY_SEEN = "already_seen"
    # a prev_id we have not seen: the list must be fetched again
    GAP = "gap"
    NOT_CACHED = "not_cached"


def _loads(value: str | None) -> JsonDict | None:
    return None if value is None else orjson.loads(value)


def _dumps(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class RemoteDeviceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_lists(self, user_ids: Collection[str]) -> dict[str, RemoteDeviceList]:
        """The cached lists of those users that have one."""
        users = list(dict.fromkeys(user_ids))
        lists: dict[str, RemoteDeviceList] = {}
        async with self._db.read() as conn:
            for start in range(0, len(users), _CHUNK):
                chunk = users[start : start + _CHUNK]
                for row in await conn.execute(
                    select(remote_device_lists).where(remote_device_lists.c.user_id.in_(chunk))
                ):
                    lists[row.user_id] = RemoteDeviceList(
                        row.user_id,
                        int(row.stream_id),
                        {},
                        _loads(row.master_key_json),
                        _loads(row.self_signing_key_json),
                    )
                for row in await conn.execute(
                    select(remote_devices).where(remote_devices.c.user_id.in_(chunk))
                ):
                    cached = lists.get(row.user_id)
                    if cached is not None:
                        cached.devices[row.device_id] = RemoteDevice(
                            row.device_id, _loads(row.keys_json), row.display_name
                        )
        return lists

    async def sharing_a_room(self, user_ids: Collection[str], server_name: str) -> set[str]:
        """Those of the users joined to a room that a user of `server_name` is joined to."""
        users = list(dict.fromkeys(user_ids))
        theirs = current_state_events.alias("theirs")
        ours = current_state_events.alias("ours")
        # localparts hold no ':', so the suffix is the whole server name
        ours_pattern = "%:" + server_name.replace("\\", "\\\\").replace("%", "\\%").replace(
            "_", "\\_"
        )
        found: set[str] = set()
        async with self._db.read() as conn:
            for start in range(0, len(users), _CHUNK):
                query = (
                    select(theirs.c.state_key)
                    .select_from(theirs.join(ours, ours.c.room_id == theirs.c.room_id))
                    .where(
                        theirs.c.type == "m.room.member",
                        theirs.c.membership == "join",
                        theirs.c.state_key.in_(users[start : start + _CHUNK]),
                        ours.c.type == "m.room.member",
                        ours.c.membership == "join",
                        ours.c.state_key.like(ours_pattern, escape="\\"),
                    )
                    .distinct()
                )
                found.update((await conn.execute(query)).scalars())
        return found

    async def cached_users(self, user_ids: Collection[str]) -> set[str]:
        """Those of the users whose list is cached."""
        users = list(dict.fromkeys(user_ids))
        found: set[str] = set()
        async with self._db.read() as conn:
            for start in range(0, len(users), _CHUNK):
                query = select(remote_device_lists.c.user_id).where(
                    remote_device_lists.c.user_id.in_(users[start : start + _CHUNK])
                )
                found.update((await conn.execute(query)).scalars())
        return found

    async def replace_list(self, fetched: RemoteDeviceList) -> int:
        """Cache the user's whole list as their server just gave it; returns the
        device_lists position of the change."""
        async with self._db.transaction() as conn:
            await _forget(conn, [fetched.user_id])
            await conn.execute(
                remote_device_lists.insert().values(
                    user_id=fetched.user_id,
                    stream_id=fetched.stream_id,
                    master_key_json=_dumps(fetched.master_key),
                    self_signing_key_json=_dumps(fetched.self_signing_key),
                )
            )
            if fetched.devices:
                await conn.execute(
                    remote_devices.insert(),
                    [
                        {
                            "user_id": fetched.user_id,
                            "device_id": device.device_id,
                            "keys_json": _dumps(device.keys),
                            "display_name": device.display_name,
                        }
                        for device in fetched.devices.values()
                    ],
                )
            return await record_device_list_change(
                conn, fetched.user_id, list(fetched.devices) or [USER_KEYS]
            )

    async def apply_update(self, update_: DeviceUpdate) -> tuple[str, int | None]:
        """Apply one device's change to the cached list if it follows on from what the
        cache holds; returns the outcome and the device_lists position taken (if any)."""
        async with self._db.transaction() as conn:
            row = (
                await conn.execute(
                    select(remote_device_lists.c.stream_id).where(
                        remote_device_lists.c.user_id == update_.user_id
                    )
                )
            ).first()
            if row is None:
                return UpdateOutcome.NOT_CACHED, None
            cached = int(row.stream_id)
            if update_.stream_id < cached or (
                update_.stream_id == cached and cached not in update_.prev_ids
            ):
                return UpdateOutcome.ALREADY_SEEN, None
            # spec: every prev_id must be one we have, and the list we hold has every
            # change up to its stream_id; an empty list promises nothing
            if not update_.prev_ids or max(update_.prev_ids) > cached:
                return UpdateOutcome.GAP, None
            of_device = (
                remote_devices.c.user_id == update_.user_id,
                remote_devices.c.device_id == update_.device_id,
            )
            await conn.execute(delete(remote_devices).where(*of_device))
            if not update_.deleted:
                await conn.execute(
                    remote_devices.insert().values(
                        user_id=update_.user_id,
                        device_id=update_.device_id,
                        keys_json=_dumps(update_.keys),
                        display_name=update_.display_name,
                    )
                )
            await conn.execute(
                update(remote_device_lists)
                .where(remote_device_lists.c.user_id == update_.user_id)
                .values(stream_id=update_.stream_id)
            )
            position = await record_device_list_change(conn, update_.user_id, [update_.device_id])
            return UpdateOutcome.APPLIED, position

    async def set_cross_signing_keys(
        self, user_id: str, master_key: JsonDict | None, self_signing_key: JsonDict | None
    ) -> int:
        """The user's new master and/or self-signing key (m.signing_key_update), kept if
        their list is cached; returns the device_lists position of the change."""
        values: dict[str, str | None] = {}
        if master_key is not None:
            values["master_key_json"] = _dumps(master_key)
        if self_signing_key is not None:
            values["self_signing_key_json"] = _dumps(self_signing_key)
        async with self._db.transaction() as conn:
            if values:
                await conn.execute(
                    update(remote_device_lists)
                    .where(remote_device_lists.c.user_id == user_id)
                    .values(**values)
                )
            return await record_device_list_change(conn, user_id, [USER_KEYS])

    async def record_change(self, user_id: str, device_ids: Sequence[str]) -> int:
        """A change to an uncached user's list: room-mates are told to fetch it again."""
        async with self._db.transaction() as conn:
            return await record_device_list_change(conn, user_id, list(device_ids) or [USER_KEYS])

    async def forget(self, user_ids: Collection[str]) -> None:
        """Drop the users' cached lists (we no longer share a room, or lost track)."""
        async with self._db.transaction() as conn:
            await _forget(conn, list(user_ids))


async def _forget(conn: AsyncConnection, user_ids: list[str]) -> None:
    for start in range(0, len(user_ids), _CHUNK):
        chunk = user_ids[start : start + _CHUNK]
        await conn.execute(delete(remote_devices).where(remote_devices.c.user_id.in_(chunk)))
        await conn.execute(
            delete(remote_device_lists).where(remote_device_lists.c.user_id.in_(chunk))
        )
