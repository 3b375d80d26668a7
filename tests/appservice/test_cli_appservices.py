"""What an admin sees of the application services: the start-up log line per service (and
the warning naming a registration's unknown keys), and `ranvier appservices`, run as a
command on the running server's config, on both engines."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ranvier.config import load_config
from ranvier.storage.appservices import appservice_state, appservice_txns
from ranvier.storage.database import open_database
from ranvier.storage.events import events
from tests.appservice.fake_appservice import FakeAppService
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import CLIENT, Session, authed

MINUTE_MS = 60_000


@pytest.fixture(scope="module")
def appservice() -> Iterator[FakeAppService]:
    # the conftest's `server` registers this one
    fake = FakeAppService(
        id="listed_bridge",
        protocols=("gamenet",),
        room_regex="!portal_.*",
        extra_registration={"de.example.made_up_option": True},
    ).start()
    try:
        yield fake
    finally:
        fake.stop()


def ranvier_appservices(server: RunningServer) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ranvier.cli", "appservices", "-c", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _leave_backlog(server: RunningServer, appservice_id: str) -> int:
    """A service no longer registered, left two transactions behind and at position 0;
    returns the newest event position."""
    database = await open_database(load_config(server.config_path).database)
    try:
        now = int(time.time() * 1000)
        async with database.transaction() as conn:
            await conn.execute(
                appservice_state.insert().values(appservice_id=appservice_id, events_position=0)
            )
            for txn_id, age_ms in ((1, 7 * MINUTE_MS), (2, MINUTE_MS)):
                await conn.execute(
                    appservice_txns.insert().values(
                        appservice_id=appservice_id,
                        txn_id=txn_id,
                        body_json="{}",
                        created_ts=now - age_ms,
                    )
                )
        async with database.read() as conn:
            newest = (await conn.execute(select(func.max(events.c.stream_ordering)))).scalar()
        return int(newest)
    finally:
        await database.close()


def test_start_up_names_each_service_and_its_unknown_keys(
    server: RunningServer, appservice: FakeAppService
) -> None:
    log = server.log()
    line = next(line for line in log.splitlines() if "Application service listed_bridge:" in line)
    for part in (
        f"url {appservice.url}",
        "sender @_fake_bot:test.localhost",
        "users @_fake_.* (exclusive)",
        "aliases #_fake_.* (exclusive)",
        "rooms !portal_.*",
        "protocols gamenet",
    ):
        assert part in line, line
    assert "rooms !portal_.* (exclusive)" not in line
    warning = next(line for line in log.splitlines() if "unknown registration keys" in line)
    assert "listed_bridge" in warning
    assert "de.example.made_up_option" in warning


def test_the_command_lists_services_and_their_backlog(
    server: RunningServer, appservice: FakeAppService, alice: Session
) -> None:
    reply = authed(alice, "POST", server.url + CLIENT + "/createRoom", {})
    assert reply.status == 200, reply.body
    newest = asyncio.run(_leave_backlog(server, "retired_bridge"))
    assert newest > 0

    listed = ranvier_appservices(server)

    assert listed.startswith("1 application service registered")
    blocks = {block.splitlines()[0]: block for block in listed.split("\n\n")[1:]}
    registered = blocks["listed_bridge"]
    for line in (
        f"  url: {appservice.url}",
        "  sender: @_fake_bot:test.localhost",
        "  users: @_fake_.* (exclusive)",
        "  aliases: #_fake_.* (exclusive)",
        "  rooms: !portal_.*",
        "  protocols: gamenet",
        "  unacknowledged transactions: 0",
    ):
        assert line in registered.splitlines(), registered
    assert "  events stream: " in registered
    retired = blocks["retired_bridge (no longer registered)"].splitlines()
    assert f"  events stream: {newest} behind (at position 0 of {newest})" in retired
    assert "  unacknowledged transactions: 2 (oldest 7 min old)" in retired


def test_the_command_needs_a_config(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ranvier.cli", "appservices", "-c", f"{tmp_path}/missing.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "missing.yaml" in done.stderr
