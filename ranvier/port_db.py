"""`ranvier port-db`: what the admin gives it, what they are shown.

The copying itself is storage's (storage/port.py); this reads the PostgreSQL `database`
section out of the --postgres-config file (a whole homeserver.yaml or a file with only that
section, as Synapse's synapse_port_db takes), shows progress on stderr and prints the
summary and the change to make in homeserver.yaml.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ranvier.config.models import DatabaseConfig
from ranvier.storage.port import PortError, PortSummary, port_database


def postgres_section(config_file: Path) -> tuple[DatabaseConfig, dict[str, Any]]:
    """The PostgreSQL database section of `config_file`, checked, and as written."""
    try:
        raw = yaml.safe_load(config_file.read_text())
    except OSError as exc:
        raise PortError(
            f"Cannot read --postgres-config {str(config_file)!r}: {exc.strerror}"
        ) from None
    except yaml.YAMLError as exc:
        raise PortError(
            f"--postgres-config {str(config_file)!r} is not valid YAML: {exc}"
        ) from None
    section = raw.get("database") if isinstance(raw, dict) else None
    if not isinstance(section, dict):
        raise PortError(
            f"--postgres-config {str(config_file)!r} has no `database` section. It must "
            "have one naming the PostgreSQL database to copy into, e.g.\n"
            "database:\n  name: psycopg2\n  args:\n    user: ranvier\n    password: ...\n"
            "    database: ranvier\n    host: localhost"
        )
    try:
        database = DatabaseConfig.model_validate(section)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise PortError(
            f"The database section of --postgres-config {str(config_file)!r} is not valid: "
            f"{problems}"
        ) from None
    if database.name != "psycopg2":
        raise PortError(
            f"The database section of --postgres-config {str(config_file)!r} names "
            f"{database.name!r}; it must name the PostgreSQL database the SQLite one is "
            "copied into (name: psycopg2, with its args)."
        )
    return database, section


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def render_summary(summary: PortSummary, section: dict[str, Any]) -> str:
    width = max(len(report.name) for report in summary.tables)
    lines = [
        f"Ported {summary.source} to {summary.target} (schema revision {summary.revision})"
        f"{', resuming an earlier run' if summary.resumed else ''} in {summary.seconds:.1f} s.",
        "Rows per table (SQLite = PostgreSQL, verified):",
    ]
    empty = [report.name for report in summary.tables if report.target_rows == 0]
    for report in summary.tables:
        if report.target_rows == 0 and not report.nul_characters_dropped:
            continue
        dropped = (
            f"  ({report.nul_characters_dropped} NUL characters dropped: PostgreSQL text "
            "cannot hold them)"
            if report.nul_characters_dropped
            else ""
        )
        lines.append(f"  {report.name:<{width}}  {report.target_rows}{dropped}")
    if empty:
        lines.append(f"  empty in both ({len(empty)}): {', '.join(empty)}")
    lines.append(f"Sequences moved past the copied keys: {summary.sequences_moved}.")
    shown = yaml.safe_dump({"database": section}, sort_keys=False).rstrip()
    lines += [
        "",
        "Now point Ranvier at PostgreSQL: in homeserver.yaml, replace the `database` section "
        "with this one and leave every other setting as it is (media_store_path, the signing "
        "key and server_name stay the same):",
        "",
        *(f"  {line}" for line in shown.splitlines()),
        "",
        "Then start Ranvier. Keep the SQLite file as a backup until you are satisfied; the "
        "server no longer writes to it.",
    ]
    return "\n".join(lines)


def port_db(sqlite_database: str, postgres_config: str, *, batch_size: int, verbose: bool) -> int:
    """`ranvier port-db`; the exit code."""
    database, section = postgres_section(Path(postgres_config))
    summary = asyncio.run(
        port_database(
            Path(sqlite_database),
            database,
            batch_size=batch_size,
            echo=_stderr,
            every_batch=verbose,
        )
    )
    print(render_summary(summary, section))
    return 0
