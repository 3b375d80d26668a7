"""Short-term login tokens (m.login.token) and bcrypt-to-argon2 rehashing, through the
services on both engines."""

from __future__ import annotations

import asyncio
from typing import Any

import bcrypt
import pytest

from ranvier.config.models import HomeserverConfig
from ranvier.errors import MatrixError
from ranvier.server import build_accounts
from ranvier.services.login import LoginToken
from ranvier.services.uia import PasswordCredentials
from ranvier.storage.database import Database

NEW_DEVICE: dict[str, Any] = {"device_id": None, "display_name": None, "refresh": False}


def config() -> HomeserverConfig:
    return HomeserverConfig(server_name="test.localhost", signing_key_path="/nonexistent.key")


async def test_login_token_is_single_use(database: Database) -> None:
    accounts = build_accounts(config(), database)
    user_id = await accounts.accounts.register_from_command_line("tina", "pw", admin=False)
    token = await accounts.login.create_login_token(user_id, 60_000, "oidc", "sess-1")
    session = await accounts.login.login(LoginToken(token), **NEW_DEVICE)
    assert session.user_id == user_id
    assert (await accounts.access_tokens.lookup(session.access_token)) is not None
    with pytest.raises(MatrixError) as caught:
        await accounts.login.login(LoginToken(token), **NEW_DEVICE)
    assert (caught.value.status, caught.value.errcode) == (403, "M_FORBIDDEN")


async def test_login_token_expires(database: Database) -> None:
    accounts = build_accounts(config(), database)
    user_id = await accounts.accounts.register_from_command_line("uma", "pw", admin=False)
    token = await accounts.login.create_login_token(user_id, 1)
    await asyncio.sleep(0.01)
    with pytest.raises(MatrixError) as caught:
        await accounts.login.login(LoginToken(token), **NEW_DEVICE)
    assert caught.value.errcode == "M_FORBIDDEN"


async def test_login_token_of_a_deactivated_user(database: Database) -> None:
    accounts = build_accounts(config(), database)
    user_id = await accounts.accounts.register_from_command_line("vic", "pw", admin=False)
    token = await accounts.login.create_login_token(user_id, 60_000)
    await accounts.accounts.deactivate(user_id, erase=False)
    with pytest.raises(MatrixError) as caught:
        await accounts.login.login(LoginToken(token), **NEW_DEVICE)
    assert caught.value.errcode == "M_USER_DEACTIVATED"


async def test_imported_bcrypt_hash_logs_in_and_becomes_argon2(database: Database) -> None:
    accounts = build_accounts(config(), database)
    user_id = await accounts.accounts.register_from_command_line("walt", "unused", admin=False)
    await accounts.users.set_password_hash(
        user_id, bcrypt.hashpw(b"from synapse", bcrypt.gensalt(4)).decode()
    )
    credentials = PasswordCredentials(user="walt", password="from synapse")
    assert (await accounts.login.login(credentials, **NEW_DEVICE)).user_id == user_id
    user = await accounts.users.get_user(user_id)
    assert user is not None and user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert (await accounts.login.login(credentials, **NEW_DEVICE)).user_id == user_id
