"""A thousand long-polling /syncs woken by one message on a pool of two connections: every
one answers 200 with the message, none fails for want of a database connection (they queue
for one, in order; storage/database.py)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.integration.client import call_json
from tests.integration.homeserver import RunningServer, serving
from tests.integration.matrix import REGISTRATION_CONFIG

CLIENT = "/_matrix/client/v3"
USERS = 100
# distinct filters make distinct requests (identical ones would share one answer)
POLLS_PER_USER = 10
POOL_MAX = 2


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_database: dict[str, Any]
) -> Iterator[RunningServer]:
    database = copy.deepcopy(module_database)
    database["args"].update(cp_min=1, cp_max=POOL_MAX)
    with serving(
        tmp_path_factory.mktemp("hs"),
        database,
        **REGISTRATION_CONFIG,
        # no password hashing: a hundred registrations take a moment instead of seconds
        password_config={"enabled": False},
        caches={"sync_response_cache_duration": 0},
        # presence would wake the polls before the message does
        presence={"enabled": False},
    ) as running:
        yield running


async def test_woken_long_polls_all_get_the_message(server: RunningServer) -> None:
    base = server.url + CLIENT
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=90)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        registered = await asyncio.gather(
            *(
                call_json(
                    session,
                    "POST",
                    base + "/register",
                    {"username": f"poller{n}", "auth": {"type": "m.login.dummy"}},
                )
                for n in range(USERS)
            )
        )
        tokens = [r["access_token"] for r in registered]
        room = await call_json(
            session, "POST", base + "/createRoom", {"preset": "public_chat"}, tokens[0]
        )
        room_id = room["room_id"]
        await asyncio.gather(
            *(
                call_json(session, "POST", f"{base}/join/{room_id}", {}, token)
                for token in tokens[1:]
            )
        )

        async def initial(token: str) -> str:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(base + "/sync", headers=headers) as response:
                assert response.status == 200, await response.text()
                since: str = (await response.json())["next_batch"]
                return since

        since_of = await asyncio.gather(*(initial(token) for token in tokens))

        async def long_poll(token: str, since: str, variant: int) -> tuple[int, Any]:
            params = {
                "since": since,
                "timeout": "30000",
                "filter": json.dumps({"room": {"timeline": {"limit": 5 + variant}}}),
            }
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(base + "/sync", params=params, headers=headers) as response:
                text = await response.text()
                return response.status, json.loads(text) if response.status == 200 else text

        polls = [
            asyncio.create_task(long_poll(token, since, variant))
            for token, since in zip(tokens, since_of, strict=True)
            for variant in range(POLLS_PER_USER)
        ]
        # let the polls reach the server and settle into waiting
        await asyncio.sleep(2)
        assert not any(poll.done() for poll in polls)
        sent = await call_json(
            session,
            "PUT",
            f"{base}/rooms/{room_id}/send/m.room.message/wake",
            {"msgtype": "m.text", "body": "wake up"},
            tokens[0],
        )
        results = await asyncio.gather(*polls)

    failures = [(status, body) for status, body in results if status != 200]
    assert not failures, f"{len(failures)} of {len(results)} failed, e.g. {failures[:3]}"
    for _, body in results:
        timeline = body["rooms"]["join"][room_id]["timeline"]["events"]
        assert sent["event_id"] in [event["event_id"] for event in timeline]
