"""`ranvier run` where it cannot write: a read-only SQLite directory or file, a media store
or log file it cannot create, a full disk. Start-up refuses with one line that names the
path, the reason, the fix and the setting, never a traceback.

Permission bits do not stop root. Run as root, the server is started without the
capabilities that let root write regardless (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, dropped
with setpriv), so a chmod stops it as it stops any other user."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.homeserver import free_port, write_test_config


def _without_root_overrides() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv is missing: chmod cannot stop root")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def run_refused(config_path: Path) -> str:
    """`ranvier run` that must refuse to start; returns its one line of complaint."""
    command = [sys.executable, "-m", "ranvier.cli", "run", "-c", str(config_path)]
    result = subprocess.run(
        [*_without_root_overrides(), *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Ranvier could not")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def config(tmp_path: Path, **overrides: Any) -> Path:
    database = {"name": "sqlite3", "args": {"database": str(tmp_path / "db" / "homeserver.db")}}
    (tmp_path / "db").mkdir(exist_ok=True)
    return write_test_config(tmp_path, database, free_port(), **overrides)


def test_read_only_sqlite_directory(tmp_path: Path) -> None:
    config_path = config(tmp_path)
    (tmp_path / "db").chmod(0o555)
    try:
        line = run_refused(config_path)
    finally:
        (tmp_path / "db").chmod(0o755)
    assert f"Cannot write the SQLite database's directory at {tmp_path / 'db'}" in line
    assert "permission denied" in line
    assert "write access" in line and "database.args.database" in line


def test_read_only_sqlite_file(tmp_path: Path) -> None:
    config_path = config(tmp_path)
    db_file = tmp_path / "db" / "homeserver.db"
    sqlite3.connect(db_file).close()
    db_file.chmod(0o444)
    line = run_refused(config_path)
    assert f"Cannot write the SQLite database at {db_file}: permission denied" in line
    assert "database.args.database" in line


def test_media_store_that_cannot_be_created(tmp_path: Path) -> None:
    parent = tmp_path / "read-only"
    parent.mkdir()
    config_path = config(tmp_path, media_store_path=str(parent / "media"))
    parent.chmod(0o555)
    try:
        line = run_refused(config_path)
    finally:
        parent.chmod(0o755)
    assert f"Cannot write the media store at {parent / 'media'}: permission denied" in line
    assert "media_store_path" in line


def test_media_store_under_a_file(tmp_path: Path) -> None:
    # a path even root cannot create: one of its directories is a regular file
    (tmp_path / "a-file").write_text("")
    media = tmp_path / "a-file" / "media"
    line = run_refused(config(tmp_path, media_store_path=str(media)))
    assert f"Cannot write the media store at {media}" in line
    assert "part of the path is a file, not a directory" in line
    assert "media_store_path" in line


def test_log_file_that_cannot_be_written(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log_config = tmp_path / "log.config"
    log_config.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "handlers": {
                    "file": {"class": "logging.FileHandler", "filename": str(logs / "hs.log")}
                },
                "root": {"level": "INFO", "handlers": ["file"]},
            }
        )
    )
    config_path = config(tmp_path, log_config=str(log_config))
    logs.chmod(0o555)
    try:
        line = run_refused(config_path)
    finally:
        logs.chmod(0o755)
    assert f"Cannot write the log file at {logs / 'hs.log'}: permission denied" in line
    assert str(log_config) in line


def test_full_disk(tmp_path: Path) -> None:
    # /dev/full answers every write with ENOSPC, as a full disk does; the pid file is the
    # first thing written there
    line = run_refused(config(tmp_path, pid_file="/dev/full"))
    assert "Cannot write the pid file at /dev/full: the disk is full" in line
    assert "free some space" in line and "pid_file" in line


def test_start_in_the_background_says_why_it_failed(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    media = tmp_path / "a-file" / "media"
    config_path = config(tmp_path, media_store_path=str(media))
    result = subprocess.run(
        [sys.executable, "-m", "ranvier.cli", "start", "-c", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Ranvier failed to start (exit code 1)" in result.stderr
    assert f"Cannot write the media store at {media}" in result.stderr
