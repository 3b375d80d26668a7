"""The content repository over real HTTP, on both engines: uploads (at once and to a
created media ID), downloads and thumbnails on the authenticated and the legacy endpoints,
the headers that keep served content safe, and every limit."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.client import Reply, request
from tests.integration.conftest import module_server
from tests.integration.homeserver import RunningServer
from tests.integration.matrix import REGISTRATION_CONFIG, Session, authed, register
from tests.integration.media_helpers import (
    AUTHED,
    LEGACY,
    UPLOAD,
    download,
    image_bytes,
    open_image,
    raw_upload,
    thumbnail,
    upload,
    uploaded,
)

SERVER_NAME = "test.localhost"
CSP = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; object-src 'self';"
)
MAX_UPLOAD = 3 * 1024 * 1024
MAX_PIXELS = 2 * 1024 * 1024
SIZES = [
    (32, 32, "crop"),
    (96, 96, "crop"),
    (320, 240, "scale"),
    (640, 480, "scale"),
    (800, 600, "scale"),
]


server = module_server(
    **REGISTRATION_CONFIG,
    allow_guest_access=True,
    max_upload_size="3M",
    max_image_pixels="2M",
    max_pending_media_uploads=3,
)


_counter = iter(range(1_000_000))


@pytest.fixture
def alice(server: RunningServer) -> Session:
    return register(server.url, f"alice{next(_counter)}")


@pytest.fixture
def bob(server: RunningServer) -> Session:
    return register(server.url, f"bob{next(_counter)}")


def media_root(server: RunningServer) -> Path:
    raw = yaml.safe_load(server.config_path.read_text())
    path = Path(raw["media_store_path"])
    return path if path.is_absolute() else server.config_path.parent / path


def stored_files(server: RunningServer) -> set[str]:
    return {p.name for p in (media_root(server) / "content").rglob("*") if p.is_file()}


def stored_file(server: RunningServer, data: bytes) -> Path:
    """Where the store keeps these bytes: named by their SHA-256."""
    sha256 = hashlib.sha256(data).hexdigest()
    path = media_root(server) / "content" / sha256[:2] / sha256[2:4] / sha256
    assert path.read_bytes() == data
    return path


# --- upload and download ----------------------------------------------------------------


def test_upload_and_download_round_trip_with_safe_headers(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    data = image_bytes("PNG", 20, 10)
    server_name, media_id = uploaded(server.url, alice, data, "image/png", "cat.png")
    assert server_name == SERVER_NAME
    # spec: media IDs use only A-Za-z0-9, _ and -
    assert media_id.replace("_", "").replace("-", "").isalnum()

    # anyone with an access token may download it
    reply = download(server.url, bob, server_name, media_id)
    assert reply.status == 200
    assert reply.body == data
    assert reply.headers["Content-Type"] == "image/png"
    assert reply.headers["Content-Disposition"] == 'inline; filename="cat.png"'
    assert reply.headers["Content-Security-Policy"] == CSP
    assert reply.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Content-Length"] == str(len(data))
    # kept in media_store_path under the SHA-256 of its bytes, no temporary file left
    stored_file(server, data)
    assert not list((media_root(server) / "tmp").iterdir())


def test_a_file_name_in_the_path_replaces_the_uploaded_one(
    server: RunningServer, alice: Session
) -> None:
    server_name, media_id = uploaded(server.url, alice, b"hello", "text/plain", "a.txt")
    reply = download(server.url, alice, server_name, media_id, filename="other name.txt")
    assert (reply.status, reply.body) == (200, b"hello")
    assert reply.headers["Content-Disposition"] == 'inline; filename="other name.txt"'


def test_a_file_name_outside_ascii_is_sent_percent_encoded(
    server: RunningServer, alice: Session
) -> None:
    server_name, media_id = uploaded(server.url, alice, b"x", "text/plain", "résumé.txt")
    reply = download(server.url, alice, server_name, media_id)
    assert reply.headers["Content-Disposition"] == "inline; filename*=utf-8''r%C3%A9sum%C3%A9.txt"


def test_unsafe_types_are_attachments_and_no_name_means_no_filename(
    server: RunningServer, alice: Session
) -> None:
    page = b"<html><script>alert(1)</script></html>"
    server_name, media_id = uploaded(server.url, alice, page, "text/html")
    reply = download(server.url, alice, server_name, media_id)
    assert reply.status == 200
    # the type is kept (spec: "exactly the same as the original upload")...
    assert reply.headers["Content-Type"] == "text/html"
    # ...but never rendered inline, and sandboxed if a browser opens it anyway
    assert reply.headers["Content-Disposition"] == "attachment"
    assert reply.headers["Content-Security-Policy"] == CSP


def test_an_upload_without_a_content_type_is_served_as_octet_stream(
    server: RunningServer, alice: Session
) -> None:
    reply = raw_upload(server.url, alice, b"\x00\x01", content_type=None)
    assert reply.status == 200
    server_name, media_id = reply.json()["content_uri"][len("mxc://") :].split("/")
    reply = download(server.url, alice, server_name, media_id)
    assert reply.headers["Content-Type"] == "application/octet-stream"
    assert reply.headers["Content-Disposition"] == "attachment"


def test_the_same_bytes_twice_are_two_media_sharing_one_file(
    server: RunningServer, alice: Session
) -> None:
    data = b"identical content " + str(next(_counter)).encode()
    before = stored_files(server)
    first = uploaded(server.url, alice, data)
    second = uploaded(server.url, alice, data)
    assert first != second
    assert len(stored_files(server) - before) == 1
    for server_name, media_id in (first, second):
        assert download(server.url, alice, server_name, media_id).body == data


def test_uploads_larger_than_the_request_body_limit_are_accepted(
    server: RunningServer, alice: Session
) -> None:
    # max_request_body_size is 1M; uploads have their own limit (3M here)
    data = bytes(range(256)) * (2 * 1024 * 1024 // 256)
    server_name, media_id = uploaded(server.url, alice, data)
    assert download(server.url, alice, server_name, media_id).body == data


def test_an_upload_over_max_upload_size_is_refused(server: RunningServer, alice: Session) -> None:
    before = stored_files(server)
    reply = upload(server.url, alice, b"\x00" * (MAX_UPLOAD + 1))
    assert (reply.status, reply.errcode) == (413, "M_TOO_LARGE")
    # exactly the limit is fine
    assert upload(server.url, alice, b"\x01" * MAX_UPLOAD).status == 200
    assert len(stored_files(server) - before) == 1


def test_a_chunked_upload_is_refused_once_it_passes_max_upload_size(
    server: RunningServer, alice: Session
) -> None:
    before = stored_files(server)
    chunk = b"\x02" * (256 * 1024)
    reply = raw_upload(server.url, alice, iter([chunk] * (MAX_UPLOAD // len(chunk) + 2)))
    assert (reply.status, reply.errcode) == (413, "M_TOO_LARGE")
    assert stored_files(server) == before
    # and one within the limit goes through the same way
    reply = raw_upload(server.url, alice, iter([chunk] * 3))
    assert reply.status == 200
    server_name, media_id = reply.json()["content_uri"][len("mxc://") :].split("/")
    assert download(server.url, alice, server_name, media_id).body == chunk * 3


def test_uploading_needs_an_access_token_and_no_guest(server: RunningServer) -> None:
    reply = request("POST", server.url + UPLOAD, b"x", {"Content-Type": "text/plain"})
    assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN")
    guest = request("POST", server.url + "/_matrix/client/v3/register?kind=guest", {})
    token = guest.json()["access_token"]
    reply = request("POST", server.url + UPLOAD, b"x", {"Authorization": f"Bearer {token}"})
    assert (reply.status, reply.errcode) == (403, "M_GUEST_ACCESS_FORBIDDEN")


def test_the_authenticated_endpoints_need_an_access_token(
    server: RunningServer, alice: Session
) -> None:
    server_name, media_id = uploaded(server.url, alice, b"secret", "text/plain")
    for path in (
        f"{AUTHED}/download/{server_name}/{media_id}",
        f"{AUTHED}/thumbnail/{server_name}/{media_id}?width=32&height=32",
        f"{AUTHED}/config",
    ):
        reply = request("GET", server.url + path)
        assert (reply.status, reply.errcode) == (401, "M_MISSING_TOKEN"), path


def test_media_uploaded_after_the_freeze_is_not_served_unauthenticated(
    server: RunningServer, alice: Session
) -> None:
    # enable_authenticated_media is on by default
    data = image_bytes("PNG", 200, 200)
    server_name, media_id = uploaded(server.url, alice, data, "image/png")
    reply = download(server.url, None, server_name, media_id)
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = thumbnail(server.url, None, server_name, media_id, "width=32&height=32&method=crop")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    assert download(server.url, alice, server_name, media_id).body == data


def test_unknown_and_malformed_media_are_not_found(server: RunningServer, alice: Session) -> None:
    for server_name, media_id in ((SERVER_NAME, "doesNotExist"), (SERVER_NAME, "bad.id")):
        reply = download(server.url, alice, server_name, media_id)
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), media_id
        reply = thumbnail(server.url, alice, server_name, media_id, "width=32&height=32")
        assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND"), media_id


def test_media_of_a_server_that_cannot_be_reached_is_a_bad_gateway(
    server: RunningServer, alice: Session
) -> None:
    # as Synapse: the origin is asked, and failing to reach it is 502, not 404
    reply = download(server.url, alice, "elsewhere.invalid", "abcdef")
    assert (reply.status, reply.errcode) == (502, "M_UNKNOWN")
    reply = thumbnail(server.url, alice, "elsewhere.invalid", "abcdef", "width=32&height=32")
    assert (reply.status, reply.errcode) == (502, "M_UNKNOWN")
    # allow_remote=false on the legacy paths: not fetched, so not found
    reply = download(server.url, None, "elsewhere.invalid", "abcdef", query="allow_remote=false")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")


def test_malformed_boolean_parameters_are_refused(server: RunningServer, alice: Session) -> None:
    server_name, media_id = uploaded(server.url, alice, b"x", "text/plain")
    reply = download(server.url, alice, server_name, media_id, query="allow_redirect=yes")
    assert (reply.status, reply.errcode) == (400, "M_INVALID_PARAM")
    # a redirect is only ever allowed: the content itself comes back
    reply = download(server.url, alice, server_name, media_id, query="allow_redirect=true")
    assert (reply.status, reply.body) == (200, b"x")


@pytest.mark.parametrize("path", [AUTHED + "/config", LEGACY + "/config"])
def test_config_gives_the_upload_limit(server: RunningServer, alice: Session, path: str) -> None:
    reply = authed(alice, "GET", server.url + path)
    assert (reply.status, reply.json()) == (200, {"m.upload.size": MAX_UPLOAD})


# --- create, then upload ----------------------------------------------------------------


def create(server: RunningServer, session: Session) -> Reply:
    return authed(session, "POST", server.url + "/_matrix/media/v1/create", {})


def put_content(
    server: RunningServer, session: Session, server_name: str, media_id: str, data: bytes
) -> Reply:
    url = f"{server.url}/_matrix/media/v3/upload/{server_name}/{media_id}?filename=late.txt"
    return request("PUT", url, data, {**session.headers, "Content-Type": "text/plain"})


def test_create_then_upload(server: RunningServer, alice: Session, bob: Session) -> None:
    before = int(time.time() * 1000)
    reply = create(server, alice)
    assert reply.status == 200
    body = reply.json()
    server_name, media_id = body["content_uri"][len("mxc://") :].split("/")
    assert server_name == SERVER_NAME
    # the default unused_expiration_time: 24 hours
    assert before + 86_400_000 <= body["unused_expires_at"] <= before + 86_400_000 + 60_000

    # not there yet: a download waits for timeout_ms, then gives up
    reply = download(server.url, alice, server_name, media_id, query="timeout_ms=200")
    assert (reply.status, reply.errcode) == (504, "M_NOT_YET_UPLOADED")

    # only its creator may upload to it
    reply = put_content(server, bob, server_name, media_id, b"bob's")
    assert (reply.status, reply.errcode) == (403, "M_FORBIDDEN")

    # a download waiting when the content arrives gets it
    waiting: dict[str, Reply] = {}
    waiter = threading.Thread(
        target=lambda: waiting.setdefault(
            "reply", download(server.url, bob, server_name, media_id, query="timeout_ms=8000")
        )
    )
    waiter.start()
    time.sleep(0.5)
    reply = put_content(server, alice, server_name, media_id, b"late content")
    assert (reply.status, reply.json()) == (200, {})
    waiter.join(10)
    assert (waiting["reply"].status, waiting["reply"].body) == (200, b"late content")
    assert waiting["reply"].headers["Content-Disposition"] == 'inline; filename="late.txt"'

    # spec: a second upload to the same ID is refused
    reply = put_content(server, alice, server_name, media_id, b"again")
    assert (reply.status, reply.errcode) == (409, "M_CANNOT_OVERWRITE_MEDIA")
    assert download(server.url, alice, server_name, media_id).body == b"late content"


def test_uploading_to_an_id_never_created_is_not_found(
    server: RunningServer, alice: Session
) -> None:
    reply = put_content(server, alice, SERVER_NAME, "neverCreated", b"x")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    reply = put_content(server, alice, "elsewhere.example", "neverCreated", b"x")
    assert (reply.status, reply.errcode) == (404, "M_NOT_FOUND")
    # an ID from POST /upload already has content
    server_name, media_id = uploaded(server.url, alice, b"done")
    reply = put_content(server, alice, server_name, media_id, b"x")
    assert (reply.status, reply.errcode) == (409, "M_CANNOT_OVERWRITE_MEDIA")


def test_uploading_too_much_to_a_created_id_is_refused_and_the_id_stays_open(
    server: RunningServer, alice: Session
) -> None:
    server_name, media_id = create(server, alice).json()["content_uri"][6:].split("/")
    reply = put_content(server, alice, server_name, media_id, b"\x00" * (MAX_UPLOAD + 1))
    assert (reply.status, reply.errcode) == (413, "M_TOO_LARGE")
    assert put_content(server, alice, server_name, media_id, b"fits").status == 200


def test_pending_uploads_are_limited_per_user(
    server: RunningServer, alice: Session, bob: Session
) -> None:
    # max_pending_media_uploads: 3 in this module
    created = [create(server, alice) for _ in range(3)]
    assert all(reply.status == 200 for reply in created)
    reply = create(server, alice)
    assert (reply.status, reply.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert isinstance(reply.json()["retry_after_ms"], int)
    # other users have their own allowance
    assert create(server, bob).status == 200
    # uploading to one frees a place
    server_name, media_id = created[0].json()["content_uri"][6:].split("/")
    assert put_content(server, alice, server_name, media_id, b"x").status == 200
    assert create(server, alice).status == 200


# --- thumbnails -------------------------------------------------------------------------


def expected_size(width: int, height: int, box: tuple[int, int, str]) -> tuple[int, int]:
    """What the spec asks of a thumbnail of a width x height image for a box: crop gives
    the box (when the image covers it), scale fits in the box keeping the aspect ratio,
    and neither ever upscales."""
    box_w, box_h, method = box
    if method == "crop":
        return (min(box_w, width), min(box_h, height))
    factor = min(box_w / width, box_h / height, 1.0)
    return (round(width * factor), round(height * factor))


STATIC_FORMATS = [("PNG", "image/png", "image/png"), ("JPEG", "image/jpeg", "image/jpeg")]
ANIMATED_FORMATS = [("GIF", "image/gif"), ("WEBP", "image/webp")]


@pytest.mark.parametrize(("fmt", "content_type", "thumbnail_type"), STATIC_FORMATS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}-{s[2]}")
def test_thumbnails_of_still_images_at_each_size_and_method(
    server: RunningServer,
    alice: Session,
    fmt: str,
    content_type: str,
    thumbnail_type: str,
    size: tuple[int, int, str],
) -> None:
    server_name, media_id = uploaded(server.url, alice, image_bytes(fmt, 1000, 800), content_type)
    width, height, method = size
    query = f"width={width}&height={height}&method={method}"
    reply = thumbnail(server.url, alice, server_name, media_id, query)
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"] == thumbnail_type
    extension = "jpg" if thumbnail_type == "image/jpeg" else "png"
    assert reply.headers["Content-Disposition"] == f'inline; filename="thumbnail.{extension}"'
    assert reply.headers["Content-Security-Policy"] == CSP
    assert reply.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    image = open_image(reply.body)
    assert image.format == fmt
    assert image.size == expected_size(1000, 800, size)
    # the same request again is the same thumbnail, made once and kept: its file is
    # not written again
    kept = stored_file(server, reply.body)
    made_at = kept.stat().st_ino, kept.stat().st_mtime_ns
    again = thumbnail(server.url, alice, server_name, media_id, query)
    assert again.body == reply.body
    assert (kept.stat().st_ino, kept.stat().st_mtime_ns) == made_at


@pytest.mark.parametrize(("fmt", "content_type"), ANIMATED_FORMATS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}-{s[2]}")
def test_thumbnails_of_animated_images_at_each_size_and_method(
    server: RunningServer,
    alice: Session,
    fmt: str,
    content_type: str,
    size: tuple[int, int, str],
) -> None:
    data = image_bytes(fmt, 500, 400, frames=4)
    server_name, media_id = uploaded(server.url, alice, data, content_type)
    width, height, method = size
    query = f"width={width}&height={height}&method={method}"

    # spec: without animated=true, never an animated thumbnail
    for extra in ("", "&animated=false"):
        reply = thumbnail(server.url, alice, server_name, media_id, query + extra)
        assert reply.status == 200, reply.body
        assert reply.headers["Content-Type"] == "image/png"
        image = open_image(reply.body)
        assert not getattr(image, "is_animated", False)
        assert image.size == expected_size(500, 400, size)

    reply = thumbnail(server.url, alice, server_name, media_id, query + "&animated=true")
    assert reply.status == 200, reply.body
    image = open_image(reply.body)
    assert image.size == expected_size(500, 400, size)
    assert image.is_animated and image.n_frames == 4
    if image.size == (500, 400):
        # the image is no bigger than asked: the original itself (spec)
        assert (reply.headers["Content-Type"], reply.body) == (content_type, data)
    else:
        # spec: servers SHOULD prefer WebP for animated thumbnails
        assert reply.headers["Content-Type"] == "image/webp"
        assert reply.headers["Content-Disposition"] == 'inline; filename="thumbnail.webp"'


def test_animated_true_for_a_still_image_gives_a_still_thumbnail(
    server: RunningServer, alice: Session
) -> None:
    server_name, media_id = uploaded(server.url, alice, image_bytes("JPEG", 400, 400))
    reply = thumbnail(
        server.url, alice, server_name, media_id, "width=96&height=96&method=crop&animated=true"
    )
    assert reply.headers["Content-Type"] == "image/jpeg"
    assert open_image(reply.body).size == (96, 96)


def test_a_thumbnail_is_never_smaller_than_asked(server: RunningServer, alice: Session) -> None:
    server_name, media_id = uploaded(server.url, alice, image_bytes("PNG", 1000, 800))
    # between configured sizes: the next bigger one answers
    reply = thumbnail(server.url, alice, server_name, media_id, "width=50&height=50&method=crop")
    assert open_image(reply.body).size == (96, 96)
    reply = thumbnail(server.url, alice, server_name, media_id, "width=400&height=300")
    width, height = open_image(reply.body).size
    assert width >= 400 and height >= 300
    # bigger than every configured size: the biggest there is
    reply = thumbnail(server.url, alice, server_name, media_id, "width=900&height=900")
    assert open_image(reply.body).size == (750, 600)


def test_an_image_smaller_than_asked_is_answered_with_the_original(
    server: RunningServer, alice: Session
) -> None:
    data = image_bytes("PNG", 20, 10)
    server_name, media_id = uploaded(server.url, alice, data, "image/png")
    reply = thumbnail(server.url, alice, server_name, media_id, "width=32&height=32&method=crop")
    assert (reply.status, reply.body) == (200, data)
    assert reply.headers["Content-Type"] == "image/png"


def test_an_image_with_a_misleading_type_is_thumbnailed_as_what_it_is(
    server: RunningServer, alice: Session
) -> None:
    server_name, media_id = uploaded(
        server.url, alice, image_bytes("PNG", 300, 300), "application/octet-stream"
    )
    reply = thumbnail(server.url, alice, server_name, media_id, "width=32&height=32&method=crop")
    assert reply.headers["Content-Type"] == "image/png"
    assert open_image(reply.body).size == (32, 32)


def test_content_that_is_not_an_image_has_no_thumbnail(
    server: RunningServer, alice: Session
) -> None:
    for data, content_type in (
        (b"just text", "text/plain"),
        (b"\x89PNG\r\n\x1a\n broken", "image/png"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
    ):
        server_name, media_id = uploaded(server.url, alice, data, content_type)
        reply = thumbnail(server.url, alice, server_name, media_id, "width=32&height=32")
        assert (reply.status, reply.errcode) == (400, "M_UNKNOWN"), content_type


def test_an_image_with_too_many_pixels_is_not_thumbnailed(
    server: RunningServer, alice: Session
) -> None:
    # max_image_pixels is 2M here: 1500 x 1500 is 2.25M (a small file all the same)
    data = image_bytes("PNG", 1500, 1500)
    assert len(data) < MAX_UPLOAD
    server_name, media_id = uploaded(server.url, alice, data, "image/png")
    reply = thumbnail(server.url, alice, server_name, media_id, "width=32&height=32")
    assert (reply.status, reply.errcode) == (413, "M_TOO_LARGE")
    # the file itself is still there to download
    assert download(server.url, alice, server_name, media_id).body == data


@pytest.mark.parametrize(
    ("query", "errcode"),
    [
        ("height=32", "M_MISSING_PARAM"),
        ("width=32", "M_MISSING_PARAM"),
        ("width=abc&height=32", "M_INVALID_PARAM"),
        ("width=0&height=32", "M_INVALID_PARAM"),
        ("width=32&height=-5", "M_INVALID_PARAM"),
        ("width=32&height=32&method=stretch", "M_INVALID_PARAM"),
        ("width=32&height=32&animated=yes", "M_INVALID_PARAM"),
        ("width=32&height=32&timeout_ms=soon", "M_INVALID_PARAM"),
    ],
)
def test_bad_thumbnail_parameters_are_refused(
    server: RunningServer, alice: Session, query: str, errcode: str
) -> None:
    server_name, media_id = uploaded(server.url, alice, image_bytes("PNG", 100, 100))
    reply = thumbnail(server.url, alice, server_name, media_id, query)
    assert (reply.status, reply.errcode) == (400, errcode)


def test_a_range_of_the_content_can_be_asked_for(server: RunningServer, alice: Session) -> None:
    data = bytes(range(200))
    server_name, media_id = uploaded(server.url, alice, data)
    path = f"{AUTHED}/download/{server_name}/{media_id}"
    reply = request("GET", server.url + path, None, {**alice.headers, "Range": "bytes=10-19"})
    assert (reply.status, reply.body) == (206, data[10:20])
    assert reply.headers["Content-Range"] == "bytes 10-19/200"


def test_the_r0_paths_upload_and_serve_too(server: RunningServer, alice: Session) -> None:
    reply = request(
        "POST",
        server.url + "/_matrix/media/r0/upload",
        b"old client",
        {**alice.headers, "Content-Type": "text/plain"},
    )
    assert reply.status == 200
    server_name, media_id = reply.json()["content_uri"][len("mxc://") :].split("/")
    assert download(server.url, alice, server_name, media_id).body == b"old client"
    reply = authed(alice, "GET", server.url + "/_matrix/media/r0/config")
    assert reply.json() == {"m.upload.size": MAX_UPLOAD}
