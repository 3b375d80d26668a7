"""TURN credentials for VoIP (spec: client-server-api "Voice over IP", GET /voip/turnServer),
from Synapse's turn_* options."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from ranvier.config.models import HomeserverConfig


def turn_server(config: HomeserverConfig, user_id: str, now_ms: int) -> dict[str, Any]:
    """What GET /voip/turnServer answers `user_id` at `now_ms`: {} when no TURN server is
    configured (as Synapse; clients then call without one)."""
    lifetime_ms = config.turn_user_lifetime
    if not config.turn_uris:
        return {}
    if config.turn_shared_secret is not None:
        # coturn's REST API (use-auth-secret): the username is "<expiry, unix seconds>:<any
        # name>" and the password the base64 HMAC-SHA1 of it under the shared secret, so
        # coturn checks both without asking us, and refuses them once expired
        expiry_seconds = (now_ms + lifetime_ms) // 1000
        username = f"{expiry_seconds}:{user_id}"
        mac = hmac.new(config.turn_shared_secret.encode(), username.encode(), hashlib.sha1)
        password = base64.b64encode(mac.digest()).decode("ascii")
    elif config.turn_username is not None and config.turn_password is not None:
        username, password = config.turn_username, config.turn_password
    else:  # refused at start-up (config/validation.py); kept for the type checker
        return {}
    return {
        "username": username,
        "password": password,
        "ttl": lifetime_ms // 1000,
        "uris": list(config.turn_uris),
    }
