"""The tables declared in `ranvier/storage/` are the tables the migrations build.

Stores write SQL from the declarations (`ranvier.storage.metadata`); databases get their
schema only from the Alembic migrations. If the two drift, a statement can be compiled for a
column, key or constraint the database lacks (an ON CONFLICT naming a unique constraint the
migration never made fails only at run time), so the database is built the way the server
builds it at start-up (`prepare_database`), reflected, and compared with the declarations on
both engines.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    inspect,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import TypeEngine

import ranvier.storage
from ranvier.config.models import DatabaseConfig
from ranvier.storage.metadata import metadata
from ranvier.storage.schema import VERSION_TABLE, prepare_database

# event_search is built by raw DDL per engine (an FTS5 virtual table on SQLite, a tsvector
# table on PostgreSQL) and read with text SQL only (storage/search.py), so it has no
# declaration; SQLite's FTS5 keeps these shadow tables behind it
UNDECLARED_TABLES = {VERSION_TABLE, "event_search"}
FTS5_SHADOWS = {
    f"event_search{suffix}" for suffix in ("_data", "_idx", "_content", "_docsize", "_config")
}


def declared_tables() -> dict[str, Table]:
    # each store declares its tables on import; import them all so none is missed
    for module in pkgutil.iter_modules(ranvier.storage.__path__):
        importlib.import_module(f"ranvier.storage.{module.name}")
    return dict(metadata.tables)


def type_family(type_: TypeEngine[Any]) -> str:
    """Types compared roughly: what the engines reflect (VARCHAR for String, DOUBLE
    PRECISION for Float) differs in spelling, not in what a value may hold."""
    for family, base in (
        ("boolean", Boolean),
        ("bigint", BigInteger),
        ("integer", Integer),
        ("float", Float),
        ("text", String),
        ("binary", LargeBinary),
    ):
        if isinstance(type_, base):
            return family
    return type(type_).__name__


def declared_shape(table: Table, dialect: Dialect) -> dict[str, Any]:
    uniques = {
        (str(constraint.name), tuple(column.name for column in constraint.columns))
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    }
    indexes = {
        (index.name, tuple(column.name for column in index.columns), bool(index.unique))
        for index in table.indexes
        if isinstance(index, Index)
    }
    return {
        "columns": {
            # a with_variant type (BIGINT, but INTEGER on SQLite for its rowid) as this
            # engine builds it
            column.name: (type_family(column.type.dialect_impl(dialect)), column.nullable)
            for column in table.columns
        },
        "primary_key": tuple(column.name for column in table.primary_key.columns),
        "unique": uniques,
        "indexes": indexes,
    }


def reflected_shapes(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    shapes: dict[str, dict[str, Any]] = {}
    for name in inspector.get_table_names():
        if name in UNDECLARED_TABLES or name in FTS5_SHADOWS:
            continue
        shapes[name] = {
            "columns": {
                column["name"]: (type_family(column["type"]), column["nullable"])
                for column in inspector.get_columns(name)
            },
            "primary_key": tuple(inspector.get_pk_constraint(name)["constrained_columns"]),
            # by name as well: migrations (and SQLite's batch rebuilds) drop and alter
            # constraints by the names metadata.py's convention gives them
            "unique": {
                (constraint["name"], tuple(constraint["column_names"]))
                for constraint in inspector.get_unique_constraints(name)
            },
            # PostgreSQL also lists the index behind each unique constraint; that is the
            # constraint, compared above
            "indexes": {
                (index["name"], tuple(index["column_names"]), bool(index["unique"]))
                for index in inspector.get_indexes(name)
                if "duplicates_constraint" not in index
            },
        }
    return shapes


async def test_declared_tables_match_what_the_migrations_build(
    database_config: DatabaseConfig,
) -> None:
    db = await prepare_database(database_config)
    try:
        async with db.engine.connect() as conn:
            built = await conn.run_sync(reflected_shapes)
        dialect = db.engine.dialect
    finally:
        await db.close()
    declared = {name: declared_shape(table, dialect) for name, table in declared_tables().items()}
    for table, shape in built.items():
        # SQLite keeps a constraint's name only if CREATE TABLE gave one, and the unique=True
        # columns of the first migrations gave none: there, only the columns can be compared
        unnamed = {columns for name, columns in shape["unique"] if name is None}
        if table in declared and unnamed:
            declared[table]["unique"] = {
                (None if columns in unnamed else name, columns)
                for name, columns in declared[table]["unique"]
            }

    assert sorted(built) == sorted(declared)
    differences = {
        (table, aspect): {"declared": declared[table][aspect], "migrated": built[table][aspect]}
        for table in declared
        for aspect in ("columns", "primary_key", "unique", "indexes")
        if declared[table][aspect] != built[table][aspect]
    }
    assert differences == {}


def test_the_comparison_tells_engines_and_names_apart() -> None:
    # what the comparison rests on: a variant type resolves per engine, and a unique
    # constraint carries its name
    table = declared_tables()["access_tokens"]
    on_sqlite = declared_shape(table, sqlite.dialect())
    on_postgres = declared_shape(table, postgresql.dialect())
    assert on_sqlite["columns"]["id"] == ("integer", False)
    assert on_postgres["columns"]["id"] == ("bigint", False)
    assert on_sqlite["columns"]["device_id"] == ("text", True)
    assert on_sqlite["unique"] == {("access_tokens_token_hash_key", ("token_hash",))}
