"""Turning a schemathesis case into the bytes of one request, with real values and bad ones.

schemathesis draws each operation's path parameters, query and body from the spec's schemas
(valid ones in positive mode, schema-breaking ones in negative mode). On top of that, every
decision here is drawn from the same hypothesis `data`, so a seed replays a run exactly:

- path parameters, query parameters and body keys are often replaced by real values from the
  world's pools (a joined room, an event in it, a user, a token), so requests get past the
  404s into the code behind them;
- a value is sometimes replaced by a hostile one: wrong type, huge or non-finite number,
  deep nesting, lone surrogates and other odd Unicode;
- a body is sometimes replaced whole: empty, not JSON, not UTF-8, truncated, a BOM, duplicate
  keys, an array or scalar instead of an object, thousands of levels deep;
- the access token is mostly the main user's, sometimes an admin's, missing, unknown or not
  even UTF-8; operations that end sessions or accounts get the victim's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from hypothesis import strategies as st

from bench.fuzz.spec import Operation
from bench.fuzz.world import PASSWORD, Account, World

Draw = Any  # hypothesis' st.DataObject

# operations whose success ends the caller's session or account, or its devices: given the
# victim's token (see world.py), and sometimes its password for user-interactive auth
DESTRUCTIVE = {
    "POST /_matrix/client/v3/logout",
    "POST /_matrix/client/v3/logout/all",
    "POST /_matrix/client/v3/account/deactivate",
    "POST /_matrix/client/v3/account/password",
    "POST /_matrix/client/v3/delete_devices",
    "DELETE /_matrix/client/v3/devices/{deviceId}",
    "PUT /_matrix/client/v3/devices/{deviceId}",
    "POST /_matrix/client/v3/refresh",
}

# which pool a path or query parameter draws real values from, when not its own name
PARAMETER_POOLS = {
    "roomIdOrAlias": ("roomId", "roomAlias"),
    "room_id": ("roomId",),
    "user_id": ("userId",),
    "userid": ("userId",),
    "from": ("token",),
    "to": ("token",),
    "at": ("token",),
    "since": ("since", "token"),
    "next_batch": ("token",),
    "server": ("serverName",),
    "via": ("serverName",),
    "not_membership": ("membership",),
    "alias": ("roomAlias",),
}
# in the admin API (admin.py): users it may act on, and its own kinds of names
ADMIN_PARAMETER_POOLS = {
    "userId": ("adminTarget",),
    "token": ("registrationToken",),
    "reportId": ("reportId",),
    "deleteId": ("deleteId",),
}
# parameters that must agree with each other to name something, and the pool of real pairs
PARAMETER_PAIRS = {
    ("kind", "ruleId"): "pushRule",
    ("serverName", "mediaId"): "media",
    ("roomId", "eventId"): "roomEvent",
    ("eventType", "stateKey"): "stateEvent",
}
# body keys whose values name things, and the pool of real ones
BODY_POOLS = {
    "user_id": "userId",
    "room_id": "roomId",
    "event_id": "eventId",
    "device_id": "deviceId",
    "room_alias": "roomAlias",
    "filter": "filter",
    "session_id": "sessionId",
    "user": "localpart",
    "password": "password",
}
BODY_LIST_POOLS = {
    "invite": "userId",
    "rooms": "roomId",
    "not_rooms": "roomId",
    "senders": "userId",
    "not_senders": "userId",
    "user_ids": "userId",
    "via": "serverName",
    "device_ids": "deviceId",
    "devices": "deviceId",
}
TIMEOUT_PARAMETERS = {"timeout", "timeout_ms"}

# strings that have broken parsers before: empty, control characters, surrogates, RTL,
# astral, combining, long, and things that look like Matrix identifiers but are not quite
ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "\x00@a:b",
    "\ud800",
    "\udfff\ud800",
    "\u202eevil",
    "\ufeff",
    "\uffff",
    "\U0001d573\U0001d58a\U0001d591",  # astral letters
    "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
    "a" * 70_000,
    "@",
    "@:",
    "@a:",
    ":b",
    "!x",
    "!x:",
    "$",
    "#:",
    "#a:b:c:d",
    "@a:b:99999999999",
    "@a:[::1",
    "mxc://",
    "mxc://a/../../etc/passwd",
    "../../etc/passwd",
    "%00",
    "%ff",
    "\n\r\t",
    "null",
    "true",
    "-1",
    "1e400",
    "NaN",
    "0x10",
    "{}",
    "[]",
    '{"a":',
    "s0_0_0_0_0_0_0_0",
    "t-1--1",
    "s99999999999999999999999",
    "t1-99999999999999999999",
    "m.room.message",
]
ODD_NUMBERS_RAW = ["1e400", "-1e400", "1E+400", "NaN", "Infinity", "-Infinity", "-0", "1.0e-400"]
ODD_INTEGERS = [-1, 0, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30, -(10**40)]
DEPTHS = [64, 200, 1_000, 5_000]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "",
    "application/json\x00",
]
ODD_TOKENS: list[bytes] = [
    b"Bearer not_a_real_token",
    b"Bearer ",
    b"Bearer",
    b"Basic dXNlcjpwYXNz",
    b"bearer lowercase",
    b"Bearer \xff\xfe\xfd",
    b"Bearer caf\xc3\xa9",
    b"Bearer syt_" + b"a" * 5000,
]


class Raw:
    """A JSON literal written as is, for what Python's json would refuse or rewrite."""

    def __init__(self, text: str) -> None:
        self.text = text


@dataclass
class FuzzRequest:
    operation: Operation
    mode: str
    method: str
    target: str  # path and query, as sent
    headers: list[tuple[str, bytes | str]]
    body: bytes | None
    who: str  # main, admin, victim, other, none, odd
    notes: list[str] = field(default_factory=list)
    timeout: float | None = None

    def describe(self, limit: int = 600) -> dict[str, Any]:
        body = None
        if self.body is not None:
            body = self.body[:limit].decode("utf-8", "backslashreplace")
            if len(self.body) > limit:
                body += f"... ({len(self.body)} bytes)"
        return {
            "operation": self.operation.key,
            "mode": self.mode,
            "request": f"{self.method} {self.target[:limit]}",
            "auth": self.who,
            "headers": [
                (name, value if isinstance(value, str) else repr(value))
                for name, value in self.headers
                if name != "Authorization"
            ],
            "body": body,
            "notes": self.notes,
        }


def dumps(value: Any) -> bytes:
    """JSON text of `value`, with `Raw` literals and lone surrogates kept as they are."""
    raws: list[str] = []

    def default(obj: Any) -> Any:
        if isinstance(obj, Raw):
            raws.append(obj.text)
            return f"\x00RAW{len(raws) - 1}\x00"
        if isinstance(obj, bytes):
            return obj.decode("latin-1")
        if hasattr(obj, "__iter__"):
            return list(obj)
        return str(obj)

    text = json.dumps(value, ensure_ascii=False, default=default)
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00RAW{index}\x00", ensure_ascii=False), raw)
    return text.encode("utf-8", "surrogatepass")


def nested(depth: int, in_list: bool) -> Raw:
    """`depth` levels of arrays or objects, as text: deeper than Python's json can write."""
    if in_list:
        return Raw("[" * depth + "1" + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


def odd_value(data: Draw) -> Any:
    """A value no schema asked for."""
    kind = data.draw(st.integers(0, 9))
    if kind == 0:
        return data.draw(st.sampled_from(ODD_STRINGS))
    if kind == 1:
        return data.draw(st.sampled_from(ODD_INTEGERS))
    if kind == 2:
        return Raw(data.draw(st.sampled_from(ODD_NUMBERS_RAW)))
    if kind == 3:
        return nested(data.draw(st.sampled_from(DEPTHS)), data.draw(st.booleans()))
    if kind == 4:
        return data.draw(st.sampled_from([None, True, False, [], {}, 0.5, -0.0, 1.7e308]))
    if kind == 5:
        return Raw(json.dumps("\ud800") if data.draw(st.booleans()) else '"\\udc00x\\u0000"')
    if kind == 6:
        return list(range(data.draw(st.sampled_from([1_000, 20_000]))))
    if kind == 7:
        return {f"k{i}": i for i in range(data.draw(st.sampled_from([1_000, 10_000])))}
    if kind == 8:
        return data.draw(st.text(max_size=20))
    return data.draw(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3)
            ),
            max_leaves=8,
        )
    )


def odd_body(data: Draw) -> bytes:
    """A whole body that is not the JSON object the endpoint wants."""
    depth = data.draw(st.sampled_from([*DEPTHS, 100_000]))
    choices: list[bytes] = [
        b"",
        b"null",
        b"[]",
        b"{}",
        b'"a string"',
        b"0",
        b"true",
        b"{",
        b'{"a":',
        b'{"a":1,',
        b"\xff\xfe{\x00}\x00",
        b"\xef\xbb\xbf{}",
        b'{"a":1,"a":2}',
        b'{"\\ud800":1}',
        b'{"body":"\\ud800"}',
        b'{"a":"\xc3\x28"}',
        b'{"a":"\xed\xa0\x80"}',
        b"\x00",
        b"[" * depth + b"]" * depth,
        b'{"a":' * depth + b"1" + b"}" * depth,
        b'{"a":' + b"9" * 5_000 + b"}",
        b'{"a":1e99999}',
        b'{"a":NaN}',
        b'{"a":-Infinity}',
        b"{}" * 3,
        b"{} trailing",
        '{"a":"é"}'.encode("utf-16"),
        b"\x1f\x8b\x08\x00",  # gzip magic
    ]
    choice: int = data.draw(st.integers(0, len(choices)))
    if choice == len(choices):
        drawn: bytes = data.draw(st.binary(max_size=64))
        return drawn
    return choices[choice]


class RequestMaker:
    """Builds `FuzzRequest`s for one world; every choice comes from hypothesis' `data`."""

    def __init__(self, world: World) -> None:
        self.world = world

    def pick(self, data: Draw, pool_names: tuple[str, ...]) -> Any:
        # the draws never depend on the pools' sizes, which change during a run: hypothesis
        # replays choice sequences and wants the same draws for the same choices
        index = data.draw(st.integers(0, 2**16))
        newest = data.draw(st.integers(0, 7))
        values = [v for name in pool_names for v in self.world.pools.get(name, [])]
        if not values:
            return None
        if newest < 4:
            # the newest values (fresh rooms, live tokens) are likelier to work
            return values[len(values) - 1 - newest % len(values)]
        return values[index % len(values)]

    def chance(self, data: Draw, percent: int) -> bool:
        """True `percent` times in 100, and False for hypothesis' simplest draw (0), which it
        makes far more often than that: the unlikely branch must not be the common one."""
        return bool(data.draw(st.integers(0, 99)) >= 100 - percent)

    def likely(self, data: Draw, percent: int) -> bool:
        """True `percent` times in 100, and for the simplest draw."""
        return not self.chance(data, 100 - percent)

    def make(self, operation: Operation, mode: str, case: Any, data: Draw) -> FuzzRequest:
        notes: list[str] = []
        # schemathesis hands path parameters over percent-encoded; they are encoded again below
        params = {
            name: unquote(value) if isinstance(value, str) else value
            for name, value in (case.path_parameters or {}).items()
        }
        headers: list[tuple[str, bytes | str]] = []
        who, account = self._auth(operation, data, headers)
        path = self._path(operation, mode, params, data, notes, account)
        query = self._query(operation, dict(case.query or {}), data, notes)
        body = self._body(operation, mode, case, data, headers, notes, who)
        target = path + (("?" + query) if query else "")
        return FuzzRequest(operation, mode, operation.method, target, headers, body, who, notes)

    # -- path --------------------------------------------------------------------------------

    def _path(
        self,
        operation: Operation,
        mode: str,
        params: dict[str, Any],
        data: Draw,
        notes: list[str],
        me: Account | None,
    ) -> str:
        real_percent = 80 if mode == "positive" else 50
        paired: set[str] = set()
        for names, pool in PARAMETER_PAIRS.items():
            if all(name in params for name in names):
                pair = self.pick(data, (pool,))
                if self.likely(data, real_percent) and pair is not None:
                    params.update(zip(names, pair, strict=True))
                    paired.update(names)
        admin = operation.path.startswith("/_synapse/admin/")
        for name in [name for name in params if name not in paired]:
            pools = PARAMETER_POOLS.get(name, (name,))
            if admin:
                pools = ADMIN_PARAMETER_POOLS.get(name, pools)
            if "/relations/" in operation.path and name == "eventType":
                pools = ("eventType_rel",)
            if self.likely(data, real_percent):
                value = self.pick(data, pools)
                own = self.likely(data, 60)
                # most user and device paths are the requester's own: /user/{userId}/filter, ...
                if own and me is not None and not admin and name in ("userId", "deviceId"):
                    value = me.user_id if name == "userId" else me.device_id
                if value is not None:
                    params[name] = value
        raw: set[str] = set()
        if params and self.chance(data, 6):
            name = data.draw(st.sampled_from(sorted(params)))
            params[name] = data.draw(st.sampled_from(ODD_STRINGS))
            notes.append(f"odd path parameter {name}")
            if self.chance(data, 30):
                # sent without percent-encoding: %ff stays an undecodable escape
                raw.add(name)

        def fill(match: re.Match[str]) -> str:
            name = match[1]
            value = params.get(name, "x")
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            if name in raw:
                return _raw(text, safe="%/:@!$#")
            return quote(text.encode("utf-8", "surrogatepass"), safe="")

        # the spec tells two definitions of one path apart by a trailing space
        return re.sub(r"\{(\w+)\}", fill, operation.path.strip())

    # -- query -------------------------------------------------------------------------------

    def _query(
        self, operation: Operation, query: dict[str, Any], data: Draw, notes: list[str]
    ) -> str:
        media = "/download/" in operation.path or "/thumbnail/" in operation.path
        # media not uploaded yet is waited for, 20 s unless timeout_ms says otherwise
        if media and "timeout_ms" not in query and self.likely(data, 90):
            query["timeout_ms"] = 100
        for name in list(query):
            pools = PARAMETER_POOLS.get(name, (name,))
            if self.likely(data, 50):
                value = self.pick(data, pools)
                if value is not None:
                    query[name] = value
            if name in TIMEOUT_PARAMETERS and self.likely(data, 90):
                # a long-poll of up to a minute per request would stall the run
                value = query[name]
                if not isinstance(value, int) or isinstance(value, bool) or value > 1_000:
                    query[name] = data.draw(st.sampled_from([0, 1, 50, 500]))
        pairs: list[tuple[str, str]] = []
        for name, value in query.items():
            values = value if isinstance(value, list) else [value]
            pairs.extend((name, _query_text(v)) for v in values)
        if self.chance(data, 12):
            how = data.draw(st.integers(0, 3))
            name = data.draw(st.sampled_from(sorted(query) or ["limit", "from", "filter", "dir"]))
            odd = data.draw(st.sampled_from(ODD_STRINGS + [str(n) for n in ODD_INTEGERS]))
            if how == 0:
                pairs = [(n, v) for n, v in pairs if n != name] + [(name, odd)]
            elif how == 1:
                pairs += [(name, odd), (name, "1")]
            elif how == 2:
                pairs.append((data.draw(st.sampled_from(ODD_STRINGS[:12])), odd))
            else:
                notes.append("raw query")
                # percent signs left as they are: %ff and %zz reach the server undecoded
                return "&".join(f"{_raw(n)}={_raw(v)}" for n, v in pairs) + "&%ff=%00&=&&a"
            notes.append(f"odd query parameter {name!r}")
        return "&".join(
            f"{quote(n.encode('utf-8', 'surrogatepass'), safe='')}="
            f"{quote(v.encode('utf-8', 'surrogatepass'), safe='')}"
            for n, v in pairs
        )

    # -- authentication ----------------------------------------------------------------------

    def _auth(
        self, operation: Operation, data: Draw, headers: list[tuple[str, bytes | str]]
    ) -> tuple[str, Account | None]:
        world = self.world
        if operation.key in DESTRUCTIVE:
            world.renew_victim()
            account, who = world.victim, "victim"
        else:
            roll = data.draw(st.integers(0, 99))
            if operation.path.startswith("/_synapse/admin/") and roll < 75:
                account, who = world.admin, "admin"
            elif roll < 75 or (operation.auth == "none" and roll < 85):
                account, who = world.main, "main"
            elif roll < 85:
                account, who = world.admin, "admin"
            elif roll < 90:
                account, who = world.other, "other"
            elif roll < 96:
                account, who = None, "none"
            else:
                headers.append(("Authorization", data.draw(st.sampled_from(ODD_TOKENS))))
                return "odd", None
        if account is None:
            return "none", None
        headers.append(("Authorization", f"Bearer {account.token}"))
        return who, account

    # -- body --------------------------------------------------------------------------------

    def _body(
        self,
        operation: Operation,
        mode: str,
        case: Any,
        data: Draw,
        headers: list[tuple[str, bytes | str]],
        notes: list[str],
        who: str,
    ) -> bytes | None:
        generated = getattr(case, "body", None)
        has_body = not _unset(generated)
        if "application/octet-stream" in operation.body_types:
            media_type = data.draw(st.sampled_from(["image/png", "application/octet-stream", ""]))
            if media_type:
                headers.append(("Content-Type", media_type))
            if isinstance(generated, bytes) and self.chance(data, 50):
                return generated
            from bench.fuzz.world import PNG

            return PNG if self.likely(data, 70) else b""
        if not operation.body_types:
            if operation.method in ("POST", "PUT") and self.chance(data, 10):
                headers.append(("Content-Type", "application/json"))
                notes.append("body nobody asked for")
                return odd_body(data) if self.chance(data, 50) else dumps(odd_value(data))
            return None
        roll = data.draw(st.integers(0, 99))
        if roll >= 85:
            notes.append("whole body replaced")
            body = odd_body(data)
        else:
            value = generated if has_body else {}
            if isinstance(value, bytes):
                body = value
            else:
                value = self._substitute(value, data, depth=0)
                if (
                    operation.key in DESTRUCTIVE
                    and isinstance(value, dict)
                    and self.likely(data, 40)
                ):
                    value["auth"] = self._victim_auth(data)
                if roll >= 60:
                    value, where = self._spoil(value, data)
                    notes.append(f"odd value at {where}")
                body = dumps(value)
        content_type = "application/json"
        if self.chance(data, 8):
            content_type = data.draw(st.sampled_from(CONTENT_TYPES))
            notes.append(f"content type {content_type!r}")
        if content_type:
            headers.append(("Content-Type", content_type))
        return body

    def _victim_auth(self, data: Draw) -> dict[str, Any]:
        victim = self.world.victim
        assert victim is not None
        auth: dict[str, Any] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": victim.localpart},
            "password": PASSWORD,
        }
        if self.chance(data, 30):
            auth = {"type": "m.login.dummy"}
        return auth

    def _substitute(self, value: Any, data: Draw, depth: int) -> Any:
        """Real names for the body keys that hold them, in about half the places they occur."""
        if depth > 6:
            return value
        if isinstance(value, list):
            return [self._substitute(item, data, depth + 1) for item in value]
        if not isinstance(value, dict):
            return value
        result = {}
        for key, item in value.items():
            if key in BODY_POOLS and self.likely(data, 50):
                real = self.pick(data, (BODY_POOLS[key],))
                item = real if real is not None else item
            elif key in BODY_LIST_POOLS and self.likely(data, 50):
                real = self.pick(data, (BODY_LIST_POOLS[key],))
                if real is not None:
                    item = [real]
            else:
                item = self._substitute(item, data, depth + 1)
            result[key] = item
        return result

    def _spoil(self, value: Any, data: Draw) -> tuple[Any, str]:
        """`value` with one place in it (or a new key) replaced by `odd_value`."""
        if isinstance(value, dict) and value and self.chance(data, 80):
            key = data.draw(st.sampled_from(sorted(value)))
            inner, where = self._spoil(value[key], data)
            return {**value, key: inner}, f".{key}{where}"
        if isinstance(value, list) and value and self.chance(data, 80):
            index = data.draw(st.integers(0, len(value) - 1))
            inner, where = self._spoil(value[index], data)
            return [*value[:index], inner, *value[index + 1 :]], f"[{index}]{where}"
        if isinstance(value, dict) and self.chance(data, 50):
            key = data.draw(st.sampled_from(["body", "msgtype", "type", "content", "x", "\ud800"]))
            return {**value, key: odd_value(data)}, f".{key}+"
        return odd_value(data), ""


def _raw(text: str, safe: str = "%") -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe=safe)


def _unset(value: Any) -> bool:
    return value is None or type(value).__name__ == "NotSet"


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)
