"""A scripted identity server (spec: identity-service-api v2) on loopback over HTTPS, for the
homeserver to bind, unbind, look up and store invites at. It checks what the homeserver
sends as a real one would: the bearer token of each request, hashed lookups with its pepper,
and the homeserver's signature on unbind requests (verified with the key the homeserver
publishes at /_matrix/key/v2/server). It runs in a thread, so synchronous tests can read
what it received.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import ssl
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from bench.threaded_https import ThreadedHttpsServer, bound_socket

PREFIX = "/_matrix/identity/v2"
_PARAM = re.compile(r'(\w+)="([^"]*)"')


def sha256_lookup(medium: str, address: str, pepper: str) -> str:
    digest = hashlib.sha256(f"{address} {medium} {pepper}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _base64(data: bytes) -> str:
    return base64.b64encode(data).rstrip(b"=").decode()


def _unbase64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Session:
    client_secret: str
    medium: str
    address: str
    validated: bool = True


@dataclass
class Received:
    method: str
    path: str
    authorization: str | None
    body: Any


@dataclass
class FakeIdentityServer:
    access_token: str = field(default_factory=lambda: secrets.token_hex(8))
    pepper: str = field(default_factory=lambda: secrets.token_hex(4))
    # sid -> session a test made "validated" with the identity server
    sessions: dict[str, Session] = field(default_factory=dict)
    # (medium, address) -> mxid
    bindings: dict[tuple[str, str], str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    stored_invites: list[dict[str, Any]] = field(default_factory=list)
    # the homeserver whose signing key unbind requests are checked against
    homeserver_url: str | None = None
    # status to answer /3pid/unbind with (e.g. 501: unbinding not supported)
    unbind_status: int = 200
    # invite keys /pubkey/isvalid calls revoked; its status (500: it cannot say)
    revoked_keys: set[str] = field(default_factory=set)
    isvalid_status: int = 200

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._socket = bound_socket()
        self.port = self._socket.getsockname()[1]
        self.name = f"127.0.0.1:{self.port}"
        # the key that signs the proofs of stored invites (spec: identity-service-api
        # "Invitation storage"), published in each m.room.third_party_invite
        self.invite_key = SigningKey.generate()
        self.public_key = _base64(bytes(self.invite_key.verify_key))
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._server = ThreadedHttpsServer(self._handle, context, self._socket, "fake-is")

    def write_ca(self, directory: Path) -> Path:
        path = directory / "identity-ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return path

    def start(self) -> FakeIdentityServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def received(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == PREFIX + path]

    # -- the API ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(
                Received(request.method, request.path, request.headers.get("Authorization"), body)
            )
        route = (request.method, request.path.removeprefix(PREFIX))
        if route == ("POST", "/3pid/unbind"):
            return await self._unbind(request, body)
        if route == ("GET", "/pubkey/isvalid"):
            # spec: identity-service-api, unauthenticated
            if self.isvalid_status != 200:
                return _error(self.isvalid_status, "M_UNKNOWN", "Key store unavailable")
            key = request.query.get("public_key", "")
            return web.json_response(
                {"valid": key == self.public_key and key not in self.revoked_keys}
            )
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return _error(401, "M_UNAUTHORIZED", "Unknown access token")
        if route == ("POST", "/3pid/bind"):
            return self._bind(body)
        if route == ("GET", "/hash_details"):
            return web.json_response(
                {"algorithms": ["none", "sha256"], "lookup_pepper": self.pepper}
            )
        if route == ("POST", "/lookup"):
            return self._lookup(body)
        if route == ("POST", "/store-invite"):
            return self._store_invite(body)
        return _error(404, "M_UNRECOGNIZED", "Unrecognized request")

    def _bind(self, body: dict[str, Any]) -> web.Response:
        session = self.sessions.get(body.get("sid", ""))
        if session is None or session.client_secret != body.get("client_secret"):
            return _error(404, "M_NO_VALID_SESSION", "No valid session was found")
        if not session.validated:
            return _error(400, "M_SESSION_NOT_VALIDATED", "This session is not validated")
        with self._lock:
            self.bindings[(session.medium, session.address)] = body["mxid"]
        return web.json_response(
            {
                "address": session.address,
                "medium": session.medium,
                "mxid": body["mxid"],
                "not_before": 0,
                "not_after": 2**40,
                "ts": 0,
                "signatures": {},
            }
        )

    def _lookup(self, body: dict[str, Any]) -> web.Response:
        if body.get("algorithm") != "sha256" or body.get("pepper") != self.pepper:
            return _error(400, "M_INVALID_PEPPER", "Wrong pepper or algorithm")
        with self._lock:
            hashed = {
                sha256_lookup(medium, address, self.pepper): mxid
                for (medium, address), mxid in self.bindings.items()
            }
        mappings = {a: hashed[a] for a in body.get("addresses", []) if a in hashed}
        return web.json_response({"mappings": mappings})

    def _store_invite(self, body: dict[str, Any]) -> web.Response:
        with self._lock:
            self.stored_invites.append(body)
        return web.json_response(
            {
                "token": secrets.token_urlsafe(12),
                "public_keys": [
                    {
                        "public_key": self.public_key,
                        "key_validity_url": f"https://{self.name}{PREFIX}/pubkey/isvalid",
                    }
                ],
                "display_name": "i...@e...",
            }
        )

    def signed_invite(self, mxid: str, token: str, **more: str) -> dict[str, Any]:
        """The proof an identity server hands over at onbind for a stored invite (with
        `sender` too, the one a client joins with)."""
        signed: dict[str, Any] = {"mxid": mxid, "token": token, **more}
        signature = self.invite_key.sign(_canonical(signed)).signature
        signed["signatures"] = {self.name: {"ed25519:0": _base64(signature)}}
        return signed

    async def _unbind(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        if not self._signed_by_homeserver(request, body):
            return _error(403, "M_FORBIDDEN", "The request is not signed by its origin")
        if self.unbind_status != 200:
            return _error(self.unbind_status, "M_UNRECOGNIZED", "Unbinding is not supported")
        threepid = body["threepid"]
        with self._lock:
            self.bindings.pop((threepid["medium"], threepid["address"]), None)
        return web.json_response({})

    def _signed_by_homeserver(self, request: web.Request, body: dict[str, Any]) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("X-Matrix ") or self.homeserver_url is None:
            return False
        params = dict(_PARAM.findall(header))
        if params.get("destination") != self.name:
            return False
        with urllib.request.urlopen(self.homeserver_url + "/_matrix/key/v2/server") as reply:
            keys = json.load(reply)
        if keys.get("server_name") != params.get("origin"):
            return False
        published = keys["verify_keys"].get(params.get("key", ""))
        if published is None:
            return False
        signed = {
            "method": request.method,
            "uri": request.path_qs,
            "origin": params["origin"],
            "destination": params["destination"],
            "content": body,
        }
        try:
            VerifyKey(_unbase64(published["key"])).verify(
                _canonical(signed), _unbase64(params["sig"])
            )
        except BadSignatureError:
            return False
        return True


def _error(status: int, errcode: str, error: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": error}, status=status)
