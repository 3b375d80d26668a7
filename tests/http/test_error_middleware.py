"""The Matrix error middleware: a database that cannot serve the request is a 503 the client
may retry after a while, never a 500."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ranvier.http.middleware import matrix_error_middleware
from ranvier.storage.errors import DatabaseUnavailable


async def test_database_unavailable_is_503_with_retry_after() -> None:
    async def busy(request: web.Request) -> web.Response:
        raise DatabaseUnavailable("all 2 connections in use", retry_after_seconds=7)

    app = web.Application(middlewares=[matrix_error_middleware])
    app.router.add_get("/busy", busy)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/busy")
        assert response.status == 503
        assert response.headers["Retry-After"] == "7"
        body = await response.json()
    assert body["errcode"] == "M_UNKNOWN"
    # what the client is told says nothing of the server's insides
    assert "connections" not in body["error"]
