"""Running the matrix-js-sdk scripts of tests/interop/js under Node.

Node and the project in tests/interop/js (`npm ci`, which `make test` runs) are required:
without them the tests fail rather than skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.homeserver import RunningServer
from tests.integration.matrix import DEFAULT_PASSWORD, Session, register

JS_DIR = Path(__file__).parent / "js"


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not installed: the matrix-js-sdk interop tests need Node 20 or newer")
    if not (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir():
        pytest.fail(f"matrix-js-sdk is not installed: run `npm ci` in {JS_DIR} (make test does)")
    return path


def session_input(session: Session) -> dict[str, str]:
    """A logged-in session as the scripts read it."""
    return {
        "user_id": session.user_id,
        "access_token": session.access_token,
        "device_id": session.device_id,
    }


@dataclass(frozen=True)
class Run:
    """What a script printed, and the accounts it ran as."""

    result: dict[str, Any]
    alice: Session
    bob: Session


def run_alice_and_bob(server: RunningServer, script: str, body: str, timeout: float) -> Run:
    """Registers Alice and Bob and runs a script in JS_DIR that drives their clients (Bob may
    log in again with his password) and prints what it saw as its last line; the test fails
    with the script's and the server's logs when the script reports an error."""
    alice = register(server.url, "alice", initial_device_display_name="js-sdk alice")
    bob = register(server.url, "bob", initial_device_display_name="js-sdk bob")
    stdin = {
        "baseUrl": server.url,
        "alice": session_input(alice),
        "bob": session_input(bob),
        "bobPassword": DEFAULT_PASSWORD,
        "body": body,
    }
    finished = subprocess.run(
        [node(), str(JS_DIR / script)],
        input=json.dumps(stdin),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=JS_DIR,
    )
    lines = finished.stdout.strip().splitlines()
    assert lines, f"no result (exit {finished.returncode}):\n{finished.stderr[-4000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    if "error" in result:
        pytest.fail(
            f"{result['error']} at {result['stage']!r}\n"
            f"{finished.stderr[-4000:]}\n{server.log()[-4000:]}"
        )
    assert finished.returncode == 0, finished.stderr[-4000:]
    return Run(result, alice, bob)


class JsMember:
    """A matrix-js-sdk client (no crypto) run by js/federation_member.mjs and driven one step
    at a time: `await member.do("send", room_id=..., body=...)` returns the script's answer
    once its client has done the step or seen it in its own sync. Start it with `start`
    (`ca_file`: a PEM the client must trust, such as a test CA) and end it with `stop`."""

    SCRIPT = JS_DIR / "federation_member.mjs"
    # a step waits up to 20 s in the script for what it expects to sync
    STEP_TIMEOUT = 30.0

    def __init__(self, process: asyncio.subprocess.Process, stderr: Path, user_id: str) -> None:
        self.process = process
        self.stderr = stderr
        self.user_id = user_id

    @classmethod
    async def start(
        cls, base_url: str, session: Session, stderr: Path, ca_file: Path | None = None
    ) -> JsMember:
        env = dict(os.environ)
        if ca_file is not None:
            env["NODE_EXTRA_CA_CERTS"] = str(ca_file)
        with stderr.open("wb") as errors:
            process = await asyncio.create_subprocess_exec(
                node(),
                str(cls.SCRIPT),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
                cwd=JS_DIR,
                env=env,
            )
        member = cls(process, stderr, session.user_id)
        try:
            await member._write({"baseUrl": base_url, "session": session_input(session)})
            assert await member._answer() == {"ready": True}
        except BaseException:
            await member.kill()
            raise
        return member

    async def do(self, op: str, **arguments: Any) -> dict[str, Any]:
        await self._write({"op": op, **arguments})
        return await self._answer()

    async def stop(self) -> None:
        """Ask the script to end; it must end cleanly."""
        await self._write({"op": "stop"})
        assert await self._answer() == {"stopped": True}
        assert await asyncio.wait_for(self.process.wait(), self.STEP_TIMEOUT) == 0

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def _write(self, line: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(line).encode() + b"\n")
        await self.process.stdin.drain()

    async def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            raw = await asyncio.wait_for(self.process.stdout.readline(), self.STEP_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"{self.SCRIPT.name} gave no answer:\n{self._errors()}")
        if not raw:
            await self.process.wait()
            pytest.fail(
                f"{self.SCRIPT.name} ended (exit {self.process.returncode}):\n{self._errors()}"
            )
        answer: dict[str, Any] = json.loads(raw)
        if "error" in answer:
            pytest.fail(f"{answer['error']} at {answer['stage']!r}\n{self._errors()}")
        return answer

    def _errors(self) -> str:
        return self.stderr.read_text(errors="replace")[-4000:]
