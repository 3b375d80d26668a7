"""The steps of `ranvier import-synapse`: for each Synapse table imported, how its rows are
read (in the order of a unique key, so an interrupted step resumes after the last row it
wrote), turned into Ranvier's rows, and counted again on Ranvier's side for verification.

Only this server's users' rows are read: Synapse also keeps other servers' users'
cross-signing keys, which Ranvier fetches again over federation when it needs them.
Positions in Ranvier's streams (account data) are handed out anew, in Synapse's order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ranvier.storage.account_data import TAG_TYPE, account_data, room_account_data
from ranvier.storage.database import insert_for
from ranvier.storage.devices import devices
from ranvier.storage.e2e_keys import (
    e2e_cross_signing_keys,
    e2e_cross_signing_signatures,
    e2e_device_keys,
    e2e_fallback_keys,
    e2e_one_time_keys,
)
from ranvier.storage.filters import user_filters
from ranvier.storage.key_backup import e2e_room_keys, e2e_room_keys_versions
from ranvier.storage.profiles import profiles
from ranvier.storage.push_rules import push_rule_settings, push_rules
from ranvier.storage.pushers import pushers
from ranvier.storage.ratelimit_overrides import ratelimit_override
from ranvier.storage.sso import user_external_ids
from ranvier.storage.stream_ids import (
    ACCOUNT_DATA_STREAM,
    FILTER_IDS,
    next_position,
    stream_positions,
)
from ranvier.storage.threepids import user_threepids
from ranvier.storage.tokens import access_tokens, refresh_tokens
from ranvier.storage.users import users

Row = Mapping[str, Any]


@dataclass(frozen=True)
class ImportContext:
    server_name: str
    now_ms: int
    # SHA-256 of an access token as Ranvier stores it (services' hash_token)
    hash_token: Callable[[str], str]

    def full_user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"


def _bool(value: Any, default: bool = False) -> bool:
    return default if value is None else bool(value)


def _text(value: Any) -> str:
    # PostgreSQL's bytea columns (user_filters.filter_json) arrive as bytes
    return bytes(value).decode() if isinstance(value, bytes | memoryview) else str(value)


async def _count(conn: AsyncConnection, table: Table, *where: Any) -> int:
    return int(
        (await conn.execute(select(func.count()).select_from(table).where(*where))).scalar_one()
    )


Write = Callable[[AsyncConnection, list[dict[str, Any]]], Awaitable[None]]
Count = Callable[[AsyncConnection], Awaitable[int]]


@dataclass(frozen=True)
class Step:
    """One Synapse table read into Ranvier's."""

    name: str  # Synapse's table: shown, and the key of its progress
    select: str  # the columns read, `FROM` and joins (aliased `s`)
    key: tuple[str, ...]  # a unique key of the selected rows, in order
    # SQL on `s` keeping this server's users' rows (`:suffix`, `:suffix_len`), and others
    where: str
    convert: Callable[[Row, ImportContext], dict[str, Any] | None]
    write: Write
    target_count: Count
    stream: str | None = None  # a Ranvier stream each written row takes a position in

    def batch_sql(self, after: Sequence[Any] | None, limit: int) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        conditions = [self.where] if self.where else []
        if after is not None:
            names = [f"k{i}" for i in range(len(self.key))]
            params.update(zip(names, after, strict=True))
            keys = ", ".join(self.key)
            marks = ", ".join(f":{name}" for name in names)
            conditions.append(
                f"({keys}) > ({marks})" if len(self.key) > 1 else f"{self.key[0]} > :k0"
            )
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        order = ", ".join(self.key)
        return f"SELECT {self.select}{where} ORDER BY {order} LIMIT :limit", params

    def count_sql(self) -> str:
        where = f" WHERE {self.where}" if self.where else ""
        return f"SELECT count(*) FROM (SELECT {self.select}{where}) AS counted"


def local(column: str) -> str:
    """SQL true when `column` holds the full ID of a user of this server."""
    return f"substr({column}, length({column}) - :suffix_len + 1) = :suffix"


def _insert(table: Table) -> Write:
    async def write(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        if rows:
            # a batch written before an interruption, but not recorded, is written again
            await conn.execute(insert_for(conn)(table).on_conflict_do_nothing(), rows)

    return write


def _counter(table: Table, *where: Any) -> Count:
    async def count(conn: AsyncConnection) -> int:
        return await _count(conn, table, *where)

    return count


# --- accounts ----------------------------------------------------------------------------


def _user(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["name"],
        "password_hash": row["password_hash"] or None,
        "admin": _bool(row["admin"]),
        "is_guest": _bool(row["is_guest"]),
        "deactivated": _bool(row["deactivated"]),
        "erased": _bool(row["erased"]),
        "user_type": row["user_type"],
        "creation_ts": int(row["creation_ts"] or 0) * 1000,
        "appservice_id": row["appservice_id"],
        "shadow_banned": _bool(row["shadow_banned"]),
        "locked": _bool(row["locked"]),
        "suspended": _bool(row["suspended"]),
        # Synapse leaves approved NULL for users made before approval existed
        "approved": _bool(row["approved"], default=True),
        "consent_version": row["consent_version"],
        "consent_ts": row["consent_ts"],
        "consent_server_notice_sent": row["consent_server_notice_sent"],
    }


def _profile(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": ctx.full_user_id(row["user_id"]),
        "displayname": row["displayname"],
        "avatar_url": row["avatar_url"],
    }


def _ratelimit_override(row: Row, ctx: ImportContext) -> dict[str, Any]:
    # Synapse's admin API stores 0 for a value not given, and reads NULL as 0 too
    return {
        "user_id": row["user_id"],
        "messages_per_second": int(row["messages_per_second"] or 0),
        "burst_count": int(row["burst_count"] or 0),
    }


def _device(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "device_id": row["device_id"],
        "display_name": row["display_name"],
        "last_seen_ts": row["last_seen"],
        "last_seen_ip": row["ip"],
        "last_seen_user_agent": row["user_agent"],
        # Synapse does not record when a device was made: its last use is the best bound
        "creation_ts": int(row["last_seen"] or ctx.now_ms),
    }


def _refresh_token(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        # the same ID, which the session's access token names
        "id": int(row["id"]),
        "token_hash": ctx.hash_token(row["token"]),
        "user_id": row["user_id"],
        "device_id": row["device_id"],
        "expiry_ts": row["expiry_ts"],
        "ultimate_session_expiry_ts": row["ultimate_session_expiry_ts"],
        "creation_ts": ctx.now_ms,
    }


async def _write_refresh_tokens(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await _insert(refresh_tokens)(conn, rows)
    if rows and conn.dialect.name == "postgresql":
        # the rows came with their IDs: new refresh tokens must be numbered after them
        await conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('refresh_tokens', 'id'), "
                "(SELECT max(id) FROM refresh_tokens))"
            )
        )


def _access_token(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "token_hash": ctx.hash_token(row["token"]),
        "user_id": row["user_id"],
        "device_id": row["device_id"],
        "valid_until_ms": row["valid_until_ms"],
        "refresh_token_id": row["refresh_token_id"],
        "used": _bool(row["used"]),
        "puppets_user_id": row["puppets_user_id"],
        "creation_ts": int(row["last_validated"] or ctx.now_ms),
    }


def _same(*columns: str) -> Callable[[Row, ImportContext], dict[str, Any]]:
    def convert(row: Row, ctx: ImportContext) -> dict[str, Any]:
        return {column: row[column] for column in columns}

    return convert


# --- end-to-end encryption ---------------------------------------------------------------


def _device_keys(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "device_id": row["device_id"],
        "key_json": row["key_json"],
        "ts": row["ts_added_ms"],
    }


def _one_time_key(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "device_id": row["device_id"],
        "algorithm": row["algorithm"],
        "key_id": row["key_id"],
        "key_json": row["key_json"],
        "ts": row["ts_added_ms"],
    }


def _fallback_key(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "device_id": row["device_id"],
        "algorithm": row["algorithm"],
        "key_id": row["key_id"],
        "key_json": row["key_json"],
        "used": _bool(row["used"]),
    }


def _cross_signing_key(row: Row, ctx: ImportContext) -> dict[str, Any] | None:
    key = orjson.loads(row["keydata"])
    public_keys = list((key.get("keys") or {}).values())
    if len(public_keys) != 1:
        # Synapse only stores keys with exactly one public key; anything else is damage
        return None
    return {
        "user_id": row["user_id"],
        "usage": row["keytype"],
        "public_key": public_keys[0],
        "key_json": row["keydata"],
        "ts": ctx.now_ms,
    }


def _signature(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "key_id": row["key_id"],
        "target_user_id": row["target_user_id"],
        "target_key": row["target_device_id"],
        "signature": row["signature"],
    }


def _backup_version(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "version": int(row["version"]),
        "algorithm": row["algorithm"],
        "auth_data": row["auth_data"],
        "etag": int(row["etag"] or 0),
        "deleted": _bool(row["deleted"]),
    }


def _room_key(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "version": int(row["version"]),
        "room_id": row["room_id"],
        "session_id": row["session_id"],
        "first_message_index": int(row["first_message_index"] or 0),
        "forwarded_count": int(row["forwarded_count"] or 0),
        "is_verified": _bool(row["is_verified"]),
        "session_data": row["session_data"],
    }


# --- account data, tags, push rules, filters ---------------------------------------------


def _account_data(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "account_data_type": row["account_data_type"],
        "content": row["content"],
    }


def _room_account_data(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "room_id": row["room_id"],
        "account_data_type": row["account_data_type"],
        "content": row["content"],
    }


def _tag(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["user_id"],
        "room_id": row["room_id"],
        "tag": row["tag"],
        "content": orjson.loads(row["content"]),
    }


async def _write_tags(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Synapse keeps one row per tag; Ranvier one `m.tag` room account data per room. A room's
    tags may span two batches, so each batch merges into what is already there."""
    rooms: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        rooms.setdefault((row["user_id"], row["room_id"]), {})[row["tag"]] = row["content"]
    for (user_id, room_id), tags in rooms.items():
        where = (
            (room_account_data.c.user_id == user_id)
            & (room_account_data.c.room_id == room_id)
            & (room_account_data.c.account_data_type == TAG_TYPE)
        )
        existing = (
            await conn.execute(select(room_account_data.c.content).where(where))
        ).scalar_one_or_none()
        merged = dict(orjson.loads(existing).get("tags", {})) if existing else {}
        merged.update(tags)
        content = orjson.dumps({"tags": merged}).decode()
        position = await next_position(conn, ACCOUNT_DATA_STREAM)
        if existing is None:
            await conn.execute(
                room_account_data.insert().values(
                    user_id=user_id,
                    room_id=room_id,
                    account_data_type=TAG_TYPE,
                    content=content,
                    stream_id=position,
                )
            )
        else:
            await conn.execute(
                update(room_account_data).where(where).values(content=content, stream_id=position)
            )


async def _count_tags(conn: AsyncConnection) -> int:
    rows = await conn.execute(
        select(room_account_data.c.content).where(room_account_data.c.account_data_type == TAG_TYPE)
    )
    return sum(len(orjson.loads(content).get("tags", {})) for (content,) in rows)


# Synapse's priority classes of push rule kinds; -1 marks a server-default rule whose
# actions the user changed
_KINDS = {5: "override", 4: "content", 3: "room", 2: "sender", 1: "underride"}
_CHANGED_DEFAULT = -1


def _short_rule_id(rule_id: str) -> str:
    # Synapse stores "global/<kind>/<rule ID>"
    return rule_id.split("/", 2)[2] if rule_id.count("/") >= 2 else rule_id


def _push_rule(row: Row, ctx: ImportContext) -> dict[str, Any] | None:
    rule_id = _short_rule_id(row["rule_id"])
    if row["priority_class"] == _CHANGED_DEFAULT:
        return {"user_id": row["user_name"], "rule_id": rule_id, "actions": row["actions"]}
    kind = _KINDS.get(row["priority_class"])
    if kind is None:
        return None
    conditions = orjson.loads(row["conditions"] or "[]")
    rule: dict[str, Any] = {
        "user_id": row["user_name"],
        "kind": kind,
        "rule_id": rule_id,
        "priority": row["priority"],
        "conditions": None,
        "pattern": None,
        "actions": row["actions"],
    }
    if kind == "content":
        # Synapse stores a content rule's pattern as its one condition on content.body
        rule["pattern"] = next(
            (c.get("pattern") for c in conditions if c.get("key") == "content.body"), None
        )
    elif kind in ("override", "underride"):
        rule["conditions"] = orjson.dumps(conditions).decode()
    # room and sender rules' condition is their rule ID, which Ranvier derives again
    return rule


async def _write_push_rules(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    rules = [row for row in rows if "kind" in row]
    if rules:
        await conn.execute(insert_for(conn)(push_rules).on_conflict_do_nothing(), rules)
    for row in rows:
        if "kind" not in row:
            await _set_rule(conn, row)


async def _set_rule(conn: AsyncConnection, row: dict[str, Any]) -> None:
    values = {key: value for key, value in row.items() if key not in ("user_id", "rule_id")}
    await conn.execute(
        insert_for(conn)(push_rule_settings)
        .values(**row)
        .on_conflict_do_update(index_elements=["user_id", "rule_id"], set_=values)
    )


async def _count_push_rules(conn: AsyncConnection) -> int:
    changed = await _count(conn, push_rule_settings, push_rule_settings.c.actions.is_not(None))
    return await _count(conn, push_rules) + changed


def _rule_enabled(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["user_name"],
        "rule_id": _short_rule_id(row["rule_id"]),
        "enabled": _bool(row["enabled"], default=True),
    }


async def _write_enabled(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        await _set_rule(conn, row)


def _filter(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": ctx.full_user_id(row["user_id"]),
        "filter_id": int(row["filter_id"]),
        "filter_json": _text(row["filter_json"]),
    }


async def _write_filters(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    await _insert(user_filters)(conn, rows)
    if not rows:
        return
    # Ranvier numbers filters from one counter: move it past the imported IDs
    highest = max(row["filter_id"] for row in rows)
    position = await next_position(conn, FILTER_IDS)
    if position < highest:
        await conn.execute(
            update(stream_positions)
            .where(stream_positions.c.stream_name == FILTER_IDS)
            .values(position=highest)
        )


def _pusher(row: Row, ctx: ImportContext) -> dict[str, Any]:
    return {
        "user_id": row["user_name"],
        "kind": row["kind"],
        "app_id": row["app_id"],
        "pushkey": row["pushkey"],
        "app_display_name": row["app_display_name"],
        "device_display_name": row["device_display_name"],
        "profile_tag": row["profile_tag"] or None,
        # Synapse's API requires lang, but its column allows NULL for old rows
        "lang": row["lang"] or "en",
        "data": _text(row["data"]) if row["data"] is not None else "{}",
        "created_ts": int(row["ts"] or ctx.now_ms),
        # no events are imported yet: the pusher starts with the first event Ranvier stores
        "last_stream_ordering": 0,
        "failing_since": row["failing_since"],
        "device_id": row["device_id"],
    }


_USER_EXISTS = "EXISTS (SELECT 1 FROM users u WHERE u.name = {column})"
_DEVICE_EXISTS = (
    "EXISTS (SELECT 1 FROM devices d WHERE d.user_id = s.user_id "
    "AND d.device_id = s.device_id AND NOT COALESCE(d.hidden, FALSE))"
)

STEPS: tuple[Step, ...] = (
    Step(
        "users",
        "s.name, s.password_hash, s.admin, s.is_guest, s.deactivated, s.user_type, "
        "s.creation_ts, s.appservice_id, s.shadow_banned, s.locked, s.suspended, s.approved, "
        "s.consent_version, s.consent_ts, s.consent_server_notice_sent, "
        "EXISTS (SELECT 1 FROM erased_users e WHERE e.user_id = s.name) AS erased "
        "FROM users s",
        ("s.name",),
        local("s.name"),
        _user,
        _insert(users),
        _counter(users),
    ),
    Step(
        "profiles",
        "s.user_id, s.displayname, s.avatar_url FROM profiles s",
        ("s.user_id",),
        _USER_EXISTS.format(column="'@' || s.user_id || ':' || :server_name"),
        _profile,
        _insert(profiles),
        _counter(profiles),
    ),
    Step(
        "ratelimit_override",
        "s.user_id, s.messages_per_second, s.burst_count FROM ratelimit_override s",
        ("s.user_id",),
        local("s.user_id") + " AND " + _USER_EXISTS.format(column="s.user_id"),
        _ratelimit_override,
        _insert(ratelimit_override),
        _counter(ratelimit_override),
    ),
    Step(
        "devices",
        "s.user_id, s.device_id, s.display_name, s.last_seen, s.ip, s.user_agent FROM devices s",
        ("s.user_id", "s.device_id"),
        f"{local('s.user_id')} AND NOT COALESCE(s.hidden, FALSE) AND "
        + _USER_EXISTS.format(column="s.user_id"),
        _device,
        _insert(devices),
        _counter(devices),
    ),
    Step(
        "refresh_tokens",
        "s.id, s.user_id, s.device_id, s.token, s.expiry_ts, s.ultimate_session_expiry_ts "
        "FROM refresh_tokens s",
        ("s.id",),
        # a refresh token already exchanged for a newer one is spent (see access_tokens)
        f"{local('s.user_id')} AND s.next_token_id IS NULL AND "
        + _USER_EXISTS.format(column="s.user_id"),
        _refresh_token,
        _write_refresh_tokens,
        _counter(refresh_tokens),
    ),
    Step(
        "access_tokens",
        "s.id, s.user_id, s.device_id, s.token, s.valid_until_ms, s.puppets_user_id, "
        "s.last_validated, s.used, "
        # only the refresh tokens imported: the newest of each session
        "CASE WHEN EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.id = s.refresh_token_id "
        "AND r.next_token_id IS NULL) THEN s.refresh_token_id END AS refresh_token_id "
        "FROM access_tokens s",
        ("s.id",),
        local("s.user_id") + " AND " + _USER_EXISTS.format(column="s.user_id"),
        _access_token,
        _insert(access_tokens),
        _counter(access_tokens),
    ),
    Step(
        "user_threepids",
        "s.user_id, s.medium, s.address, s.validated_at, s.added_at FROM user_threepids s",
        ("s.medium", "s.address"),
        local("s.user_id") + " AND " + _USER_EXISTS.format(column="s.user_id"),
        _same("user_id", "medium", "address", "validated_at", "added_at"),
        _insert(user_threepids),
        _counter(user_threepids),
    ),
    Step(
        "user_external_ids",
        "s.auth_provider, s.external_id, s.user_id FROM user_external_ids s",
        ("s.auth_provider", "s.external_id"),
        local("s.user_id") + " AND " + _USER_EXISTS.format(column="s.user_id"),
        _same("auth_provider", "external_id", "user_id"),
        _insert(user_external_ids),
        _counter(user_external_ids),
    ),
    Step(
        "e2e_device_keys_json",
        "s.user_id, s.device_id, s.ts_added_ms, s.key_json FROM e2e_device_keys_json s",
        ("s.user_id", "s.device_id"),
        f"{local('s.user_id')} AND {_DEVICE_EXISTS}",
        _device_keys,
        _insert(e2e_device_keys),
        _counter(e2e_device_keys),
    ),
    Step(
        "e2e_one_time_keys_json",
        "s.user_id, s.device_id, s.algorithm, s.key_id, s.ts_added_ms, s.key_json "
        "FROM e2e_one_time_keys_json s",
        ("s.user_id", "s.device_id", "s.algorithm", "s.key_id"),
        f"{local('s.user_id')} AND {_DEVICE_EXISTS}",
        _one_time_key,
        _insert(e2e_one_time_keys),
        _counter(e2e_one_time_keys),
    ),
    Step(
        "e2e_fallback_keys_json",
        "s.user_id, s.device_id, s.algorithm, s.key_id, s.key_json, s.used "
        "FROM e2e_fallback_keys_json s",
        ("s.user_id", "s.device_id", "s.algorithm"),
        f"{local('s.user_id')} AND {_DEVICE_EXISTS}",
        _fallback_key,
        _insert(e2e_fallback_keys),
        _counter(e2e_fallback_keys),
    ),
    Step(
        "e2e_cross_signing_keys",
        # Synapse keeps every key a user ever had; the newest of each kind is theirs now
        "s.user_id, s.keytype, s.keydata FROM e2e_cross_signing_keys s",
        ("s.user_id", "s.keytype"),
        local("s.user_id") + " AND s.stream_id = (SELECT max(n.stream_id) FROM "
        "e2e_cross_signing_keys n WHERE n.user_id = s.user_id AND n.keytype = s.keytype)",
        _cross_signing_key,
        _insert(e2e_cross_signing_keys),
        _counter(e2e_cross_signing_keys),
    ),
    Step(
        "e2e_cross_signing_signatures",
        "DISTINCT s.user_id, s.key_id, s.target_user_id, s.target_device_id, s.signature "
        "FROM e2e_cross_signing_signatures s",
        ("s.target_user_id", "s.target_device_id", "s.user_id", "s.key_id"),
        local("s.user_id"),
        _signature,
        _insert(e2e_cross_signing_signatures),
        _counter(e2e_cross_signing_signatures),
    ),
    Step(
        "e2e_room_keys_versions",
        "s.user_id, s.version, s.algorithm, s.auth_data, s.deleted, s.etag "
        "FROM e2e_room_keys_versions s",
        ("s.user_id", "s.version"),
        local("s.user_id") + " AND " + _USER_EXISTS.format(column="s.user_id"),
        _backup_version,
        _insert(e2e_room_keys_versions),
        _counter(e2e_room_keys_versions),
    ),
    Step(
        "e2e_room_keys",
        "s.user_id, s.version, s.room_id, s.session_id, s.first_message_index, "
        "s.forwarded_count, s.is_verified, s.session_data FROM e2e_room_keys s",
        ("s.user_id", "s.version", "s.room_id", "s.session_id"),
        local("s.user_id"),
        _room_key,
        _insert(e2e_room_keys),
        _counter(e2e_room_keys),
    ),
    Step(
        "account_data",
        "s.user_id, s.account_data_type, s.content, s.stream_id FROM account_data s",
        ("s.stream_id", "s.user_id", "s.account_data_type"),
        local("s.user_id") + " AND " + _USER_EXISTS.format(column="s.user_id"),
        _account_data,
        _insert(account_data),
        _counter(account_data),
        stream=ACCOUNT_DATA_STREAM,
    ),
    Step(
        "room_account_data",
        "s.user_id, s.room_id, s.account_data_type, s.content, s.stream_id "
        "FROM room_account_data s",
        ("s.stream_id", "s.user_id", "s.room_id", "s.account_data_type"),
        # tags are Synapse's room_tags (below), whatever a client stored under m.tag here
        f"{local('s.user_id')} AND s.account_data_type <> '{TAG_TYPE}' AND "
        + _USER_EXISTS.format(column="s.user_id"),
        _room_account_data,
        _insert(room_account_data),
        _counter(room_account_data, room_account_data.c.account_data_type != TAG_TYPE),
        stream=ACCOUNT_DATA_STREAM,
    ),
    Step(
        "room_tags",
        "s.user_id, s.room_id, s.tag, s.content FROM room_tags s",
        ("s.user_id", "s.room_id", "s.tag"),
        local("s.user_id") + " AND " + _USER_EXISTS.format(column="s.user_id"),
        _tag,
        _write_tags,
        _count_tags,
    ),
    Step(
        "push_rules",
        "s.user_name, s.rule_id, s.priority_class, s.priority, s.conditions, s.actions "
        "FROM push_rules s",
        ("s.user_name", "s.rule_id"),
        local("s.user_name") + " AND " + _USER_EXISTS.format(column="s.user_name"),
        _push_rule,
        _write_push_rules,
        _count_push_rules,
    ),
    Step(
        "push_rules_enable",
        "s.user_name, s.rule_id, s.enabled FROM push_rules_enable s",
        ("s.user_name", "s.rule_id"),
        local("s.user_name") + " AND " + _USER_EXISTS.format(column="s.user_name"),
        _rule_enabled,
        _write_enabled,
        _counter(push_rule_settings, push_rule_settings.c.enabled.is_not(None)),
    ),
    Step(
        "pushers",
        # older pushers name their session's access token rather than its device
        "s.id, s.user_name, s.kind, s.app_id, s.pushkey, s.app_display_name, "
        "s.device_display_name, s.profile_tag, s.lang, s.data, s.ts, s.failing_since, "
        "COALESCE(s.device_id, (SELECT a.device_id FROM access_tokens a "
        "WHERE a.id = s.access_token)) AS device_id FROM pushers s",
        ("s.id",),
        # a pusher Synapse disabled pushes nothing there, and Ranvier keeps only live ones
        f"{local('s.user_name')} AND COALESCE(s.enabled, TRUE) AND "
        + _USER_EXISTS.format(column="s.user_name"),
        _pusher,
        _insert(pushers),
        _counter(pushers),
    ),
    Step(
        "user_filters",
        "s.user_id, s.filter_id, s.filter_json FROM user_filters s",
        ("s.user_id", "s.filter_id"),
        _USER_EXISTS.format(column="'@' || s.user_id || ':' || :server_name"),
        _filter,
        _write_filters,
        _counter(user_filters),
    ),
)
