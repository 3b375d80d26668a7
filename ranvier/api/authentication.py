"""Authentication of client requests: the one place an access token becomes a requester.

It sits at the edge (api/) because it needs both the request (http/) and the sessions
(services/tokens); http/ stays plumbing that knows no service.
"""

from __future__ import annotations

from aiohttp import web

from ranvier.clock import now_ms
from ranvier.config.appservices import AppService
from ranvier.errors import MatrixError
from ranvier.http.auth import access_token
from ranvier.http.ratelimit import client_address
from ranvier.requester import UserRequester
from ranvier.services.appservice.registry import AppServiceRegistry
from ranvier.services.appservice.users import AppServiceUsers
from ranvier.services.tokens import AccessTokens


def missing_token() -> MatrixError:
    return MatrixError(401, "M_MISSING_TOKEN", "Missing access token")


def unknown_token(*, soft_logout: bool = False) -> MatrixError:
    if soft_logout:
        return MatrixError(401, "M_UNKNOWN_TOKEN", "Access token has expired", soft_logout=True)
    return MatrixError(401, "M_UNKNOWN_TOKEN", "Unknown access token")


# spec: application-service-api "Identity assertion"; the unstable name of MSC3202 first
DEVICE_ID_PARAMS = ("device_id", "org.matrix.msc3202.device_id")


class RequestAuthenticator:
    def __init__(
        self,
        access_tokens: AccessTokens,
        appservices: AppServiceRegistry,
        appservice_users: AppServiceUsers,
        *,
        track_appservice_user_ips: bool,
    ) -> None:
        self._access_tokens = access_tokens
        self._appservices = appservices
        self._appservice_users = appservice_users
        self._track_appservice_user_ips = track_appservice_user_ips

    async def require_user(
        self, request: web.Request, *, allow_guest: bool = False, allow_locked: bool = False
    ) -> UserRequester:
        """`allow_locked`: for the few endpoints a locked account may still use (logout)."""
        token = access_token(request)
        if token is None:
            raise missing_token()
        service = self._appservices.by_token(token)
        if service is not None:
            return await self._as_service(request, service)
        info = await self._access_tokens.lookup(token)
        if info is None or info.deactivated:
            raise unknown_token()
        if info.valid_until_ms is not None and info.valid_until_ms <= now_ms():
            # spec: an expired token is a soft logout: the client may refresh or log in
            # again to the same device and keep its keys
            raise unknown_token(soft_logout=True)
        if info.locked and not allow_locked:
            # Synapse's answer for an account an admin locked: the client keeps its session
            # (soft logout) and can resume once the lock is lifted
            raise MatrixError(
                401, "M_USER_LOCKED", "This account has been locked", soft_logout=True
            )
        if info.is_guest and not allow_guest:
            raise MatrixError(
                403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is not allowed for this endpoint"
            )
        self.record_seen(request, info.user_id, info.device_id)
        return UserRequester(
            user_id=info.user_id,
            device_id=info.device_id,
            is_guest=info.is_guest,
            is_admin=info.admin,
            access_token_id=info.id,
        )

    def appservice(self, request: web.Request) -> AppService:
        """The application service whose as_token the request carries, from an address its
        `ip_range_whitelist` allows; 401 otherwise (a user's token included)."""
        token = access_token(request)
        if token is None:
            raise missing_token()
        service = self._appservices.by_token(token)
        if service is None or not service.allows_address(client_address(request)):
            raise unknown_token()
        return service

    def appservice_or_none(self, request: web.Request) -> AppService | None:
        """The service if the request carries a valid as_token, else None (no token, or a
        user's): for endpoints where a service's request means something else."""
        token = access_token(request)
        if token is None or self._appservices.by_token(token) is None:
            return None
        return self.appservice(request)

    async def _as_service(self, request: web.Request, service: AppService) -> UserRequester:
        if not service.allows_address(client_address(request)):
            raise unknown_token()
        device_ids = [
            value for param in DEVICE_ID_PARAMS for value in request.query.getall(param, [])
        ]
        user_id, is_admin = await self._appservice_users.acting_user(
            service, request.query.get("user_id"), device_ids[0] if device_ids else None
        )
        device_id = device_ids[0] if device_ids else None
        if self._track_appservice_user_ips:
            self.record_seen(request, user_id, device_id)
        return UserRequester(
            user_id=user_id,
            device_id=device_id,
            # a service acts for real accounts: never refused as a guest
            is_guest=False,
            is_admin=is_admin,
            access_token_id=None,
            app_service=service,
        )

    def record_seen(self, request: web.Request, user_id: str, device_id: str | None) -> None:
        """Note where a session was seen from: every authenticated request, and the login,
        registration or refresh that gave the session its token."""
        self._access_tokens.record_seen(
            user_id, device_id, client_address(request), request.headers.get("User-Agent", "")
        )

    async def optional_user(self, request: web.Request) -> UserRequester | None:
        """The requester if a token was sent, in the header or the query (it must then be
        valid), else None."""
        if access_token(request) is None:
            return None
        return await self.require_user(request, allow_guest=True)

    async def require_admin(self, request: web.Request) -> UserRequester:
        requester = await self.require_user(request)
        if not requester.is_admin:
            raise MatrixError(403, "M_FORBIDDEN", "You are not a server admin")
        return requester
