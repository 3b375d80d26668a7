"""SQLite that cannot be written at start-up: refused naming the path, the reason and the
fix. A full disk cannot be made on demand here, so these tests stand in the OSError or
SQLite error a full disk gives; tests/integration/test_startup_paths.py covers read-only
paths with real permissions."""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc

from ranvier.storage.database import open_database, sqlite_startup_problem
from ranvier.storage.errors import StorageStartupError
from ranvier.storage.testing import sqlite_database_config


async def test_a_full_disk_refuses_start_up_naming_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_space)
    with pytest.raises(StorageStartupError) as refused:
        await open_database(sqlite_database_config(tmp_path / "homeserver.db"))
    message = str(refused.value)
    assert f"at {tmp_path}: the disk is full" in message
    assert "free some space" in message and "database.args.database" in message
    assert "\n" not in message


def test_sqlite_full_during_migrations_is_explained() -> None:
    config = sqlite_database_config("/var/lib/ranvier/homeserver.db")
    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.Error as error:
            raise sqlalchemy.exc.OperationalError("INSERT ...", {}, error) from error
    except sqlalchemy.exc.OperationalError as wrapped:
        message = sqlite_startup_problem(wrapped, config)
    assert message is not None
    assert message.startswith(
        "Cannot write the SQLite database at /var/lib/ranvier/homeserver.db: the disk is full"
    )


def test_other_errors_are_left_alone() -> None:
    config = sqlite_database_config("/var/lib/ranvier/homeserver.db")
    assert sqlite_startup_problem(sqlite3.OperationalError("no such table: x"), config) is None
