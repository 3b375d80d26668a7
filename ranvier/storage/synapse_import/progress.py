"""What `ranvier import-synapse` leaves in Ranvier's database while an import is unfinished.

Two tables of the import's own, outside the schema's migrations (as port-db's,
storage/port_progress.py):
- `synapse_import_progress`: per step, the key of the last Synapse row copied and whether
  the step is done, so an import stopped midway continues where it stopped;
- `synapse_import_source`: which Synapse database is being imported, so a rerun pointed at
  another one is refused rather than mixing two servers' rows.
The import drops both once its verification pass has passed, and a server refuses to start
while they are there: a half-imported server would lose the rest when its users write.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, MetaData, Table, Text, inspect
from sqlalchemy.engine import Connection

from ranvier.storage.database import Database

# not the schema's metadata: no revision creates this table, and no store reads it
import_metadata = MetaData()

synapse_import_progress = Table(
    "synapse_import_progress",
    import_metadata,
    Column("step", Text, primary_key=True),
    # JSON list of the Synapse key columns of the last row copied; NULL before the first batch
    Column("last_key", Text, nullable=True),
    Column("copied_rows", BigInteger, nullable=False),
    Column("done", Boolean, nullable=False),
)


synapse_import_source = Table(
    "synapse_import_source",
    import_metadata,
    Column("server_name", Text, primary_key=True),
    # where Synapse's database is: its SQLite file, or PostgreSQL's host:port/database
    Column("location", Text, nullable=False),
    Column("started_ts", BigInteger, nullable=False),
)


def has_progress_table(connection: Connection) -> bool:
    return bool(inspect(connection).has_table(synapse_import_progress.name))


async def unfinished_import(db: Database) -> str | None:
    """The refusal for a server starting on a database an import has not finished, or None."""
    async with db.engine.connect() as conn:
        unfinished = await conn.run_sync(has_progress_table)
    if not unfinished:
        return None
    return (
        f"The database at {db.location} is only partly filled: `ranvier import-synapse` "
        "stopped before it finished importing Synapse's data. Run the same `ranvier "
        "import-synapse -c ... --synapse-config ...` command again: it continues where it "
        "stopped, and says when the server may start."
    )
