"""Background updates admin API (Synapse's paths, so existing admin tools work)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_body
from ranvier.storage.background_updates import BackgroundUpdater


class _EnabledBody(RequestBody):
    enabled: bool


class _StartJobBody(RequestBody):
    job_name: str


class BackgroundUpdateEndpoints:
    def __init__(
        self,
        updater: BackgroundUpdater,
        auth: RequestAuthenticator,
        jobs: Mapping[str, str] | None = None,
    ) -> None:
        self._updater = updater
        self._auth = auth
        # Synapse's job names an admin may start again -> the update that does the job
        self._jobs = dict(jobs or {})

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_synapse/admin/v1/background_updates/status", self.get_status),
            web.get("/_synapse/admin/v1/background_updates/enabled", self.get_enabled),
            web.post("/_synapse/admin/v1/background_updates/enabled", self.set_enabled),
            web.post("/_synapse/admin/v1/background_updates/start_job", self.start_job),
        ]

    async def get_status(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/background_updates/status"""
        await self._auth.require_admin(request)
        return json_response(self._updater.status())

    async def get_enabled(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/background_updates/enabled"""
        await self._auth.require_admin(request)
        return json_response({"enabled": self._updater.enabled})

    async def set_enabled(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/background_updates/enabled"""
        await self._auth.require_admin(request)
        enabled = (await read_body(request, _EnabledBody, bad_value="M_INVALID_PARAM")).enabled
        self._updater.enabled = enabled
        return json_response({"enabled": enabled})

    async def start_job(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/background_updates/start_job"""
        await self._auth.require_admin(request)
        job_name = (await read_body(request, _StartJobBody)).job_name
        update = self._jobs.get(job_name)
        if update is None:
            known = ", ".join(sorted(self._jobs)) or "none"
            # Synapse's status and errcode, which admin tools expect
            raise MatrixError(400, "M_UNKNOWN", f"Invalid job_name; known jobs: {known}")
        if not await self._updater.queue(update):
            raise MatrixError(
                400, "M_UNKNOWN", f"Job {job_name} is already in queue of background updates."
            )
        return json_response({})
