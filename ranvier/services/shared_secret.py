"""Shared-secret registration (Synapse's `/_synapse/admin/v1/register`), so that
`register_new_matrix_user`-style tools can create accounts without an admin account.

The tool fetches a nonce, then sends the new account's details with an HMAC-SHA1 over them,
keyed with `registration_shared_secret`. A nonce works once and for 60 seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

NONCE_LIFETIME_SECONDS = 60.0
# a bound on outstanding nonces, so that unauthenticated GETs cannot grow memory forever
MAX_NONCES = 10_000


def registration_mac(
    secret: str,
    nonce: str,
    username: str,
    password: str,
    admin: bool,
    user_type: str | None = None,
) -> str:
    """Hex HMAC-SHA1 of nonce, username, password, "admin"/"notadmin" and the user type if
    any, separated by NUL bytes: what register_new_matrix_user computes."""
    parts = [nonce.encode(), username.encode(), password.encode()]
    parts.append(b"admin" if admin else b"notadmin")
    if user_type:
        parts.append(user_type.encode())
    return hmac.new(secret.encode(), b"\x00".join(parts), hashlib.sha1).hexdigest()


def mac_matches(expected: str, given: str) -> bool:
    # constant time, so the MAC cannot be guessed byte by byte from response times
    return hmac.compare_digest(expected.encode(), given.encode(errors="replace"))


class NonceStore:
    """Nonces handed out by this process, in memory (as in Synapse: a tool fetches its nonce
    and posts within the same minute, to the same process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._issued_at: dict[str, float] = {}

    def _expire(self, now: float) -> None:
        for nonce, issued in list(self._issued_at.items()):
            if now - issued > NONCE_LIFETIME_SECONDS:
                del self._issued_at[nonce]

    def new(self) -> str:
        now = self._clock()
        self._expire(now)
        if len(self._issued_at) >= MAX_NONCES:
            # drop the oldest: a flood of GETs can only cost its own nonces
            del self._issued_at[min(self._issued_at, key=self._issued_at.__getitem__)]
        nonce = secrets.token_hex(64)
        self._issued_at[nonce] = now
        return nonce

    def consume(self, nonce: str) -> bool:
        """Whether `nonce` was issued and is still fresh; it can never be used again."""
        now = self._clock()
        self._expire(now)
        return self._issued_at.pop(nonce, None) is not None
