"""What a new admin meets in their first hour: logrotate's SIGHUP, `ranvier reload`, a guarded
`ranvier db downgrade`, `register-user` without a terminal, every command's --help, and
`generate-config` with a mistyped server name. Each runs `ranvier` as a process, as the admin
does."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ranvier.cli import _parser
from ranvier.storage.schema import head_revision
from tests.integration.client import request
from tests.integration.homeserver import free_port, start_server, write_test_config


def ranvier(*args: str) -> subprocess.CompletedProcess[str]:
    # stdin is not a terminal here, as under cron, systemd or a script
    return subprocess.run(
        [sys.executable, "-m", "ranvier.cli", *args],
        capture_output=True,
        text=True,
        timeout=90,
        stdin=subprocess.DEVNULL,
    )


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def text_of(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_sighup_reopens_a_rotated_log_file(tmp_path: Path, sqlite_database: Any) -> None:
    log_file = tmp_path / "ranvier.log"
    log_config = tmp_path / "log.yaml"
    log_config.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file)}},
                "root": {"level": "INFO", "handlers": ["file"]},
                "disable_existing_loggers": False,
            }
        )
    )
    port = free_port()
    config = write_test_config(tmp_path, sqlite_database, port, log_config=str(log_config))
    server = start_server(config, port)
    try:
        assert "serving" in text_of(log_file)
        # what logrotate does before its postrotate step
        log_file.rename(tmp_path / "ranvier.log.1")
        os.kill(server.process.pid, signal.SIGHUP)
        wait_for(lambda: "SIGHUP: reopened 1 log file" in text_of(log_file), "the new log file")
        assert server.process.poll() is None, server.log()
        assert request("GET", server.url + "/_matrix/client/versions").status == 200
        assert request("GET", server.url + "/health").status == 200
    finally:
        assert server.stop() == 0, server.log()
    # writing went on in the new file, to the end; the rotated one kept what came before
    assert "Stopped" in text_of(log_file)
    assert "Stopped" not in text_of(tmp_path / "ranvier.log.1")


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A generated homeserver.yaml on a free loopback port; stops a started server after."""
    config = tmp_path / "homeserver.yaml"
    made = ranvier("generate-config", "--server-name", "example.org", "-c", str(config))
    assert made.returncode == 0, made.stderr
    port = free_port()
    raw = yaml.safe_load(config.read_text())
    raw["listeners"][0]["port"] = port
    raw["listeners"][0]["bind_addresses"] = ["127.0.0.1"]
    config.write_text(yaml.safe_dump(raw))
    try:
        yield config, port
    finally:
        ranvier("stop", "-c", str(config))


def test_reload_reopens_the_output_of_a_started_server(
    tmp_path: Path, generated: tuple[Path, int]
) -> None:
    config, port = generated
    not_running = ranvier("reload", "-c", str(config))
    assert not_running.returncode == 1
    assert "Ranvier is not running" in not_running.stderr

    output = tmp_path / "out.log"
    started = ranvier("start", "-c", str(config), "--log-file", str(output))
    assert started.returncode == 0, started.stderr
    output.rename(tmp_path / "out.log.1")
    reloaded = ranvier("reload", "-c", str(config))
    assert reloaded.returncode == 0, reloaded.stderr
    assert "Sent SIGHUP to Ranvier (pid" in reloaded.stdout
    wait_for(lambda: "SIGHUP: " in text_of(output), "the new output file")
    assert f"reopened {output}" in text_of(output)
    assert request("GET", f"http://127.0.0.1:{port}/_matrix/client/versions").status == 200
    assert ranvier("status", "-c", str(config)).returncode == 0


def test_downgrade_is_refused_while_a_server_runs(
    tmp_path: Path, generated: tuple[Path, int]
) -> None:
    config, port = generated
    assert ranvier("start", "-c", str(config)).returncode == 0
    refused = ranvier("db", "downgrade", "-c", str(config), "base", "--yes")
    assert refused.returncode == 1
    assert "Ranvier is running (pid" in refused.stderr
    assert "ranvier stop" in refused.stderr
    assert "Traceback" not in refused.stderr

    # a server the pid file does not show (another config, another machine) holds the
    # database itself
    pid_file = tmp_path / "homeserver.pid"
    pid = pid_file.read_text()
    pid_file.unlink()
    try:
        refused = ranvier("db", "downgrade", "-c", str(config), "base", "--yes")
    finally:
        pid_file.write_text(pid)  # for `ranvier stop`
    assert refused.returncode == 1
    assert "A Ranvier server is using the database" in refused.stderr
    assert "Traceback" not in refused.stderr

    assert request("GET", f"http://127.0.0.1:{port}/_matrix/client/versions").status == 200
    status = ranvier("db", "status", "-c", str(config)).stdout
    assert f"Schema revision: {head_revision()}" in status


def test_downgrade_asks_for_yes_without_a_terminal(tmp_path: Path) -> None:
    config = tmp_path / "homeserver.yaml"
    ranvier("generate-config", "--server-name", "example.org", "-c", str(config))
    assert ranvier("db", "upgrade", "-c", str(config)).returncode == 0

    refused = ranvier("db", "downgrade", "-c", str(config), "0014_room_keys")
    assert refused.returncode == 2
    assert "pass --yes" in refused.stderr
    # says what would be lost
    assert f"{head_revision()}: " in refused.stderr
    assert "Nothing was changed" in refused.stderr
    status = ranvier("db", "status", "-c", str(config)).stdout
    assert f"Schema revision: {head_revision()}" in status

    done = ranvier("db", "downgrade", "-c", str(config), "0014_room_keys", "--yes")
    assert done.returncode == 0, done.stderr
    assert "Done: the schema is at 0014_room_keys" in done.stdout
    assert "Schema revision: 0014_room_keys" in ranvier("db", "status", "-c", str(config)).stdout
    gone = ranvier("db", "downgrade", "-c", str(config), "base", "-y")
    assert gone.returncode == 0, gone.stderr
    assert "tables are gone" in gone.stdout


def test_register_user_without_a_terminal_or_password(tmp_path: Path) -> None:
    config = tmp_path / "homeserver.yaml"
    ranvier("generate-config", "--server-name", "example.org", "-c", str(config))
    result = ranvier("register-user", "-c", str(config), "--user", "alice")
    assert result.returncode == 2
    assert "pass --password" in result.stderr
    assert "Traceback" not in result.stderr

    made = ranvier("register-user", "-c", str(config), "-u", "alice", "-p", "Str0ng pass!")
    assert (made.returncode, made.stdout.strip()) == (0, "@alice:example.org")
    again = ranvier("register-user", "-c", str(config), "-u", "alice", "-p", "Str0ng pass!")
    assert again.returncode == 1
    assert again.stderr.strip() == "The user alice already exists"


def test_register_user_with_the_database_out_of_reach(tmp_path: Path) -> None:
    config = tmp_path / "homeserver.yaml"
    ranvier("generate-config", "--server-name", "example.org", "-c", str(config))
    raw = yaml.safe_load(config.read_text())
    raw["database"] = {
        "name": "psycopg2",
        "args": {"host": "127.0.0.1", "port": free_port(), "database": "nowhere"},
    }
    config.write_text(yaml.safe_dump(raw))
    result = ranvier("register-user", "-c", str(config), "-u", "alice", "-p", "Str0ng pass!")
    assert result.returncode == 1
    assert "Cannot connect to PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr


def every_command() -> list[list[str]]:
    """Each command and subcommand, as the words that name it."""
    found: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, words: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append([*words, name])
                    walk(sub, [*words, name])

    walk(_parser(), [])
    return found


@pytest.mark.parametrize("words", every_command(), ids=" ".join)
def test_every_command_explains_itself_with_an_example(words: list[str]) -> None:
    result = ranvier(*words, "--help")
    assert result.returncode == 0, result.stderr
    example = result.stdout.split("example", 1)[-1]
    assert "example" in result.stdout and f"ranvier {words[0]}" in example, result.stdout


@pytest.mark.parametrize(
    "name", ["my server", "example.org:99999", "", "-bad-.org", "example..org", "[::1"]
)
def test_generate_config_refuses_an_invalid_server_name(tmp_path: Path, name: str) -> None:
    result = ranvier("generate-config", f"--server-name={name}", "-c", str(tmp_path / "hs.yaml"))
    assert result.returncode == 2
    assert "is not a valid server name" in result.stderr
    assert "Nothing was written" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name", ["example.org", "matrix.example.org:8448", "[::1]:8448", "1.2.3.4"]
)
def test_generate_config_takes_a_valid_server_name(tmp_path: Path, name: str) -> None:
    result = ranvier("generate-config", f"--server-name={name}", "-c", str(tmp_path / "hs.yaml"))
    assert result.returncode == 0, result.stderr
