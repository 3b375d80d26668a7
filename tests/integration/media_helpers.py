"""Helpers for the media tests: images made with Pillow, uploads and downloads as a
client sends them."""

from __future__ import annotations

import http.client
import io
from collections.abc import Iterator
from contextlib import suppress
from urllib.parse import quote, urlsplit

from PIL import Image

from tests.integration.client import Reply, request
from tests.integration.matrix import Session

UPLOAD = "/_matrix/media/v3/upload"
AUTHED = "/_matrix/client/v1/media"
LEGACY = "/_matrix/media/v3"


def image_bytes(fmt: str, width: int, height: int, *, frames: int = 1, mode: str = "RGB") -> bytes:
    """An image with a different colour per frame (so frames are not merged)."""
    images = [
        Image.new(mode, (width, height), ((40 * i) % 256, 100, 200 - (10 * i) % 200))
        if mode == "RGB"
        else Image.new(mode, (width, height))
        for i in range(frames)
    ]
    # a diagonal line, so a crop and a scale give different pictures
    for picture in images:
        for i in range(min(width, height)):
            picture.putpixel((i, i), (255, 255, 255) if mode == "RGB" else 255)
    out = io.BytesIO()
    if frames > 1:
        images[0].save(out, fmt, save_all=True, append_images=images[1:], duration=100, loop=0)
    else:
        images[0].save(out, fmt)
    return out.getvalue()


def open_image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def upload(
    server_url: str,
    session: Session,
    data: bytes,
    content_type: str | None = "application/octet-stream",
    filename: str | None = None,
) -> Reply:
    url = server_url + UPLOAD
    if filename is not None:
        url += "?filename=" + quote(filename)
    headers = dict(session.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return request("POST", url, data, headers)


def uploaded(
    server_url: str,
    session: Session,
    data: bytes,
    content_type: str | None = "application/octet-stream",
    filename: str | None = None,
) -> tuple[str, str]:
    """(server name, media ID) of a successful upload."""
    reply = upload(server_url, session, data, content_type, filename)
    assert reply.status == 200, reply.body
    uri = reply.json()["content_uri"]
    assert uri.startswith("mxc://")
    server_name, media_id = uri[len("mxc://") :].split("/")
    return server_name, media_id


def download(
    server_url: str,
    session: Session | None,
    server_name: str,
    media_id: str,
    *,
    filename: str | None = None,
    query: str = "",
) -> Reply:
    prefix = AUTHED if session is not None else LEGACY
    path = f"{prefix}/download/{server_name}/{media_id}"
    if filename is not None:
        path += "/" + quote(filename)
    if query:
        path += "?" + query
    return request("GET", server_url + path, None, session.headers if session else {})


def thumbnail(
    server_url: str,
    session: Session | None,
    server_name: str,
    media_id: str,
    query: str,
) -> Reply:
    prefix = AUTHED if session is not None else LEGACY
    path = f"{prefix}/thumbnail/{server_name}/{media_id}?{query}"
    return request("GET", server_url + path, None, session.headers if session else {})


def raw_upload(
    server_url: str,
    session: Session,
    body: bytes | Iterator[bytes],
    content_type: str | None = "application/octet-stream",
) -> Reply:
    """An upload with exactly these headers (urllib would add a Content-Type of its own);
    an iterator body goes without Content-Length (Transfer-Encoding: chunked), so the
    server only learns the size by reading."""
    parts = urlsplit(server_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        headers = dict(session.headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        # the server may answer and close before the client has sent everything
        with suppress(BrokenPipeError, ConnectionResetError):
            chunked = not isinstance(body, bytes)
            conn.request("POST", UPLOAD, body=body, headers=headers, encode_chunked=chunked)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()
