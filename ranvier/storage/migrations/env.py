"""Alembic's environment script for Ranvier.

`ranvier.storage.schema` passes an open connection in `config.attributes["connection"]`;
nothing here reads alembic.ini or the environment.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from ranvier.storage.schema import VERSION_TABLE

config = context.config
connection: Connection | None = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "Ranvier runs its migrations itself: use `ranvier db upgrade|downgrade|status`"
    )

configure_args: dict[str, Any] = {
    "connection": connection,
    "version_table": VERSION_TABLE,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead
    "render_as_batch": True,
    # each revision commits on its own, so a failure keeps the revisions before it
    "transaction_per_migration": True,
    # PostgreSQL has transactional DDL, and so does SQLite once BEGIN is ours (database.py)
    "transactional_ddl": True,
}
on_version_apply = config.attributes.get("on_version_apply")
if on_version_apply is not None:
    configure_args["on_version_apply"] = on_version_apply

context.configure(**configure_args)
with context.begin_transaction():
    context.run_migrations()
