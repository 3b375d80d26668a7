"""The homeserver configuration the fuzz runs against, and starting one for `make fuzz`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.servers import Database, RunningServer, _launch, ranvier_argv, write_ranvier_config

_UNLIMITED = {"per_second": 100_000, "burst_count": 100_000}
# open registration for the fuzzer's users, guests for the guest code paths, and rate limits
# out of the way so that requests reach the endpoints rather than a 429
FUZZ_CONFIG: dict[str, Any] = {
    "enable_registration": True,
    "enable_registration_without_verification": True,
    "allow_guest_access": True,
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_registration_token_validity": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
}
SERVER_NAME = "fuzz.localhost"


def start_ranvier(directory: Path, database: Database) -> tuple[RunningServer, Path]:
    """Ranvier with FUZZ_CONFIG on a free loopback port; its config file's path."""
    path, port = write_ranvier_config(directory, database, FUZZ_CONFIG, SERVER_NAME)
    return _launch("ranvier", ranvier_argv(path), directory, port), path
