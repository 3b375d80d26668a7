"""Process control in the manner of synctl: a foreground run, and start/stop/status of a
background server tracked by its pid file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ranvier.config.models import HomeserverConfig

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0


def pid_file_of(config: HomeserverConfig) -> Path:
    if config.pid_file:
        return Path(config.pid_file)
    return Path(config.signing_key_path).parent / "homeserver.pid"


def run_foreground(config: HomeserverConfig, log_file: Path | None = None) -> int:
    """Serve until SIGTERM/SIGINT. The pid file appears once every listener is bound."""
    from ranvier import server
    from ranvier.logs import setup_logging

    setup_logging(config.log_config, log_file)
    pid_file = pid_file_of(config)

    def write_pid_file(_bound: list[str]) -> None:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")

    try:
        server.run(config, on_ready=write_pid_file)
    except Exception as exc:
        # a refusal at start-up (database too new, bad locale...) is the admin's to fix:
        # show the message, not a traceback
        print(f"Ranvier could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        if read_pid(pid_file) == os.getpid():
            pid_file.unlink(missing_ok=True)
    return 0


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_pid(config: HomeserverConfig) -> int | None:
    pid = read_pid(pid_file_of(config))
    return pid if pid is not None and is_running(pid) else None


def start(config_path: Path, config: HomeserverConfig, log_file: str | None) -> int:
    pid = running_pid(config)
    if pid is not None:
        print(f"Ranvier is already running (pid {pid})")
        return 0
    pid_file = pid_file_of(config)
    pid_file.unlink(missing_ok=True)
    log_path = Path(log_file) if log_file else pid_file.parent / "homeserver.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "ranvier.cli", "run", "-c", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if read_pid(pid_file) == child.pid:
            print(f"Ranvier started (pid {child.pid}); logging to {log_path}")
            return 0
        if child.poll() is not None:
            print(
                f"Ranvier failed to start (exit code {child.returncode}); see {log_path}",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.1)
    print(
        f"Ranvier did not become ready in {START_TIMEOUT_SECONDS:.0f}s; see {log_path}",
        file=sys.stderr,
    )
    return 1


def stop(config: HomeserverConfig) -> int:
    pid = running_pid(config)
    if pid is None:
        print("Ranvier is not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not is_running(pid) or _is_zombie(pid):
            pid_file_of(config).unlink(missing_ok=True)
            print(f"Ranvier stopped (pid {pid})")
            return 0
        time.sleep(0.1)
    print(f"Ranvier (pid {pid}) did not stop within {STOP_TIMEOUT_SECONDS:.0f}s", file=sys.stderr)
    return 1


def status(config: HomeserverConfig) -> int:
    pid = running_pid(config)
    if pid is None:
        print("Ranvier is not running")
        # LSB init-script convention: 3 means "not running"
        return 3
    print(f"Ranvier is running (pid {pid})")
    return 0


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return False
