"""`ranvier import-synapse`: what the admin gives it, the checks on the two configurations,
and what they are shown.

The reading and writing is storage's (storage/synapse_import/); this checks that Ranvier is
configured as the same server (server_name and signing key: other servers and clients know
the server by both), shows progress on stderr, and prints what was imported and, just as
plainly, what was not.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml

from ranvier.config import load_config
from ranvier.services.tokens import hash_token
from ranvier.storage.synapse_import.importer import (
    SUPPORTED_SYNAPSE,
    ImportSummary,
    SynapseImportError,
    import_synapse_database,
)

# said after every import, so no admin believes their rooms came along
NOT_IMPORTED_YET = (
    "Not imported yet (a later Ranvier will): rooms, their events and state, memberships, "
    "receipts, aliases and the room directory, media, extended profile fields, disabled "
    "pushers, and other servers' data. Until then, use this import to try "
    "Ranvier with your accounts, not to replace a Synapse whose rooms matter."
)


def synapse_section(synapse_config: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(synapse_config.read_text())
    except OSError as exc:
        raise SynapseImportError(
            f"Cannot read --synapse-config {str(synapse_config)!r}: {exc.strerror}"
        ) from None
    except yaml.YAMLError as exc:
        raise SynapseImportError(
            f"--synapse-config {str(synapse_config)!r} is not valid YAML: {exc}"
        ) from None
    if not isinstance(raw, dict):
        raise SynapseImportError(f"--synapse-config {str(synapse_config)!r} is not a mapping")
    return raw


def _key_lines(path: Path, whose: str) -> set[str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SynapseImportError(
            f"Cannot read {whose} signing key {str(path)!r}: {exc.strerror}"
        ) from None
    return {" ".join(line.split()) for line in text.splitlines() if line.strip()}


def check_same_server(
    ranvier_name: str, ranvier_key: Path, synapse: dict[str, Any], synapse_config: Path
) -> None:
    """Refuse unless Ranvier is configured as the same server as Synapse."""
    synapse_name = synapse.get("server_name")
    if synapse_name != ranvier_name:
        raise SynapseImportError(
            f"Synapse's server_name is {synapse_name!r} but Ranvier's is {ranvier_name!r}. "
            "Every user ID and room ID carries the server name, so they must be the same: "
            f"set server_name: {synapse_name} in Ranvier's homeserver.yaml."
        )
    key_setting = synapse.get("signing_key_path")
    if not isinstance(key_setting, str):
        raise SynapseImportError("Synapse's configuration names no signing_key_path")
    synapse_key = Path(key_setting).expanduser()
    if not synapse_key.is_absolute():
        synapse_key = synapse_config.parent / synapse_key
    if _key_lines(synapse_key, "Synapse's") != _key_lines(ranvier_key, "Ranvier's"):
        raise SynapseImportError(
            f"Ranvier's signing key ({ranvier_key}) is not Synapse's ({synapse_key}). Other "
            "servers know this server by its key: copy Synapse's key file over Ranvier's "
            f"(cp {synapse_key} {ranvier_key}) and run the import again."
        )


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def render_summary(summary: ImportSummary, synapse_location: str) -> str:
    width = max(len(step.name) for step in summary.steps)
    lines = [
        f"Imported the accounts of Synapse's database ({synapse_location})"
        f"{', resuming an earlier run' if summary.resumed else ''} in {summary.seconds:.1f} s.",
        "Rows per Synapse table (Synapse = Ranvier, verified):",
        *(f"  {step.name:<{width}}  {step.target_rows}" for step in summary.steps),
        "",
        NOT_IMPORTED_YET,
        "",
        "Ranvier may start now. Keep Synapse stopped: both serving one server name would "
        "confuse other servers and clients.",
    ]
    return "\n".join(lines)


def import_synapse(config_path: str, synapse_config: str, *, batch_size: int) -> int:
    """`ranvier import-synapse`; the exit code."""
    config = load_config(Path(config_path))
    synapse_path = Path(synapse_config)
    synapse = synapse_section(synapse_path)
    check_same_server(config.server_name, Path(config.signing_key_path), synapse, synapse_path)
    database = synapse.get("database") or {"name": "sqlite3", "args": {}}
    if not isinstance(database, dict):
        raise SynapseImportError("Synapse's `database` section must be a mapping")
    _stderr(f"Importing from Synapse; this Ranvier reads {SUPPORTED_SYNAPSE}.")
    summary = asyncio.run(
        import_synapse_database(
            database,
            config.database,
            server_name=config.server_name,
            hash_token=hash_token,
            batch_size=batch_size,
            echo=_stderr,
        )
    )
    location = str((database.get("args") or {}).get("database", "?"))
    print(render_summary(summary, location))
    return 0
