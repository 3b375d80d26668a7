"""Two client makes, one encrypted room: matrix-nio (vodozemac, Python) and matrix-js-sdk
(Rust crypto, Node, tests/interop/js/partner.mjs) read each other's Megolm messages through
Ranvier, so what the server stores and relays does not only suit one implementation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from nio import RoomCreateResponse, RoomMessageText

from tests.integration.homeserver import RunningServer
from tests.integration.matrix import register
from tests.interop.node import JS_DIR, node, session_input
from tests.interop.test_e2ee_nio import ENCRYPTION, encrypting_client, received, send_text, synced

PARTNER = JS_DIR / "partner.mjs"
LINE_TIMEOUT = 60.0
BODY = "Off with their heads, from Python"
REPLY = "Curiouser and curiouser, from Node"


async def next_line(
    process: asyncio.subprocess.Process, stderr: Path, server: RunningServer
) -> dict[str, Any]:
    assert process.stdout is not None
    raw = await asyncio.wait_for(process.stdout.readline(), LINE_TIMEOUT)
    if not raw:
        await process.wait()
        pytest.fail(f"partner.mjs ended (exit {process.returncode}):\n{stderr.read_text()}")
    line: dict[str, Any] = json.loads(raw)
    if "error" in line:
        pytest.fail(
            f"{line['error']} at {line['stage']!r}\n{stderr.read_text()[-4000:]}\n"
            f"{server.log()[-4000:]}"
        )
    return line


async def test_nio_and_js_sdk_read_each_other(server: RunningServer, tmp_path: Path) -> None:
    alice = await encrypting_client(server, "alice", tmp_path / "alice")
    bob = register(server.url, "bob", initial_device_display_name="js-sdk bob")
    stderr = tmp_path / "partner.stderr"
    try:
        created = await alice.room_create(
            invite=[bob.user_id],
            initial_state=[{"type": "m.room.encryption", "state_key": "", "content": ENCRYPTION}],
        )
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        with stderr.open("wb") as errors:
            process = await asyncio.create_subprocess_exec(
                node(),
                str(PARTNER),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
                cwd=JS_DIR,
            )
        try:
            assert process.stdin is not None
            request = {"baseUrl": server.url, "session": session_input(bob), "roomId": room_id}
            process.stdin.write(json.dumps({**request, "reply": REPLY}).encode())
            process.stdin.close()
            # Bob has joined and his device keys are on the server
            assert await next_line(process, stderr, server) == {"ready": True}

            await synced(alice)
            assert bob.user_id in alice.rooms[room_id].users
            await send_text(alice, room_id, BODY)
            assert bob.device_id in alice.device_store[bob.user_id]

            done = await next_line(process, stderr, server)
            assert done["seen"] == {
                "type": "m.room.encrypted",
                "sender": alice.user_id,
                "body": BODY,
            }
            answer, _ = await received(alice, room_id, done["reply_event_id"])
            assert isinstance(answer, RoomMessageText), answer
            assert (answer.sender, answer.body, answer.decrypted) == (bob.user_id, REPLY, True)
            assert await asyncio.wait_for(process.wait(), LINE_TIMEOUT) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    finally:
        await alice.close()
