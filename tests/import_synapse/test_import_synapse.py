"""`ranvier import-synapse`, as an admin runs it: a real Synapse from PyPI (on SQLite) is
used by clients over HTTP and stopped; its database is imported into a new Ranvier (SQLite
and PostgreSQL), the first time interrupted midway and then run again; Ranvier started on the
result serves the same clients: old access tokens, the same passwords, their keys, backups,
account data, push rules and filters. Refusals change nothing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import shutil
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
from nacl.signing import SigningKey

from bench.servers import SERVER_NAME, Database, start_synapse
from bench.synapse_setup import ensure_synapse
from ranvier.config.models import DatabaseConfig
from ranvier.protocol.signing import sign_json
from ranvier.protocol.unpadded_base64 import encode_base64
from ranvier.services.tokens import hash_token
from ranvier.storage.synapse_import.importer import import_synapse_database
from ranvier.storage.testing import PostgresUnavailable, postgres_server_url
from tests.conftest import postgres_unavailable
from tests.integration.client import Reply, request
from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config
from tests.integration.matrix import CLIENT, Session, authed, login, register
from tests.integration.test_e2e_keys import OTK, CrossSigning, Device

PASSWORD = "an old Synapse password"
PEPPER = "pepper-of-the-synapse-server"
BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!backedup:bench.localhost"
SESSION_ID = "megolm-session-1"
ROOM_KEY = {
    "first_message_index": 3,
    "forwarded_count": 1,
    "is_verified": True,
    "session_data": {"ephemeral": "eph", "ciphertext": "cipher", "mac": "mac"},
}
FILTER = {"room": {"timeline": {"limit": 7}}}
ACCOUNT_DATA_TYPE = "org.example.settings"
PUSHER = {
    "kind": "http",
    "app_id": "org.example.phone",
    "pushkey": "push-key-of-bobs-phone",
    "app_display_name": "Example Phone",
    "device_display_name": "Bob's phone",
    "lang": "fr",
    # nothing listens there: no event is sent in this module, so nothing is pushed
    "data": {"url": "http://127.0.0.1:9/_matrix/push/v1/notify", "format": "event_id_only"},
}


@dataclass
class SynapseData:
    """The stopped Synapse's config, and what its clients did."""

    config_path: Path
    signing_key: Path
    alice: Session  # admin, with keys, cross-signing, a backup
    bob: Session
    alice_device: Device
    cross_signing: CrossSigning
    one_time_keys: dict[str, Any]
    backup_version: str
    backup_auth_data: dict[str, Any]
    filter_id: str
    bob_refreshable: Session  # a session with a refresh token, and its token
    bob_refresh_token: str
    bob_creation_ts: int  # seconds, as Synapse's admin API shows it
    room_id: str  # alice's: the room is not imported, her tags and account data in it are


def ok(reply: Reply) -> Any:
    assert reply.status == 200, (reply.status, reply.body)
    return reply.json()


def call(session: Session, url: str, method: str, path: str, body: Any = None) -> Any:
    return ok(authed(session, method, url + CLIENT + path, body))


def register_admin(url: str, secret: str, localpart: str) -> Session:
    """Synapse's shared-secret admin registration, as register_new_matrix_user does it."""
    nonce = ok(request("GET", url + "/_synapse/admin/v1/register"))["nonce"]
    message = b"\x00".join([nonce.encode(), localpart.encode(), PASSWORD.encode(), b"admin"])
    mac = hmac.new(secret.encode(), message, hashlib.sha1).hexdigest()
    body = {"nonce": nonce, "username": localpart, "password": PASSWORD, "admin": True, "mac": mac}
    reply = ok(request("POST", url + "/_synapse/admin/v1/register", body))
    return Session(reply["user_id"], reply["access_token"], reply["device_id"])


def use_synapse(url: str, secret: str) -> dict[str, Any]:
    alice = register_admin(url, secret, "alice")
    bob = register(url, "bob", PASSWORD)
    carol = register(url, "carol", PASSWORD)
    call(
        alice,
        url,
        "PUT",
        f"/profile/{quote(alice.user_id)}/displayname",
        {"displayname": "Alice A."},
    )
    call(bob, url, "PUT", f"/profile/{quote(bob.user_id)}/displayname", {"displayname": "Bob B."})
    # E2EE: device keys, one-time and fallback keys, cross-signing, a signed device
    device = Device(alice)
    otks = {f"{OTK}:AAAA{n}": device.one_time_key(n) for n in range(3)}
    fallback = {f"{OTK}:FALL": device.one_time_key(99, fallback=True)}
    body = {"device_keys": device.device_keys(), "one_time_keys": otks, "fallback_keys": fallback}
    counts = call(alice, url, "POST", "/keys/upload", body)
    assert counts["one_time_key_counts"][OTK] == 3
    cross = CrossSigning.for_user(alice.user_id)
    upload = cross.upload_body()
    reply = authed(alice, "POST", url + CLIENT + "/keys/device_signing/upload", upload)
    if reply.status == 401:
        upload["auth"] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "alice"},
            "password": PASSWORD,
            "session": reply.json()["session"],
        }
        reply = authed(alice, "POST", url + CLIENT + "/keys/device_signing/upload", upload)
    ok(reply)
    signed_device = sign_json(device.device_keys(), alice.user_id, cross.self_signing.signing)
    signatures = {alice.user_id: {alice.device_id: signed_device}}
    assert call(alice, url, "POST", "/keys/signatures/upload", signatures)["failures"] == {}
    # a key backup with one room key
    auth_data = {"public_key": encode_base64(b"b" * 32)}
    version = call(
        alice,
        url,
        "POST",
        "/room_keys/version",
        {"algorithm": BACKUP_ALGORITHM, "auth_data": auth_data},
    )["version"]
    call(
        alice, url, "PUT", f"/room_keys/keys/{quote(ROOM)}/{SESSION_ID}?version={version}", ROOM_KEY
    )
    # account data, an ignored user, push rules, a filter
    call(
        alice,
        url,
        "PUT",
        f"/user/{quote(alice.user_id)}/account_data/{ACCOUNT_DATA_TYPE}",
        {"theme": "dark"},
    )
    ignored: dict[str, Any] = {"ignored_users": {"@spammer:elsewhere.example": {}}}
    call(
        alice, url, "PUT", f"/user/{quote(alice.user_id)}/account_data/m.ignored_user_list", ignored
    )
    rule = {"pattern": "cake", "actions": ["notify"]}
    call(alice, url, "PUT", "/pushrules/global/content/cake", rule)
    call(
        alice,
        url,
        "PUT",
        "/pushrules/global/override/.m.rule.suppress_notices/enabled",
        {"enabled": False},
    )
    filter_id = call(alice, url, "POST", f"/user/{quote(alice.user_id)}/filter", FILTER)[
        "filter_id"
    ]
    call(bob, url, "POST", "/pushers/set", PUSHER)
    # a session with a refresh token, as clients that ask for one have
    refreshable = ok(
        request(
            "POST",
            url + CLIENT + "/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "bob"},
                "password": PASSWORD,
                "refresh_token": True,
            },
        )
    )
    # two tags of one room (one row each in Synapse, one m.tag in Ranvier), room account data
    room_id = call(alice, url, "POST", "/createRoom", {})["room_id"]
    room = f"/user/{quote(alice.user_id)}/rooms/{quote(room_id)}"
    call(alice, url, "PUT", f"{room}/tags/m.favourite", {"order": 0.25})
    call(alice, url, "PUT", f"{room}/tags/u.work", {})
    call(alice, url, "PUT", f"{room}/account_data/{ACCOUNT_DATA_TYPE}", {"pinned": True})
    # a deactivated user
    admin_path = f"/_synapse/admin/v1/deactivate/{quote(carol.user_id)}"
    ok(authed(alice, "POST", url + admin_path, {}))
    # bob is shadow-banned, dave a support user: flags the import carries
    shadow_ban = f"{url}/_synapse/admin/v1/users/{quote(bob.user_id)}/shadow_ban"
    ok(authed(alice, "POST", shadow_ban, {}))
    override = f"{url}/_synapse/admin/v1/users/{quote(bob.user_id)}/override_ratelimit"
    ok(authed(alice, "POST", override, {"messages_per_second": 7, "burst_count": 70}))
    dave = f"{url}/_synapse/admin/v2/users/{quote('@dave:' + SERVER_NAME)}"
    reply = authed(alice, "PUT", dave, {"password": PASSWORD, "user_type": "support"})
    assert reply.status == 201, reply.body
    bob_in_synapse = ok(authed(alice, "GET", f"{url}/_synapse/admin/v2/users/{quote(bob.user_id)}"))
    return {
        "bob_creation_ts": bob_in_synapse["creation_ts"],
        "alice": alice,
        "bob": bob,
        "alice_device": device,
        "cross_signing": cross,
        "one_time_keys": otks,
        "backup_version": version,
        "backup_auth_data": auth_data,
        "filter_id": filter_id,
        "room_id": room_id,
        "bob_refreshable": Session(
            refreshable["user_id"], refreshable["access_token"], refreshable["device_id"]
        ),
        "bob_refresh_token": refreshable["refresh_token"],
    }


def build_synapse(directory: Path, database: Database) -> SynapseData:
    """A Synapse on `database`, used by the clients, then stopped."""
    # built as the benchmark builds it (a minute or two the first time), never skipped
    ensure_synapse("1.163.2")
    # Synapse hands out refresh tokens only with a lifetime for the access tokens they renew
    extra = {"refreshable_access_token_lifetime": "1h", "password_config": {"pepper": PEPPER}}
    server = start_synapse(directory, database, extra)
    try:
        raw = yaml.safe_load((directory / "homeserver.yaml").read_text())
        data = use_synapse(server.url, raw["registration_shared_secret"])
    finally:
        server.stop()
    return SynapseData(directory / "homeserver.yaml", Path(raw["signing_key_path"]), **data)


def synapse_database_digest(synapse: SynapseData) -> str:
    """SHA-256 of Synapse's SQLite database and of what its write-ahead log holds. (SQLite
    makes an empty log and its index beside a WAL database even for a read-only reader.)"""
    raw = yaml.safe_load(synapse.config_path.read_text())
    database = Path(raw["database"]["args"]["database"])
    wal = database.with_name(database.name + "-wal")
    logged = wal.read_bytes() if wal.exists() else b""
    return hashlib.sha256(database.read_bytes() + b"\0" + logged).hexdigest()


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseData]:
    data = build_synapse(tmp_path_factory.mktemp("synapse"), Database("sqlite"))
    before = synapse_database_digest(data)
    yield data
    # every import above read it; none may have written to it
    assert synapse_database_digest(data) == before


def ranvier_config(
    directory: Path, database: dict[str, Any], synapse: SynapseData, **extra: Any
) -> tuple[Path, int]:
    """A Ranvier configured as the same server: Synapse's name and a copy of its key."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "signing.key"
    shutil.copy(synapse.signing_key, key)
    port = free_port()
    overrides = {
        "server_name": SERVER_NAME,
        "signing_key_path": str(key),
        # Synapse's hashes are of the password with its pepper: Ranvier needs the same one
        "password_config": {"pepper": PEPPER},
        **extra,
    }
    return write_test_config(directory, database, port, **overrides), port


def import_command(
    config: Path, synapse: SynapseData, synapse_config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ranvier.cli", "import-synapse", "-c", str(config)]
    argv += ["--synapse-config", str(synapse_config or synapse.config_path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def another_synapse_database(synapse: SynapseData, directory: Path) -> Path:
    """A Synapse configuration like `synapse`'s, naming a copy of its database elsewhere;
    returns its path."""
    directory.mkdir()
    raw = yaml.safe_load(synapse.config_path.read_text())
    copy = directory / "synapse.db"
    shutil.copy(raw["database"]["args"]["database"], copy)
    raw["database"]["args"]["database"] = str(copy)
    path = directory / "synapse.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


class Interrupted(Exception):
    pass


def interrupted_import(database: dict[str, Any], synapse: SynapseData, stop_at: str) -> None:
    """The import stopped as a Ctrl-C would, right after the progress line `stop_at`."""
    shown: list[str] = []

    def echo(line: str) -> None:
        shown.append(line)
        if line.startswith(stop_at):
            raise Interrupted

    synapse_section = yaml.safe_load(synapse.config_path.read_text())["database"]
    with pytest.raises(Interrupted):
        asyncio.run(
            import_synapse_database(
                synapse_section,
                DatabaseConfig.model_validate(database),
                server_name=SERVER_NAME,
                hash_token=hash_token,
                batch_size=1,
                echo=echo,
            )
        )
    assert shown[-1].startswith(stop_at), shown


@pytest.fixture(scope="module")
def imported(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any], synapse: SynapseData
) -> Iterator[tuple[RunningServer, str]]:
    """Ranvier on the imported database, on each engine, and the import's output; the first
    run is interrupted in the devices step, a server refuses the half-filled database, and so
    does an import of another Synapse database into it."""
    directory = tmp_path_factory.mktemp("ranvier")
    config, port = ranvier_config(directory, module_database, synapse)
    interrupted_import(module_database, synapse, stop_at="devices: 1/")
    with pytest.raises(RuntimeError, match="import-synapse"):
        start_server(config, port)
    other = another_synapse_database(synapse, directory / "other-synapse")
    mixed = import_command(config, synapse, other)
    assert mixed.returncode == 1
    assert "holds an unfinished import of bench.localhost's Synapse database" in mixed.stderr
    done = import_command(config, synapse)
    assert done.returncode == 0, done.stderr
    server = start_server(config, port)
    try:
        yield server, done.stdout + done.stderr
    finally:
        assert server.stop() == 0, server.log()


def test_import_resumes_and_says_what_it_did_not_import(
    imported: tuple[RunningServer, str],
) -> None:
    _, output = imported
    assert "users: done in an earlier run (4 rows)" in output
    assert "resuming an earlier run" in output
    assert "Not imported yet" in output and "rooms" in output and "media" in output


def test_old_access_tokens_and_passwords_work(
    imported: tuple[RunningServer, str], synapse: SynapseData
) -> None:
    server, _ = imported
    url = server.url
    whoami = call(synapse.alice, url, "GET", "/account/whoami")
    assert whoami["user_id"] == synapse.alice.user_id
    assert whoami["device_id"] == synapse.alice.device_id
    bob = login(url, "bob", PASSWORD)
    assert bob.user_id == synapse.bob.user_id
    wrong = request(
        "POST",
        url + CLIENT + "/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "bob"},
            "password": "not it",
        },
    )
    assert (wrong.status, wrong.errcode) == (403, "M_FORBIDDEN")
    carol = request(
        "POST",
        url + CLIENT + "/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "carol"},
            "password": PASSWORD,
        },
    )
    assert (carol.status, carol.errcode) == (403, "M_USER_DEACTIVATED")


def test_refresh_tokens(imported: tuple[RunningServer, str], synapse: SynapseData) -> None:
    server, _ = imported
    session = synapse.bob_refreshable
    assert call(session, server.url, "GET", "/account/whoami")["device_id"] == session.device_id
    body = {"refresh_token": synapse.bob_refresh_token}
    renewed = ok(request("POST", server.url + CLIENT + "/refresh", body))
    assert renewed["refresh_token"] != synapse.bob_refresh_token
    new_session = Session(session.user_id, renewed["access_token"], session.device_id)
    assert call(new_session, server.url, "GET", "/account/whoami") == {
        "user_id": session.user_id,
        "device_id": session.device_id,
        "is_guest": False,
    }


def test_admin_flag_profiles_and_devices(
    imported: tuple[RunningServer, str], synapse: SynapseData
) -> None:
    server, _ = imported
    url = server.url
    admin_url = f"{url}/_synapse/admin/v2/users/{quote(synapse.bob.user_id)}"
    shown = ok(authed(synapse.alice, "GET", admin_url))
    assert shown["displayname"] == "Bob B." and shown["admin"] is False
    assert shown["creation_ts"] == synapse.bob_creation_ts
    assert shown["shadow_banned"] is True
    override = f"{url}/_synapse/admin/v1/users/{quote(synapse.bob.user_id)}/override_ratelimit"
    limits = ok(authed(synapse.alice, "GET", override))
    assert limits == {"messages_per_second": 7, "burst_count": 70}
    dave_url = f"{url}/_synapse/admin/v2/users/{quote('@dave:' + SERVER_NAME)}"
    assert ok(authed(synapse.alice, "GET", dave_url))["user_type"] == "support"
    alice_url = f"{url}/_synapse/admin/v2/users/{quote(synapse.alice.user_id)}"
    assert ok(authed(synapse.alice, "GET", alice_url))["admin"] is True
    assert authed(synapse.bob, "GET", admin_url).status == 403
    profile = ok(request("GET", f"{url}{CLIENT}/profile/{quote(synapse.alice.user_id)}"))
    assert profile["displayname"] == "Alice A."
    devices = call(synapse.alice, url, "GET", "/devices")["devices"]
    assert synapse.alice.device_id in {device["device_id"] for device in devices}


def test_keys_query_and_claim(imported: tuple[RunningServer, str], synapse: SynapseData) -> None:
    server, _ = imported
    alice = synapse.alice
    query = call(alice, server.url, "POST", "/keys/query", {"device_keys": {alice.user_id: []}})
    device = query["device_keys"][alice.user_id][alice.device_id]
    assert device["keys"] == synapse.alice_device.device_keys()["keys"]
    signers = set(device["signatures"][alice.user_id])
    assert signers == {
        f"ed25519:{alice.device_id}",
        synapse.cross_signing.self_signing.signing.key_id,
    }
    master = query["master_keys"][alice.user_id]
    assert master["keys"] == synapse.cross_signing.master.unsigned_json()["keys"]
    self_signing = query["self_signing_keys"][alice.user_id]
    assert self_signing["keys"] == synapse.cross_signing.self_signing.unsigned_json()["keys"]
    claim_body = {"one_time_keys": {alice.user_id: {alice.device_id: OTK}}}
    claimed = call(synapse.bob, server.url, "POST", "/keys/claim", claim_body)
    [(key_id, key)] = claimed["one_time_keys"][alice.user_id][alice.device_id].items()
    assert synapse.one_time_keys[key_id] == key


def test_key_backup(imported: tuple[RunningServer, str], synapse: SynapseData) -> None:
    server, _ = imported
    version = call(synapse.alice, server.url, "GET", "/room_keys/version")
    assert version["version"] == synapse.backup_version
    assert version["auth_data"] == synapse.backup_auth_data
    assert version["count"] == 1
    path = f"/room_keys/keys/{quote(ROOM)}/{SESSION_ID}?version={synapse.backup_version}"
    assert call(synapse.alice, server.url, "GET", path) == ROOM_KEY


def test_account_data_push_rules_and_filters(
    imported: tuple[RunningServer, str], synapse: SynapseData
) -> None:
    server, _ = imported
    url, alice = server.url, synapse.alice
    user = quote(alice.user_id)
    assert call(alice, url, "GET", f"/user/{user}/account_data/{ACCOUNT_DATA_TYPE}") == {
        "theme": "dark"
    }
    ignored = call(alice, url, "GET", f"/user/{user}/account_data/m.ignored_user_list")
    assert list(ignored["ignored_users"]) == ["@spammer:elsewhere.example"]
    rule = call(alice, url, "GET", "/pushrules/global/content/cake")
    assert rule["pattern"] == "cake" and rule["actions"] == ["notify"]
    enabled = call(alice, url, "GET", "/pushrules/global/override/.m.rule.suppress_notices/enabled")
    assert enabled == {"enabled": False}
    assert call(alice, url, "GET", f"/user/{user}/filter/{synapse.filter_id}") == FILTER
    room = f"/user/{user}/rooms/{quote(synapse.room_id)}"
    tags = call(alice, url, "GET", f"{room}/tags")["tags"]
    assert tags == {"m.favourite": {"order": 0.25}, "u.work": {}}
    assert call(alice, url, "GET", f"{room}/account_data/{ACCOUNT_DATA_TYPE}") == {"pinned": True}
    # a new filter takes a new ID: the old one still means what it meant
    other = call(alice, url, "POST", f"/user/{user}/filter", {"presence": {"limit": 1}})
    assert other["filter_id"] != synapse.filter_id
    assert call(alice, url, "GET", f"/user/{user}/filter/{synapse.filter_id}") == FILTER
    # the imported account data reaches a first sync
    sync = call(alice, url, "GET", "/sync")
    types = {event["type"] for event in sync["account_data"]["events"]}
    assert {ACCOUNT_DATA_TYPE, "m.ignored_user_list", "m.push_rules"} <= types


def test_pushers(imported: tuple[RunningServer, str], synapse: SynapseData) -> None:
    server, _ = imported
    [pusher] = call(synapse.bob, server.url, "GET", "/pushers")["pushers"]
    assert {key: pusher[key] for key in PUSHER} == PUSHER
    # it belongs to the session that made it: logging that device out removes it
    call(synapse.bob, server.url, "POST", "/logout", {})
    bob = login(server.url, "bob", PASSWORD)
    assert call(bob, server.url, "GET", "/pushers")["pushers"] == []


def test_refuses_a_database_that_has_users(
    imported: tuple[RunningServer, str], synapse: SynapseData
) -> None:
    server, _ = imported
    # the server running on it is refused first
    running = import_command(server.config_path, synapse)
    assert running.returncode == 1
    assert "Ranvier server is using the database" in running.stderr
    server.stop()
    try:
        again = import_command(server.config_path, synapse)
        assert again.returncode == 1
        assert "already has 4 user(s)" in again.stderr
    finally:
        restarted = start_server(server.config_path, int(server.url.rsplit(":", 1)[1]))
        server.process = restarted.process
    # nothing changed: the old token still works
    assert (
        call(synapse.alice, server.url, "GET", "/account/whoami")["user_id"]
        == synapse.alice.user_id
    )


def _new_sqlite(directory: Path) -> dict[str, Any]:
    return {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}}


def test_passwords_need_synapse_pepper(tmp_path: Path, synapse: SynapseData) -> None:
    """Without Synapse's pepper the imported hashes cannot match: the setting is in effect."""
    database = _new_sqlite(tmp_path)
    config, port = ranvier_config(tmp_path / "ranvier", database, synapse, password_config={})
    result = import_command(config, synapse)
    assert result.returncode == 0, result.stderr
    server = start_server(config, port)
    try:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "bob"},
            "password": PASSWORD,
        }
        refused = request("POST", server.url + CLIENT + "/login", body)
        assert (refused.status, refused.errcode) == (403, "M_FORBIDDEN")
    finally:
        assert server.stop() == 0, server.log()


def test_refuses_another_server_name(tmp_path: Path, synapse: SynapseData) -> None:
    config, _ = ranvier_config(tmp_path, _new_sqlite(tmp_path), synapse)
    raw = yaml.safe_load(config.read_text())
    raw["server_name"] = "other.localhost"
    config.write_text(yaml.safe_dump(raw))
    result = import_command(config, synapse)
    assert result.returncode == 1
    assert "server_name is 'bench.localhost' but Ranvier's is 'other.localhost'" in result.stderr
    assert not (tmp_path / "homeserver.db").exists()


def test_refuses_another_signing_key(tmp_path: Path, synapse: SynapseData) -> None:
    config, _ = ranvier_config(tmp_path, _new_sqlite(tmp_path), synapse)
    other = encode_base64(bytes(SigningKey.generate()))
    (tmp_path / "signing.key").write_text(f"ed25519 other {other}\n")
    result = import_command(config, synapse)
    assert result.returncode == 1
    assert "signing key" in result.stderr and "copy Synapse's key file" in result.stderr
    assert not (tmp_path / "homeserver.db").exists()


def test_refuses_an_unknown_synapse_schema(tmp_path: Path, synapse: SynapseData) -> None:
    # a copy of Synapse's database as a newer Synapse would have left it
    synapse_config = another_synapse_database(synapse, tmp_path / "newer")
    with sqlite3.connect(tmp_path / "newer" / "synapse.db") as conn:
        conn.execute("UPDATE schema_version SET version = 95")
    config, _ = ranvier_config(tmp_path / "ranvier", _new_sqlite(tmp_path), synapse)
    result = import_command(config, synapse, synapse_config)
    assert result.returncode == 1
    assert "schema version 95" in result.stderr and "Synapse 1.163" in result.stderr
    assert not (tmp_path / "homeserver.db").exists()


@pytest.mark.postgres
def test_imports_from_synapse_on_postgresql(tmp_path: Path) -> None:
    """The import reads a Synapse that runs on PostgreSQL too (the same clients' doing)."""
    database = Database("postgres", postgres_url=postgres_server_url())
    try:
        synapse = build_synapse(tmp_path / "synapse", database)
    except PostgresUnavailable as exc:
        postgres_unavailable(str(exc))
        return
    try:
        assert yaml.safe_load(synapse.config_path.read_text())["database"]["name"] == "psycopg2"
        config, port = ranvier_config(tmp_path / "ranvier", _new_sqlite(tmp_path), synapse)
        result = import_command(config, synapse)
        assert result.returncode == 0, result.stderr
        assert "(Synapse = Ranvier, verified)" in result.stdout
        assert re.search(r"e2e_one_time_keys_json +3\n", result.stdout), result.stdout
        server = start_server(config, port)
        try:
            alice = synapse.alice
            assert call(alice, server.url, "GET", "/account/whoami")["user_id"] == alice.user_id
            body: dict[str, Any] = {"device_keys": {alice.user_id: []}}
            query = call(alice, server.url, "POST", "/keys/query", body)
            device = query["device_keys"][alice.user_id][alice.device_id]
            assert device["keys"] == synapse.alice_device.device_keys()["keys"]
            user = quote(alice.user_id)
            path = f"/user/{user}/filter/{synapse.filter_id}"
            assert call(alice, server.url, "GET", path) == FILTER
            [pusher] = call(synapse.bob, server.url, "GET", "/pushers")["pushers"]
            assert pusher["pushkey"] == PUSHER["pushkey"]
            login(server.url, "bob", PASSWORD)
        finally:
            assert server.stop() == 0, server.log()
    finally:
        database.drop_all()
