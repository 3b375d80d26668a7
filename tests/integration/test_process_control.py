"""`ranvier` on the command line, as an admin uses it: generate, start, status, stop, run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from ranvier import __version__
from ranvier.config import Listener, load_config
from ranvier.server import create_homeserver
from ranvier.storage.schema import known_revisions
from tests.integration.client import request
from tests.integration.homeserver import free_port, start_server, write_test_config


def ranvier(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ranvier.cli", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
        # not a terminal: nothing may wait for an answer
        stdin=subprocess.DEVNULL,
    )


def test_version_flag() -> None:
    result = ranvier("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ranvier {__version__}"


def test_generate_config_then_start_status_stop(tmp_path: Path) -> None:
    config = tmp_path / "homeserver.yaml"
    generated = ranvier(
        "generate-config",
        "--server-name",
        "example.org",
        "--config-path",
        str(config),
        "--data-dir",
        str(tmp_path / "data"),
    )
    assert generated.returncode == 0, generated.stderr
    assert f"wrote {config}" in generated.stdout
    port = free_port()
    raw = yaml.safe_load(config.read_text())
    raw["listeners"][0]["port"] = port
    config.write_text(yaml.safe_dump(raw))

    assert ranvier("status", "-c", str(config)).returncode == 3
    started = ranvier("start", "-c", str(config))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "Ranvier started (pid" in started.stdout
        pid = int((tmp_path / "data" / "homeserver.pid").read_text())
        versions = request("GET", f"http://127.0.0.1:{port}/_matrix/client/versions")
        assert versions.status == 200

        status = ranvier("status", "-c", str(config))
        assert (status.returncode, status.stdout.strip()) == (0, f"Ranvier is running (pid {pid})")
        again = ranvier("start", "-c", str(config))
        assert "already running" in again.stdout
    finally:
        stopped = ranvier("stop", "-c", str(config))
    assert stopped.returncode == 0
    assert f"Ranvier stopped (pid {pid})" in stopped.stdout
    assert not (tmp_path / "data" / "homeserver.pid").exists()
    assert ranvier("status", "-c", str(config)).returncode == 3
    assert "Stopped" in (tmp_path / "data" / "homeserver.log").read_text()


def test_start_reports_a_refused_config(tmp_path: Path) -> None:
    config = tmp_path / "homeserver.yaml"
    ranvier("generate-config", "--server-name", "example.org", "-c", str(config))
    raw = yaml.safe_load(config.read_text())
    raw["log_file"] = "old.log"
    config.write_text(yaml.safe_dump(raw))
    result = ranvier("start", "-c", str(config))
    assert result.returncode == 1
    assert "'log_file' was removed" in result.stderr


def test_sigterm_exits_cleanly(tmp_path: Path, sqlite_database: Any) -> None:
    port = free_port()
    server = start_server(write_test_config(tmp_path, sqlite_database, port), port)
    assert request("GET", server.url + "/_matrix/client/versions").status == 200
    os.kill(server.process.pid, signal.SIGTERM)
    assert server.process.wait(20) == 0
    log = server.log()
    assert "Shutting down: finishing requests in flight" in log
    assert "Stopped" in log


async def test_stop_lets_a_request_in_flight_finish(tmp_path: Path, sqlite_database: Any) -> None:
    # In process, so that a deliberately slow endpoint can be added beside the real ones.
    port = free_port()
    config = load_config(write_test_config(tmp_path, sqlite_database, port))
    homeserver = await create_homeserver(config)
    entered = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        entered.set()
        await asyncio.sleep(0.5)
        return web.Response(text="finished")

    build_app = homeserver.build_app

    def build_app_with_slow_route(listener: Listener) -> web.Application:
        app = build_app(listener)
        app.router.add_get("/slow", slow)
        return app

    homeserver.build_app = build_app_with_slow_route  # type: ignore[method-assign]
    await homeserver.start()
    async with aiohttp.ClientSession() as session:
        in_flight = asyncio.create_task(session.get(f"http://127.0.0.1:{port}/slow"))
        await entered.wait()
        await homeserver.stop()
        response = await in_flight
        assert (response.status, await response.text()) == (200, "finished")
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{port}/health")


def test_db_commands_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "homeserver.yaml"
    ranvier("generate-config", "--server-name", "example.org", "-c", str(config))

    before = ranvier("db", "status", "-c", str(config))
    assert before.returncode == 0, before.stderr
    assert "Schema revision: none (empty database)" in before.stdout
    assert f"Pending migrations ({len(known_revisions())})" in before.stdout

    upgraded = ranvier("db", "upgrade", "-c", str(config))
    assert upgraded.returncode == 0, upgraded.stderr
    assert "Schema is up to date." in ranvier("db", "status", "-c", str(config)).stdout

    downgraded = ranvier("db", "downgrade", "-c", str(config), "0001_background_updates", "--yes")
    assert downgraded.returncode == 0, downgraded.stderr
    status = ranvier("db", "status", "-c", str(config)).stdout
    assert "Schema revision: 0001_background_updates" in status

    unknown = ranvier("db", "downgrade", "-c", str(config), "0099_from_the_future")
    assert unknown.returncode == 1
    assert "0099_from_the_future" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_run_refuses_a_database_newer_than_the_code(tmp_path: Path) -> None:
    import sqlite3

    config = tmp_path / "homeserver.yaml"
    ranvier("generate-config", "--server-name", "example.org", "-c", str(config))
    assert ranvier("db", "upgrade", "-c", str(config)).returncode == 0
    database = yaml.safe_load(config.read_text())["database"]["args"]["database"]
    with sqlite3.connect(tmp_path / database) as conn:
        # what a newer Ranvier would leave behind
        conn.execute("UPDATE schema_revision SET version_num = '0099_from_the_future'")
    result = ranvier("run", "-c", str(config))
    assert result.returncode == 1
    assert "0099_from_the_future" in result.stderr
    assert "ranvier db downgrade" in result.stderr
