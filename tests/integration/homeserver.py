"""Starting the real `ranvier` process on a free loopback port for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ranvier.config.generate import generate_config

STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_GENEROUS = {"per_second": 1000, "burst_count": 1000}
RELAXED_RATELIMITS: dict[str, Any] = {
    "rc_message": _GENEROUS,
    "rc_registration": _GENEROUS,
    "rc_registration_token_validity": _GENEROUS,
    "rc_login": {"address": _GENEROUS, "account": _GENEROUS, "failed_attempts": _GENEROUS},
}


def write_test_config(
    directory: Path,
    database: dict[str, Any],
    port: int,
    *,
    x_forwarded: bool = False,
    **overrides: Any,
) -> Path:
    """A generated homeserver.yaml, pointed at `database` and a loopback port (whose listener
    trusts X-Forwarded-For with `x_forwarded`, as behind a reverse proxy)."""
    path = directory / "homeserver.yaml"
    generate_config("test.localhost", path, directory / "data")
    raw = yaml.safe_load(path.read_text())
    raw["database"] = database
    raw["listeners"] = [
        {
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "x_forwarded": x_forwarded,
            "resources": [{"names": ["client", "federation"]}],
        }
    ]
    # test modules register and log in far faster than people; tests of the limits
    # themselves override these with small buckets
    raw.update(RELAXED_RATELIMITS)
    # never ask matrix.org (the generated config's key server) for keys from a test
    raw["trusted_key_servers"] = []
    raw.update(overrides)
    path.write_text(yaml.safe_dump(raw))
    return path


@dataclass
class RunningServer:
    url: str
    config_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


def start_server(config_path: Path, port: int) -> RunningServer:
    log_path = config_path.parent / "server-output.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ranvier.cli", "run", "-c", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", config_path, process, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=1) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"server did not answer within {STARTUP_TIMEOUT}s:\n{server.log()}")


@contextmanager
def serving(directory: Path, database: dict[str, Any], **overrides: Any) -> Iterator[RunningServer]:
    """A server on a free loopback port for the length of the block; it must stop cleanly."""
    port = free_port()
    running = start_server(write_test_config(directory, database, port, **overrides), port)
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log()
