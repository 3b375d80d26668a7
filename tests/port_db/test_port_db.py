"""`ranvier port-db`, as an admin runs it: a real Ranvier on SQLite is used by clients over
HTTP and stopped, its database is ported to PostgreSQL with the command, and Ranvier started
on PostgreSQL serves the same clients with their old tokens; a port killed midway is run
again and completes; bad invocations are refused and change nothing."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from sqlalchemy import func, inspect, select, text

from ranvier.config.models import DatabaseConfig
from ranvier.storage.database import open_database
from ranvier.storage.port import SEARCH_TABLE, ported_tables
from ranvier.storage.schema import downgrade, known_revisions, upgrade
from ranvier.storage.testing import (
    PostgresUnavailable,
    create_postgres_database,
    drop_postgres_database,
    postgres_database_config,
    sqlite_database_config,
)
from tests.conftest import postgres_unavailable
from tests.integration.client import request
from tests.integration.homeserver import (
    RunningServer,
    free_port,
    start_server,
    write_test_config,
)
from tests.integration.matrix import (
    CLIENT,
    REGISTRATION_CONFIG,
    Session,
    authed,
    create_room,
    login,
    register,
    send_text,
)
from tests.integration.media_helpers import uploaded
from tests.integration.test_e2e_keys import OTK, Device

pytestmark = pytest.mark.postgres

MESSAGES = 30
# what SQLite's FTS5 keeps behind the search index, and the schema's own revision table
NOT_PORTED = {"schema_revision"} | {
    f"{SEARCH_TABLE}{suffix}" for suffix in ("_data", "_idx", "_content", "_docsize", "_config")
}
# tables the clients below must have written to, so the port is tested on real rows
MUST_HAVE_ROWS = {
    "users",
    "access_tokens",
    "refresh_tokens",
    "devices",
    "events",
    "receipts",
    "account_data",
    "push_rules",
    "user_filters",
    "room_aliases",
    "e2e_device_keys",
    "e2e_one_time_keys",
    "e2e_room_keys_versions",
    "e2e_room_keys",
    "local_media",
    "stream_positions",
    SEARCH_TABLE,
}


@dataclass
class Source:
    """The SQLite server's config, and what its clients did."""

    config_path: Path
    sqlite_path: Path
    alice: Session
    alice_refresh_token: str
    bob: Session
    room_id: str
    bob_sync_token: str
    media_id: str
    alice_device_id: str


def port_db(
    sqlite_path: Path, postgres_config: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ranvier.cli", "port-db", "--sqlite-database", str(sqlite_path)]
    argv += ["--postgres-config", str(postgres_config), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def put(session: Session, server_url: str, path: str, body: dict[str, Any]) -> None:
    reply = authed(session, "PUT", server_url + CLIENT + path, body)
    assert reply.status == 200, reply.body


def post(session: Session, server_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = authed(session, "POST", server_url + CLIENT + path, body)
    assert reply.status == 200, reply.body
    result: dict[str, Any] = reply.json()
    return result


def populate(url: str, config_path: Path) -> Source:
    """What clients leave in a database: accounts (one with a refreshed token), a room with
    messages, receipts, account data, push rules, filters, E2EE keys, a backup, media."""
    first = request(
        "POST",
        url + CLIENT + "/register",
        {
            "username": "alice",
            "password": "alice's password",
            "auth": {"type": "m.login.dummy"},
            "refresh_token": True,
        },
    ).json()
    refreshed = request(
        "POST", url + CLIENT + "/refresh", {"refresh_token": first["refresh_token"]}
    ).json()
    alice = Session(first["user_id"], refreshed["access_token"], first["device_id"])
    bob = register(url, "bob")
    room_id = create_room(url, alice, preset="public_chat", room_alias_name="ported")
    post(bob, url, f"/join/{quote(room_id)}", {})
    last = ""
    for number in range(MESSAGES):
        last = send_text(url, alice, room_id, f"message number {number}")
    post(bob, url, f"/rooms/{quote(room_id)}/receipt/m.read/{quote(last)}", {})
    put(alice, url, f"/user/{quote(alice.user_id)}/account_data/org.example.ported", {"kept": 1})
    put(
        alice,
        url,
        "/pushrules/global/content/ported",
        {"pattern": "ported", "actions": ["notify"]},
    )
    post(alice, url, f"/user/{quote(alice.user_id)}/filter", {"room": {"timeline": {"limit": 3}}})
    device = Device(alice)
    post(
        alice,
        url,
        "/keys/upload",
        {
            "device_keys": device.device_keys(),
            "one_time_keys": {f"{OTK}:AAAA": device.one_time_key(1)},
        },
    )
    version = post(
        alice,
        url,
        "/room_keys/version",
        {
            "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
            "auth_data": {"public_key": "abcdefg"},
        },
    )["version"]
    put(
        alice,
        url,
        f"/room_keys/keys/{quote(room_id)}/session1?version={version}",
        {
            "first_message_index": 0,
            "forwarded_count": 0,
            "is_verified": False,
            "session_data": {"ciphertext": "kept"},
        },
    )
    _, media_id = uploaded(url, alice, b"ported bytes", "text/plain")
    sync = authed(bob, "GET", url + CLIENT + "/sync").json()
    return Source(
        config_path=config_path,
        sqlite_path=Path(yaml.safe_load(config_path.read_text())["database"]["args"]["database"]),
        alice=alice,
        alice_refresh_token=refreshed["refresh_token"],
        bob=bob,
        room_id=room_id,
        bob_sync_token=sync["next_batch"],
        media_id=media_id,
        alice_device_id=alice.device_id,
    )


@pytest.fixture(scope="module")
def postgres_databases() -> Iterator[list[str]]:
    """Names of the PostgreSQL databases the tests make; dropped at the end."""
    made: list[str] = []
    yield made
    for name in made:
        asyncio.run(drop_postgres_database(name))


def new_postgres(made: list[str], directory: Path) -> tuple[DatabaseConfig, Path]:
    """A new empty PostgreSQL database, and a --postgres-config file naming it."""
    try:
        name = asyncio.run(create_postgres_database())
    except PostgresUnavailable as exc:
        postgres_unavailable(str(exc))
    made.append(name)
    config = postgres_database_config(name)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"database": {"name": "psycopg2", "args": config.args}}))
    return config, path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    directory = tmp_path_factory.mktemp("sqlite-hs")
    port = free_port()
    database = {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}}
    config_path = write_test_config(directory, database, port, **REGISTRATION_CONFIG)
    server = start_server(config_path, port)
    try:
        populated = populate(server.url, config_path)
    finally:
        assert server.stop() == 0, server.log()
    return populated


@dataclass
class Ported:
    config: DatabaseConfig
    config_file: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def ported(
    source: Source, postgres_databases: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Ported:
    config, config_file = new_postgres(postgres_databases, tmp_path_factory.mktemp("pg"))
    result = port_db(source.sqlite_path, config_file, "--batch-size", "7")
    return Ported(config, config_file, result)


async def _counts(config: DatabaseConfig) -> tuple[dict[str, int], set[str]]:
    """Rows per table (the declared ones and the search index), and every table there is."""
    db = await open_database(config)
    try:
        async with db.engine.connect() as conn:
            present = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        counts = {}
        async with db.read() as conn:
            for table in ported_tables():
                counts[table.name] = int(
                    (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                )
            counts[SEARCH_TABLE] = int(
                (await conn.execute(text(f"SELECT count(*) FROM {SEARCH_TABLE}"))).scalar_one()
            )
        return counts, present
    finally:
        await db.close()


def counts(config: DatabaseConfig) -> tuple[dict[str, int], set[str]]:
    return asyncio.run(_counts(config))


def test_every_table_is_ported_with_all_its_rows(source: Source, ported: Ported) -> None:
    assert ported.result.returncode == 0, ported.result.stderr
    assert "Now point Ranvier at PostgreSQL" in ported.result.stdout
    assert "psycopg2" in ported.result.stdout
    # progress went to stderr, table by table
    assert re.search(r"events: 7/\d+ rows", ported.result.stderr)
    before, sqlite_tables = counts(sqlite_database_config(source.sqlite_path))
    after, postgres_tables = counts(ported.config)
    # every table the migrations made is one port-db copies: a table it does not know of
    # would be left behind
    assert sqlite_tables - NOT_PORTED == set(before)
    assert postgres_tables - NOT_PORTED == set(after)
    empty = sorted(name for name in MUST_HAVE_ROWS if before[name] == 0)
    assert empty == [], "the clients should have written to these tables"
    assert after == before
    assert before["events"] > MESSAGES


def test_ranvier_on_postgres_serves_the_old_clients(source: Source, ported: Ported) -> None:
    assert ported.result.returncode == 0, ported.result.stderr
    raw = yaml.safe_load(source.config_path.read_text())
    raw["database"] = {"name": "psycopg2", "args": ported.config.args}
    config_path = source.config_path.parent / "homeserver-postgres.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    server = start_server(config_path, raw["listeners"][0]["port"])
    try:
        url = server.url
        # old access tokens still work
        for session in (source.alice, source.bob):
            whoami = authed(session, "GET", url + CLIENT + "/account/whoami")
            assert whoami.status == 200, whoami.body
            assert whoami.json()["user_id"] == session.user_id
        # the refresh token rotates (a new refresh_tokens and access_tokens row each: their
        # keys come from the moved sequences)
        refreshed = request(
            "POST", url + CLIENT + "/refresh", {"refresh_token": source.alice_refresh_token}
        )
        assert refreshed.status == 200, refreshed.body
        assert login(url, "alice", "alice's password").user_id == source.alice.user_id
        # refreshing ended the old access token: alice carries on with the new one
        alice = Session(
            source.alice.user_id, refreshed.json()["access_token"], source.alice.device_id
        )

        # bob's full sync sees the room, its history back to the first message
        sync = authed(source.bob, "GET", url + CLIENT + "/sync").json()
        assert source.room_id in sync["rooms"]["join"]
        messages = authed(
            source.bob,
            "GET",
            url + CLIENT + f"/rooms/{quote(source.room_id)}/messages?dir=b&limit=100",
        ).json()
        bodies = [
            event["content"]["body"]
            for event in messages["chunk"]
            if event["type"] == "m.room.message"
        ]
        assert bodies == [f"message number {n}" for n in reversed(range(MESSAGES))]

        # a new message comes after the old ones: bob's sync from before the port gets it
        # and nothing older
        new_event = send_text(url, alice, source.room_id, "after the port")
        incremental = authed(
            source.bob, "GET", url + CLIENT + f"/sync?since={source.bob_sync_token}"
        ).json()
        timeline = incremental["rooms"]["join"][source.room_id]["timeline"]["events"]
        assert [event["event_id"] for event in timeline] == [new_event]
        latest = authed(
            source.bob,
            "GET",
            url + CLIENT + f"/rooms/{quote(source.room_id)}/messages?dir=b&limit=2",
        ).json()["chunk"]
        assert [event["content"]["body"] for event in latest] == [
            "after the port",
            f"message number {MESSAGES - 1}",
        ]

        # what else the clients stored
        data = authed(
            alice,
            "GET",
            url + CLIENT + f"/user/{quote(alice.user_id)}/account_data/org.example.ported",
        )
        assert data.json() == {"kept": 1}
        rule = authed(alice, "GET", url + CLIENT + "/pushrules/global/content/ported")
        assert rule.status == 200 and rule.json()["pattern"] == "ported"
        keys = post(source.bob, url, "/keys/query", {"device_keys": {alice.user_id: []}})
        assert list(keys["device_keys"][alice.user_id]) == [source.alice_device_id]
        claimed = post(
            source.bob,
            url,
            "/keys/claim",
            {"one_time_keys": {alice.user_id: {alice.device_id: OTK}}},
        )
        assert list(claimed["one_time_keys"][alice.user_id][alice.device_id]) == [f"{OTK}:AAAA"]
        backup = authed(alice, "GET", url + CLIENT + "/room_keys/keys?version=1").json()
        assert backup["rooms"][source.room_id]["sessions"]["session1"]["session_data"] == {
            "ciphertext": "kept"
        }
        media = request(
            "GET",
            url + f"/_matrix/client/v1/media/download/test.localhost/{source.media_id}",
            headers=alice.headers,
        )
        assert media.status == 200 and media.body == b"ported bytes"
        found = post(
            alice,
            url,
            "/search",
            {"search_categories": {"room_events": {"search_term": "number 17"}}},
        )["search_categories"]["room_events"]
        assert any(
            hit["result"]["content"]["body"] == "message number 17" for hit in found["results"]
        )
    finally:
        assert server.stop() == 0, server.log()


def test_a_port_into_a_database_with_data_is_refused(source: Source, ported: Ported) -> None:
    assert ported.result.returncode == 0, ported.result.stderr
    before, _ = counts(ported.config)
    again = port_db(source.sqlite_path, ported.config_file)
    assert again.returncode == 1
    assert "already holds Ranvier data" in again.stderr
    assert counts(ported.config)[0] == before


def test_an_interrupted_port_continues_where_it_stopped(
    source: Source, postgres_databases: list[str], tmp_path: Path
) -> None:
    config, config_file = new_postgres(postgres_databases, tmp_path)
    argv = [sys.executable, "-m", "ranvier.cli", "port-db", "-v", "--batch-size", "1"]
    argv += ["--sqlite-database", str(source.sqlite_path), "--postgres-config", str(config_file)]
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            if re.search(r"\bevents: 5/\d+ rows", line):
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    assert any("events: 5/" in line for line in seen), "".join(seen)
    partial, _ = counts(config)
    assert partial["events"] == 5

    # a server will not start on the half-filled database
    raw = yaml.safe_load(source.config_path.read_text())
    raw["database"] = {"name": "psycopg2", "args": config.args}
    # beside the SQLite one: the generated config names files relative to itself
    server_config = source.config_path.parent / "homeserver-half-ported.yaml"
    server_config.write_text(yaml.safe_dump(raw))
    refused = subprocess.run(
        [sys.executable, "-m", "ranvier.cli", "run", "-c", str(server_config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "ranvier port-db" in refused.stdout + refused.stderr

    resumed = port_db(source.sqlite_path, config_file, "--batch-size", "50")
    assert resumed.returncode == 0, resumed.stderr
    assert "Continuing an earlier port-db run" in resumed.stderr
    assert "resuming an earlier run" in resumed.stdout
    # the tables finished before the kill are not copied again
    assert "  event_auth: " in "".join(seen)
    assert "  event_auth: " not in resumed.stderr
    assert re.search(r"  events: \d+/\d+ rows, done", resumed.stderr)
    after, tables = counts(config)
    assert after == counts(sqlite_database_config(source.sqlite_path))[0]
    assert not {"port_db_progress", "port_db_source"} & tables


def test_loose_sqlite_values(source: Source, postgres_databases: list[str], tmp_path: Path) -> None:
    """A value SQLite kept that its column's type cannot hold stops the port, naming the
    row; once corrected, the port continues. NUL characters are dropped and counted."""
    copy = tmp_path / "loose.db"
    shutil.copy(source.sqlite_path, copy)
    with sqlite3.connect(copy) as conn:
        conn.execute(
            "UPDATE users SET creation_ts = 'yesterday' WHERE user_id = ?", (source.bob.user_id,)
        )
        conn.execute(
            "UPDATE profiles SET displayname = 'Al' || char(0) || 'ice' WHERE user_id = ?",
            (source.alice.user_id,),
        )
    config, config_file = new_postgres(postgres_databases, tmp_path)
    # a target an older Ranvier made: brought to the SQLite database's revision first
    asyncio.run(upgrade_to(config, OLDER_REVISION))
    stopped = port_db(copy, config_file)
    assert stopped.returncode == 1
    assert f"Upgrading schema from {OLDER_REVISION} to {known_revisions()[-1]}" in stopped.stderr
    assert "users.creation_ts holds 'yesterday'" in stopped.stderr
    assert source.bob.user_id in stopped.stderr

    # a server started on the SQLite database in between (it stamps server_info) makes
    # what was copied suspect: the port is not continued
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE users SET creation_ts = 1 WHERE user_id = ?", (source.bob.user_id,))
        conn.execute("UPDATE server_info SET last_started_ts = last_started_ts + 1")
    refused = port_db(copy, config_file)
    assert refused.returncode == 1
    assert "A server has run on the SQLite database since this port began" in refused.stderr

    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE server_info SET last_started_ts = last_started_ts - 1")
    finished = port_db(copy, config_file)
    assert finished.returncode == 0, finished.stderr
    assert "1 NUL characters dropped" in finished.stdout
    assert counts(config)[0] == counts(sqlite_database_config(copy))[0]
    assert asyncio.run(display_name(config, source.alice.user_id)) == "Alice"


OLDER_REVISION = "0010_ephemeral"


async def downgrade_to(config: DatabaseConfig, revision: str) -> None:
    db = await open_database(config)
    try:
        await downgrade(db, revision)
    finally:
        await db.close()


async def upgrade_to(config: DatabaseConfig, revision: str) -> None:
    db = await open_database(config)
    try:
        await upgrade(db, revision)
    finally:
        await db.close()


async def display_name(config: DatabaseConfig, user_id: str) -> str:
    db = await open_database(config)
    try:
        async with db.read() as conn:
            query = text("SELECT displayname FROM profiles WHERE user_id = :user_id")
            return str((await conn.execute(query, {"user_id": user_id})).scalar_one())
    finally:
        await db.close()


def test_refusals(source: Source, postgres_databases: list[str], tmp_path: Path) -> None:
    config, config_file = new_postgres(postgres_databases, tmp_path)

    missing = port_db(tmp_path / "nowhere.db", config_file)
    assert missing.returncode == 1
    assert "There is no SQLite database at" in missing.stderr

    not_ranvier = tmp_path / "synapse.db"
    with sqlite3.connect(not_ranvier) as conn:
        conn.execute("CREATE TABLE room_stats_state (room_id TEXT)")
    foreign = port_db(not_ranvier, config_file)
    assert foreign.returncode == 1
    assert "is not a Ranvier database" in foreign.stderr

    behind = tmp_path / "behind.db"
    shutil.copy(source.sqlite_path, behind)
    asyncio.run(downgrade_to(sqlite_database_config(behind), known_revisions()[-2]))
    older = port_db(behind, config_file)
    assert older.returncode == 1
    assert "older than this Ranvier's" in older.stderr
    assert "ranvier db upgrade" in older.stderr

    sqlite_section = tmp_path / "sqlite.yaml"
    sqlite_section.write_text(
        yaml.safe_dump({"database": {"name": "sqlite3", "args": {"database": "x.db"}}})
    )
    wrong = port_db(source.sqlite_path, sqlite_section)
    assert wrong.returncode == 1
    assert "must name the PostgreSQL database" in wrong.stderr

    no_section = tmp_path / "nothing.yaml"
    no_section.write_text(yaml.safe_dump({"server_name": "test.localhost"}))
    absent = port_db(source.sqlite_path, no_section)
    assert absent.returncode == 1
    assert "has no `database` section" in absent.stderr

    curses = port_db(source.sqlite_path, config_file, "--curses")
    assert curses.returncode == 2
    assert "without --curses" in curses.stderr

    # a server running on the SQLite database holds it
    raw = yaml.safe_load(source.config_path.read_text())
    server: RunningServer = start_server(source.config_path, raw["listeners"][0]["port"])
    try:
        busy = port_db(source.sqlite_path, config_file)
    finally:
        assert server.stop() == 0, server.log()
    assert busy.returncode == 1
    assert "A Ranvier server is using the database" in busy.stderr

    # none of these wrote anything into PostgreSQL
    assert tables_of(config) == set()


def tables_of(config: DatabaseConfig) -> set[str]:
    async def tables() -> set[str]:
        db = await open_database(config)
        try:
            async with db.engine.connect() as conn:
                return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        finally:
            await db.close()

    return asyncio.run(tables())


def test_a_database_of_something_else_is_refused(
    source: Source, postgres_databases: list[str], tmp_path: Path
) -> None:
    config, config_file = new_postgres(postgres_databases, tmp_path)

    async def make_foreign_table() -> None:
        db = await open_database(config)
        try:
            async with db.transaction() as conn:
                await conn.execute(text("CREATE TABLE room_stats (room_id TEXT)"))
        finally:
            await db.close()

    asyncio.run(make_foreign_table())
    refused = port_db(source.sqlite_path, config_file)
    assert refused.returncode == 1
    assert "is not a Ranvier database" in refused.stderr
