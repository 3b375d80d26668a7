"""Signed federation requests: the JSON a request's signature covers and the X-Matrix
`Authorization` header that carries it.

spec: server-server-api "Request Authentication" - the method, target (path and query as
sent), origin, destination and JSON body are signed as one object with the JSON signing
algorithm; the header is `X-Matrix` followed by comma-separated `name=value` parameters
(RFC 9110 section 11.4), names case-insensitive, values a token or a quoted string with
backslash escapes, colons allowed unquoted for older servers, unknown names ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ranvier.protocol.signing import sign_json
from ranvier.protocol.signing_keys import ServerSigningKey

SCHEME = "X-Matrix"

# RFC 9110 section 5.6.2 tchar, plus ':' which older servers send unquoted
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z:]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"[ \t]*({_TOKEN})[ \t]*=[ \t]*({_QUOTED}|{_TOKEN})[ \t]*")
_ESCAPE = re.compile(r"\\(.)")


class AuthorizationHeaderError(ValueError):
    """An `Authorization` header that is not a well-formed X-Matrix one."""


@dataclass(frozen=True, slots=True)
class XMatrixAuthorization:
    origin: str
    destination: str | None  # older servers leave it out
    key: str
    sig: str


def request_json(
    method: str, uri: str, origin: str, destination: str, content: Any = None
) -> dict[str, Any]:
    """The object whose signature authenticates a request; `content` is the parsed JSON
    body, or None when the request has none (then the key is absent, not null)."""
    signed: dict[str, Any] = {
        "method": method,
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if content is not None:
        signed["content"] = content
    return signed


def authorization_header(
    signing_key: ServerSigningKey,
    *,
    method: str,
    uri: str,
    origin: str,
    destination: str,
    content: Any = None,
) -> str:
    """The `Authorization` header value for a request from `origin` signed with
    `signing_key`, written as the spec asks senders to for older servers: one space after
    the scheme, lower-case names, quoted values, no spaces around the commas."""
    signed = sign_json(request_json(method, uri, origin, destination, content), origin, signing_key)
    sig = signed["signatures"][origin][signing_key.key_id]
    params = {"origin": origin, "destination": destination, "key": signing_key.key_id, "sig": sig}
    return f"{SCHEME} " + ",".join(f'{name}="{_quote(value)}"' for name, value in params.items())


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def parse_authorization_header(value: str) -> XMatrixAuthorization:
    """The parameters of an X-Matrix `Authorization` header value.

    Raises AuthorizationHeaderError for another scheme, a malformed parameter list, or a
    missing `origin`, `key` or `sig`.
    """
    scheme, _, rest = value.partition(" ")
    if scheme.lower() != SCHEME.lower():
        raise AuthorizationHeaderError(f"the scheme is not {SCHEME}")
    rest = rest.strip(" \t")
    if not rest:
        raise AuthorizationHeaderError(f"{SCHEME} has no parameters")
    params: dict[str, str] = {}
    position = 0
    while True:
        match = _PARAM.match(rest, position)
        if match is None:
            raise AuthorizationHeaderError(f"malformed parameter at character {position}")
        name, raw = match.group(1).lower(), match.group(2)
        if raw.startswith('"'):
            raw = _ESCAPE.sub(r"\1", raw[1:-1])
        if name in params:
            raise AuthorizationHeaderError(f"the parameter {name!r} appears twice")
        params[name] = raw
        position = match.end()
        if position == len(rest):
            break
        if rest[position] != ",":
            raise AuthorizationHeaderError(f"expected ',' at character {position}")
        position += 1
    missing = [name for name in ("origin", "key", "sig") if not params.get(name)]
    if missing:
        raise AuthorizationHeaderError(f"missing {', '.join(missing)}")
    return XMatrixAuthorization(
        origin=params["origin"],
        destination=params.get("destination"),
        key=params["key"],
        sig=params["sig"],
    )
