"""A service that is down never slows or blocks local sends: the send only wakes the
service's loop. Measured against sends in a room the service has no interest in, on the
same server, interleaved so load on the machine hits both alike; and the dead service
holds one unacknowledged transaction however much is sent. Both engines."""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.appservice.fake_appservice import FakeAppService
from tests.appservice.pushed import bot_joins, send
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import REGISTRATION_CONFIG, create_room, register

SENDS = 15


@pytest.fixture(scope="module")
def hanging() -> Iterator[socket.socket]:
    """Accepts connections (the kernel's backlog) and never answers: a service that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="module")
def dead(hanging: socket.socket) -> FakeAppService:
    # never started: its url is the socket that never answers
    return FakeAppService(
        id="dead",
        sender_localpart="dead_bot",
        user_regex="@dead_.*",
        alias_regex="#dead_.*",
        extra_registration={"url": f"http://127.0.0.1:{hanging.getsockname()[1]}"},
    )


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any], dead: FakeAppService
) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    with serving(
        directory,
        module_database,
        **REGISTRATION_CONFIG,
        app_service_config_files=[dead.write_registration(directory)],
    ) as running:
        yield running


def timed_send(server: RunningServer, session: Any, room_id: str, text: str) -> float:
    started = time.monotonic()
    send(server, session, room_id, text)
    return time.monotonic() - started


def test_sends_are_as_fast_with_the_service_down(
    server: RunningServer, dead: FakeAppService
) -> None:
    alice = register(server.url, "alice")
    quiet = create_room(server.url, alice)
    bridged = create_room(server.url, alice)
    bot_joins(server, dead, alice, bridged)
    quiet_times: list[float] = []
    bridged_times: list[float] = []
    for n in range(SENDS):
        quiet_times.append(timed_send(server, alice, quiet, f"quiet {n}"))
        bridged_times.append(timed_send(server, alice, bridged, f"bridged {n}"))
    quiet_median = statistics.median(quiet_times)
    bridged_median = statistics.median(bridged_times)
    # loose: the service's first transaction alone waits a minute for an answer; a send
    # that waited on it would take that long, not a few milliseconds
    assert bridged_median < 3 * quiet_median + 0.05, (quiet_times, bridged_times)
    assert max(bridged_times) < 2.0, bridged_times

    # what an admin sees: the whole backlog is one unacknowledged transaction
    done = subprocess.run(
        [sys.executable, "-m", "ranvier.cli", "appservices", "-c", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "unacknowledged transactions: 1 " in done.stdout, done.stdout
