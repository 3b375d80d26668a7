"""Starting Ranvier and Synapse on a free loopback port for the benchmark, and stopping them.

Both are configured the same way where they can be: server name `bench.localhost`, one HTTP
listener on 127.0.0.1, open registration without verification, rate limits out of the way,
presence off (on both), no usage stats, the default logging each server generates, and the same
database engine (SQLite by default, a fresh C-collated PostgreSQL database with --postgres).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
SYNAPSE_VENV = BENCH_DIR / "synapse-venv"
SERVER_NAME = "bench.localhost"
STARTUP_TIMEOUT = 120.0

# far beyond what the load generator asks for, so the figures measure the server, not a bucket
_UNLIMITED = {"per_second": 100_000, "burst_count": 100_000}
SHARED_RATELIMITS: dict[str, Any] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
}
# Synapse limits more actions than Ranvier does today; each is lifted the same way
SYNAPSE_ONLY_RATELIMITS: dict[str, Any] = {
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
    "rc_room_creation": _UNLIMITED,
    "rc_3pid_validation": _UNLIMITED,
    "rc_admin_redaction": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Database:
    """The engine both servers use in one run; PostgreSQL gets a new database per start."""

    engine: str = "sqlite"  # or "postgres"
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    created: list[str] = field(default_factory=list)

    def section(self, directory: Path, for_synapse: bool) -> dict[str, Any]:
        if self.engine == "sqlite":
            return {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}}
        from ranvier.storage.testing import create_postgres_database, postgres_database_config

        name = asyncio.run(create_postgres_database(self.postgres_url))
        self.created.append(name)
        args = dict(postgres_database_config(name, self.postgres_url).args)
        args["cp_min"], args["cp_max"] = 5, 10
        if for_synapse:
            # psycopg2 takes libpq keywords; "database" is accepted as an alias of dbname
            args = {k: v for k, v in args.items() if k != "allow_unsafe_locale"}
        return {"name": "psycopg2", "args": args}

    def drop_all(self) -> None:
        if not self.created:
            return
        from ranvier.storage.testing import drop_postgres_database

        for name in self.created:
            asyncio.run(drop_postgres_database(name, self.postgres_url))
        self.created.clear()


@dataclass
class RunningServer:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_seconds: float

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kib(self) -> tuple[int, int]:
        """(current, peak) resident set size in KiB, from /proc (VmRSS, VmHWM)."""
        values: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        return values.get("VmRSS", 0), values.get("VmHWM", 0)

    def stop(self, timeout: float = 30.0) -> None:
        # only the process this harness started, by its own PID
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout)


def _launch(name: str, argv: list[str], directory: Path, port: int) -> RunningServer:
    """Start `argv` and time it until /_matrix/client/versions first answers 200."""
    log_path = directory / "server-output.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=directory,
        )
    deadline = started + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(url + "/_matrix/client/versions", timeout=1) as response:
                if response.status == 200:
                    elapsed = time.monotonic() - started
                    return RunningServer(name, url, process, log_path, elapsed)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.01)
    process.terminate()
    process.wait(30)
    raise RuntimeError(f"{name} did not answer /_matrix/client/versions in {STARTUP_TIMEOUT}s")


def write_ranvier_config(
    directory: Path,
    database: Database,
    overrides: dict[str, Any],
    server_name: str = SERVER_NAME,
) -> tuple[Path, int]:
    """A generated homeserver.yaml on `database` and a free loopback port, with `overrides`
    on top; its path and the port."""
    from ranvier.config.generate import generate_config

    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    path = directory / "homeserver.yaml"
    generate_config(server_name, path, directory / "data")
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
    raw.update(overrides)
    path.write_text(yaml.safe_dump(raw))
    return path, port


def ranvier_argv(config_path: Path) -> list[str]:
    argv = [str(REPO_DIR / ".venv" / "bin" / "ranvier"), "run", "-c", str(config_path)]
    if not Path(argv[0]).exists():
        argv = [sys.executable, "-m", "ranvier.cli", "run", "-c", str(config_path)]
    return argv


def start_ranvier(
    directory: Path, database: Database, extra: dict[str, Any] | None = None
) -> RunningServer:
    """`extra` goes on top of the benchmark's config (the federation scenarios' settings)."""
    overrides = {
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "presence": {"enabled": False},
        **SHARED_RATELIMITS,
        **(extra or {}),
    }
    path, port = write_ranvier_config(directory, database, overrides)
    return _launch("ranvier", ranvier_argv(path), directory, port)


def synapse_python() -> Path:
    return SYNAPSE_VENV / "bin" / "python"


def synapse_version() -> str:
    out = subprocess.run(
        [str(synapse_python()), "-c", "import synapse; print(synapse.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    # Synapse appends git details of the working directory ("1.163.2 (b=main,...)"): not its own
    return out.stdout.split()[0]


def start_synapse(
    directory: Path, database: Database, extra: dict[str, Any] | None = None
) -> RunningServer:
    """`extra` goes on top of the benchmark's config (the federation scenarios' settings)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    path = directory / "homeserver.yaml"
    python = str(synapse_python())
    if not path.exists():
        # Synapse writes its own signing key, log config and secrets next to the config
        subprocess.run(
            [
                python,
                "-m",
                "synapse.app.homeserver",
                "--server-name",
                SERVER_NAME,
                "--config-path",
                str(path),
                "--data-directory",
                str(directory),
                "--generate-config",
                "--report-stats=no",
            ],
            check=True,
            capture_output=True,
            cwd=directory,
        )
    raw = yaml.safe_load(path.read_text())
    raw["database"] = database.section(directory, for_synapse=True)
    raw["listeners"] = [
        {
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": False,
            "x_forwarded": False,
            "resources": [{"names": ["client", "federation"], "compress": False}],
        }
    ]
    raw["enable_registration"] = True
    raw["enable_registration_without_verification"] = True
    raw["report_stats"] = False
    # no federation in the benchmark: no key fetching from matrix.org on start
    raw["trusted_key_servers"] = []
    raw["suppress_key_server_warning"] = True
    # presence is off on both; the rest Ranvier does not have yet, so both do the same work
    raw["presence"] = {"enabled": False}
    raw["url_preview_enabled"] = False
    raw["stats"] = {"enabled": False}
    raw["enable_metrics"] = False
    raw.update(SHARED_RATELIMITS)
    raw.update(SYNAPSE_ONLY_RATELIMITS)
    raw.update(extra or {})
    path.write_text(yaml.safe_dump(raw))
    argv = [python, "-m", "synapse.app.homeserver", "-c", str(path)]
    return _launch("synapse", argv, directory, port)
