"""Builds one homeserver process from its config: stores, services and routes, then serves.

This is the one place where objects are wired together by constructor arguments.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from ranvier import __version__
from ranvier.api import root, wellknown
from ranvier.api.admin import background_updates as admin_background_updates
from ranvier.api.admin import server_version
from ranvier.api.client import versions
from ranvier.api.federation import version as federation_version
from ranvier.config.models import HomeserverConfig, Listener
from ranvier.config.signing_key import load_signing_key
from ranvier.http.middleware import (
    cors_middleware,
    matrix_error_middleware,
    request_id_middleware,
)
from ranvier.storage.background_updates import BackgroundUpdater
from ranvier.storage.database import Database
from ranvier.storage.schema import prepare_database

logger = logging.getLogger(__name__)

# how long in-flight requests get to finish after SIGTERM
SHUTDOWN_TIMEOUT_SECONDS = 10.0


@dataclass
class Homeserver:
    config: HomeserverConfig
    database: Database
    background_updater: BackgroundUpdater
    runners: list[web.AppRunner] = field(default_factory=list)

    def build_app(self, listener: Listener) -> web.Application:
        app = web.Application(
            middlewares=[request_id_middleware, cors_middleware, matrix_error_middleware],
            client_max_size=self.config.max_request_body_size,
        )
        resources = {name for resource in listener.resources for name in resource.names}
        route_defs: list[web.RouteDef] = list(
            root.RootEndpoints(self.config.web_client_location).routes()
        )
        if "client" in resources:
            route_defs += versions.routes()
            route_defs += wellknown.WellKnownEndpoints(self.config).routes()
            # Synapse serves its admin API on the client resource; admin tools expect that
            route_defs += server_version.routes()
            route_defs += admin_background_updates.BackgroundUpdateEndpoints(
                self.background_updater
            ).routes()
        if "federation" in resources:
            route_defs += federation_version.routes()
            if "client" not in resources:
                route_defs += wellknown.WellKnownEndpoints(self.config).routes()
        app.add_routes(route_defs)
        return app

    async def start(self) -> list[str]:
        """Bind every HTTP listener; returns their URLs."""
        bound: list[str] = []
        for listener in self.config.listeners:
            if listener.type != "http":
                logger.warning("Listener type %r is not served yet; skipping it", listener.type)
                continue
            runner = web.AppRunner(
                self.build_app(listener),
                # the request-ID middleware writes the access lines
                access_log=None,
                shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
                handle_signals=False,
            )
            await runner.setup()
            self.runners.append(runner)
            for address in listener.bind_addresses:
                site = web.TCPSite(runner, address, listener.port)
                await site.start()
                bound.append(site.name)
                logger.info("Listening on %s", site.name)
        return bound

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        self.runners.clear()
        await self.background_updater.stop()
        await self.database.close()


async def create_homeserver(config: HomeserverConfig) -> Homeserver:
    load_signing_key(config.signing_key_path)
    database = await prepare_database(config)
    updater = BackgroundUpdater(database)
    return Homeserver(config=config, database=database, background_updater=updater)


async def serve(
    config: HomeserverConfig,
    on_ready: Callable[[list[str]], None] | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then finish in-flight requests and close the database."""
    homeserver = await create_homeserver(config)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        bound = await homeserver.start()
        homeserver.background_updater.start()
        logger.info("Ranvier %s serving %s", __version__, config.server_name)
        if on_ready is not None:
            on_ready(bound)
        await stopping.wait()
        logger.info("Shutting down: finishing requests in flight")
    finally:
        await homeserver.stop()
        logger.info("Stopped")


def run(config: HomeserverConfig, on_ready: Callable[[list[str]], None] | None = None) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported OS
        asyncio.run(serve(config, on_ready))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(config, on_ready))
