"""Registrations for the real bridges of these tests, the homeserver they are registered on
(restartable), and the mautrix bridge process (mautrix_bridge.py) driven one command at a time.
"""

from __future__ import annotations

import json
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.homeserver import RunningServer, free_port, start_server

SERVER_NAME = "test.localhost"
MAUTRIX_SCRIPT = Path(__file__).parent / "mautrix_bridge.py"
JS_DIR = Path(__file__).parents[1] / "js"


@dataclass(frozen=True)
class Registration:
    """One bridge's registration: its bot is `@{prefix}bot`, its puppets `@{prefix}*`, both
    exclusive, as are its aliases `#{prefix}*`."""

    id: str
    prefix: str
    port: int = field(default_factory=free_port)
    as_token: str = field(default_factory=lambda: secrets.token_hex(16))
    hs_token: str = field(default_factory=lambda: secrets.token_hex(16))
    receive_ephemeral: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bot_localpart(self) -> str:
        return f"{self.prefix}bot"

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{SERVER_NAME}"

    def as_yaml(self) -> dict[str, Any]:
        escaped = SERVER_NAME.replace(".", r"\.")
        return {
            "id": self.id,
            "url": self.url,
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": self.bot_localpart,
            "namespaces": {
                "users": [{"exclusive": True, "regex": f"@{self.prefix}.*:{escaped}"}],
                "aliases": [{"exclusive": True, "regex": f"#{self.prefix}.*:{escaped}"}],
                "rooms": [],
            },
            "rate_limited": False,
            "receive_ephemeral": self.receive_ephemeral,
        }

    def write(self, directory: Path) -> Path:
        path = directory / f"{self.id}.yaml"
        path.write_text(yaml.safe_dump(self.as_yaml()))
        return path


@dataclass
class Homeserver:
    """A Ranvier that a test may stop and start again on the same port and database."""

    config_path: Path
    port: int
    running: RunningServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.running is None
        self.running = start_server(self.config_path, self.port)

    def stop(self) -> None:
        assert self.running is not None
        running, self.running = self.running, None
        assert running.stop() == 0, running.log()

    def log(self) -> str:
        return "" if self.running is None else self.running.log()[-4000:]


class BridgeProcess:
    """A bridge script run as its own process: `start` it (it registers with its homeserver
    and listens), `do` commands as its bot or puppets, `stop` it; `events` is everything its
    event handler has seen across all its runs. The script reads a JSON config naming the
    homeserver, its registration and where to append events (see mautrix_bridge.py)."""

    ANSWER_TIMEOUT = 30.0

    def __init__(
        self,
        command: list[str],
        registration: Registration,
        homeserver: Homeserver,
        directory: Path,
    ) -> None:
        self.registration = registration
        self.homeserver = homeserver
        self.directory = directory
        self.events_path = directory / "events.jsonl"
        self.config_path = directory / "bridge.json"
        self.config_path.write_text(
            json.dumps(
                {
                    "homeserver": homeserver.url,
                    "domain": SERVER_NAME,
                    "id": registration.id,
                    "registration_path": str(registration.write(directory)),
                    "as_token": registration.as_token,
                    "hs_token": registration.hs_token,
                    "bot_localpart": registration.bot_localpart,
                    "port": registration.port,
                    "receive_ephemeral": registration.receive_ephemeral,
                    "events_path": str(self.events_path),
                    "state_path": str(directory / "bridge-state.json"),
                }
            )
        )
        self.command = [*command, str(self.config_path)]
        self.process: subprocess.Popen[str] | None = None
        self.runs = 0
        self._answers: queue.Queue[str | None] = queue.Queue()

    def start(self) -> None:
        assert self.process is None
        self.runs += 1
        self._answers = queue.Queue()
        with (self.directory / f"bridge-{self.runs}.log").open("w") as stderr:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.directory,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        threading.Thread(target=self._read, args=(self.process, self._answers), daemon=True).start()
        assert self._answer() == {"ready": True}

    def stop(self) -> None:
        """Ends the bridge the way its operator would: it closes its listener and exits."""
        assert self.process is not None
        self._write({"op": "stop"})
        assert self._answer() == {"stopped": True}
        assert self.process.wait(self.ANSWER_TIMEOUT) == 0, self._stderr()
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def do(self, op: str, **arguments: Any) -> dict[str, Any]:
        """The bridge's answer to one command; a refusal by the homeserver comes back as
        `{"error", "errcode", "status"}` for the test to assert on."""
        self._write({"op": op, **arguments})
        return self._answer()

    def ok(self, op: str, **arguments: Any) -> dict[str, Any]:
        answer = self.do(op, **arguments)
        assert "error" not in answer, f"{op}: {answer}\n{self.homeserver.log()}"
        return answer

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        # the last piece is "" or a line the bridge is still writing
        *complete, _ = self.events_path.read_text().split("\n")
        return [json.loads(line) for line in complete]

    def messages(self, room_id: str, sender: str) -> list[str]:
        """The bodies of `sender`'s messages in `room_id` the bridge has seen, in order."""
        return [
            event["body"]
            for event in self.events()
            if event["type"] == "m.room.message"
            and event["room_id"] == room_id
            and event["sender"] == sender
        ]

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 60.0) -> float:
        """Seconds until `condition` held; the test fails naming `what` if it never did."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if condition():
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(
            f"{what} within {timeout}s; the bridge saw {self.events()}\n{self.homeserver.log()}"
        )

    def _write(self, command: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def _answer(self) -> dict[str, Any]:
        try:
            raw = self._answers.get(timeout=self.ANSWER_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"the bridge gave no answer:\n{self._stderr()}") from None
        if raw is None:
            raise AssertionError(f"the bridge ended:\n{self._stderr()}\n{self.homeserver.log()}")
        answer: dict[str, Any] = json.loads(raw)
        return answer

    def _stderr(self) -> str:
        return (self.directory / f"bridge-{self.runs}.log").read_text(errors="replace")[-4000:]

    @staticmethod
    def _read(process: subprocess.Popen[str], answers: queue.Queue[str | None]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            answers.put(line)
        answers.put(None)


def mautrix_bridge(
    registration: Registration, homeserver: Homeserver, directory: Path
) -> BridgeProcess:
    return BridgeProcess([sys.executable, str(MAUTRIX_SCRIPT)], registration, homeserver, directory)


def js_bridge(registration: Registration, homeserver: Homeserver, directory: Path) -> BridgeProcess:
    """js/appservice_bridge.mjs: a matrix-appservice-bridge Bridge. Node and `npm ci` in
    tests/interop/js (which `make test` runs) are required: without them the test fails."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the matrix-appservice-bridge test needs Node 20+")
    if not (JS_DIR / "node_modules" / "matrix-appservice-bridge").is_dir():
        pytest.fail(f"matrix-appservice-bridge is not installed: run `npm ci` in {JS_DIR}")
    return BridgeProcess(
        [node, str(JS_DIR / "appservice_bridge.mjs")], registration, homeserver, directory
    )
