"""Build bench/synapse-venv: Synapse from PyPI in a venv of its own, never committed.

Run: .venv/bin/python -m bench.synapse_setup [--version 1.163.2] [--start]
With --start it also starts the Synapse it built (SQLite, or PostgreSQL with --postgres) and
prints its URL until interrupted, for trying the load generator by hand.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

from bench.servers import SYNAPSE_VENV, Database, start_synapse, synapse_python, synapse_version


def ensure_synapse(version: str | None = None, python: str = sys.executable) -> str:
    """Create the venv and install matrix-synapse (and psycopg2 for PostgreSQL) if missing."""
    if not synapse_python().exists():
        print(f"creating {SYNAPSE_VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(SYNAPSE_VENV)
    wanted = f"matrix-synapse=={version}" if version else "matrix-synapse"
    installed = _installed_version()
    if installed is None or (version is not None and installed != version):
        print(f"installing {wanted} from PyPI into {SYNAPSE_VENV}", flush=True)
        pip = [str(synapse_python()), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, wanted, "psycopg2-binary"], check=True)
    return synapse_version()


def _installed_version() -> str | None:
    if not synapse_python().exists():
        return None
    try:
        return synapse_version()
    except subprocess.CalledProcessError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", help="a matrix-synapse release; default the newest")
    parser.add_argument("--start", action="store_true", help="start it and wait")
    parser.add_argument("--postgres", action="store_true", help="with --start: on PostgreSQL")
    args = parser.parse_args()
    print("Synapse", ensure_synapse(args.version))
    if not args.start:
        return
    database = Database("postgres" if args.postgres else "sqlite")
    with tempfile.TemporaryDirectory(prefix="synapse-bench-") as directory:
        server = start_synapse(Path(directory), database)
        print(f"Synapse answering at {server.url} (pid {server.pid}); Ctrl-C stops it")
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            database.drop_all()


if __name__ == "__main__":
    main()
