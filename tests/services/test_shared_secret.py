"""Shared-secret registration's HMAC and nonces."""

from __future__ import annotations

import hashlib
import hmac

from ranvier.services.shared_secret import (
    NONCE_LIFETIME_SECONDS,
    NonceStore,
    mac_matches,
    registration_mac,
)


def tool_mac(
    secret: str, nonce: str, user: str, password: str, admin: bool, user_type: str | None = None
) -> str:
    """The MAC as register_new_matrix_user builds it: incremental updates, NUL separated."""
    mac = hmac.new(key=secret.encode("utf8"), digestmod=hashlib.sha1)
    mac.update(nonce.encode("utf8"))
    mac.update(b"\x00")
    mac.update(user.encode("utf8"))
    mac.update(b"\x00")
    mac.update(password.encode("utf8"))
    mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    if user_type:
        mac.update(b"\x00")
        mac.update(user_type.encode("utf8"))
    return mac.hexdigest()


def test_mac_matches_the_tool() -> None:
    for admin in (True, False):
        for user_type in (None, "bot"):
            ours = registration_mac("s3cret", "n", "alice", "pässword", admin, user_type)
            assert ours == tool_mac("s3cret", "n", "alice", "pässword", admin, user_type)
    assert registration_mac("s", "n", "u", "p", False) != registration_mac("s", "n", "u", "p", True)


def test_mac_comparison() -> None:
    mac = registration_mac("s", "n", "u", "p", False)
    assert mac_matches(mac, mac)
    assert not mac_matches(mac, mac[:-1] + "0" if mac[-1] != "0" else mac[:-1] + "1")
    assert not mac_matches(mac, "ü")


class FakeClock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_nonces_are_single_use_and_expire() -> None:
    clock = FakeClock()
    nonces = NonceStore(clock)
    first, second = nonces.new(), nonces.new()
    assert first != second
    assert nonces.consume(first)
    assert not nonces.consume(first)
    assert not nonces.consume("never issued")
    clock.now += NONCE_LIFETIME_SECONDS + 1
    assert not nonces.consume(second)
