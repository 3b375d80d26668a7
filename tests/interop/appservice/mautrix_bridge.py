"""A small bridge built on mautrix's AppService, run as its own process by the tests.

It does what a mautrix bridge does against a homeserver: registers its bot at start-up,
listens for transactions on 127.0.0.1, and acts as its bot and its puppets through IntentAPI
(which masquerades with `user_id=` and bridges timestamps with `ts=`). Every event its handler
sees is appended to a JSON-lines file that outlives the process, as a bridge's own database
would, so that a test can tell what reached the bridge across restarts.

Started as `python mautrix_bridge.py CONFIG.json`; it prints `{"ready": true}` once it listens,
then reads one JSON command per line on stdin and answers each with one JSON line on stdout:
an answer, or `{"error": ..., "errcode": ..., "status": ...}` when the homeserver refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from mautrix.appservice import AppService, IntentAPI
from mautrix.appservice.state_store import FileASStateStore
from mautrix.errors import MatrixRequestError
from mautrix.types import Event, EventType, MessageEvent, RoomID, TextMessageEventContent, UserID


class Bridge:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.domain: str = config["domain"]
        self.events_path = Path(config["events_path"])
        self.appservice = AppService(
            server=config["homeserver"],
            domain=self.domain,
            as_token=config["as_token"],
            hs_token=config["hs_token"],
            bot_localpart=config["bot_localpart"],
            id=config["id"],
            log=logging.getLogger("bridge"),
            # the bridge's memory of who is registered and joined survives its restarts,
            # as mautrix bridges keep it in their database
            state_store=FileASStateStore(config["state_path"], binary=False),
            # typing and receipts pushed in transactions (MSC2409), when registered for them
            ephemeral_events=config["receive_ephemeral"],
            query_user=self.provide_user,
        )
        # record events in the order the transactions carried them
        self.appservice.synchronous_handlers = True
        self.appservice.matrix_event_handler(self.record)

    async def record(self, event: Event) -> None:
        # ephemeral events (typing, receipts) have no ID, sender or timestamp
        line: dict[str, Any] = {
            "event_id": getattr(event, "event_id", None),
            "room_id": getattr(event, "room_id", None),
            "sender": getattr(event, "sender", None),
            "type": event.type.t,
            "origin_server_ts": getattr(event, "timestamp", None),
        }
        if isinstance(event, MessageEvent):
            line["body"] = event.content.body
        elif event.type.is_ephemeral:
            line["content"] = event.serialize()["content"]
        elif event.type == EventType.ROOM_MEMBER:
            line["state_key"] = event.state_key
            line["membership"] = event.serialize()["content"]["membership"]
        self.append(line)

    async def provide_user(self, user_id: UserID) -> dict[str, Any]:
        """Asked about an unknown ID of its namespace, a bridge creates the puppet of the
        person on the other network that it stands for."""
        await self.appservice.intent.user(user_id).ensure_registered()
        self.append({"type": "query_user", "user_id": user_id})
        return {"provided": True}

    def append(self, line: dict[str, Any]) -> None:
        with self.events_path.open("a") as events:
            events.write(json.dumps(line) + "\n")

    def puppet(self, localpart: str) -> IntentAPI:
        return self.appservice.intent.user(UserID(f"@{localpart}:{self.domain}"))

    async def start(self) -> None:
        await self.appservice.start(host="127.0.0.1", port=self.config["port"])
        # mautrix bridges make sure their bot exists before anything else
        await self.appservice.intent.ensure_registered()

    async def do(self, command: dict[str, Any]) -> dict[str, Any]:
        op = command["op"]
        if op == "ping":
            appservice_id = command.get("appservice_id", self.appservice.id)
            intent = self.appservice.intent
            return {
                "duration_ms": await intent.appservice_ping(appservice_id, command.get("txn_id"))
            }
        if op == "whoami":
            return {"user_id": (await self.puppet_or_bot(command).whoami()).user_id}
        if op == "register":
            await self.puppet(command["localpart"]).ensure_registered()
            return {"registered": True}
        if op == "create_room":
            room_id = await self.appservice.intent.create_room(
                invitees=[UserID(user) for user in command.get("invite", [])]
            )
            return {"room_id": room_id}
        if op == "join":
            # as a bridge does: the bot invites its puppet when the room is not public
            await self.puppet(command["localpart"]).ensure_joined(RoomID(command["room_id"]))
            return {"joined": True}
        if op == "displayname":
            await self.puppet(command["localpart"]).set_displayname(command["displayname"])
            return {"displayname": command["displayname"]}
        if op == "alias":
            await self.puppet_or_bot(command).add_room_alias(
                RoomID(command["room_id"]), command["alias_localpart"]
            )
            return {"aliased": True}
        if op == "send":
            event_id = await self.puppet_or_bot(command).send_message_event(
                RoomID(command["room_id"]),
                EventType.ROOM_MESSAGE,
                TextMessageEventContent(body=command["body"]),
                timestamp=command.get("ts"),
            )
            return {"event_id": event_id}
        raise ValueError(f"unknown op {op!r}")

    def puppet_or_bot(self, command: dict[str, Any]) -> IntentAPI:
        localpart = command.get("localpart")
        return self.appservice.intent if localpart is None else self.puppet(localpart)


async def serve(config: dict[str, Any]) -> None:
    bridge = Bridge(config)
    await bridge.start()
    say({"ready": True})
    lines = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(lines), sys.stdin)
    try:
        while raw := await lines.readline():
            command = json.loads(raw)
            if command["op"] == "stop":
                break
            try:
                say(await bridge.do(command))
            except Exception as error:
                say(refusal(error))
    finally:
        await bridge.appservice.stop()
    say({"stopped": True})


def refusal(error: Exception) -> dict[str, Any]:
    """The homeserver's refusal behind `error` (mautrix wraps some in an IntentError)."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, MatrixRequestError):
        cause = cause.__cause__
    if isinstance(cause, MatrixRequestError):
        return {"error": cause.message, "errcode": cause.errcode, "status": cause.http_status}
    return {"error": repr(error), "errcode": None, "status": None}


def say(answer: dict[str, Any]) -> None:
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    asyncio.run(serve(json.loads(Path(sys.argv[1]).read_text())))
