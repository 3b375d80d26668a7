"""One OpenID Connect provider, as a client of it (OpenID Connect Core 1.0, the
authorization code flow): its metadata (discovered or configured), the authorization URL
with state, nonce and PKCE, the code exchanged for tokens, the ID token checked against the
provider's keys, and the userinfo endpoint.

authlib builds the authorization request and the PKCE challenge; joserfc checks the ID
token; aiohttp carries the requests."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import orjson
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ranvier.config.oidc import OidcProviderConfig

logger = logging.getLogger(__name__)

# the signature algorithms an ID token may use: asymmetric ones, checked with the keys the
# provider publishes (never "none", never a MAC keyed with something the client knows)
ID_TOKEN_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]
# how long discovered metadata and keys are trusted before being fetched again
METADATA_LIFETIME_S = 24 * 60 * 60
# the `events` member that makes a JWT a logout token
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# clocks differ: how far an ID token's times may be off
CLOCK_LEEWAY_S = 120
_TIMEOUT = aiohttp.ClientTimeout(total=30)


class ProviderError(Exception):
    """The provider answered something unusable; `error` is a short code for the page,
    the message says what went wrong (logged, and shown to the user)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    code_verifier: str | None


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str | None
    jwks_uri: str | None
    code_challenge_methods: tuple[str, ...]


class OidcProvider:
    def __init__(self, config: OidcProviderConfig, callback_url: str) -> None:
        self.config = config
        self._callback_url = callback_url
        self._session: aiohttp.ClientSession | None = None
        self._metadata: Metadata | None = None
        self._metadata_fetched = 0.0
        self._keys: KeySet | None = None

    @property
    def id(self) -> str:
        return self.config.auth_provider_id

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self._session

    # -- metadata --

    async def metadata(self) -> Metadata:
        if self._metadata is not None and (
            not self.config.discover
            or time.monotonic() - self._metadata_fetched < METADATA_LIFETIME_S
        ):
            return self._metadata
        discovered: dict[str, Any] = {}
        if self.config.discover:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            discovered = await self._get_json(url, "discovery")
            if not self.config.skip_verification and discovered.get("issuer") != self.config.issuer:
                raise ProviderError(
                    "invalid_metadata",
                    f"The provider's metadata names the issuer {discovered.get('issuer')!r}, "
                    f"not the configured {self.config.issuer!r}",
                )

        def pick(key: str) -> Any:
            configured = getattr(self.config, key)
            return configured if configured is not None else discovered.get(key)

        authorization, token = pick("authorization_endpoint"), pick("token_endpoint")
        if not isinstance(authorization, str) or not isinstance(token, str):
            raise ProviderError(
                "invalid_metadata", "The provider publishes no authorization or token endpoint"
            )
        methods = discovered.get("code_challenge_methods_supported") or ()
        self._metadata = Metadata(
            issuer=self.config.issuer,
            authorization_endpoint=authorization,
            token_endpoint=token,
            userinfo_endpoint=pick("userinfo_endpoint"),
            jwks_uri=pick("jwks_uri"),
            code_challenge_methods=tuple(str(m) for m in methods),
        )
        self._metadata_fetched = time.monotonic()
        return self._metadata

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        if self._keys is not None and not refresh:
            return self._keys
        metadata = await self.metadata()
        if metadata.jwks_uri is None:
            raise ProviderError("invalid_metadata", "The provider publishes no jwks_uri")
        body = await self._get_json(metadata.jwks_uri, "keys")
        try:
            self._keys = KeySet.import_key_set(body)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise ProviderError("invalid_keys", f"The provider's keys are unusable: {exc}") from exc
        return self._keys

    # -- the authorization request --

    async def authorization_request(self) -> AuthorizationRequest:
        metadata = await self.metadata()
        state, nonce = generate_token(32), generate_token(32)
        parameters: dict[str, str] = {"nonce": nonce}
        code_verifier = None
        if self.config.pkce_method == "always" or (
            self.config.pkce_method == "auto" and "S256" in metadata.code_challenge_methods
        ):
            code_verifier = generate_token(48)
            parameters["code_challenge"] = create_s256_code_challenge(code_verifier)
            parameters["code_challenge_method"] = "S256"
        url = prepare_grant_uri(
            metadata.authorization_endpoint,
            self.config.client_id,
            "code",
            redirect_uri=self._callback_url,
            scope=" ".join(self.config.scopes),
            state=state,
            **self.config.additional_authorization_parameters,
            **parameters,
        )
        return AuthorizationRequest(url, state, nonce, code_verifier)

    # -- the callback --

    async def claims_for_code(
        self, code: str, nonce: str, code_verifier: str | None
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The user's claims (from the ID token, or the userinfo endpoint) and the checked
        ID token's claims (None when no ID token was asked for)."""
        tokens = await self._exchange_code(code, code_verifier)
        id_claims: dict[str, Any] | None = None
        if "openid" in self.config.scopes:
            raw = tokens.get("id_token")
            if not isinstance(raw, str):
                raise ProviderError("invalid_token", "The provider sent no ID token")
            id_claims = await self._check_id_token(raw, nonce, tokens.get("access_token"))
        if self.config.uses_userinfo:
            access_token = tokens.get("access_token")
            if not isinstance(access_token, str):
                raise ProviderError("invalid_token", "The provider sent no access token")
            userinfo = await self._userinfo(access_token)
            if id_claims is not None and userinfo.get("sub") != id_claims.get("sub"):
                raise ProviderError(
                    "invalid_userinfo", "The userinfo endpoint describes another user"
                )
            return userinfo, id_claims
        assert id_claims is not None
        return id_claims, id_claims

    async def _exchange_code(self, code: str, code_verifier: str | None) -> dict[str, Any]:
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._callback_url,
        }
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        auth = None
        method = self.config.client_auth_method
        if method == "client_secret_basic":
            assert self.config.client_secret is not None
            # RFC 6749 2.3.1: both halves are form-encoded before going into Basic
            auth = aiohttp.BasicAuth(
                quote_plus(self.config.client_id), quote_plus(self.config.client_secret)
            )
        else:
            form["client_id"] = self.config.client_id
            if method == "client_secret_post":
                assert self.config.client_secret is not None
                form["client_secret"] = self.config.client_secret
        try:
            async with self._client().post(
                metadata.token_endpoint,
                data=form,
                auth=auth,
                headers={"Accept": "application/json"},
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError(
                "token_request_failed", f"Could not reach the provider: {exc}"
            ) from exc
        body = _json_object(raw)
        if status != 200 or body is None:
            error = body.get("error") if body else None
            raise ProviderError(
                "token_request_failed",
                f"The provider refused the code exchange ({status}"
                + (f", {error}" if error else "")
                + ")",
            )
        return body

    async def _check_id_token(self, raw: str, nonce: str, access_token: Any) -> dict[str, Any]:
        keys = await self._key_set()
        try:
            token = self._decode(raw, keys)
        except JoseError:
            # the provider may have rotated its keys since we fetched them
            token = self._decode(raw, await self._key_set(refresh=True))
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY_S,
            iss={"essential": True, "value": self.config.issuer},
            aud={"essential": True, "value": self.config.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise ProviderError("invalid_token", f"The ID token is not valid: {exc}") from exc
        at_hash = claims.get("at_hash")
        if at_hash is not None and isinstance(access_token, str):
            expected = create_half_hash(access_token, token.header.get("alg", "RS256"))
            if expected is None or expected.decode() != at_hash:
                raise ProviderError("invalid_token", "The ID token's at_hash does not match")
        return claims

    async def check_logout_token(self, raw: str) -> dict[str, Any]:
        """The claims of a back-channel logout token (OpenID Connect Back-Channel Logout
        1.0, 2.6) this provider signed for us; ProviderError otherwise."""
        keys = await self._key_set()
        try:
            try:
                token = self._decode(raw, keys)
            except JoseError:
                token = self._decode(raw, await self._key_set(refresh=True))
        except JoseError as exc:
            raise ProviderError("invalid_token", f"The logout token is not valid: {exc}") from exc
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=CLOCK_LEEWAY_S,
            iss={"essential": True, "value": self.config.issuer},
            aud={"essential": True, "value": self.config.client_id},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise ProviderError("invalid_token", f"The logout token is not valid: {exc}") from exc
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
            raise ProviderError("invalid_token", "The logout token has no logout event")
        if "nonce" in claims:
            # spec 2.4: a logout token must not be mistaken for an ID token, and back
            raise ProviderError("invalid_token", "A logout token must not carry a nonce")
        return claims

    def _decode(self, raw: str, keys: KeySet) -> jwt.Token:
        try:
            return jwt.decode(raw, keys, algorithms=ID_TOKEN_ALGORITHMS)
        except JoseError:
            raise
        except (ValueError, TypeError) as exc:
            raise ProviderError("invalid_token", f"The ID token is malformed: {exc}") from exc

    async def _userinfo(self, access_token: str) -> dict[str, Any]:
        metadata = await self.metadata()
        if metadata.userinfo_endpoint is None:
            raise ProviderError("invalid_metadata", "The provider publishes no userinfo endpoint")
        return await self._get_json(
            metadata.userinfo_endpoint,
            "userinfo",
            headers={"Authorization": f"Bearer {access_token}"},
        )

    async def _get_json(
        self, url: str, what: str, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        try:
            async with self._client().get(
                url, headers={"Accept": "application/json", **(headers or {})}
            ) as response:
                raw = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError(f"{what}_failed", f"Could not reach the provider: {exc}") from exc
        body = _json_object(raw)
        if status != 200 or body is None:
            raise ProviderError(
                f"{what}_failed", f"The provider's {what} request answered {status}"
            )
        return body


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
