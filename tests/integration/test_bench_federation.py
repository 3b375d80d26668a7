"""The federation benchmark at tiny sizes, so bench.run --federation keeps working: a Ranvier
on each engine joins the scripted remote's room and takes its pushed PDUs; and the scripted
remote answers what a joining server asks the way the spec says."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from bench.federation import FederationSizes, ranvier_config, run_federation
from bench.remote_room import RemoteRoomServer
from bench.servers import Database, start_ranvier
from ranvier.storage.testing import PostgresUnavailable, postgres_server_url
from tests.conftest import ENGINES, postgres_unavailable

FEDERATION = "/_matrix/federation"
TINY = FederationSizes(members=5, pushed_pdus=30, pdus_per_transaction=10, senders=3)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteRoomServer]:
    with RemoteRoomServer.running(tmp_path_factory.mktemp("remote"), TINY.members) as server:
        yield server


def ask(remote: RemoteRoomServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A request to the remote over HTTPS, trusting its CA (it checks no signatures)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"https://localhost:{remote.port}{path}", data, method=method)
    context = ssl.create_default_context(cafile=str(remote.ca_path))
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("engine", ENGINES)
def test_ranvier_joins_the_remote_room_and_shows_every_pushed_pdu(
    engine: str, remote: RemoteRoomServer, tmp_path: Path
) -> None:
    database = Database(engine, postgres_server_url())
    try:
        server = start_ranvier(tmp_path, database, extra=ranvier_config(remote))
    except PostgresUnavailable as exc:
        postgres_unavailable(str(exc))
        return
    try:
        log: list[str] = []
        figures = run_federation(server, remote, TINY, log=log.append)
    finally:
        server.stop()
        database.drop_all()
    join, usable, pushed = TINY.keys()
    for key in (join, usable, pushed, "RSS after the join", "/send transaction p50"):
        value = figures[key].value
        assert value is not None and value > 0, (key, figures[key], log)
    # every pushed PDU was accepted and /messages shows each of them
    assert figures[pushed].note == "", log
    joiners = [key for key in remote.room.state if key[1].endswith(":bench.localhost")]
    assert len(joiners) == 1, joiners
    assert remote.requests["PUT /_matrix/federation/v2/send_join"] == 1
    # the joined server's own message reached the remote through its outbound queue
    assert remote.requests["PUT /_matrix/federation/v1/send"] >= 1


def test_the_remote_refuses_what_it_cannot_serve(remote: RemoteRoomServer) -> None:
    remote.reset()
    room = quote(remote.room_id)
    user = quote("@someone:elsewhere.example")
    status, body = ask(remote, "GET", f"{FEDERATION}/v1/make_join/{room}/{user}?ver=11")
    assert status == 400
    assert body["errcode"] == "M_INCOMPATIBLE_ROOM_VERSION"
    assert body["room_version"] == "10"

    status, body = ask(remote, "GET", f"{FEDERATION}/v1/make_join/{room}/{user}?ver=10")
    assert status == 200
    template = body["event"]
    assert template["prev_events"] == [remote.room.head.event_id]
    # the template, unsigned, under an ID that is not its own
    status, body = ask(remote, "PUT", f"{FEDERATION}/v2/send_join/{room}/$wrong", template)
    assert status == 400 and body["errcode"] == "M_BAD_JSON"

    status, body = ask(remote, "GET", f"{FEDERATION}/v1/event/$unknown")
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"
    status, body = ask(remote, "GET", f"{FEDERATION}/v1/make_join/!other:x/{user}?ver=10")
    assert status == 404 and body["errcode"] == "M_UNRECOGNIZED"
    assert len(remote.room.timeline) == TINY.members + 5  # nothing was added


def test_the_remote_fills_a_gap_oldest_first(remote: RemoteRoomServer) -> None:
    remote.reset()
    messages = remote.build_messages(6, senders=2)
    ids = [event.event_id for event in messages]
    body = {"earliest_events": [ids[0]], "latest_events": [ids[5]], "limit": 3}
    room = quote(remote.room_id)
    status, answer = ask(remote, "POST", f"{FEDERATION}/v1/get_missing_events/{room}", body)
    assert status == 200
    # the newest three before the latest, not reaching back to the earliest
    assert [e["content"]["body"] for e in answer["events"]] == [
        "pushed 2",
        "pushed 3",
        "pushed 4",
    ]
    status, answer = ask(remote, "GET", f"{FEDERATION}/v1/backfill/{room}?v={ids[2]}&limit=2")
    assert status == 200
    assert [e["content"]["body"] for e in answer["pdus"]] == ["pushed 2", "pushed 1"]
