"""JSON in and out with orjson; request bodies are parsed in one place."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ranvier.http.errors import bad_json, not_json


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or M_NOT_JSON / M_BAD_JSON. Size limits apply earlier."""
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise not_json() from None
    if not isinstance(body, dict):
        raise bad_json("The request body must be a JSON object.")
    return body
