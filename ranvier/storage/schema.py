"""Schema versions: where the database is, what this code knows, moving between them, and
what server start-up does with a database (`prepare_database`).

Alembic does the work, configured here in code: no alembic.ini is read at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script, ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

import ranvier
from ranvier.config.models import DatabaseConfig, HomeserverConfig
from ranvier.storage.database import Database, open_database
from ranvier.storage.errors import StorageError, StorageStartupError, UnknownRevisionError
from ranvier.storage.port_progress import unfinished_port
from ranvier.storage.server_info import record_server_start
from ranvier.storage.synapse_import.progress import unfinished_import

# the table where the database records its schema revision
VERSION_TABLE = "schema_revision"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BASE = "base"

Progress = Callable[[str], None]


def _ignore(_line: str) -> None:
    pass


def _plural(count: int) -> str:
    return f"{count} migration" + ("" if count == 1 else "s")


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # None: no schema at all yet
    head: str  # the newest revision this code knows
    pending: list[str] = field(default_factory=list)  # to apply to reach head, oldest first
    # the database is at a revision this code does not know: a newer Ranvier upgraded it
    ahead_of_code: bool = False

    @property
    def up_to_date(self) -> bool:
        return not self.ahead_of_code and self.current == self.head


def _config(connection: Connection | None = None, progress: Progress | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    if progress is not None:
        config.attributes["on_version_apply"] = _reporter(progress)
    return config


def _reporter(progress: Progress) -> Callable[..., None]:
    def on_version_apply(*, step: MigrationInfo, **_kwargs: Any) -> None:
        if step.is_upgrade:
            revision = step.up_revision_id
            script = step.up_revision
            summary = script.doc.strip().splitlines()[0] if isinstance(script, Script) else ""
            progress(f"  applied {revision}: {summary}")
        else:
            revision = step.up_revision_id
            back_to = ", ".join(step.down_revision_ids) or BASE
            progress(f"  reverted {revision} (now at {back_to})")

    return on_version_apply


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def known_revisions() -> list[str]:
    """Every revision this code has, oldest first."""
    return [script.revision for script in reversed(list(_scripts().walk_revisions()))]


def known_revision_summaries() -> dict[str, str]:
    """Revision -> the first line of its docstring, oldest first."""
    return {
        script.revision: (script.doc or "").strip().splitlines()[0] if script.doc else ""
        for script in reversed(list(_scripts().walk_revisions()))
    }


def head_revision() -> str:
    heads = _scripts().get_heads()
    if len(heads) != 1:  # a merge was forgotten; never ship that
        raise StorageError(f"migrations have {len(heads)} heads ({', '.join(heads)}), need 1")
    return heads[0]


def _current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    heads = context.get_current_heads()
    if len(heads) > 1:
        raise StorageError(
            f"the database records several schema revisions ({', '.join(heads)}); "
            "it was changed by something other than Ranvier"
        )
    return heads[0] if heads else None


async def current_revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.run_sync(_current_revision)


async def schema_status(db: Database) -> SchemaStatus:
    current = await current_revision(db)
    known = known_revisions()
    head = head_revision()
    if current is not None and current not in known:
        return SchemaStatus(current=current, head=head, pending=[], ahead_of_code=True)
    start = 0 if current is None else known.index(current) + 1
    return SchemaStatus(current=current, head=head, pending=known[start:])


def newer_than_code_message(current: str, head: str) -> str:
    return (
        f"The database schema is at revision {current}, which this Ranvier "
        f"({ranvier.__version__}) does not know: it only knows revisions up to {head}. "
        "A newer Ranvier has upgraded this database. To go back to this version, run "
        f"`ranvier db downgrade {head} -c <homeserver.yaml>` with the newer Ranvier version, "
        "then start this one; or upgrade Ranvier to the version that upgraded the database."
    )


def resolve_revision(revision: str, *, allow_base: bool) -> str:
    """The revision `revision` names ("head" included); UnknownRevisionError if none."""
    if revision == "head":
        return head_revision()
    if allow_base and revision == BASE:
        return BASE
    known = known_revisions()
    if revision not in known:
        also = f", or {BASE} (an empty database)" if allow_base else ""
        raise UnknownRevisionError(
            f"Unknown schema revision {revision!r}. This Ranvier ({ranvier.__version__}) "
            f"knows: {', '.join(known)}{also}"
        )
    return revision


def _order(revision: str | None) -> int:
    """Position in history: -1 for an empty database."""
    if revision is None or revision == BASE:
        return -1
    return known_revisions().index(revision)


def _run_alembic(
    connection: Connection, direction: str, target: str, progress: Progress | None
) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite's batch mode rebuilds tables (copy, drop, rename); with foreign keys
        # enforced the drop would cascade. Off for the duration, checked afterwards.
        # PRAGMA foreign_keys is ignored inside a transaction, hence the raw connection.
        _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        config = _config(connection, progress)
        if direction == "upgrade":
            command.upgrade(config, target)
        else:
            command.downgrade(config, target)
        if connection.in_transaction():
            connection.commit()
        if sqlite:
            broken = _sqlite_pragma(connection, "PRAGMA foreign_key_check")
            if broken:
                raise StorageError(f"migration left rows breaking foreign keys: {broken[:10]}")
    finally:
        if sqlite:
            _sqlite_pragma(connection, "PRAGMA foreign_keys=ON")


def _sqlite_pragma(connection: Connection, pragma: str) -> list[Any]:
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(pragma)
        return list(cursor.fetchall())
    finally:
        cursor.close()


async def upgrade(db: Database, target: str = "head", progress: Progress | None = None) -> int:
    """Apply migrations up to `target`; returns how many were applied."""
    say = progress or _ignore
    status = await schema_status(db)
    if status.ahead_of_code:
        assert status.current is not None
        raise StorageStartupError(newer_than_code_message(status.current, status.head))
    destination = resolve_revision(target, allow_base=False)
    steps = _order(destination) - _order(status.current)
    if steps < 0:
        raise StorageError(
            f"The database is at {status.current}, which is newer than {destination}; "
            f"use `ranvier db downgrade {destination}` to go back"
        )
    if steps == 0:
        say(f"Schema is already at {destination}; nothing to apply.")
        return 0
    say(f"Upgrading schema from {status.current or BASE} to {destination} ({_plural(steps)}):")
    async with db.engine.connect() as conn:
        await conn.run_sync(_run_alembic, "upgrade", destination, progress)
    say(f"Schema is now at {destination}.")
    return steps


async def downgrade(db: Database, revision: str, progress: Progress | None = None) -> int:
    """Revert migrations until the database is at `revision` (or `base`, which drops all of
    Ranvier's tables); returns how many were reverted."""
    say = progress or _ignore
    destination = resolve_revision(revision, allow_base=True)
    status = await schema_status(db)
    if status.ahead_of_code:
        raise StorageError(
            f"The database is at {status.current}, which this Ranvier ({ranvier.__version__}) "
            "does not know, so it cannot revert it: run the downgrade with the Ranvier "
            "version that upgraded the database."
        )
    steps = _order(status.current) - _order(destination)
    if steps < 0:
        raise StorageError(
            f"The database is at {status.current or BASE}, which is older than {destination}; "
            f"use `ranvier db upgrade {destination}` to go forward"
        )
    if steps == 0:
        say(f"Schema is already at {destination}; nothing to revert.")
        return 0
    say(f"Downgrading schema from {status.current} to {destination} ({_plural(steps)}):")
    async with db.engine.connect() as conn:
        await conn.run_sync(_run_alembic, "downgrade", destination, progress)
    say(f"Schema is now at {destination}.")
    return steps


def _table_names(connection: Connection) -> list[str]:
    return list(inspect(connection).get_table_names())


async def _refuse_foreign_database(db: Database) -> None:
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(_table_names)
    if tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StorageStartupError(
            f"The database at {db.location} already has tables ({shown}) but no Ranvier schema "
            f"revision (table {VERSION_TABLE}). It was not created by Ranvier (a Synapse "
            "database?). Point the database section at an empty database; importing a Synapse "
            "database is not supported yet."
        )


async def prepare_database(
    config: DatabaseConfig | HomeserverConfig, progress: Progress | None = None
) -> Database:
    """What server start-up does: open the database, run the start-up checks, refuse a schema
    newer than this code, apply pending migrations and, given a HomeserverConfig, check the
    database belongs to this server_name."""
    database_config = config.database if isinstance(config, HomeserverConfig) else config
    db = await open_database(database_config)
    try:
        status = await schema_status(db)
        if status.ahead_of_code:
            assert status.current is not None
            raise StorageStartupError(newer_than_code_message(status.current, status.head))
        if status.current is None:
            await _refuse_foreign_database(db)
        unfinished = await unfinished_port(db) or await unfinished_import(db)
        if unfinished is not None:
            raise StorageStartupError(unfinished)
        if status.pending:
            await upgrade(db, "head", progress)
        if isinstance(config, HomeserverConfig):
            await record_server_start(db, config.server_name, ranvier.__version__)
    except BaseException:
        await db.close()
        raise
    return db
