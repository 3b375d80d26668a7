"""SIGTERM with long-polls, a download waiting for an upload and a send in flight: every
long-poll is answered at once with a token, the download with 504, the send finishes and is
there after a restart, and the process exits within 2 s."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg

from ranvier.storage.testing import postgres_server_url
from tests.integration.client import call_json
from tests.integration.homeserver import free_port, start_server, write_test_config
from tests.integration.matrix import REGISTRATION_CONFIG

CLIENT = "/_matrix/client/v3"
POLLERS = 5
POLLS_PER_USER = 10
EXIT_WITHIN_SECONDS = 2.0


@asynccontextmanager
async def writes_held(database: dict[str, Any]) -> AsyncIterator[None]:
    """Holds up the server's event writes from outside until the block exits, so a send is
    certainly in flight meanwhile."""
    args = database["args"]
    if database["name"] == "sqlite3":
        conn = sqlite3.connect(args["database"], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    url = postgres_server_url().rsplit("/", 1)[0] + "/" + args["database"]
    pg = await asyncpg.connect(url)
    try:
        async with pg.transaction():
            await pg.execute("LOCK TABLE events IN EXCLUSIVE MODE")
            yield
    finally:
        await pg.close()


async def test_sigterm_answers_long_polls_and_keeps_the_send_in_flight(
    tmp_path: Path, module_database: dict[str, Any]
) -> None:
    port = free_port()
    config_path = write_test_config(tmp_path, module_database, port, **REGISTRATION_CONFIG)
    server = start_server(config_path, port)
    base = server.url + CLIENT
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            sender, *pollers = [
                await call_json(
                    session,
                    "POST",
                    base + "/register",
                    {
                        "username": f"u{n}",
                        "password": "a long enough password",
                        "auth": {"type": "m.login.dummy"},
                    },
                )
                for n in range(1 + POLLERS)
            ]
            sender_token = sender["access_token"]
            room = await call_json(session, "POST", base + "/createRoom", {}, sender_token)

            async def long_poll(token: str, variant: int) -> tuple[int, Any]:
                headers = {"Authorization": f"Bearer {token}"}
                async with session.get(base + "/sync", headers=headers) as response:
                    since = (await response.json())["next_batch"]
                params = {
                    "since": since,
                    "timeout": "30000",
                    "filter": json.dumps({"room": {"timeline": {"limit": 5 + variant}}}),
                }
                try:
                    async with session.get(
                        base + "/sync", params=params, headers=headers
                    ) as response:
                        return response.status, await response.json()
                except aiohttp.ClientError as exc:
                    return 0, repr(exc)

            polls = [
                asyncio.create_task(long_poll(user["access_token"], variant))
                for user in pollers
                for variant in range(POLLS_PER_USER)
            ]
            # a download waiting for an upload that has not come yet
            created = await call_json(
                session, "POST", server.url + "/_matrix/media/v1/create", {}, sender["access_token"]
            )
            media_id = created["content_uri"].rsplit("/", 1)[1]

            async def download() -> tuple[int, Any]:
                async with session.get(
                    f"{server.url}/_matrix/client/v1/media/download/test.localhost/{media_id}",
                    params={"timeout_ms": "30000"},
                    headers={"Authorization": f"Bearer {sender['access_token']}"},
                ) as response:
                    return response.status, await response.json()

            waiting_download = asyncio.create_task(download())
            await asyncio.sleep(1.5)
            assert not any(poll.done() for poll in polls) and not waiting_download.done()

            send_url = f"{base}/rooms/{quote(room['room_id'])}/send/m.room.message/in-flight"
            async with writes_held(module_database):
                send = asyncio.create_task(
                    call_json(
                        session,
                        "PUT",
                        send_url,
                        {"msgtype": "m.text", "body": "sent as the server stops"},
                        sender["access_token"],
                    )
                )
                await asyncio.sleep(0.3)
                assert not send.done()
                signalled = time.monotonic()
                os.kill(server.process.pid, signal.SIGTERM)
                await asyncio.sleep(0.3)
            sent = await send
            results = await asyncio.gather(*polls)
            downloaded = await waiting_download
            exit_code = await asyncio.to_thread(server.process.wait, 10)
            took = time.monotonic() - signalled
    finally:
        server.stop()

    failures = [(status, body) for status, body in results if status != 200]
    assert not failures, f"{len(failures)} of {len(results)} long-polls failed: {failures[:3]}"
    assert all(isinstance(body["next_batch"], str) for _, body in results)
    # answered as if its wait had run out, not cut off
    assert downloaded == (504, {"errcode": "M_NOT_YET_UPLOADED", "error": downloaded[1]["error"]})
    assert exit_code == 0, server.log()
    assert took < EXIT_WITHIN_SECONDS, f"exit took {took:.2f}s"

    restarted = start_server(config_path, port)
    try:
        async with aiohttp.ClientSession() as session:
            event_url = f"{base}/rooms/{quote(room['room_id'])}/event/{quote(sent['event_id'])}"
            event = await call_json(session, "GET", event_url, None, sender["access_token"])
    finally:
        assert restarted.stop() == 0, restarted.log()
    assert event["content"]["body"] == "sent as the server stops"
