"""Media between Ranvier and a real Synapse, both ways: each server's user downloads (and
thumbnails) what a user of the other uploaded, through the authenticated client endpoints,
so each server's federation media endpoints are read by the other's fetcher."""

from __future__ import annotations

from urllib.parse import quote

from tests.federation.harness import FederatingServer, register
from tests.federation.media_fakes import AUTHED, LEGACY, image_size, png
from tests.federation.synapse_peer import SynapsePeer, register_on_synapse
from tests.integration.client import Reply
from tests.integration.matrix import Session

Server = FederatingServer | SynapsePeer


def upload_to(server: Server, session: Session, data: bytes, name: str) -> str:
    headers = {**session.headers, "Content-Type": "image/png"}
    reply = server.request("POST", f"{LEGACY}/upload?filename={quote(name)}", data, headers)
    assert reply.status == 200, reply.body
    return str(reply.json()["content_uri"]).rpartition("/")[2]


def fetch(server: Server, session: Session, what: str, origin: str, media_id: str) -> Reply:
    return server.request("GET", f"{AUTHED}/{what}/{origin}/{media_id}", None, session.headers)


def test_users_of_ranvier_and_synapse_download_each_others_media(
    ranvier: FederatingServer, synapse: SynapsePeer
) -> None:
    on_ranvier = register(ranvier, "rita")
    on_synapse = register_on_synapse(synapse, "sam")
    pairs: list[tuple[Server, Session, Server, Session]] = [
        (synapse, on_synapse, ranvier, on_ranvier),
        (ranvier, on_ranvier, synapse, on_synapse),
    ]
    for origin, uploader, fetcher, reader in pairs:
        data = png(240, 160)
        media_id = upload_to(origin, uploader, data, "across.png")

        reply = fetch(fetcher, reader, "download", origin.server_name, media_id)
        assert reply.status == 200, (reply.body, origin.server_name)
        assert reply.body == data
        assert reply.headers["Content-Type"] == "image/png"
        assert "across.png" in reply.headers["Content-Disposition"]

        thumb = f"thumbnail/{origin.server_name}/{media_id}?width=32&height=32&method=crop"
        reply = fetcher.request("GET", f"{AUTHED}/{thumb}", None, reader.headers)
        assert reply.status == 200, (reply.body, origin.server_name)
        width, height = image_size(reply.body)
        assert width <= 64 and height <= 64

        reply = fetch(fetcher, reader, "download", origin.server_name, "doesNotExist1234")
        assert reply.status == 404, (reply.body, origin.server_name)
        assert reply.json()["errcode"] == "M_NOT_FOUND"
