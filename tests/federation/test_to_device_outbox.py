"""What must not be lost on its way to another server, on both engines: a to-device message
(a room key, say) and a device change of a local user, made while the other server (a
fake, fake_server.py) is down and queued across a restart of Ranvier, reach it once it is
back, in order, each once; a device change made while it was down reaches it as the
user's newest change, whose prev_id gap tells it to fetch the whole list again.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from tests.federation.fake_server import FakeServer
from tests.federation.harness import (
    FederatingServer,
    FederationCA,
    launch_federating_server,
    register,
    restart,
)
from tests.federation.replies import ok
from tests.federation.test_e2ee_across_servers import login, upload_keys
from tests.federation.test_request_authentication import admin_of
from tests.integration.matrix import CLIENT, Session
from tests.integration.test_e2e_keys import Device

SEND = "/_matrix/federation/v1/send/"
DESTINATIONS = "/_synapse/admin/v1/federation/destinations"
# a failed transaction is not retried within the attempt, and the destination is then
# backed off from for an hour: only its coming back (a request from it) ends the wait
FEDERATION = {
    "max_long_retries": 0,
    "max_short_retries": 0,
    "destination_min_retry_interval": "1h",
}


@dataclass
class Restartable:
    """A federating server a test may stop and start again; the newest process is the
    one stopped at the end."""

    server: FederatingServer


def restartable(
    tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA, section: dict[str, Any]
) -> Iterator[Restartable]:
    held = Restartable(
        launch_federating_server(
            tmp_path_factory.mktemp("hs"), section, test_ca, federation=FEDERATION
        )
    )
    held.server.wait_until_serving()
    try:
        yield held
    finally:
        assert held.server.stop() == 0, held.server.log()[-6000:]


@pytest.fixture(scope="module")
def on_sqlite(
    tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA, sqlite_section: dict[str, Any]
) -> Iterator[Restartable]:
    yield from restartable(tmp_path_factory, test_ca, sqlite_section)


@pytest.fixture(scope="module")
def on_postgres(
    tmp_path_factory: pytest.TempPathFactory,
    test_ca: FederationCA,
    postgres_section: dict[str, Any],
) -> Iterator[Restartable]:
    yield from restartable(tmp_path_factory, test_ca, postgres_section)


@pytest.fixture(params=["sqlite", "postgres"])
def ranvier(request: pytest.FixtureRequest) -> Restartable:
    held: Restartable = request.getfixturevalue(f"on_{request.param}")
    return held


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory, test_ca: FederationCA) -> Iterator[FakeServer]:
    with FakeServer.running(test_ca, tmp_path_factory.mktemp("fake")) as server:
        yield server


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def edus(fake: FakeServer, edu_type: str, since: int = 0) -> list[dict[str, Any]]:
    """The contents of the EDUs of the type in the transactions the fake received."""
    return [
        edu["content"]
        for request in list(fake.received)[since:]
        if request.method == "PUT" and request.path.startswith(SEND)
        for edu in request.body.get("edus", [])
        if edu.get("edu_type") == edu_type
    ]


def send_to_device(server: FederatingServer, sender: Session, to: str, content: Any) -> None:
    path = f"{CLIENT}/sendToDevice/org.example.secret/t{secrets.token_hex(6)}"
    ok(server.authed(sender, "PUT", path, {"messages": {to: {"*": content}}}))


def backing_off(server: FederatingServer, admin: Session, destination: str) -> bool:
    reply = server.authed(admin, "GET", f"{DESTINATIONS}/{quote(destination)}")
    return reply.status == 200 and reply.json()["retry_interval"] > 0


def through_an_outage_and_a_restart(
    ranvier: Restartable, fake: FakeServer, admin: Session, while_down: Callable[[], None]
) -> int:
    """Stop the fake, do `while_down`, wait for Ranvier to back off from the fake, restart
    Ranvier, start the fake and have it contact Ranvier (it is back). Returns where in
    fake.received the outage began."""
    since = len(fake.received)
    fake.stop()
    try:
        while_down()
        wait_until(
            lambda: backing_off(ranvier.server, admin, fake.server_name), "Ranvier backing off"
        )
        assert ranvier.server.stop() == 0, ranvier.server.log()[-6000:]
        ranvier.server = restart(ranvier.server)
    finally:
        fake.start()
    # backing off for an hour, across the restart: nothing is sent until the fake is back
    time.sleep(1)
    assert len(fake.received) == since
    reply = fake.request(
        ranvier.server,
        "GET",
        f"/_matrix/federation/v1/query/profile?user_id={quote(admin.user_id)}",
    )
    assert reply.status == 200, reply.body
    return since


def test_to_device_messages_reach_a_server_that_was_down_across_a_restart(
    ranvier: Restartable, fake: FakeServer
) -> None:
    server = ranvier.server
    admin = admin_of(server, f"admin{secrets.token_hex(3)}")
    alice = register(server, f"alice{secrets.token_hex(3)}")
    walrus = fake.user(f"walrus{secrets.token_hex(3)}")
    tag = secrets.token_hex(4)

    def send_three() -> None:
        for n in range(3):
            send_to_device(server, alice, walrus, {"key": f"{tag}-{n}"})

    since = through_an_outage_and_a_restart(ranvier, fake, admin, send_three)
    server = ranvier.server

    def ours(start: int = since) -> list[dict[str, Any]]:
        return [
            content
            for content in edus(fake, "m.direct_to_device", start)
            if content["messages"].get(walrus, {}).get("*", {}).get("key", "").startswith(tag)
        ]

    wait_until(lambda: len(ours()) >= 3, "the three to-device messages")
    received = ours()
    assert [m["messages"][walrus]["*"]["key"] for m in received] == [f"{tag}-{n}" for n in range(3)]
    assert all(m["sender"] == alice.user_id for m in received)
    assert all(m["type"] == "org.example.secret" for m in received)
    assert len({m["message_id"] for m in received}) == 3

    # once acknowledged they are gone: the next message goes alone, the three not again
    after = len(fake.received)
    send_to_device(server, alice, walrus, {"key": f"{tag}-after"})
    wait_until(lambda: len(ours(after)) >= 1, "the message sent after")
    assert [m["messages"][walrus]["*"]["key"] for m in ours(after)] == [f"{tag}-after"]
    # another restart sends nothing again either
    assert ranvier.server.stop() == 0
    ranvier.server = restart(ranvier.server)
    time.sleep(1)
    assert [m["messages"][walrus]["*"]["key"] for m in ours()] == [
        *(f"{tag}-{n}" for n in range(3)),
        f"{tag}-after",
    ]


def test_a_device_change_made_while_a_server_was_down_reaches_it(
    ranvier: Restartable, fake: FakeServer
) -> None:
    server = ranvier.server
    admin = admin_of(server, f"admin{secrets.token_hex(3)}")
    alice = register(server, f"alice{secrets.token_hex(3)}")
    room = ok(server.authed(alice, "POST", CLIENT + "/createRoom", {"preset": "public_chat"}))
    fake.join(server, room["room_id"], fake.user(f"walrus{secrets.token_hex(3)}"))
    upload_keys(server, Device(alice))
    wait_until(
        lambda: any(c["user_id"] == alice.user_id for c in edus(fake, "m.device_list_update")),
        "the first device's update",
    )
    before = max(
        c["stream_id"] for c in edus(fake, "m.device_list_update") if c["user_id"] == alice.user_id
    )
    phones: list[Device] = []

    def two_new_devices() -> None:
        for name in ("PHONE", "TABLET"):
            phone = Device(login(server, alice, f"{name}{secrets.token_hex(2)}"))
            upload_keys(server, phone)
            phones.append(phone)

    since = through_an_outage_and_a_restart(ranvier, fake, admin, two_new_devices)

    def alices(start: int = since) -> list[dict[str, Any]]:
        return [
            c for c in edus(fake, "m.device_list_update", start) if c["user_id"] == alice.user_id
        ]

    tablet = phones[1].session
    wait_until(
        lambda: any(c["device_id"] == tablet.device_id for c in alices()), "the tablet's update"
    )
    time.sleep(0.5)
    # the newest change alone, after the one the fake has: the gap makes it resync
    (update,) = alices()
    assert update["device_id"] == tablet.device_id
    assert update["keys"] == phones[1].device_keys()
    assert update["stream_id"] > before
    assert update["prev_id"] and all(before < p < update["stream_id"] for p in update["prev_id"])
    # the fake fetching the list then finds both devices
    answer = fake.request(
        ranvier.server, "GET", f"/_matrix/federation/v1/user/devices/{quote(alice.user_id)}"
    )
    assert answer.status == 200, answer.body
    listed = {d["device_id"] for d in answer.json()["devices"]}
    assert {phones[0].session.device_id, tablet.device_id, alice.device_id} <= listed
