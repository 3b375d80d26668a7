"""The middlewares every listener runs: request IDs, CORS, Matrix error bodies, and the
refusal of text no endpoint can take."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ranvier.errors import MatrixError, TemporarilyUnavailable, too_large, unrecognized
from ranvier.http.json import json_response
from ranvier.http.logging import current_request_id

logger = logging.getLogger("ranvier.http")
access_logger = logging.getLogger("ranvier.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# spec: client-server-api "Web Browser Clients"
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
}

_request_counter = itertools.count(1)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = f"{request.method}-{next(_request_counter)}"
    token = current_request_id.set(request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        # one access line per request, carrying the same ID as everything logged while it ran
        access_logger.info(
            "%s %s %s %d %.1fms",
            request.remote,
            request.method,
            request.rel_url.path,
            status,
            (time.perf_counter() - started) * 1000,
        )
        current_request_id.reset(token)


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # spec: OPTIONS must not run endpoint logic, on any path, known or not
    if request.method == "OPTIONS":
        return web.Response(status=204, headers=CORS_HEADERS)
    response = await handler(request)
    response.headers.update(CORS_HEADERS)
    return response


@web.middleware
async def request_text_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuses U+0000 in the path and query (`%00`): no identifier may hold it, and
    PostgreSQL cannot store it in text. JSON bodies are held to the same by parse_json."""
    if "\x00" in request.path or any("\x00" in value for value in request.query.values()):
        raise MatrixError(400, "M_INVALID_PARAM", "The request path and query may not hold U+0000")
    return await handler(request)


@web.middleware
async def matrix_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except MatrixError as exc:
        return json_response(exc.body(), status=exc.status, headers=exc.headers or None)
    except web.HTTPNotFound:
        return json_response(unrecognized(404).body(), status=404)
    except web.HTTPMethodNotAllowed:
        return json_response(unrecognized(405, "Unrecognized request method").body(), 405)
    except web.HTTPRequestEntityTooLarge:
        error = too_large("Request body too large")
        return json_response(error.body(), status=413)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = {"errcode": "M_UNKNOWN", "error": exc.reason}
        return json_response(body, status=exc.status)
    except TemporarilyUnavailable as exc:
        # the server is overloaded or its database is out of reach, not the request wrong:
        # a client that waits and retries will get its answer
        logger.warning("%s %s not served: %s", request.method, request.path, exc)
        body = {"errcode": "M_UNKNOWN", "error": "The server is busy; try again shortly"}
        headers = {"Retry-After": str(exc.retry_after_seconds)}
        return json_response(body, status=503, headers=headers)
    except Exception:
        logger.exception("Unhandled error while handling %s %s", request.method, request.path)
        body = {"errcode": "M_UNKNOWN", "error": "Internal server error"}
        return json_response(body, status=500)
