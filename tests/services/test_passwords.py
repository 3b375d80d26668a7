"""Password hashing and policy, without a server."""

from __future__ import annotations

import os
from typing import Any

import bcrypt
import pytest

from ranvier.config.models import Argon2Cost, PasswordConfig, PasswordPolicy
from ranvier.errors import MatrixError
from ranvier.services.passwords import PasswordHasher


def hasher(pepper: str = "", **policy: Any) -> PasswordHasher:
    return PasswordHasher(
        PasswordConfig(pepper=pepper, policy=PasswordPolicy(enabled=True, **policy))
    )


async def test_new_hashes_are_argon2id_and_verify() -> None:
    h = hasher()
    stored = await h.hash("hunter22")
    assert stored.startswith("$argon2id$")
    assert await h.verify("hunter22", stored)
    assert not await h.verify("hunter23", stored)
    assert not h.needs_rehash(stored)


async def test_new_hashes_take_the_configured_cost_and_other_costs_rehash() -> None:
    small = PasswordHasher(
        PasswordConfig(argon2=Argon2Cost(time_cost=1, memory_cost=2048, parallelism=2))
    )
    stored = await small.hash("hunter22")
    assert stored.startswith("$argon2id$v=19$m=2048,t=1,p=2$")
    assert not small.needs_rehash(stored)
    default = PasswordHasher(PasswordConfig())
    assert await default.verify("hunter22", stored)
    assert default.needs_rehash(stored)
    assert (await default.hash("hunter22")).startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_hashes_at_once_are_bounded_by_cpus_over_lanes() -> None:
    cpus = os.cpu_count() or 1
    assert PasswordHasher(PasswordConfig()).concurrency == cpus
    wide = PasswordHasher(PasswordConfig(argon2=Argon2Cost(parallelism=64)))
    assert wide.concurrency == max(1, cpus // 64)


async def test_synapse_bcrypt_hashes_verify_with_its_pepper() -> None:
    # as Synapse stores them: bcrypt over the password with the pepper appended
    stored = bcrypt.hashpw(b"s3cret" + b"pepper!", bcrypt.gensalt(4)).decode()
    assert stored.startswith("$2b$")
    assert await hasher("pepper!").verify("s3cret", stored)
    assert not await hasher().verify("s3cret", stored)
    assert not await hasher("pepper!").verify("wrong", stored)
    assert hasher().needs_rehash(stored)


async def test_long_passwords_verify_against_bcrypt_as_synapse_cut_them() -> None:
    long_password = "x" * 100
    stored = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(4)).decode()
    assert await hasher().verify(long_password, stored)


async def test_unicode_is_normalised() -> None:
    h = hasher()
    stored = await h.hash("caf\u00e9")  # composed é
    assert await h.verify("cafe\u0301", stored)  # e + combining accent


async def test_unknown_hash_formats_do_not_verify() -> None:
    assert not await hasher().verify("x", "plaintext")
    assert not await hasher().verify("x", "$argon2id$garbage")


@pytest.mark.parametrize(
    ("policy", "password", "message"),
    [
        ({"minimum_length": 10}, "short", "at least 10 characters"),
        ({"require_digit": True}, "no digits here", "digit"),
        ({"require_symbol": True}, "OnlyLetters123", "symbol"),
        ({"require_lowercase": True}, "UPPER123!", "lowercase"),
        ({"require_uppercase": True}, "lower123!", "uppercase"),
    ],
)
def test_policy_names_the_broken_rule(policy: dict[str, Any], password: str, message: str) -> None:
    with pytest.raises(MatrixError) as caught:
        hasher(**policy).check_policy(password)
    assert (caught.value.status, caught.value.errcode) == (400, "M_WEAK_PASSWORD")
    assert message in caught.value.error


def test_policy_accepts_a_good_password_and_is_off_by_default() -> None:
    strict = hasher(
        minimum_length=8,
        require_digit=True,
        require_symbol=True,
        require_lowercase=True,
        require_uppercase=True,
    )
    strict.check_policy("Abcdef1!")
    PasswordHasher(PasswordConfig()).check_policy("x")
