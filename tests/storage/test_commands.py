"""`ranvier db status | upgrade | downgrade` as the admin sees them."""

from __future__ import annotations

import pytest

from ranvier.config.models import DatabaseConfig, HomeserverConfig
from ranvier.storage.background_updates import schedule_background_update
from ranvier.storage.commands import db_downgrade, db_status, db_upgrade
from ranvier.storage.database import open_database
from ranvier.storage.errors import UnknownRevisionError
from ranvier.storage.schema import head_revision, known_revisions

FIRST = "0001_background_updates"


def homeserver(database: DatabaseConfig) -> HomeserverConfig:
    return HomeserverConfig(
        server_name="example.org", signing_key_path="/nonexistent.key", database=database
    )


def test_status_upgrade_downgrade_round_trip(database_config: DatabaseConfig) -> None:
    config = homeserver(database_config)
    out: list[str] = []

    report = db_status(config, out.append)
    assert "Schema revision: none (empty database)" in report
    assert f"Newest revision this Ranvier knows: {head_revision()}" in report
    assert f"Pending migrations ({len(known_revisions())}):" in report
    assert f"  {FIRST}: Create background_updates" in report
    engine = "SQLite" if database_config.name == "sqlite3" else "PostgreSQL"
    assert report.startswith(f"Database: {engine} ")

    out.clear()
    summary = db_upgrade(config, echo=out.append)
    applied = len(known_revisions())
    assert summary == f"Done: the schema is at {head_revision()} ({applied} applied)."
    assert out[0].startswith("Database: ")
    assert any(f"applied {FIRST}" in line for line in out)
    assert summary not in out  # the caller prints it

    report = db_status(config, lambda _line: None)
    assert f"Schema revision: {head_revision()}" in report
    assert "Schema is up to date." in report
    assert "Background updates: none pending." in report

    out.clear()
    summary = db_downgrade(config, FIRST, out.append)
    assert f"Done: the schema is at {FIRST} (" in summary
    assert any("reverted 0002_server_info" in line for line in out)
    report = db_status(config, lambda _line: None)
    assert f"Schema revision: {FIRST}" in report
    pending = len(known_revisions()) - 1
    assert f"Pending migrations ({pending}):\n  0002_server_info: " in report

    summary = db_downgrade(config, "base", lambda _line: None)
    assert "tables are gone" in summary


def test_unknown_revision_is_a_clear_error(database_config: DatabaseConfig) -> None:
    config = homeserver(database_config)
    with pytest.raises(UnknownRevisionError) as caught:
        db_downgrade(config, "0042_missing", lambda _line: None)
    assert "Unknown schema revision '0042_missing'" in str(caught.value)
    assert FIRST in str(caught.value)
    with pytest.raises(UnknownRevisionError):
        db_upgrade(config, "0042_missing", lambda _line: None)


async def test_status_lists_pending_background_updates_with_progress(
    database_config: DatabaseConfig,
) -> None:
    from ranvier.storage.commands import db_status_async, db_upgrade_async

    config = homeserver(database_config)
    await db_upgrade_async(config)
    db = await open_database(database_config)
    try:
        async with db.transaction() as conn:
            await schedule_background_update(conn, "populate_x", ordering=2, progress={"n": 7})
            await schedule_background_update(conn, "index_x", ordering=3, depends_on="populate_x")
    finally:
        await db.close()
    report = await db_status_async(config)
    assert "Background updates pending (2, in run order):" in report
    assert '  populate_x (ordering 2): 0 items done in 0.0 s; progress {"n":7}' in report
    assert "  index_x (ordering 3, after populate_x): " in report
