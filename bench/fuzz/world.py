"""What the fuzzer sets up on the server before it starts, and the real values it then offers.

Generated path parameters almost never name anything (`/rooms/%21x/...` answers 404 before
any interesting code runs), so the fuzzer makes users, rooms, events, media, a filter, a key
backup, a push rule and tokens of its own, and keeps them in pools named after the
parameters and body keys they fill (`roomId`/`room_id`, `userId`/`user_id`, ...).

Users: `main` does most of the fuzzing; `other` shares its rooms; `admin` is a server admin
(made with `ranvier register-user --admin`); `victim` is handed the operations that end a
session or an account (logout, deactivation, password change, device deletion) and is
replaced whenever its token stops working. Fuzzed requests can make `main` leave or lose
power in its rooms, so `refresh` checks on it now and then and makes new rooms.
"""

from __future__ import annotations

import base64
import itertools
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.fuzz.wire import Answer, Connection

CLIENT = "/_matrix/client/v3"
PASSWORD = "fuzz password 1"
# a 1x1 PNG, for media and thumbnails
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
ROOM_VERSIONS = ("1", "10", "12")


class SetupFailed(Exception):
    pass


@dataclass
class Account:
    user_id: str
    token: str
    device_id: str
    localpart: str


@dataclass
class World:
    conn: Connection
    config_path: Path | None
    server_name: str = ""
    main: Account | None = None
    other: Account | None = None
    admin: Account | None = None
    victim: Account | None = None
    pools: dict[str, list[Any]] = field(default_factory=dict)
    _names: itertools.count[int] = field(default_factory=itertools.count)
    _prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    # -- set-up -------------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None, who: Account | None = None) -> Answer:
        return self.conn.json(method, path, body, who.token if who is not None else None)

    def ok(self, method: str, path: str, body: Any = None, who: Account | None = None) -> Any:
        answer = self.call(method, path, body, who)
        if answer.status != 200:
            raise SetupFailed(f"{method} {path} -> {answer.status}: {answer.body[:300]!r}")
        return answer.json()

    def new_localpart(self, role: str) -> str:
        return f"fuzz{role}{self._prefix}{next(self._names)}"

    def register(self, role: str) -> Account:
        localpart = self.new_localpart(role)
        body = {"username": localpart, "password": PASSWORD, "auth": {"type": "m.login.dummy"}}
        data = self.ok("POST", CLIENT + "/register", body)
        return Account(data["user_id"], data["access_token"], data["device_id"], localpart)

    def login(self, localpart: str) -> Account:
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": PASSWORD,
        }
        data = self.ok("POST", CLIENT + "/login", body)
        return Account(data["user_id"], data["access_token"], data["device_id"], localpart)

    def make_admin(self) -> Account | None:
        """A server admin through `ranvier register-user --admin`, when the config is known."""
        if self.config_path is None:
            return None
        localpart = self.new_localpart("admin")
        argv = [sys.executable, "-m", "ranvier.cli", "register-user", "-c", str(self.config_path)]
        argv += ["--user", localpart, "--password", PASSWORD, "--admin"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SetupFailed(f"register-user --admin failed: {done.stderr}")
        return self.login(localpart)

    def set_up(self) -> None:
        self.server_name = self.ok("GET", CLIENT + "/account/whoami", who=self._first())[
            "user_id"
        ].split(":", 1)[1]
        assert self.main is not None
        self.other = self.register("other")
        self.victim = self.register("victim")
        self.admin = self.make_admin()
        self._fill_static_pools()
        for version in ROOM_VERSIONS:
            self.make_room(version)
        self._make_user_data()
        self._make_media()

    def _first(self) -> Account:
        self.main = self.register("main")
        return self.main

    def add(self, pool: str, *values: Any) -> None:
        values_in = self.pools.setdefault(pool, [])
        for value in values:
            if value not in values_in:
                values_in.append(value)

    def _fill_static_pools(self) -> None:
        assert self.main and self.other and self.victim
        name = self.server_name
        users = [a.user_id for a in (self.main, self.other, self.victim, self.admin) if a]
        # in each pool the names of nothing come first: the newest values are picked most
        self.add("userId", f"@nobody{self._prefix}:{name}", "@someone:example.org", *users)
        self.add("deviceId", "NOSUCHDEVICE", self.victim.device_id, self.main.device_id)
        self.add("localpart", "nobody", *(a.localpart for a in (self.victim, self.main)))
        self.add("password", "wrong password", PASSWORD)
        self.add("serverName", name, "example.org")
        self.add("roomId", f"!nosuchroom{self._prefix}:{name}", "!remote:example.org")
        self.add("roomAlias", f"#nosuchalias{self._prefix}:{name}", "#remote:example.org")
        self.add("eventId", "$nosuchevent", f"$nosuchevent:{name}")
        self.add(
            "eventType",
            "m.room.message",
            "m.room.name",
            "m.room.topic",
            "m.room.member",
            "m.room.power_levels",
            "m.room.join_rules",
            "m.room.history_visibility",
            "m.room.canonical_alias",
            "m.room.encryption",
            "m.room.redaction",
            "m.room.create",
            "m.reaction",
            "m.space.child",
            "m.fuzz.custom",
        )
        self.add("adminTarget", f"@nobody{self._prefix}:{name}", "@someone:example.org")
        self.add("adminTarget", self.other.user_id, self.victim.user_id)
        self.add("reportId", "999", "1")
        self.add("deleteId", "nosuchdelete")
        self.add("registrationToken", "nosuchtoken")
        self.add("stateKey", "", *users)
        self.add(
            "stateEvent",
            ("m.room.member", self.other.user_id),
            ("m.room.power_levels", ""),
            ("m.fuzz.custom", "fuzz"),
            ("m.room.join_rules", ""),
            ("m.room.topic", ""),
            ("m.room.member", self.main.user_id),
            ("m.room.name", ""),
        )
        self.add("type", "m.direct", "m.fully_read", "m.push_rules", "m.fuzz.data", "m.tag")
        self.add("receiptType", "m.read", "m.read.private", "m.fully_read")
        self.add("relType", "m.thread", "m.annotation", "m.reference", "m.replace")
        self.add("eventType_rel", "m.room.message", "m.reaction")
        self.add("kind", "override", "underride", "sender", "room", "content")
        self.add("ruleId", ".m.rule.master", ".m.rule.contains_display_name", "fuzz.rule")
        self.add(
            "pushRule",
            ("override", ".m.rule.master"),
            ("override", ".m.rule.suppress_notices"),
            ("underride", ".m.rule.message"),
            ("underride", ".m.rule.room_one_to_one"),
            ("content", "fuzz.rule"),
        )
        self.add("scope", "global")
        self.add("tag", "m.favourite", "m.lowpriority", "u.fuzz")
        self.add("keyName", "displayname", "avatar_url", "m.tz", "org.example.fuzz")
        self.add("version", "999")
        self.add("membership", "join", "invite", "leave", "ban", "knock")
        self.add("dir", "b", "f")
        self.add("ts", int(time.time() * 1000), 0)
        self.add("txnId", "fixed-txn")

    def make_room(self, version: str | None = None) -> str:
        """A room `main` created and `other` joined, with messages, a thread, a reaction, an
        edit and a redaction, so event IDs and tokens of every kind are in the pools."""
        assert self.main and self.other
        alias = self.new_localpart("room")
        body: dict[str, Any] = {
            "preset": "public_chat",
            "room_alias_name": alias,
            "name": "fuzz room",
            "topic": "fuzzing",
        }
        if version is not None:
            body["room_version"] = version
        room_id: str = self.ok("POST", CLIENT + "/createRoom", body, self.main)["room_id"]
        self.add("roomId", room_id)
        self.add("roomAlias", f"#{alias}:{self.server_name}")
        self.ok("POST", f"{CLIENT}/join/{quote(room_id)}", {}, self.other)
        room = f"{CLIENT}/rooms/{quote(room_id)}"
        first = self.send(room, "m.room.message", {"msgtype": "m.text", "body": "hello"})
        thread_reply = self.send(
            room,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "in a thread",
                "m.relates_to": {"rel_type": "m.thread", "event_id": first},
            },
        )
        self.send(
            room,
            "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": first, "key": "👍"}},
        )
        self.send(
            room,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "* edited",
                "m.new_content": {"msgtype": "m.text", "body": "edited"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": first},
            },
        )
        doomed = self.send(room, "m.room.message", {"msgtype": "m.text", "body": "oops"})
        self.ok("PUT", f"{room}/redact/{quote(doomed)}/{uuid.uuid4().hex}", {}, self.main)
        state = self.ok("GET", f"{room}/state", who=self.main)
        events = [first, thread_reply, doomed, *(e["event_id"] for e in state[:4])]
        self.add("eventId", *events)
        self.add("roomEvent", *((room_id, event_id) for event_id in events))
        messages = self.ok("GET", f"{room}/messages?dir=b&limit=3", who=self.main)
        self.add("token", *(messages[k] for k in ("start", "end") if k in messages))
        return room_id

    def send(self, room: str, event_type: str, content: dict[str, Any]) -> str:
        path = f"{room}/send/{event_type}/{uuid.uuid4().hex}"
        event_id: str = self.ok("PUT", path, content, self.main)["event_id"]
        return event_id

    def _make_user_data(self) -> None:
        assert self.main
        user = quote(self.main.user_id)
        data = self.ok(
            "POST", f"{CLIENT}/user/{user}/filter", {"room": {"timeline": {"limit": 5}}}, self.main
        )
        self.add("filterId", data["filter_id"])
        self.add("filter", data["filter_id"], '{"room":{"timeline":{"limit":2}}}')
        self.make_backup()
        self.add("sessionId", "fuzzsession")
        if self.admin is not None:
            path = "/_synapse/admin/v1/registration_tokens/new"
            self.add("registrationToken", self.ok("POST", path, {}, self.admin)["token"])
        rule = {"actions": ["notify"], "pattern": "fuzz"}
        self.ok("PUT", f"{CLIENT}/pushrules/global/content/fuzz.rule", rule, self.main)
        sync = self.ok("GET", f"{CLIENT}/sync?timeout=0", who=self.main)
        self.add("since", sync["next_batch"])
        self.add("token", sync["next_batch"])

    def make_backup(self) -> None:
        """A key backup version for `main`, unless it has one (a fuzzed request may delete it)."""
        assert self.main
        if self.call("GET", f"{CLIENT}/room_keys/version", None, self.main).status == 200:
            return
        backup = {
            "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2",
            "auth_data": {"public_key": "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo"},
        }
        data = self.ok("POST", f"{CLIENT}/room_keys/version", backup, self.main)
        self.add("version", data["version"])

    def _make_media(self) -> None:
        assert self.main
        answer = self.conn.send(
            "POST",
            "/_matrix/media/v3/upload?filename=fuzz.png",
            PNG,
            [("Content-Type", "image/png"), ("Authorization", f"Bearer {self.main.token}")],
        )
        self.add("mediaId", "nosuchmedia")
        pending = self.call("POST", "/_matrix/media/v1/create", None, self.main)
        for uploaded in (pending, answer):
            if uploaded.status == 200:
                server_name, media_id = uploaded.json()["content_uri"][6:].split("/", 1)
                self.add("mediaId", media_id)
                self.add("media", (server_name, media_id))

    # -- during the fuzz ----------------------------------------------------------------------

    def alive(self, account: Account | None) -> bool:
        if account is None:
            return False
        return self.call("GET", CLIENT + "/account/whoami", None, account).status == 200

    def refresh(self) -> None:
        """Bring back what fuzzed requests may have broken: the main user's session, the
        victim, and a room where `main` is joined with its power intact."""
        assert self.main
        if not self.alive(self.main):
            # logged out (or deactivated, then register anew) by some request
            try:
                self.main = self.login(self.main.localpart)
            except SetupFailed:
                self.main = self.register("main")
            self.add("userId", self.main.user_id)
            self.add("deviceId", self.main.device_id)
        if not self.alive(self.other):
            self.other = self.register("other")
            self.add("userId", self.other.user_id)
            self.add("adminTarget", self.other.user_id)
        self.renew_victim()
        self.make_room()
        self.make_backup()

    def renew_victim(self) -> None:
        if not self.alive(self.victim):
            self.victim = self.register("victim")
            self.add("userId", self.victim.user_id)
            self.add("adminTarget", self.victim.user_id)
            self.add("deviceId", self.victim.device_id)


def open_world(base_url: str, config_path: Path | None, timeout: float = 10.0) -> World:
    """Set up users, rooms and the rest on the server at `base_url`."""
    world = World(Connection(base_url, timeout), config_path)
    world.set_up()
    return world
