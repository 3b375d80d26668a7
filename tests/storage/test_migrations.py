"""Schema revisions on both engines: up, down, status, and the refusals at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

import ranvier
from ranvier.config.models import DatabaseConfig, HomeserverConfig
from ranvier.storage.database import Database, open_database
from ranvier.storage.errors import StorageError, StorageStartupError, UnknownRevisionError
from ranvier.storage.schema import (
    VERSION_TABLE,
    downgrade,
    head_revision,
    known_revisions,
    prepare_database,
    schema_status,
    upgrade,
)
from ranvier.storage.server_info import get_server_info

FIRST, SECOND = "0001_background_updates", "0002_server_info"
# the tables each revision adds, in order
TABLES_BY_REVISION = {
    FIRST: {"background_updates"},
    SECOND: {"server_info"},
    "0003_accounts": {
        "users",
        "profiles",
        "devices",
        "access_tokens",
        "refresh_tokens",
        "login_tokens",
        "user_ips",
        "ui_auth_sessions",
        "ui_auth_sessions_credentials",
    },
    "0004_user_data": {
        "stream_positions",
        "account_data",
        "room_account_data",
        "user_filters",
        "profile_fields",
    },
    "0005_registration_tokens": {"registration_tokens", "registration_token_sessions"},
    "0006_rooms": {
        "rooms",
        "events",
        "event_edges",
        "event_auth",
        "room_forward_extremities",
        "state_groups",
        "state_group_state",
        "event_to_state_groups",
        "current_state_events",
        "room_memberships",
        "event_txn_ids",
        "redactions",
        "event_relations",
        "room_aliases",
    },
    "0007_event_reports": {"event_reports", "room_reports"},
    "0008_search_and_user_directory": {
        "event_search",
        "user_directory_public_rooms",
        "user_directory_remote_users",
    },
    "0009_room_admin": {"blocked_rooms", "room_deletions"},
    "0010_ephemeral": {"receipts", "device_inbox", "device_inbox_txns", "presence"},
    "0011_push": {
        "push_rules",
        "push_rule_settings",
        "push_rules_stream",
        "event_push_actions",
        "push_read_positions",
        "pushers",
    },
    "0012_media": {"local_media", "local_media_thumbnails"},
    "0013_e2e_keys": {
        "e2e_device_keys",
        "e2e_one_time_keys",
        "e2e_fallback_keys",
        "e2e_cross_signing_keys",
        "e2e_cross_signing_signatures",
        "device_lists_stream",
    },
    "0014_room_keys": {"e2e_room_keys_versions", "e2e_room_keys", "dehydrated_devices"},
    "0015_url_previews": {"url_previews"},
    "0016_openid_user_reports": {"open_id_tokens", "user_reports"},
    "0018_user_signature_stream": {"user_signature_stream"},
    "0019_federation": {"server_keys_json", "destinations"},
    "0020_federated_rooms": {"received_transactions", "destination_rooms"},
    "0021_federated_edus": {"federation_outbox"},
    "0022_remote_devices": {"remote_device_lists", "remote_devices"},
    "0023_remote_media": {"remote_media_cache", "remote_media_cache_thumbnails"},
    "0024_appservices": {"appservice_state", "appservice_txns", "appservice_room_list"},
    "0025_sliding_sync": {"sliding_sync_bump_stamps", "sliding_sync_positions"},
    "0028_email_notifications": {"email_pusher_throttle", "threepid_id_server_bindings"},
    "0030_admin_api": {"ratelimit_override"},
    "0026_sso": {"user_external_ids", "sso_sessions", "device_auth_providers"},
    "0027_threepids": {
        "threepid_validation_session",
        "threepid_validation_token",
        "user_threepids",
    },
}
# the tables SQLite's FTS5 keeps behind each full text index, named after it
FTS5_SHADOW_SUFFIXES = ("_data", "_idx", "_content", "_docsize", "_config")


async def tables(db: Database) -> set[str]:
    def names(conn: Connection) -> set[str]:
        found = set(inspect(conn).get_table_names()) - {VERSION_TABLE}
        shadows = {name + suffix for name in found for suffix in FTS5_SHADOW_SUFFIXES}
        return found - shadows

    async with db.engine.connect() as conn:
        return await conn.run_sync(names)


def tables_up_to(revision: str | None) -> set[str]:
    expected: set[str] = set()
    for known in known_revisions():
        if revision is None:
            break
        expected |= TABLES_BY_REVISION.get(known, set())
        if known == revision:
            break
    return expected


def homeserver_config(database: DatabaseConfig, server_name: str) -> HomeserverConfig:
    return HomeserverConfig(
        server_name=server_name, signing_key_path="/nonexistent.key", database=database
    )


def test_revisions_are_linear_and_fit_the_version_column() -> None:
    revisions = known_revisions()
    assert revisions[:2] == [FIRST, SECOND]
    assert head_revision() == revisions[-1]
    # alembic's version column is VARCHAR(32)
    assert all(len(revision) <= 32 for revision in revisions)


async def test_up_to_head_all_the_way_down_and_back(database_config: DatabaseConfig) -> None:
    db = await open_database(database_config)
    try:
        status = await schema_status(db)
        assert status.current is None
        assert status.pending == known_revisions()
        assert not status.up_to_date and not status.ahead_of_code
        assert await tables(db) == set()

        lines: list[str] = []
        applied = await upgrade(db, "head", lines.append)
        assert applied == len(known_revisions())
        assert any(f"applied {FIRST}" in line for line in lines)
        assert await tables(db) == tables_up_to(head_revision())
        status = await schema_status(db)
        assert status.current == status.head == head_revision()
        assert status.pending == [] and status.up_to_date

        # one step down: the second revision's table goes, the first's stays
        assert await downgrade(db, FIRST) == len(known_revisions()) - 1
        assert await tables(db) == tables_up_to(FIRST)
        status = await schema_status(db)
        assert status.current == FIRST
        assert status.pending == known_revisions()[1:]

        lines.clear()
        assert await downgrade(db, "base", lines.append) == 1
        assert await tables(db) == set()
        assert (await schema_status(db)).current is None
        assert any(f"reverted {FIRST}" in line for line in lines)

        await upgrade(db, FIRST)
        assert await tables(db) == tables_up_to(FIRST)
        await upgrade(db)
        assert await tables(db) == tables_up_to(head_revision())
        assert (await schema_status(db)).up_to_date
    finally:
        await db.close()


async def test_downgrade_keeps_rows_of_tables_it_does_not_touch(
    database_config: DatabaseConfig,
) -> None:
    db = await open_database(database_config)
    try:
        await upgrade(db)
        async with db.transaction() as conn:
            await conn.execute(
                text("INSERT INTO background_updates (update_name, ordering) VALUES ('x', 3)")
            )
        await downgrade(db, FIRST)
        await upgrade(db)
        async with db.read() as conn:
            rows = (
                await conn.execute(text("SELECT update_name, ordering FROM background_updates"))
            ).all()
        # later revisions queue their own updates again; the admin's row survives untouched
        assert ("x", 3) in [tuple(row) for row in rows]
    finally:
        await db.close()


async def test_moving_the_wrong_way_or_to_unknown_revisions_is_refused(
    database_config: DatabaseConfig,
) -> None:
    db = await open_database(database_config)
    try:
        await upgrade(db)
        with pytest.raises(UnknownRevisionError, match=r"'0999_nope'.*knows: 0001_background"):
            await downgrade(db, "0999_nope")
        with pytest.raises(UnknownRevisionError, match="'0999_nope'"):
            await upgrade(db, "0999_nope")
        await downgrade(db, FIRST)
        with pytest.raises(StorageError, match=f"older than {SECOND}.*db upgrade {SECOND}"):
            await downgrade(db, SECOND)
        assert (await schema_status(db)).current == FIRST
    finally:
        await db.close()


async def test_prepare_database_applies_pending_migrations(
    database_config: DatabaseConfig,
) -> None:
    db = await open_database(database_config)
    await upgrade(db, FIRST)
    await db.close()

    lines: list[str] = []
    db = await prepare_database(database_config, lines.append)
    try:
        status = await schema_status(db)
        assert status.up_to_date
        assert await tables(db) == tables_up_to(head_revision())
        assert any(f"applied {SECOND}" in line for line in lines)
        assert not any(f"applied {FIRST}" in line for line in lines)
    finally:
        await db.close()


async def test_database_newer_than_code_is_refused_with_how_to_roll_back(
    database_config: DatabaseConfig,
) -> None:
    db = await prepare_database(database_config)
    try:
        async with db.transaction() as conn:
            await conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099_future'"))
        status = await schema_status(db)
        assert status.ahead_of_code and status.current == "0099_future"
        assert status.pending == [] and not status.up_to_date
        with pytest.raises(StorageStartupError, match="0099_future"):
            await upgrade(db)
        with pytest.raises(StorageError, match="with the Ranvier version that upgraded"):
            await downgrade(db, FIRST)
    finally:
        await db.close()

    with pytest.raises(StorageStartupError) as caught:
        await prepare_database(database_config)
    message = str(caught.value)
    head = head_revision()
    assert "revision 0099_future" in message
    assert f"only knows revisions up to {head}" in message
    assert f"`ranvier db downgrade {head} -c <homeserver.yaml>` with the newer Ranvier" in message
    assert "or upgrade Ranvier" in message
    assert ranvier.__version__ in message


async def test_a_database_not_made_by_ranvier_is_refused(database_config: DatabaseConfig) -> None:
    db = await open_database(database_config)
    try:
        async with db.transaction() as conn:
            await conn.execute(text("CREATE TABLE schema_version (version INTEGER)"))
    finally:
        await db.close()
    with pytest.raises(StorageStartupError, match=r"already has tables \(schema_version\)"):
        await prepare_database(database_config)


async def test_server_name_is_recorded_and_a_change_is_refused(
    database_config: DatabaseConfig,
) -> None:
    db = await prepare_database(homeserver_config(database_config, "one.example"))
    try:
        info = await get_server_info(db)
        assert info is not None
        assert info.server_name == "one.example"
        assert info.last_started_version == ranvier.__version__
    finally:
        await db.close()

    db = await prepare_database(homeserver_config(database_config, "one.example"))
    await db.close()

    with pytest.raises(StorageStartupError) as caught:
        await prepare_database(homeserver_config(database_config, "two.example"))
    assert "belongs to the server 'one.example'" in str(caught.value)
    assert "server_name: two.example" in str(caught.value)


async def test_sqlite_database_is_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    config = DatabaseConfig(name="sqlite3", args={"database": str(tmp_path / "h.db")})
    db = await open_database(config)
    try:
        async with db.read() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one() >= 1000
        assert db.dialect == "sqlite"
        assert db.description.startswith("SQLite 3.")
    finally:
        await db.close()


async def test_sqlite_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    config = DatabaseConfig(name="sqlite3", args={"database": str(tmp_path / "no" / "h.db")})
    with pytest.raises(StorageStartupError, match="does not exist"):
        await open_database(config)


async def test_unknown_database_args_are_refused(tmp_path: Path) -> None:
    config = DatabaseConfig(
        name="sqlite3", args={"database": str(tmp_path / "h.db"), "databse": "typo"}
    )
    with pytest.raises(StorageStartupError, match="does not understand for sqlite3: databse"):
        await open_database(config)
    config = DatabaseConfig(name="psycopg2", args={"database": "x", "cp_min": 5, "cp_max": 2})
    with pytest.raises(StorageStartupError, match="cp_min must not be more than cp_max"):
        await open_database(config)
