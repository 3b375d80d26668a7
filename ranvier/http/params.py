"""Query string parameters with Matrix errors: 400 M_MISSING_PARAM when a required one is
absent, 400 M_INVALID_PARAM when one does not parse."""

from __future__ import annotations

import re

from aiohttp import web

from ranvier.errors import MatrixError

# what canonical JSON allows, and so every integer the server stores or passes on
MAX_INT = 2**53 - 1
# ASCII digits only: int() would also take "1_000", " 5" and other scripts' digits
_INTEGER = re.compile(r"-?[0-9]{1,16}")


def missing_param(name: str) -> MatrixError:
    return MatrixError(400, "M_MISSING_PARAM", f"Missing required query parameter '{name}'")


def invalid_param(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


def query_string(request: web.Request, name: str) -> str | None:
    return request.query.get(name)


def required_query_string(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if value is None:
        raise missing_param(name)
    return value


def query_bool(request: web.Request, name: str) -> bool | None:
    value = request.query.get(name)
    if value is None:
        return None
    if value == "true":
        return True
    if value == "false":
        return False
    raise invalid_param(f"Query parameter '{name}' must be 'true' or 'false'")


def query_int(request: web.Request, name: str, default: int, *, minimum: int = 0) -> int:
    value = request.query.get(name)
    if value is None:
        return default
    return parse_int_param(name, value, minimum=minimum)


def parse_int_param(name: str, value: str, *, minimum: int = -MAX_INT) -> int:
    """`value` of parameter `name` as an integer in [minimum, 2**53-1], else M_INVALID_PARAM;
    a larger one would overflow the databases' 64-bit integers."""
    if _INTEGER.fullmatch(value) is None or not -MAX_INT <= int(value) <= MAX_INT:
        raise invalid_param(
            f"Query parameter '{name}' must be an integer in [-(2**53)+1, (2**53)-1]"
        )
    number = int(value)
    if number < minimum:
        raise invalid_param(f"Query parameter '{name}' must be at least {minimum}")
    return number


def query_choice(request: web.Request, name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = request.query.get(name, default)
    if value not in allowed:
        raise invalid_param(f"Query parameter '{name}' must be one of {', '.join(allowed)}")
    return value
