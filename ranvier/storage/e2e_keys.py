"""End-to-end encryption keys: device keys, one-time and fallback keys, cross-signing keys and
the signatures users upload for each other's keys.

e2e_device_keys, e2e_one_time_keys and e2e_fallback_keys belong to a device: deleting the
device deletes them (foreign keys with ON DELETE CASCADE, in the deleting transaction).
Every write a client must hear about takes a device_lists position in its own transaction
(storage/device_lists.py). Key objects are stored as the JSON the client uploaded.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ranvier.protocol.e2e_keys import USER_SIGNING, same_signed_content
from ranvier.storage.database import Database
from ranvier.storage.device_lists import (
    USER_KEYS,
    record_device_list_change,
    record_user_signature_change,
)
from ranvier.storage.devices import devices
from ranvier.storage.metadata import metadata

JsonDict = dict[str, Any]
_CHUNK = 500
# a claim that loses a race for a key tries the next one; more losses than this in one
# claim would mean a storm of claimers on one device, and the claim then fails over to
# the fallback key
_CLAIM_ATTEMPTS = 10


def _device_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["user_id", "device_id"], ["devices.user_id", "devices.device_id"], ondelete="CASCADE"
    )


e2e_device_keys = Table(
    "e2e_device_keys",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("key_json", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_id", "device_id"),
    _device_fk(),
)

e2e_one_time_keys = Table(
    "e2e_one_time_keys",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("algorithm", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("key_json", Text, nullable=False),
    # claims hand keys out in upload order (spec: /keys/claim)
    Column("ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_id", "device_id", "algorithm", "key_id"),
    _device_fk(),
    Index("ix_e2e_one_time_keys_claim_order", "user_id", "device_id", "algorithm", "ts"),
)

e2e_fallback_keys = Table(
    "e2e_fallback_keys",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("device_id", Text, nullable=False),
    Column("algorithm", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("key_json", Text, nullable=False),
    Column("used", Boolean, nullable=False),
    PrimaryKeyConstraint("user_id", "device_id", "algorithm"),
    _device_fk(),
)

e2e_cross_signing_keys = Table(
    "e2e_cross_signing_keys",
    metadata,
    Column("user_id", Text, nullable=False),
    # master, self_signing or user_signing: a user has at most one of each
    Column("usage", Text, nullable=False),
    # the public key, which is also the key's ID after "ed25519:"
    Column("public_key", Text, nullable=False),
    Column("key_json", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_id", "usage"),
)

e2e_cross_signing_signatures = Table(
    "e2e_cross_signing_signatures",
    metadata,
    # who signed, and with which key ("ed25519:<device ID or public key>")
    Column("user_id", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    # what was signed: a device of target_user_id, or their master key's public key
    Column("target_user_id", Text, nullable=False),
    Column("target_key", Text, nullable=False),
    Column("signature", Text, nullable=False),
    PrimaryKeyConstraint("target_user_id", "target_key", "user_id", "key_id"),
)


class KeyConflictError(Exception):
    """A key with the same ID is stored with different content; nothing was written."""


class DeviceGoneError(Exception):
    """The device was deleted while its keys were being written; nothing was written."""


class KeyIdInUseError(Exception):
    """A cross-signing public key equals one of the user's device IDs."""


@dataclass(frozen=True)
class KeyCounts:
    one_time_keys: dict[str, int]
    unused_fallback_algorithms: list[str]


@dataclass(frozen=True)
class UploadResult:
    one_time_key_counts: dict[str, int]
    # the device_lists position taken, when the device keys were new
    position: int | None


@dataclass(frozen=True)
class DeviceKeys:
    keys: JsonDict
    display_name: str | None


@dataclass(frozen=True)
class Signature:
    user_id: str
    key_id: str
    target_user_id: str
    target_key: str
    signature: str


@dataclass
class ClaimResult:
    # user_id -> device_id -> "<algorithm>:<key_id>" -> key
    keys: dict[str, dict[str, JsonDict]] = field(default_factory=dict)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _same(stored_json: str, new: Any) -> bool:
    stored = orjson.loads(stored_json)
    if isinstance(stored, dict) and isinstance(new, dict):
        # the same key may come back with different `unsigned` data, which is not the key
        return same_signed_content(stored, new) and stored.get("signatures") == new.get(
            "signatures"
        )
    return bool(stored == new)


def _with_signatures_of(stored: JsonDict, new: JsonDict) -> JsonDict:
    """`stored` with `new`'s signatures added (a new one replaces the same key's old one)."""
    signatures = {user: dict(by_key) for user, by_key in stored.get("signatures", {}).items()}
    for user, by_key in new.get("signatures", {}).items():
        signatures.setdefault(user, {}).update(by_key)
    return {**stored, "signatures": signatures}


def _fallback_key_of(
    user_id: str, device_id: str, algorithm: str
) -> tuple[ColumnElement[bool], ...]:
    """Where a device's fallback key for an algorithm is: it has at most one."""
    return (
        e2e_fallback_keys.c.user_id == user_id,
        e2e_fallback_keys.c.device_id == device_id,
        e2e_fallback_keys.c.algorithm == algorithm,
    )


async def _stored_fallback_key(
    conn: AsyncConnection, where: tuple[ColumnElement[bool], ...]
) -> Row[Any, Any] | None:
    query = select(e2e_fallback_keys.c.key_id, e2e_fallback_keys.c.key_json).where(*where)
    return (await conn.execute(query)).first()


# every sync of a device runs these two; built once
_ONE_TIME_KEY_COUNTS = (
    select(e2e_one_time_keys.c.algorithm, func.count())
    .where(
        e2e_one_time_keys.c.user_id == bindparam("user_id"),
        e2e_one_time_keys.c.device_id == bindparam("device_id"),
    )
    .group_by(e2e_one_time_keys.c.algorithm)
)
_UNUSED_FALLBACK_KEYS = (
    select(e2e_fallback_keys.c.algorithm)
    .where(
        e2e_fallback_keys.c.user_id == bindparam("user_id"),
        e2e_fallback_keys.c.device_id == bindparam("device_id"),
        e2e_fallback_keys.c.used == false(),
    )
    .order_by(e2e_fallback_keys.c.algorithm)
)


class E2eKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- device, one-time and fallback keys -------------------------------------------------

    async def upload(
        self,
        user_id: str,
        device_id: str,
        device_keys: JsonDict | None,
        # (algorithm, key_id) -> key
        one_time_keys: Mapping[tuple[str, str], Any],
        # algorithm -> (key_id, key)
        fallback_keys: Mapping[str, tuple[str, Any]],
        now_ms: int,
    ) -> UploadResult:
        """Store what a /keys/upload carries, all or nothing. Raises KeyConflictError for a
        one-time key ID stored before with other content (new identity keys replace the
        device's), DeviceGoneError if the device is gone."""
        try:
            async with self._db.transaction() as conn:
                # Uploads for one device take turns on its row: the Rust crypto SDK sends a
                # second upload before the first is answered, and without the lock both would
                # find no keys stored and collide inserting the same ones.
                held = await conn.execute(
                    select(devices.c.device_id)
                    .where(devices.c.user_id == user_id, devices.c.device_id == device_id)
                    .with_for_update()
                )
                if held.first() is None:
                    raise DeviceGoneError(f"device {device_id} of {user_id} no longer exists")
                position = None
                if device_keys is not None:
                    position = await self._put_device_keys(
                        conn, user_id, device_id, device_keys, now_ms
                    )
                await self._add_one_time_keys(conn, user_id, device_id, one_time_keys, now_ms)
                for algorithm, (key_id, key) in fallback_keys.items():
                    await self._put_fallback_key(conn, user_id, device_id, algorithm, key_id, key)
                counts = await self._one_time_key_counts(conn, user_id, device_id)
        except IntegrityError as e:
            raise DeviceGoneError(f"device {device_id} of {user_id} no longer exists") from e
        return UploadResult(counts, position)

    async def _put_device_keys(
        self, conn: AsyncConnection, user_id: str, device_id: str, keys: JsonDict, now_ms: int
    ) -> int | None:
        where = (e2e_device_keys.c.user_id == user_id, e2e_device_keys.c.device_id == device_id)
        stored = (await conn.execute(select(e2e_device_keys.c.key_json).where(*where))).scalar()
        if stored is not None:
            previous = orjson.loads(stored)
            if not same_signed_content(previous, keys):
                # spec: /keys/upload "publishes" the device's keys and does not forbid new
                # ones; Synapse replaces them, and clients and SyTest expect it. Room-mates
                # are told (a device list change), and their clients judge the new keys.
                await conn.execute(
                    update(e2e_device_keys).where(*where).values(key_json=_dumps(keys), ts=now_ms)
                )
                await self._forget_device_signatures(conn, user_id, device_id)
                return await record_device_list_change(conn, user_id, [device_id])
            # The same keys with more signatures: the Rust crypto SDK re-sends its first
            # upload with its self-signing key's signature added when cross-signing is set
            # up before that upload was answered. Keep every signature; room-mates re-query.
            signed = _with_signatures_of(previous, keys)
            if signed == previous:
                return None
            await conn.execute(
                update(e2e_device_keys).where(*where).values(key_json=_dumps(signed), ts=now_ms)
            )
            return await record_device_list_change(conn, user_id, [device_id])
        await conn.execute(
            insert(e2e_device_keys).values(
                user_id=user_id, device_id=device_id, key_json=_dumps(keys), ts=now_ms
            )
        )
        # signatures of an earlier device with this ID were of other keys
        await self._forget_device_signatures(conn, user_id, device_id)
        return await record_device_list_change(conn, user_id, [device_id])

    @staticmethod
    async def _forget_device_signatures(
        conn: AsyncConnection, user_id: str, device_id: str
    ) -> None:
        await conn.execute(
            delete(e2e_cross_signing_signatures).where(
                e2e_cross_signing_signatures.c.target_user_id == user_id,
                e2e_cross_signing_signatures.c.target_key == device_id,
            )
        )

    async def _add_one_time_keys(
        self,
        conn: AsyncConnection,
        user_id: str,
        device_id: str,
        keys: Mapping[tuple[str, str], Any],
        now_ms: int,
    ) -> None:
        if not keys:
            return
        names = list(keys)
        stored: dict[tuple[str, str], str] = {}
        for start in range(0, len(names), _CHUNK):
            chunk = names[start : start + _CHUNK]
            rows = await conn.execute(
                select(
                    e2e_one_time_keys.c.algorithm,
                    e2e_one_time_keys.c.key_id,
                    e2e_one_time_keys.c.key_json,
                ).where(
                    e2e_one_time_keys.c.user_id == user_id,
                    e2e_one_time_keys.c.device_id == device_id,
                    or_(
                        *(
                            and_(
                                e2e_one_time_keys.c.algorithm == algorithm,
                                e2e_one_time_keys.c.key_id == key_id,
                            )
                            for algorithm, key_id in chunk
                        )
                    ),
                )
            )
            for row in rows:
                stored[(row.algorithm, row.key_id)] = row.key_json
        new_rows = []
        for (algorithm, key_id), key in keys.items():
            if (algorithm, key_id) in stored:
                if not _same(stored[(algorithm, key_id)], key):
                    raise KeyConflictError(
                        f"one-time key {algorithm}:{key_id} already exists with other content"
                    )
                continue
            new_rows.append(
                {
                    "user_id": user_id,
                    "device_id": device_id,
                    "algorithm": algorithm,
                    "key_id": key_id,
                    "key_json": _dumps(key),
                    "ts": now_ms,
                }
            )
        if new_rows:
            await conn.execute(insert(e2e_one_time_keys), new_rows)

    async def _put_fallback_key(
        self,
        conn: AsyncConnection,
        user_id: str,
        device_id: str,
        algorithm: str,
        key_id: str,
        key: Any,
    ) -> None:
        where = _fallback_key_of(user_id, device_id, algorithm)
        stored = await _stored_fallback_key(conn, where)
        if stored is not None and stored.key_id == key_id and _same(stored.key_json, key):
            # the same key again (a retried upload): it stays used if it was
            return
        await conn.execute(delete(e2e_fallback_keys).where(*where))
        await conn.execute(
            insert(e2e_fallback_keys).values(
                user_id=user_id,
                device_id=device_id,
                algorithm=algorithm,
                key_id=key_id,
                key_json=_dumps(key),
                used=False,
            )
        )

    async def _one_time_key_counts(
        self, conn: AsyncConnection, user_id: str, device_id: str
    ) -> dict[str, int]:
        rows = await conn.execute(
            _ONE_TIME_KEY_COUNTS, {"user_id": user_id, "device_id": device_id}
        )
        return {algorithm: int(count) for algorithm, count in rows}

    async def get_key_counts(self, user_id: str, device_id: str) -> KeyCounts:
        async with self._db.read() as conn:
            counts = await self._one_time_key_counts(conn, user_id, device_id)
            unused = (
                await conn.execute(
                    _UNUSED_FALLBACK_KEYS, {"user_id": user_id, "device_id": device_id}
                )
            ).scalars()
            return KeyCounts(counts, list(unused))

    async def get_device_keys(
        self, user_to_device_ids: Mapping[str, Collection[str] | None]
    ) -> dict[str, dict[str, DeviceKeys]]:
        """user_id -> device_id -> keys with the device's display name, for the named devices
        (None: all of the user's) that uploaded keys."""
        found: dict[str, dict[str, DeviceKeys]] = {}
        users = list(user_to_device_ids)
        async with self._db.read() as conn:
            for start in range(0, len(users), _CHUNK):
                query = (
                    select(
                        e2e_device_keys.c.user_id,
                        e2e_device_keys.c.device_id,
                        e2e_device_keys.c.key_json,
                        devices.c.display_name,
                    )
                    .select_from(
                        e2e_device_keys.join(
                            devices,
                            and_(
                                devices.c.user_id == e2e_device_keys.c.user_id,
                                devices.c.device_id == e2e_device_keys.c.device_id,
                            ),
                        )
                    )
                    .where(e2e_device_keys.c.user_id.in_(users[start : start + _CHUNK]))
                )
                for row in await conn.execute(query):
                    wanted = user_to_device_ids[row.user_id]
                    if wanted is not None and row.device_id not in wanted:
                        continue
                    found.setdefault(row.user_id, {})[row.device_id] = DeviceKeys(
                        orjson.loads(row.key_json), row.display_name
                    )
        return found

    async def claim(self, wanted: Sequence[tuple[str, str, str]]) -> ClaimResult:
        """One key per (user_id, device_id, algorithm): the oldest one-time key, removed as
        it is handed out so that no two claims ever get it, else the fallback key, marked
        used and kept. Devices with neither are left out."""
        result = ClaimResult()
        async with self._db.transaction() as conn:
            for user_id, device_id, algorithm in wanted:
                claimed = await self._claim_one_time_key(conn, user_id, device_id, algorithm)
                if claimed is None:
                    claimed = await self._claim_fallback_key(conn, user_id, device_id, algorithm)
                if claimed is not None:
                    key_id, key = claimed
                    result.keys.setdefault(user_id, {}).setdefault(device_id, {})[
                        f"{algorithm}:{key_id}"
                    ] = key
        return result

    async def _claim_one_time_key(
        self, conn: AsyncConnection, user_id: str, device_id: str, algorithm: str
    ) -> tuple[str, Any] | None:
        of_device = (
            e2e_one_time_keys.c.user_id == user_id,
            e2e_one_time_keys.c.device_id == device_id,
            e2e_one_time_keys.c.algorithm == algorithm,
        )
        for _ in range(_CLAIM_ATTEMPTS):
            # SKIP LOCKED (PostgreSQL; SQLite has one writer at a time anyway): a key another
            # claim holds is passed over rather than waited for and then found gone
            candidate = (
                await conn.execute(
                    select(e2e_one_time_keys.c.key_id, e2e_one_time_keys.c.key_json)
                    .where(*of_device)
                    .order_by(e2e_one_time_keys.c.ts, e2e_one_time_keys.c.key_id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if candidate is None:
                return None
            taken = await conn.execute(
                delete(e2e_one_time_keys).where(
                    *of_device, e2e_one_time_keys.c.key_id == candidate.key_id
                )
            )
            if taken.rowcount == 1:
                return candidate.key_id, orjson.loads(candidate.key_json)
        return None

    async def _claim_fallback_key(
        self, conn: AsyncConnection, user_id: str, device_id: str, algorithm: str
    ) -> tuple[str, Any] | None:
        where = _fallback_key_of(user_id, device_id, algorithm)
        row = await _stored_fallback_key(conn, where)
        if row is None:
            return None
        await conn.execute(update(e2e_fallback_keys).where(*where).values(used=True))
        return row.key_id, orjson.loads(row.key_json)

    # -- cross-signing ----------------------------------------------------------------------

    async def get_cross_signing_keys(
        self, user_ids: Collection[str]
    ) -> dict[str, dict[str, JsonDict]]:
        """user_id -> usage -> key, for users with any."""
        users = list(dict.fromkeys(user_ids))
        found: dict[str, dict[str, JsonDict]] = {}
        async with self._db.read() as conn:
            for start in range(0, len(users), _CHUNK):
                rows = await conn.execute(
                    select(
                        e2e_cross_signing_keys.c.user_id,
                        e2e_cross_signing_keys.c.usage,
                        e2e_cross_signing_keys.c.key_json,
                    ).where(e2e_cross_signing_keys.c.user_id.in_(users[start : start + _CHUNK]))
                )
                for row in rows:
                    found.setdefault(row.user_id, {})[row.usage] = orjson.loads(row.key_json)
        return found

    async def set_cross_signing_keys(
        self, user_id: str, usage_to_key: Mapping[str, tuple[str, JsonDict]], now_ms: int
    ) -> int:
        """Replace the user's keys of these usages (usage -> (public key, key)); returns the
        device_lists position. Raises KeyIdInUseError if a public key is a device ID."""
        async with self._db.transaction() as conn:
            public_keys = [public_key for public_key, _ in usage_to_key.values()]
            clash = (
                await conn.execute(
                    select(devices.c.device_id).where(
                        devices.c.user_id == user_id, devices.c.device_id.in_(public_keys)
                    )
                )
            ).first()
            if clash is not None:
                raise KeyIdInUseError(f"{clash.device_id} is one of the user's device IDs")
            for usage, (public_key, key) in usage_to_key.items():
                await conn.execute(
                    delete(e2e_cross_signing_keys).where(
                        e2e_cross_signing_keys.c.user_id == user_id,
                        e2e_cross_signing_keys.c.usage == usage,
                    )
                )
                await conn.execute(
                    insert(e2e_cross_signing_keys).values(
                        user_id=user_id,
                        usage=usage,
                        public_key=public_key,
                        key_json=_dumps(key),
                        ts=now_ms,
                    )
                )
            if set(usage_to_key) == {USER_SIGNING}:
                # the user-signing key is private to its owner: only they are told
                return await record_user_signature_change(conn, user_id, [user_id])
            return await record_device_list_change(conn, user_id, [USER_KEYS])

    async def add_signatures(
        self,
        signer: str,
        signatures: Sequence[Signature],
        changed_devices: Sequence[str],
        signed_users: Sequence[str] = (),
    ) -> int:
        """Store the signatures (a newer one by the same key of the same target replaces
        the older); returns the device_lists position of the change: of the signer's own
        `changed_devices`, and of the other users whose master keys they signed (a change
        only the signer is told of, as only they see those signatures)."""
        async with self._db.transaction() as conn:
            for signature in signatures:
                await conn.execute(
                    delete(e2e_cross_signing_signatures).where(
                        e2e_cross_signing_signatures.c.user_id == signature.user_id,
                        e2e_cross_signing_signatures.c.key_id == signature.key_id,
                        e2e_cross_signing_signatures.c.target_user_id == signature.target_user_id,
                        e2e_cross_signing_signatures.c.target_key == signature.target_key,
                    )
                )
            await conn.execute(
                insert(e2e_cross_signing_signatures),
                [
                    {
                        "user_id": s.user_id,
                        "key_id": s.key_id,
                        "target_user_id": s.target_user_id,
                        "target_key": s.target_key,
                        "signature": s.signature,
                    }
                    for s in signatures
                ],
            )
            position = 0
            if changed_devices:
                position = await record_device_list_change(conn, signer, changed_devices)
            if signed_users:
                position = await record_user_signature_change(conn, signer, signed_users)
            return position

    async def get_signatures(
        self, target_user_ids: Collection[str], visible_to: str
    ) -> list[Signature]:
        """Signatures on the users' keys made by the users themselves or by `visible_to`."""
        users = list(dict.fromkeys(target_user_ids))
        found: list[Signature] = []
        sig = e2e_cross_signing_signatures.c
        async with self._db.read() as conn:
            for start in range(0, len(users), _CHUNK):
                rows = await conn.execute(
                    select(
                        sig.user_id, sig.key_id, sig.target_user_id, sig.target_key, sig.signature
                    ).where(
                        sig.target_user_id.in_(users[start : start + _CHUNK]),
                        or_(sig.user_id == sig.target_user_id, sig.user_id == visible_to),
                    )
                )
                found.extend(Signature(**row._asdict()) for row in rows)
        return found
