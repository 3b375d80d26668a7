"""Logging in: checking credentials, minting access and refresh tokens for a device,
short-term login tokens, refresh, and logout."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ranvier.clock import now_ms
from ranvier.config.models import HomeserverConfig
from ranvier.errors import MatrixError
from ranvier.services.devices import DeviceService
from ranvier.services.passwords import PasswordHasher
from ranvier.services.threepids import EMAIL, canonical_email
from ranvier.services.tokens import AccessTokens, hash_token, new_token
from ranvier.services.uia import PasswordCredentials, StageAuth, UIASession
from ranvier.storage.threepids import ThreepidStore
from ranvier.storage.tokens import LoginTokenInfo, TokenStore
from ranvier.storage.users import UserStore

logger = logging.getLogger(__name__)

PASSWORD_LOGIN = "m.login.password"
TOKEN_LOGIN = "m.login.token"
SSO_LOGIN = "m.login.sso"
# spec: application-service-api - a service logs in as its users with its as_token
APPSERVICE_LOGIN = "m.login.application_service"


def invalid_credentials() -> MatrixError:
    # one message for a wrong password and an unknown user: the answer must not tell
    # an attacker which user IDs exist
    return MatrixError(403, "M_FORBIDDEN", "Invalid username or password")


def deactivated() -> MatrixError:
    return MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated")


@dataclass(frozen=True)
class LoginToken:
    """m.login.token's field: a token minted by `create_login_token`."""

    token: str


@dataclass(frozen=True)
class Session:
    """What a successful login or registration gives the client."""

    user_id: str
    device_id: str
    access_token: str
    refresh_token: str | None
    expires_in_ms: int | None

    def response(self, server_name: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "user_id": self.user_id,
            "access_token": self.access_token,
            "device_id": self.device_id,
            # deprecated in the spec, still read by older clients
            "home_server": server_name,
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        if self.expires_in_ms is not None:
            body["expires_in_ms"] = self.expires_in_ms
        return body


class LoginService:
    def __init__(
        self,
        config: HomeserverConfig,
        users: UserStore,
        tokens: TokenStore,
        access_tokens: AccessTokens,
        devices: DeviceService,
        hasher: PasswordHasher,
        threepids: ThreepidStore,
    ) -> None:
        self._config = config
        self._users = users
        # who an m.id.thirdparty identifier (an email address) names
        self._threepids = threepids
        self._tokens = tokens
        self._access_tokens = access_tokens
        self._devices = devices
        self._hasher = hasher
        # called with (user ID, device ID, provider ID, provider session ID) when a login
        # token from single sign-on is exchanged: back-channel logout finds devices by them
        self.on_provider_session: list[Callable[[str, str, str, str], Awaitable[None]]] = []

    @property
    def password_login_enabled(self) -> bool:
        return self._config.password_config.enabled is True and self.password_auth_enabled

    @property
    def password_auth_enabled(self) -> bool:
        """Passwords can confirm identity (UIA), which "only_for_reauth" still allows."""
        config = self._config.password_config
        return config.enabled is not False and config.localdb_enabled

    def identity_providers(self) -> list[dict[str, str]]:
        """m.login.sso's `identity_providers`: the configured OpenID Connect providers."""
        return [provider.login_flow_entry() for provider in self._config.oidc_providers]

    def login_types(self) -> list[str]:
        types = [TOKEN_LOGIN, APPSERVICE_LOGIN]
        if self.password_login_enabled:
            types.insert(0, PASSWORD_LOGIN)
        return types

    # -- credentials --

    def qualified_user_id(self, user: str) -> str:
        """The user ID a login names: a full user ID as it is, a localpart on this server."""
        if user.startswith("@"):
            return user
        return f"@{user}:{self._config.server_name}"

    async def _canonical_user_id(self, user_id: str) -> str | None:
        user = await self._users.get_user(user_id)
        if user is not None:
            return user.user_id
        # user IDs are registered lower case; a client may send the case the user typed
        lowered = user_id.lower()
        if lowered != user_id and await self._users.get_user(lowered) is not None:
            return lowered
        return None

    async def check_password(self, user_id: str, password: str) -> str:
        """The canonical user ID if `password` is theirs; otherwise 403."""
        canonical = await self._canonical_user_id(user_id)
        if canonical is None:
            raise invalid_credentials()
        user = await self._users.get_user(canonical)
        assert user is not None
        if user.password_hash is None:
            if user.deactivated:
                raise deactivated()
            raise invalid_credentials()
        if not await self._hasher.verify(password, user.password_hash):
            raise invalid_credentials()
        if user.deactivated:
            raise deactivated()
        if self._hasher.needs_rehash(user.password_hash):
            # move imported bcrypt hashes to argon2id while we hold the password
            await self._users.set_password_hash(canonical, await self._hasher.hash(password))
        return canonical

    async def _threepid_owner(self, medium: str, address: str) -> str | None:
        if medium == EMAIL:
            try:
                address = canonical_email(address)
            except MatrixError:
                return None
        return await self._threepids.owner(medium, address)

    async def check_password_auth(self, credentials: PasswordCredentials) -> str:
        """m.login.password (login or UIA) -> the user it proves."""
        if not self.password_auth_enabled:
            raise MatrixError(400, "M_UNKNOWN", "Password authentication is disabled")
        if credentials.medium is not None and credentials.address is not None:
            owner = await self._threepid_owner(credentials.medium, credentials.address)
            if owner is None:
                raise invalid_credentials()
            return await self.check_password(owner, credentials.password)
        user_id = self.qualified_user_id(credentials.user)
        if not user_id.endswith(":" + self._config.server_name):
            raise invalid_credentials()
        return await self.check_password(user_id, credentials.password)

    # -- login --

    async def login(
        self,
        credentials: PasswordCredentials | LoginToken,
        *,
        device_id: str | None,
        display_name: str | None,
        refresh: bool,
    ) -> Session:
        if isinstance(credentials, LoginToken):
            token = await self._check_login_token(credentials.token)
            session = await self.start_session(
                token.user_id, device_id, display_name, refresh=refresh
            )
            if token.auth_provider_id is not None and token.auth_provider_session_id is not None:
                for record in self.on_provider_session:
                    await record(
                        session.user_id,
                        session.device_id,
                        token.auth_provider_id,
                        token.auth_provider_session_id,
                    )
            return session
        elif self.password_login_enabled:
            user_id = await self.check_password_auth(credentials)
        else:
            # what GET /login does not offer is unknown, as for any other type
            raise MatrixError(400, "M_UNKNOWN", f"Unknown login type {PASSWORD_LOGIN!r}")
        return await self.start_session(user_id, device_id, display_name, refresh=refresh)

    async def _check_login_token(self, token: str) -> LoginTokenInfo:
        info = await self._tokens.consume_login_token(hash_token(token), now_ms())
        if info is None:
            raise MatrixError(403, "M_FORBIDDEN", "Invalid or expired login token")
        user = await self._users.get_user(info.user_id)
        if user is None or user.deactivated:
            raise deactivated()
        return info

    async def create_login_token(
        self,
        user_id: str,
        duration_ms: int,
        auth_provider_id: str | None = None,
        auth_provider_session_id: str | None = None,
    ) -> str:
        """A single-use m.login.token for `user_id`, valid for `duration_ms` (SSO, the
        module API, login with an existing session)."""
        token = new_token("ralt")
        await self._tokens.add_login_token(
            token_hash=hash_token(token),
            user_id=user_id,
            expiry_ts=now_ms() + duration_ms,
            auth_provider_id=auth_provider_id,
            auth_provider_session_id=auth_provider_session_id,
        )
        return token

    async def start_session(
        self,
        user_id: str,
        device_id: str | None,
        display_name: str | None,
        *,
        refresh: bool,
    ) -> Session:
        """A device (new unless the client named an existing one) with fresh tokens."""
        device_id = await self._devices.ensure_device(user_id, device_id, display_name)
        now = now_ms()
        ultimate = _after(now, self._config.session_lifetime)
        if refresh:
            refresh_token, refresh_id = await self._new_refresh_token(
                user_id, device_id, now, ultimate
            )
            valid_until = _earliest(
                _after(now, self._config.refreshable_access_token_lifetime), ultimate
            )
        else:
            refresh_token, refresh_id = None, None
            valid_until = _earliest(
                _after(now, self._config.nonrefreshable_access_token_lifetime), ultimate
            )
        issued = await self._access_tokens.issue(
            user_id, device_id, valid_until_ms=valid_until, refresh_token_id=refresh_id
        )
        return Session(
            user_id=user_id,
            device_id=device_id,
            access_token=issued.token,
            refresh_token=refresh_token,
            expires_in_ms=None if valid_until is None else valid_until - now,
        )

    async def _new_refresh_token(
        self, user_id: str, device_id: str, now: int, ultimate: int | None
    ) -> tuple[str, int]:
        token = new_token("rar")
        token_id = await self._tokens.add_refresh_token(
            token_hash=hash_token(token),
            user_id=user_id,
            device_id=device_id,
            expiry_ts=_earliest(_after(now, self._config.refresh_token_lifetime), ultimate),
            ultimate_session_expiry_ts=ultimate,
            now_ms=now,
        )
        return token, token_id

    async def refresh(self, refresh_token: str) -> Session:
        info = await self._tokens.get_refresh_token(hash_token(refresh_token))
        now = now_ms()
        if info is None:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unknown refresh token", soft_logout=True)
        if info.expiry_ts is not None and info.expiry_ts <= now:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Refresh token expired", soft_logout=True)
        ultimate = info.ultimate_session_expiry_ts
        new_refresh, new_refresh_id = await self._new_refresh_token(
            info.user_id, info.device_id, now, ultimate
        )
        self._access_tokens.invalidate(
            await self._tokens.replace_refresh_token(info.id, new_refresh_id)
        )
        valid_until = _earliest(
            _after(now, self._config.refreshable_access_token_lifetime), ultimate
        )
        issued = await self._access_tokens.issue(
            info.user_id,
            info.device_id,
            valid_until_ms=valid_until,
            refresh_token_id=new_refresh_id,
        )
        return Session(
            user_id=info.user_id,
            device_id=info.device_id,
            access_token=issued.token,
            refresh_token=new_refresh,
            expires_in_ms=None if valid_until is None else valid_until - now,
        )

    async def logout(self, user_id: str, device_id: str | None, token_id: int | None) -> None:
        """spec: /logout invalidates the token and the device it belongs to."""
        if device_id is not None:
            await self._devices.delete_devices(user_id, [device_id])
        elif token_id is not None:
            await self._access_tokens.revoke(token_id)

    async def logout_all(self, user_id: str) -> None:
        await self._devices.delete_all_devices(user_id)


class PasswordStage:
    """UIA m.login.password: proves who the client is; the result is the user ID."""

    def __init__(self, login: LoginService) -> None:
        self._login = login

    async def check(self, auth: StageAuth, session: UIASession) -> Any:
        if auth.password is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing 'password'")
        return await self._login.check_password_auth(auth.password)

    async def on_complete(self, session: UIASession) -> None:
        pass

    def params(self) -> dict[str, Any] | None:
        return None


def _after(now: int, lifetime: int | None) -> int | None:
    return None if lifetime is None else now + lifetime


def _earliest(*times: int | None) -> int | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None
