"""Helpers for the media-across-servers tests: a FakeServer that can answer with files
(multipart/mixed as the federation media endpoints, or plain bytes as the legacy ones),
and the client and admin requests the tests make."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp
from aiohttp import web
from PIL import Image

from tests.federation.fake_server import FakeServer, ReceivedRequest
from tests.federation.harness import FederatingServer
from tests.integration.client import Reply
from tests.integration.matrix import CLIENT, DEFAULT_PASSWORD, Session, register_user_command

AUTHED = "/_matrix/client/v1/media"
LEGACY = "/_matrix/media/v3"
FEDERATION_MEDIA = "/_matrix/federation/v1/media"
ADMIN = "/_synapse/admin/v1"

RawHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class MediaFake(FakeServer):
    """A FakeServer whose `files` paths answer with whatever their handler makes."""

    files: dict[str, RawHandler] = field(default_factory=dict)

    async def _handle(self, request: web.Request) -> web.Response:
        handler = self.files.get(request.path)
        if handler is None:
            return await super()._handle(request)
        self.received.append(
            ReceivedRequest(
                request.method,
                request.path,
                dict(request.query),
                None,
                request.headers.get("Authorization"),
            )
        )
        return await handler(request)  # type: ignore[return-value]

    def serve_federation_file(
        self, media_id: str, data: bytes, content_type: str, filename: str, delay: float = 0
    ) -> None:
        async def answer(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(delay)
            return multipart_file(data, content_type, filename)

        self.files[f"{FEDERATION_MEDIA}/download/{media_id}"] = answer

    def serve_federation_thumbnail(self, media_id: str, data: bytes, content_type: str) -> None:
        async def answer(request: web.Request) -> web.StreamResponse:
            return multipart_file(data, content_type, "thumbnail")

        self.files[f"{FEDERATION_MEDIA}/thumbnail/{media_id}"] = answer

    def serve_redirected_file(self, media_id: str, data: bytes, content_type: str) -> None:
        """The federation endpoint answers with a Location part; the file is elsewhere."""
        elsewhere = f"/files/{media_id}"

        async def redirect(request: web.Request) -> web.StreamResponse:
            writer = aiohttp.MultipartWriter("mixed")
            writer.append_json({})
            writer.append(b"", {"Location": f"https://localhost:{self.port}{elsewhere}"})
            return web.Response(body=writer)

        async def file(request: web.Request) -> web.StreamResponse:
            return web.Response(body=data, headers={"Content-Type": content_type})

        self.files[f"{FEDERATION_MEDIA}/download/{media_id}"] = redirect
        self.files[elsewhere] = file

    def serve_legacy_file(
        self, media_id: str, data: bytes, content_type: str, filename: str
    ) -> None:
        async def answer(request: web.Request) -> web.StreamResponse:
            return web.Response(
                body=data,
                headers={
                    "Content-Type": content_type,
                    "Content-Disposition": f'inline; filename="{filename}"',
                },
            )

        self.files[f"{LEGACY}/download/{self.server_name}/{media_id}"] = answer

    def serve_legacy_thumbnail(self, media_id: str, data: bytes, content_type: str) -> None:
        async def answer(request: web.Request) -> web.StreamResponse:
            return web.Response(body=data, headers={"Content-Type": content_type})

        self.files[f"{LEGACY}/thumbnail/{self.server_name}/{media_id}"] = answer

    def requests_for(self, path_part: str) -> list[ReceivedRequest]:
        return [r for r in self.received if path_part in r.path]


def multipart_file(data: bytes, content_type: str, filename: str) -> web.Response:
    writer = aiohttp.MultipartWriter("mixed")
    writer.append_json({})
    writer.append(
        data,
        {"Content-Type": content_type, "Content-Disposition": f'inline; filename="{filename}"'},
    )
    return web.Response(body=writer)


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    picture = Image.new("RGB", (width, height), (30, 120, 200))
    for i in range(min(width, height)):
        picture.putpixel((i, i), (255, 255, 255))
    picture.save(out, "PNG")
    return out.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def upload(
    server: FederatingServer, session: Session, data: bytes, content_type: str, filename: str
) -> str:
    """The media ID of a successful upload to `server`."""
    headers = {**session.headers, "Content-Type": content_type}
    reply = server.request("POST", f"{LEGACY}/upload?filename={quote(filename)}", data, headers)
    assert reply.status == 200, reply.body
    uri = reply.json()["content_uri"]
    assert uri.startswith(f"mxc://{server.server_name}/")
    return str(uri.rpartition("/")[2])


def download(
    server: FederatingServer,
    session: Session | None,
    origin: str,
    media_id: str,
    *,
    suffix: str = "",
    query: str = "",
) -> Reply:
    """From `server`: the v1 authenticated endpoint with a session, else the legacy one."""
    prefix = AUTHED if session is not None else LEGACY
    path = f"{prefix}/download/{origin}/{media_id}{suffix}" + (f"?{query}" if query else "")
    return server.request("GET", path, headers=session.headers if session else None)


def thumbnail(
    server: FederatingServer, session: Session | None, origin: str, media_id: str, query: str
) -> Reply:
    prefix = AUTHED if session is not None else LEGACY
    path = f"{prefix}/thumbnail/{origin}/{media_id}?{query}"
    return server.request("GET", path, headers=session.headers if session else None)


def admin_of(server: FederatingServer, localpart: str) -> Session:
    done = register_user_command(Path(server.config_path), localpart, DEFAULT_PASSWORD, admin=True)
    assert done.returncode == 0, done.stderr
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": localpart},
        "password": DEFAULT_PASSWORD,
    }
    reply = server.request("POST", CLIENT + "/login", body)
    assert reply.status == 200, reply.body
    result = reply.json()
    return Session(result["user_id"], result["access_token"], result["device_id"])
