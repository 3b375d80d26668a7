"""`ranvier hash-password`, as an admin uses it: the hash it prints, written into the users
table, lets the user log in with that password on a server with the same pepper; a
different pepper does not."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.client import request
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import REGISTRATION_CONFIG, login, register

PEPPER = "a pepper only this server knows"
COST = {"time_cost": 1, "memory_cost": 8192, "parallelism": 1}


def hash_password(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ranvier.cli", "hash-password", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    directory = tmp_path_factory.mktemp("hs")
    database = {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}}
    with serving(
        directory,
        database,
        password_config={"pepper": PEPPER, "argon2": COST},
        **REGISTRATION_CONFIG,
    ) as running:
        yield running


def set_password_hash(server: RunningServer, user_id: str, password_hash: str) -> None:
    """What the admin does with the hash (Synapse's docs say the same for hash_password)."""
    raw = yaml.safe_load(server.config_path.read_text())
    with sqlite3.connect(raw["database"]["args"]["database"]) as conn:
        changed = conn.execute(
            "UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id)
        ).rowcount
    assert changed == 1


def test_the_printed_hash_logs_the_user_in(server: RunningServer) -> None:
    user = register(server.url, "hashed")
    made = hash_password("-c", str(server.config_path), "-p", "typed by the admin")
    assert made.returncode == 0, made.stderr
    printed = made.stdout.strip()
    # argon2id at the configured cost, as the server itself would hash
    assert printed.startswith("$argon2id$v=19$m=8192,t=1,p=1$")
    set_password_hash(server, user.user_id, printed)
    assert login(server.url, "hashed", "typed by the admin").user_id == user.user_id
    refused = request(
        "POST",
        server.url + "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "hashed"},
            "password": "something else",
        },
    )
    assert refused.status == 403 and refused.errcode == "M_FORBIDDEN"


def test_a_hash_without_the_pepper_does_not(server: RunningServer, tmp_path: Path) -> None:
    user = register(server.url, "unpeppered")
    made = hash_password("-p", "typed by the admin")
    assert made.returncode == 0, made.stderr
    set_password_hash(server, user.user_id, made.stdout.strip())
    refused = request(
        "POST",
        server.url + "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "unpeppered"},
            "password": "typed by the admin",
        },
    )
    assert refused.status == 403

    # a file with only password_config will do, as for Synapse's hash_password -c
    only = tmp_path / "password.yaml"
    only.write_text(yaml.safe_dump({"password_config": {"pepper": PEPPER, "argon2": COST}}))
    again = hash_password("-c", str(only), "-p", "typed by the admin")
    assert again.returncode == 0, again.stderr
    set_password_hash(server, user.user_id, again.stdout.strip())
    assert login(server.url, "unpeppered", "typed by the admin").user_id == user.user_id


def test_refusals(tmp_path: Path) -> None:
    # no terminal to ask on, and no -p
    no_terminal = hash_password(stdin="")
    assert no_terminal.returncode == 2
    assert "pass -p PASSWORD" in no_terminal.stderr
    empty = hash_password("-p", "")
    assert empty.returncode == 1
    assert "must not be empty" in empty.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"password_config": {"argon2": {"time_cost": "lots"}}}))
    refused = hash_password("-c", str(bad), "-p", "x")
    assert refused.returncode == 1
    assert "password_config.argon2.time_cost" in refused.stderr
    assert not refused.stdout
    missing = hash_password("-c", str(tmp_path / "nowhere.yaml"), "-p", "x")
    assert missing.returncode == 1
    assert "cannot read it" in missing.stderr
