"""password_config.argon2 as an admin sees it: new hashes are stored at the configured cost,
and after the cost changes a user's next login rehashes their password at the new one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from ranvier.config.loader import load_config
from ranvier.storage.schema import prepare_database
from ranvier.storage.users import UserStore
from tests.integration.conftest import restartable_config
from tests.integration.homeserver import start_server
from tests.integration.matrix import login, register

SMALL = {"time_cost": 1, "memory_cost": "2M", "parallelism": 2}
LARGER = {"time_cost": 2, "memory_cost": 3072, "parallelism": 1}

config = restartable_config(password_config={"argon2": SMALL})


def stored_hash(config_path: Path, user_id: str) -> str:
    """What the database holds, as an admin would read it with SQL."""

    async def read() -> str:
        database = await prepare_database(load_config(config_path))
        try:
            user = await UserStore(database).get_user(user_id)
        finally:
            await database.close()
        assert user is not None and user.password_hash is not None
        return user.password_hash

    return asyncio.run(read())


def set_cost(config_path: Path, cost: dict[str, Any]) -> None:
    raw = yaml.safe_load(config_path.read_text())
    raw["password_config"] = {"argon2": cost}
    config_path.write_text(yaml.safe_dump(raw))


def test_hashes_take_the_configured_cost_and_rehash_when_it_changes(
    config: tuple[Path, int],
) -> None:
    path, port = config
    running = start_server(path, port)
    try:
        alice = register(running.url, "alice", "correct horse")
        login(running.url, "alice", "correct horse")
    finally:
        assert running.stop() == 0, running.log()
    assert stored_hash(path, alice.user_id).startswith("$argon2id$v=19$m=2048,t=1,p=2$")

    set_cost(path, LARGER)
    running = start_server(path, port)
    try:
        login(running.url, "alice", "correct horse")
        rehashed = stored_hash(path, alice.user_id)
        assert rehashed.startswith("$argon2id$v=19$m=3072,t=2,p=1$")
        # at the configured cost already: the next login keeps the hash
        login(running.url, "alice", "correct horse")
        assert stored_hash(path, alice.user_id) == rehashed
    finally:
        assert running.stop() == 0, running.log()
