"""Identity servers (spec: identity-service-api v2), as a homeserver talks to them for its
users: binding a third-party identifier to a Matrix ID and unbinding it
(client-server-api `POST /account/3pid/bind`, `/unbind`, and on removing the identifier or
deactivating the account), and third-party invites (client-server-api "Third-party
invites": look the address up, invite the user found, else store the invite with the
identity server and send `m.room.third_party_invite`).

Identity servers are reached over HTTPS at the `id_server` a client names (a host, with an
optional port), as Synapse does; the certificate is checked against the system's CAs.
Which identity server each identifier was bound to through us is recorded, so an unbind
without `id_server` knows where to go.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from ranvier.errors import MatrixError
from ranvier.protocol.request_auth import authorization_header
from ranvier.protocol.signing_keys import ServerSigningKey
from ranvier.storage.threepid_bindings import Binding, ThreepidBindingStore

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]
IDENTITY = "/_matrix/identity/v2"
REQUEST_TIMEOUT_SECONDS = 30.0
# a host name, IPv4 or bracketed IPv6 address, and an optional port: nothing that could
# turn the URL made from it into another path or scheme
_ID_SERVER = re.compile(r"^(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
NO_SUPPORT = "no-support"
SUCCESS = "success"


def check_id_server(id_server: str) -> None:
    if not _ID_SERVER.fullmatch(id_server):
        raise MatrixError(
            400, "M_INVALID_PARAM", "'id_server' must be a host name, with an optional port"
        )


def lookup_hash(medium: str, address: str, pepper: str) -> str:
    """spec: identity-service-api "Hashing" - sha256 of "address medium pepper", unpadded
    URL-safe base64."""
    digest = hashlib.sha256(f"{address} {medium} {pepper}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class IdentityServerError(Exception):
    """The identity server answered with an error (`status`, its body) or not at all
    (`status` None)."""

    def __init__(self, status: int | None, body: Any, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.body = body

    def as_matrix_error(self) -> MatrixError:
        """The identity server's own Matrix error passed on to the client (spec: "that
        error should be passed through"); 502 when it did not answer with one."""
        body = self.body if isinstance(self.body, dict) else {}
        errcode, error = body.get("errcode"), body.get("error")
        if self.status is not None and 400 <= self.status < 500 and isinstance(errcode, str):
            return MatrixError(
                self.status, errcode, error if isinstance(error, str) else "Identity server error"
            )
        return MatrixError(502, "M_UNKNOWN", f"The identity server could not be used: {self}")


@dataclass(frozen=True)
class StoredInvite:
    token: str
    display_name: str
    public_keys: list[JsonDict]


class IdentityServerClient:
    """The HTTP requests to identity servers."""

    def __init__(self, server_name: str, signing_key: ServerSigningKey) -> None:
        self._server_name = server_name
        self._signing_key = signing_key
        self._session: aiohttp.ClientSession | None = None

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        id_server: str,
        path: str,
        body: JsonDict | None = None,
        *,
        access_token: str | None = None,
        signed: bool = False,
    ) -> Any:
        session = self._client_session()
        headers = {"Content-Type": "application/json"}
        if access_token is not None:
            headers["Authorization"] = f"Bearer {access_token}"
        if signed:
            # spec: identity-service-api /3pid/unbind - a homeserver signs the request as it
            # signs federation requests, with the identity server as destination
            headers["Authorization"] = authorization_header(
                self._signing_key,
                method=method,
                uri=IDENTITY + path,
                origin=self._server_name,
                destination=id_server,
                content=body,
            )
        url = f"https://{id_server}{IDENTITY}{path}"
        try:
            async with session.request(
                method,
                url,
                data=None if body is None else orjson.dumps(body),
                headers=headers,
            ) as response:
                raw = await response.read()
                try:
                    parsed = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    parsed = None
                if response.status != 200:
                    raise IdentityServerError(
                        response.status, parsed, f"{method} {path} answered {response.status}"
                    )
                return parsed
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.info("Identity server %s not reached: %s", id_server, exc)
            raise IdentityServerError(None, None, f"{id_server} could not be reached") from exc

    async def key_is_valid(self, key_validity_url: str, public_key: str) -> bool:
        """spec: identity-service-api /pubkey/isvalid, at the URL the invite event gives
        (never one made up here); IdentityServerError when it gives no answer."""
        if urlsplit(key_validity_url).scheme not in ("http", "https"):
            raise IdentityServerError(None, None, f"{key_validity_url!r} is not an http(s) URL")
        session = self._client_session()
        try:
            async with session.get(key_validity_url, params={"public_key": public_key}) as response:
                raw = await response.read()
                if response.status != 200:
                    raise IdentityServerError(
                        response.status, None, f"{key_validity_url} answered {response.status}"
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.info("Key validity URL %s not reached: %s", key_validity_url, exc)
            raise IdentityServerError(
                None, None, f"{key_validity_url} could not be reached"
            ) from exc
        try:
            reply = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise IdentityServerError(200, None, f"{key_validity_url} answered no JSON") from exc
        return isinstance(reply, dict) and reply.get("valid") is True

    async def bind(
        self, id_server: str, id_access_token: str, sid: str, client_secret: str, mxid: str
    ) -> JsonDict:
        reply = await self._request(
            "POST",
            id_server,
            "/3pid/bind",
            {"sid": sid, "client_secret": client_secret, "mxid": mxid},
            access_token=id_access_token,
        )
        if not isinstance(reply, dict):
            raise IdentityServerError(200, reply, "/3pid/bind answered no JSON object")
        return reply

    async def unbind(self, id_server: str, mxid: str, medium: str, address: str) -> None:
        await self._request(
            "POST",
            id_server,
            "/3pid/unbind",
            {"mxid": mxid, "threepid": {"medium": medium, "address": address}},
            signed=True,
        )

    async def lookup(
        self, id_server: str, id_access_token: str, medium: str, address: str
    ) -> str | None:
        """The Matrix ID bound to the address, by the sha256 lookup (spec: identity-service-
        api "Association lookup"); never the plain address."""
        details = await self._request(
            "GET", id_server, "/hash_details", access_token=id_access_token
        )
        algorithms = details.get("algorithms") if isinstance(details, dict) else None
        pepper = details.get("lookup_pepper") if isinstance(details, dict) else None
        if (
            not isinstance(algorithms, list)
            or "sha256" not in algorithms
            or not isinstance(pepper, str)
        ):
            raise IdentityServerError(200, details, "/hash_details offers no sha256 lookup")
        hashed = lookup_hash(medium, address, pepper)
        reply = await self._request(
            "POST",
            id_server,
            "/lookup",
            {"addresses": [hashed], "algorithm": "sha256", "pepper": pepper},
            access_token=id_access_token,
        )
        mappings = reply.get("mappings") if isinstance(reply, dict) else None
        found = mappings.get(hashed) if isinstance(mappings, dict) else None
        return found if isinstance(found, str) else None

    async def store_invite(
        self, id_server: str, id_access_token: str, request: JsonDict
    ) -> StoredInvite:
        reply = await self._request(
            "POST", id_server, "/store-invite", request, access_token=id_access_token
        )
        if not isinstance(reply, dict):
            raise IdentityServerError(200, reply, "/store-invite answered no JSON object")
        token, keys = reply.get("token"), reply.get("public_keys")
        display_name = reply.get("display_name")
        if (
            not isinstance(token, str)
            or not token
            or not isinstance(keys, list)
            or not keys
            or not all(isinstance(k, dict) and isinstance(k.get("public_key"), str) for k in keys)
        ):
            raise IdentityServerError(200, reply, "/store-invite answered no token or keys")
        return StoredInvite(
            token=token,
            display_name=display_name if isinstance(display_name, str) else "",
            public_keys=keys,
        )


class IdentityServerBindings:
    """Binding and unbinding a user's third-party identifiers at identity servers."""

    def __init__(self, client: IdentityServerClient, store: ThreepidBindingStore) -> None:
        self._client = client
        self._store = store

    async def bind(
        self, user_id: str, id_server: str, id_access_token: str, sid: str, client_secret: str
    ) -> None:
        """POST /account/3pid/bind"""
        check_id_server(id_server)
        try:
            reply = await self._client.bind(id_server, id_access_token, sid, client_secret, user_id)
        except IdentityServerError as exc:
            raise exc.as_matrix_error() from exc
        medium, address = reply.get("medium"), reply.get("address")
        if not isinstance(medium, str) or not isinstance(address, str):
            raise MatrixError(
                502, "M_UNKNOWN", "The identity server did not say which identifier it bound"
            )
        await self._store.add(user_id, Binding(medium, address, id_server))

    async def unbind(
        self, user_id: str, medium: str, address: str, id_server: str | None = None
    ) -> str:
        """POST /account/3pid/unbind, and the unbinding that removing an identifier does:
        "success" when every identity server it was bound to (or `id_server`) unbound it,
        "no-support" when none is known or one refused (spec: 400, 404 and 501 mean the
        identity server does not support unbinding)."""
        if id_server is not None:
            check_id_server(id_server)
            servers = [id_server]
        else:
            servers = [b.id_server for b in await self._store.for_user(user_id, medium, address)]
        if not servers:
            return NO_SUPPORT
        result = SUCCESS
        for server in servers:
            try:
                await self._client.unbind(server, user_id, medium, address)
            except IdentityServerError as exc:
                if exc.status not in (400, 404, 501):
                    raise exc.as_matrix_error() from exc
                logger.info("%s does not unbind %s: %s", server, user_id, exc)
                result = NO_SUPPORT
            # as Synapse: forgotten even when the identity server would not unbind
            await self._store.remove(user_id, Binding(medium, address, server))
        return result

    async def unbind_all(self, user_id: str) -> str:
        """Account deactivation: every identifier the user bound through this server."""
        bindings = await self._store.for_user(user_id)
        if not bindings:
            return NO_SUPPORT
        result = SUCCESS
        for binding in bindings:
            try:
                outcome = await self.unbind(
                    user_id, binding.medium, binding.address, binding.id_server
                )
            except MatrixError as exc:
                # the account is deactivated all the same; the binding stays recorded
                logger.warning("Unbinding %s from %s failed: %s", user_id, binding.id_server, exc)
                outcome = NO_SUPPORT
            if outcome != SUCCESS:
                result = NO_SUPPORT
        return result
