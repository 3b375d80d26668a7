"""Password hashing, verification and the password policy.

New hashes are argon2id at the cost `password_config.argon2` sets (time, memory, lanes).
Hashes imported from Synapse are bcrypt (`$2b$...`) over the password with
`password_config.pepper` appended; they verify here, whatever their rounds. A hash that is
bcrypt, or argon2 at another cost, is replaced by one at the configured cost on the user's
next successful login, so changing the cost reaches every active user.

Hashing is deliberately slow, so it runs in threads, off the event loop, and deliberately
big (`memory_cost` each), so one process builds ONE hasher, whose pool runs no more hashes at
once than there are CPUs for their lanes: a burst of registrations queues instead of
multiplying the server's memory, and finishes no later, since each lane keeps a CPU busy.
"""

from __future__ import annotations

import asyncio
import os
import string
import unicodedata
from concurrent.futures import ThreadPoolExecutor

import argon2
import bcrypt

from ranvier.config.models import PasswordConfig
from ranvier.errors import MatrixError

# bcrypt reads at most 72 bytes; the bcrypt library Synapse used dropped the rest silently,
# while newer ones refuse longer input, so we cut as it did to verify its hashes
_BCRYPT_MAX_BYTES = 72
_LETTERS_AND_DIGITS = frozenset(string.ascii_letters + string.digits)


def weak_password(error: str) -> MatrixError:
    return MatrixError(400, "M_WEAK_PASSWORD", error)


class PasswordHasher:
    def __init__(self, config: PasswordConfig) -> None:
        self._config = config
        cost = config.argon2
        self._argon2 = argon2.PasswordHasher(
            time_cost=cost.time_cost,
            memory_cost=cost.memory_cost,
            parallelism=cost.parallelism,
            type=argon2.Type.ID,
        )
        # argon2 hashes each lane on a thread of its own
        self.concurrency = max(1, (os.cpu_count() or 1) // cost.parallelism)
        self._executor = ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix="password-hash"
        )

    def _prepare(self, password: str) -> bytes:
        # Synapse normalises to NFKC so that the same password typed on different
        # keyboards (composed or decomposed accents) matches; its hashes depend on it
        return (unicodedata.normalize("NFKC", password) + self._config.pepper).encode()

    async def hash(self, password: str) -> str:
        prepared = self._prepare(password)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._argon2.hash, prepared)

    async def verify(self, password: str, stored_hash: str) -> bool:
        prepared = self._prepare(password)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._verify_sync, prepared, stored_hash)

    def _verify_sync(self, prepared: bytes, stored_hash: str) -> bool:
        if stored_hash.startswith(("$2a$", "$2b$", "$2y$")):
            try:
                return bcrypt.checkpw(prepared[:_BCRYPT_MAX_BYTES], stored_hash.encode())
            except ValueError:
                return False
        if stored_hash.startswith("$argon2"):
            try:
                return self._argon2.verify(stored_hash, prepared)
            except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
                return False
        return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """True for hashes we only verify (bcrypt) and argon2 hashes at another cost than
        the configured one (higher too: the admin's setting wins)."""
        if not stored_hash.startswith("$argon2id$"):
            return True
        try:
            return self._argon2.check_needs_rehash(stored_hash)
        except argon2.exceptions.InvalidHashError:
            return True

    def check_policy(self, password: str) -> None:
        """400 M_WEAK_PASSWORD naming the first rule the password breaks."""
        policy = self._config.policy
        if not policy.enabled:
            return
        if len(password) < policy.minimum_length:
            raise weak_password(
                f"The password must be at least {policy.minimum_length} characters long"
            )
        # character classes are ASCII, as in Synapse, so a policy means the same on both
        if policy.require_digit and not any(c in string.digits for c in password):
            raise weak_password("The password must contain at least one digit")
        if policy.require_symbol and all(c in _LETTERS_AND_DIGITS for c in password):
            raise weak_password("The password must contain at least one symbol")
        if policy.require_lowercase and not any(c in string.ascii_lowercase for c in password):
            raise weak_password("The password must contain at least one lowercase letter")
        if policy.require_uppercase and not any(c in string.ascii_uppercase for c in password):
            raise weak_password("The password must contain at least one uppercase letter")
