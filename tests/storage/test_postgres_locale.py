"""A real PostgreSQL database created with a non-C locale, refused and then allowed."""

from __future__ import annotations

import pytest

from ranvier.storage.errors import StorageStartupError
from ranvier.storage.schema import prepare_database, schema_status
from ranvier.storage.testing import temporary_postgres_database

pytestmark = pytest.mark.postgres

# The one non-C libc locale every glibc system has; 'C.UTF-8' still sorts by rules outside
# PostgreSQL's control, so it counts as unsafe like any other.
UNSAFE_LOCALE = "C.UTF-8"


async def test_unsafe_locale_refused_unless_allowed(postgres_server: str) -> None:
    async with temporary_postgres_database(
        postgres_server, collate=UNSAFE_LOCALE, ctype=UNSAFE_LOCALE
    ) as config:
        with pytest.raises(StorageStartupError) as caught:
            await prepare_database(config)
        message = str(caught.value)
        assert f"LC_COLLATE is '{UNSAFE_LOCALE}'" in message
        assert "allow_unsafe_locale: true" in message and "`database` section" in message
        assert "LC_COLLATE='C' LC_CTYPE='C' TEMPLATE=template0" in message

        allowed = config.model_copy(update={"allow_unsafe_locale": True})
        db = await prepare_database(allowed)
        try:
            assert (await schema_status(db)).up_to_date
            assert len(db.warnings) == 1
            assert "allow_unsafe_locale is true" in db.warnings[0]
        finally:
            await db.close()


async def test_c_locale_starts_without_warnings(postgres_server: str) -> None:
    async with temporary_postgres_database(postgres_server) as config:
        db = await prepare_database(config)
        try:
            assert db.warnings == []
            assert db.dialect == "postgresql"
            assert db.description.startswith("PostgreSQL ")
        finally:
            await db.close()


async def test_unreachable_server_is_a_startup_error() -> None:
    from ranvier.config.models import DatabaseConfig

    config = DatabaseConfig(
        name="psycopg2",
        args={"database": "x", "host": "127.0.0.1", "port": 1, "user": "nobody"},
    )
    expected = r"Cannot connect to PostgreSQL at 127\.0\.0\.1:1/x"
    with pytest.raises(StorageStartupError, match=expected):
        await prepare_database(config)
