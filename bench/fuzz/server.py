"""The homeserver configuration the fuzz runs against, and starting one for `make fuzz`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from bench.servers import Database, RunningServer, _launch, free_port

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
    from ranvier.config.generate import generate_config

    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    path = directory / "homeserver.yaml"
    generate_config(SERVER_NAME, path, directory / "data")
    raw = yaml.safe_load(path.read_text())
    raw["database"] = database.section(directory, for_synapse=False)
    raw["listeners"] = [
        {
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "resources": [{"names": ["client", "federation"]}],
        }
    ]
    raw.update(FUZZ_CONFIG)
    path.write_text(yaml.safe_dump(raw))
    argv = [sys.executable, "-m", "ranvier.cli", "run", "-c", str(path)]
    return _launch("ranvier", argv, directory, port), path
