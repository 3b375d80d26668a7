"""Serving and recording Prometheus metrics over HTTP: the middleware that records every
request (only installed with `enable_metrics`), and the scrape endpoint, served at
`/_synapse/metrics` by the `metrics` resource and at that path and `/metrics` by a
listener of type `metrics`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractMatchInfo

from ranvier.metrics import registry, usage
from ranvier.metrics.http import RequestMetrics
from ranvier.metrics.servlets import UNMATCHED, servlet_name

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SYNAPSE_METRICS_PATH = "/_synapse/metrics"
METRICS_PATH = "/metrics"
# any other method is one label value, however many a client makes up
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
# what nginx logs for a request whose client went away before the answer
CLIENT_CLOSED = 499


class RequestRecorder:
    """The outermost middleware of every listener when metrics are on."""

    def __init__(self, metrics: RequestMetrics) -> None:
        self._metrics = metrics
        # route -> servlet label, worked out once per route
        self._names: dict[object, str] = {}
        registry.register(metrics)

    def _servlet(self, match_info: AbstractMatchInfo) -> str:
        route = getattr(match_info, "route", None)
        resource = getattr(route, "resource", None)
        if resource is None:
            # 404 and 405 answers: aiohttp makes a system route for each, so they are not
            # remembered (that would grow with every unknown path asked for)
            return UNMATCHED
        name = self._names.get(route)
        if name is None:
            handler = getattr(route, "handler", None)
            handler_name = getattr(handler, "__qualname__", type(handler).__name__)
            name = self._names[route] = servlet_name(resource.canonical, handler_name)
        return name

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        method = request.method if request.method in _METHODS else "OTHER"
        servlet = self._servlet(request.match_info)
        self._metrics.started(method, servlet)
        started = time.perf_counter()
        used, token = usage.begin()
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        except asyncio.CancelledError:
            code = CLIENT_CLOSED
            raise
        finally:
            usage.end(token)
            self._metrics.finished(method, servlet, code, time.perf_counter() - started, used)


async def serve_metrics(_request: web.Request) -> web.Response:
    """GET /_synapse/metrics"""
    body = registry.render()
    return web.Response(body=body, headers={"Content-Type": registry.CONTENT_TYPE})


def metrics_routes(*, listener_of_its_own: bool) -> list[web.RouteDef]:
    paths = [SYNAPSE_METRICS_PATH, METRICS_PATH] if listener_of_its_own else [SYNAPSE_METRICS_PATH]
    return [web.get(path, serve_metrics) for path in paths]
