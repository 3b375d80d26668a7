"""The one `MetaData` every table of the live schema is declared on.

Constraint names follow a fixed convention so that migrations (and SQLite's batch mode, which
rebuilds tables) can refer to them by name on every engine. The first migrations made four
unique constraints without a name; their declarations carry the name PostgreSQL gave them
(`<table>_<columns>_key`), and on SQLite they have none. Migrations never import tables
from here: a migration describes the schema as it was when it was written, and
tests/storage/test_declarations_match_migrations.py holds the two together.
"""

from __future__ import annotations

from sqlalchemy import MetaData

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
