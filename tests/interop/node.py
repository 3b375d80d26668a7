"""Running the matrix-js-sdk scripts of tests/interop/js under Node.

Node and the project in tests/interop/js (`npm ci`, which `make test` runs) are required:
without them the tests fail rather than skip.
"""

from __future__ import annotations

import json
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
