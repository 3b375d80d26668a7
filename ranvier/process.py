"""Process control in the manner of synctl: a foreground run, and start/stop/status/reload
of a background server tracked by its pid file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ranvier.config.errors import unwritable_path
from ranvier.config.models import HomeserverConfig

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0


def pid_file_of(config: HomeserverConfig) -> Path:
    if config.pid_file:
        return Path(config.pid_file)
    return Path(config.signing_key_path).parent / "homeserver.pid"


def run_foreground(
    config: HomeserverConfig, log_file: Path | None = None, output_file: Path | None = None
) -> int:
    """Serve until SIGTERM/SIGINT; SIGHUP reopens log files. The pid file appears once every
    listener is bound. `output_file` is the file stdout and stderr were opened on (by
    `start`): SIGHUP reopens that too."""
    from ranvier import server
    from ranvier.logs import setup_logging

    try:
        setup_logging(config.log_config, log_file)
    except Exception as exc:
        setting = (
            "--log-file"
            if log_file is not None
            else f"the handler's filename in {config.log_config}"
        )
        problem = startup_problem(exc, config, ("the log file", setting))
        print(f"Ranvier could not start: {problem}", file=sys.stderr)
        return 1
    pid_file = pid_file_of(config)

    def write_pid_file(_bound: list[str]) -> None:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            pid_file.write_text(f"{os.getpid()}\n")
        except OSError as exc:
            # a failed write (a full disk) does not say which file it was writing
            raise OSError(exc.errno, exc.strerror, str(pid_file)) from exc

    try:
        hooks = [] if output_file is None else [lambda: reopen_output(output_file)]
        server.run(config, on_ready=write_pid_file, reload_hooks=hooks)
    except Exception as exc:
        # a refusal at start-up (database too new, bad locale, a path it cannot write...)
        # is the admin's to fix: show the message, not a traceback
        print(f"Ranvier could not start: {startup_problem(exc, config)}", file=sys.stderr)
        return 1
    finally:
        if read_pid(pid_file) == os.getpid():
            pid_file.unlink(missing_ok=True)
    return 0


def reopen_output(path: Path) -> str:
    """Point stdout and stderr at a new `path` (logrotate renamed the old one), so the output
    of a server `start` launched goes on at the name the admin knows."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    return f"reopened {path}"


def startup_problem(
    exc: BaseException, config: HomeserverConfig, writing: tuple[str, str] | None = None
) -> str:
    """What stopped start-up, for the admin. A path the server could not write is named with
    the reason, the fix and the setting that names it: `writing` (what, setting) when the
    caller knows, else the setting whose path holds it. Anything else is the exception's
    own message (start-up refusals already say what to do)."""
    from ranvier.storage.database import sqlite_startup_problem

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.filename is not None:
            path = os.fsdecode(cause.filename)
            named = writing or _setting_holding(path, config)
            if named is not None:
                return unwritable_path(named[0], path, cause, named[1])
        cause = cause.__cause__ or cause.__context__
    return sqlite_startup_problem(exc, config.database) or str(exc)


def _setting_holding(path: str, config: HomeserverConfig) -> tuple[str, str] | None:
    """(what it is, the setting) for the configured path that is `path` or holds it."""
    candidates = [
        ("the media store", "media_store_path", config.media_store_path),
        ("the pid file", "pid_file", str(pid_file_of(config))),
    ]
    if config.database.name == "sqlite3":
        database = str(config.database.args.get("database", ""))
        candidates.append(("the SQLite database", "database.args.database", database))
    target = Path(os.path.abspath(path))
    for what, setting, configured in candidates:
        root = Path(os.path.abspath(configured))
        if configured and (target == root or root in target.parents):
            return what, setting
    return None


def read_pid(pid_file: Path) -> int | None:
    try:
        # a bounded read: pid_file may name something endless, such as a device
        with open(pid_file, "rb") as file:
            return int(file.read(32).strip())
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
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")  # noqa: SIM115 - closed below, once the child has it
    except OSError as exc:
        what = ("the server's output", "--log-file")
        print(f"Ranvier could not start: {startup_problem(exc, config, what)}", file=sys.stderr)
        return 1
    with log:
        child = subprocess.Popen(
            [
                *(sys.executable, "-m", "ranvier.cli", "run", "-c", str(config_path)),
                *("--output-file", str(log_path.absolute())),
            ],
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
            reason = _refusal_in(log_path)
            if reason is not None:
                print(reason, file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(
        f"Ranvier did not become ready in {START_TIMEOUT_SECONDS:.0f}s; see {log_path}",
        file=sys.stderr,
    )
    return 1


def _refusal_in(log_path: Path) -> str | None:
    """The line in which a server that would not start said why, if it did."""
    try:
        with open(log_path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 64 * 1024))
            tail = log.read().decode(errors="replace")
    except OSError:
        return None
    refusals = [line for line in tail.splitlines() if line.startswith("Ranvier could")]
    return refusals[-1] if refusals else None


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


def reload(config: HomeserverConfig) -> int:
    """`ranvier reload`: SIGHUP to the background server, which reopens its log files."""
    pid = running_pid(config)
    if pid is None:
        print(f"Ranvier is not running (no live pid in {pid_file_of(config)})", file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGHUP)
    print(f"Sent SIGHUP to Ranvier (pid {pid}): it reopens its log files")
    return 0


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
