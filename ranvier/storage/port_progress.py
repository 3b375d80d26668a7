"""What `ranvier port-db` leaves in the PostgreSQL database while a port is unfinished.

Two tables of port-db's own, outside the schema's migrations (they exist only while a port
runs or waits to be resumed, and port-db drops them when it has verified its copy):
- `port_db_source`: one row naming the server whose SQLite database is being copied, and
  when a server last started on it, so a rerun can tell it resumes the same port of a
  database nothing has changed since;
- `port_db_progress`: per table, the key of the last row copied and whether it is done, so
  a port stopped midway (Ctrl-C, a crash, a lost connection) continues where it stopped.

A server must not start on a half-copied database, so start-up asks `unfinished_port`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Integer, MetaData, Table, Text, inspect
from sqlalchemy.engine import Connection

from ranvier.storage.database import Database

# not the schema's metadata: these tables are no revision's, and no store reads them
port_metadata = MetaData()

port_db_source = Table(
    "port_db_source",
    port_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("server_name", Text, nullable=False),
    # server_info.last_started_ts of the SQLite database when the port began
    Column("source_last_started_ts", BigInteger, nullable=False),
    Column("sqlite_path", Text, nullable=False),
    Column("started_ts", BigInteger, nullable=False),
)

port_db_progress = Table(
    "port_db_progress",
    port_metadata,
    Column("table_name", Text, primary_key=True),
    # JSON list of the key (primary key columns, or SQLite's rowid) of the last row copied;
    # NULL before the first batch
    Column("last_key", Text, nullable=True),
    Column("copied_rows", BigInteger, nullable=False),
    Column("done", Boolean, nullable=False),
)


def _has_progress_table(connection: Connection) -> bool:
    return bool(inspect(connection).has_table(port_db_progress.name))


async def unfinished_port(db: Database) -> str | None:
    """The refusal for a server starting on a database port-db has not finished filling,
    or None."""
    if db.dialect != "postgresql":
        return None
    async with db.engine.connect() as conn:
        unfinished = await conn.run_sync(_has_progress_table)
    if not unfinished:
        return None
    return (
        f"The database at {db.location} is only partly filled: `ranvier port-db` was "
        "stopped before it finished copying the SQLite database into it. Run the same "
        "`ranvier port-db --sqlite-database ... --postgres-config ...` command again: it "
        "continues where it stopped, and says when the server may start."
    )
