"""The start-up checks as pure functions: what an admin reads when the server refuses."""

from __future__ import annotations

import pytest

from ranvier.storage.checks import (
    check_postgres_locale,
    check_postgres_version,
    check_sqlite_version,
)
from ranvier.storage.errors import StorageStartupError


def test_sqlite_older_than_3_27_is_refused_with_what_to_do() -> None:
    with pytest.raises(StorageStartupError) as caught:
        check_sqlite_version((3, 26, 0))
    message = str(caught.value)
    assert "SQLite 3.26.0 is too old" in message
    assert "3.27.0 or newer" in message
    assert "python -c" in message and "sqlite3.sqlite_version" in message
    assert "PostgreSQL" in message


@pytest.mark.parametrize("version", [(3, 27, 0), (3, 27, 2), (3, 45, 1), (4, 0, 0)])
def test_sqlite_3_27_and_newer_is_accepted(version: tuple[int, ...]) -> None:
    check_sqlite_version(version)


def test_postgres_older_than_10_is_refused() -> None:
    with pytest.raises(StorageStartupError, match=r"PostgreSQL 9\.6 is too old.*10\.0 or newer"):
        check_postgres_version(90605)
    check_postgres_version(100000)
    check_postgres_version(160002)


def test_c_locale_is_accepted_silently() -> None:
    warning = check_postgres_locale(
        "synapse", encoding="UTF8", collate="C", ctype="C", allow_unsafe_locale=False
    )
    assert warning is None


@pytest.mark.parametrize(("collate", "ctype"), [("en_US.UTF-8", "C"), ("C", "C.UTF-8")])
def test_unsafe_locale_is_refused_naming_the_option_and_the_fix(collate: str, ctype: str) -> None:
    with pytest.raises(StorageStartupError) as caught:
        check_postgres_locale(
            "synapse", encoding="UTF8", collate=collate, ctype=ctype, allow_unsafe_locale=False
        )
    message = str(caught.value)
    assert "unsafe locale" in message
    assert "allow_unsafe_locale: true" in message and "`database` section" in message
    assert "LC_COLLATE='C' LC_CTYPE='C' TEMPLATE=template0" in message
    assert "CREATE DATABASE synapse" in message


def test_unsafe_locale_allowed_gives_a_warning() -> None:
    warning = check_postgres_locale(
        "synapse",
        encoding="UTF8",
        collate="en_US.UTF-8",
        ctype="en_US.UTF-8",
        allow_unsafe_locale=True,
    )
    assert warning is not None
    assert "allow_unsafe_locale is true" in warning
    assert "LC_COLLATE is 'en_US.UTF-8'" in warning


def test_non_utf8_encoding_is_refused_even_when_unsafe_locale_is_allowed() -> None:
    with pytest.raises(StorageStartupError, match=r"encoding 'SQL_ASCII'.*'UTF8'"):
        check_postgres_locale(
            "synapse", encoding="SQL_ASCII", collate="C", ctype="C", allow_unsafe_locale=True
        )
