"""Account management: spec client-server-api "Account registration and management"
(password_management.yaml, account_deactivation.yaml, administrative_contact.yaml)."""

from __future__ import annotations

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.api.client.credentials import user_interactive_auth
from ranvier.errors import MatrixError
from ranvier.http.auth import access_token
from ranvier.http.json import RequestBody, json_response, read_json_object, validate_body
from ranvier.requester import UserRequester
from ranvier.services.accounts import AccountService
from ranvier.services.identity_server import IdentityServerBindings
from ranvier.services.login import SSO_LOGIN
from ranvier.services.threepids import EMAIL_IDENTITY, ThreepidService
from ranvier.services.uia import PASSWORD, AuthResult, UserInteractiveAuth

ACCOUNT = "/_matrix/client/v3/account"


class _PasswordChangeBody(RequestBody):
    new_password: str
    logout_devices: bool = True


class _DeactivateBody(RequestBody):
    erase: bool = False


def require_same_user(auth: AuthResult, requester: UserRequester) -> None:
    """A password proves who typed it; it must be the account the request acts on."""
    proven = auth.completed.get(PASSWORD)
    if proven is not None and proven != requester.user_id:
        raise MatrixError(403, "M_FORBIDDEN", "The password given is not this account's")
    # single sign-on proves whose identity the provider vouched for: the same rule
    proven = auth.completed.get(SSO_LOGIN)
    if proven is not None and proven != requester.user_id:
        raise MatrixError(
            403, "M_FORBIDDEN", "The single sign-on identity given is not this account's"
        )


class AccountEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        accounts: AccountService,
        uia: UserInteractiveAuth,
        threepids: ThreepidService,
        *,
        identity: IdentityServerBindings,
    ) -> None:
        self._auth = auth
        self._accounts = accounts
        self._uia = uia
        # password reset: the account an email address names
        self._threepids = threepids
        # deactivation unbinds the account's addresses from identity servers
        self._identity = identity

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(ACCOUNT + "/password", self.change_password),
            web.post(ACCOUNT + "/deactivate", self.deactivate),
        ]

    async def change_password(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/password"""
        # without an access token (and with email) this is a password reset; otherwise
        # the signed-in user's change, with require_user's refusals (guests, ...)
        requester = None
        if access_token(request) is not None or self._threepids.email_config is None:
            requester = await self._auth.require_user(request)
        raw = await read_json_object(request)
        self._accounts.require_password_changes_enabled()
        body = validate_body(raw, _PasswordChangeBody)
        # the auth session stores the body it guards: keep the new password out of it (it
        # is taken from the request that completes the session, never from the store)
        guarded = {key: value for key, value in raw.items() if key != "new_password"}
        if requester is None:
            # spec: a password reset, the account proven by an address mailed a link
            reset = await user_interactive_auth(
                self._uia, guarded, [[EMAIL_IDENTITY]], operation=f"POST {ACCOUNT}/password"
            )
            user_id = await self._threepids.password_reset_user(reset.completed)
            await self._accounts.change_password(
                user_id,
                body.new_password,
                logout_devices=body.logout_devices,
                keep_device_id=None,
            )
            await self._uia.operation_completed(reset)
            return json_response({})
        auth = await user_interactive_auth(
            self._uia,
            guarded,
            await self._accounts.reauth_flows_for(requester.user_id),
            operation=f"POST {ACCOUNT}/password {requester.user_id}",
        )
        require_same_user(auth, requester)
        await self._accounts.change_password(
            requester.user_id,
            body.new_password,
            logout_devices=body.logout_devices,
            keep_device_id=requester.device_id,
        )
        await self._uia.operation_completed(auth)
        return json_response({})

    async def deactivate(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/deactivate"""
        requester = await self._auth.require_user(request)
        raw = await read_json_object(request)
        body = validate_body(raw, _DeactivateBody)
        if requester.app_service is not None:
            # as Synapse: a service's users have no password to confirm; the as_token is the
            # proof (spec: application-service-api "Server admin style permissions")
            unbound = await self._identity.unbind_all(requester.user_id)
            await self._accounts.deactivate(requester.user_id, erase=body.erase)
            return json_response({"id_server_unbind_result": unbound})
        auth = await user_interactive_auth(
            self._uia,
            raw,
            await self._accounts.reauth_flows_for(requester.user_id),
            operation=f"POST {ACCOUNT}/deactivate {requester.user_id}",
        )
        require_same_user(auth, requester)
        # as Synapse: every address bound through this server is unbound first; the
        # account goes whatever the identity servers answer
        unbound = await self._identity.unbind_all(requester.user_id)
        await self._accounts.deactivate(requester.user_id, erase=body.erase)
        await self._uia.operation_completed(auth)
        return json_response({"id_server_unbind_result": unbound})
