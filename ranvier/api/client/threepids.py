"""Third-party identifiers: spec client-server-api "Adding Account Administrative Contact
Information" (administrative_contact.yaml), the requestToken endpoints of registration and
password reset (registration.yaml), and the pages the links in validation mails open, at
Synapse's paths so that mails and templates made for Synapse carry over."""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from ranvier.api.authentication import RequestAuthenticator
from ranvier.api.client.credentials import threepid_creds, user_interactive_auth
from ranvier.config.email import EmailConfig
from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, json_response, read_json_object, validate_body
from ranvier.http.ratelimit import Ratelimiter, client_address
from ranvier.services.accounts import AccountService
from ranvier.services.identity_server import IdentityServerBindings
from ranvier.services.push.email_pusher import EMAIL_APP_ID
from ranvier.services.push.pushers import PusherService
from ranvier.services.threepids import (
    EMAIL,
    Purpose,
    ThreepidService,
    ValidationFailed,
    canonical_email,
    phone_not_supported,
)
from ranvier.services.uia import PASSWORD, ThreepidCreds, UserInteractiveAuth

CLIENT = "/_matrix/client/v3"
ACCOUNT = CLIENT + "/account"
PASSWORD_RESET_SUBMIT = "/_synapse/client/password_reset/email/submit_token"
REGISTRATION_SUBMIT = "/_matrix/client/unstable/registration/email/submit_token"
ADD_THREEPID_SUBMIT = "/_matrix/client/unstable/add_threepid/email/submit_token"


class _EmailRequestTokenBody(RequestBody):
    client_secret: str
    email: str
    send_attempt: int
    next_link: str | None = None
    # identity server fields: Ranvier mails the link itself and never asks one
    id_server: str | None = None
    id_access_token: str | None = None


class _AddBody(RequestBody):
    sid: str
    client_secret: str


class _DeleteBody(RequestBody):
    medium: str
    address: str
    id_server: str | None = None


def html_response(body: str, status: int = 200) -> web.Response:
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    # a page that confirms an address must not be framed by another site (clickjacking)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "frame-ancestors 'none';"
    return response


class ThreepidEndpoints:
    def __init__(
        self,
        auth: RequestAuthenticator,
        threepids: ThreepidService,
        accounts: AccountService,
        uia: UserInteractiveAuth,
        ratelimiter: Ratelimiter,
        *,
        identity: IdentityServerBindings,
        pushers: PusherService,
    ) -> None:
        self._auth = auth
        self._threepids = threepids
        self._accounts = accounts
        self._uia = uia
        # rc_3pid_validation, per client IP and per address
        self._ratelimiter = ratelimiter
        # removing an address unbinds it and stops its notification mails
        self._identity = identity
        self._pushers = pushers

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(CLIENT + "/register/email/requestToken", self.register_request_token),
            web.post(CLIENT + "/register/msisdn/requestToken", self.msisdn_request_token),
            web.post(ACCOUNT + "/password/email/requestToken", self.password_request_token),
            web.post(ACCOUNT + "/password/msisdn/requestToken", self.msisdn_request_token),
            web.post(ACCOUNT + "/3pid/email/requestToken", self.add_request_token),
            web.post(ACCOUNT + "/3pid/msisdn/requestToken", self.msisdn_request_token),
            web.get(ACCOUNT + "/3pid", self.get_threepids),
            web.post(ACCOUNT + "/3pid", self.legacy_add),
            web.post(ACCOUNT + "/3pid/add", self.add),
            web.post(ACCOUNT + "/3pid/delete", self.delete),
            web.get(PASSWORD_RESET_SUBMIT, self.password_reset_confirmation),
            web.post(PASSWORD_RESET_SUBMIT, self.password_reset_submit),
            web.get(REGISTRATION_SUBMIT, self.registration_submit),
            web.get(ADD_THREEPID_SUBMIT, self.add_threepid_submit),
        ]

    # -- requestToken --

    async def _request_token(self, request: web.Request, purpose: Purpose) -> web.Response:
        body = validate_body(await read_json_object(request), _EmailRequestTokenBody)
        address = client_address(request)
        self._ratelimiter.check(address, update=False)
        try:
            email_key = canonical_email(body.email)
        except MatrixError:
            email_key = body.email
        self._ratelimiter.check((EMAIL, email_key), update=False)
        session_id = await self._threepids.request_token(
            purpose,
            client_secret=body.client_secret,
            email=body.email,
            send_attempt=body.send_attempt,
            next_link=body.next_link,
        )
        self._ratelimiter.record(address)
        self._ratelimiter.record((EMAIL, email_key))
        return json_response({"sid": session_id})

    async def register_request_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/register/email/requestToken"""
        return await self._request_token(request, Purpose.REGISTRATION)

    async def password_request_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/password/email/requestToken"""
        self._accounts.require_password_changes_enabled()
        return await self._request_token(request, Purpose.PASSWORD_RESET)

    async def add_request_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid/email/requestToken"""
        return await self._request_token(request, Purpose.ADD_THREEPID)

    async def msisdn_request_token(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/{register,account/password,account/3pid}/msisdn/requestToken"""
        await read_json_object(request)
        raise phone_not_supported()

    # -- the account's addresses --

    async def get_threepids(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/account/3pid"""
        requester = await self._auth.require_user(request)
        return json_response({"threepids": await self._threepids.list_threepids(requester.user_id)})

    async def add(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid/add"""
        requester = await self._auth.require_user(request)
        raw = await read_json_object(request)
        self._threepids.require_3pid_changes()
        if set(raw) - {"auth"}:
            # a bad body is refused before any auth is asked for
            validate_body(raw, _AddBody)
        auth = await user_interactive_auth(
            self._uia,
            raw,
            await self._accounts.reauth_flows_for(requester.user_id),
            operation=f"POST {ACCOUNT}/3pid/add {requester.user_id}",
        )
        proven = auth.completed.get(PASSWORD)
        if proven is not None and proven != requester.user_id:
            raise MatrixError(403, "M_FORBIDDEN", "The password given is not this account's")
        # a request carrying only `auth` adds what the session's first request named
        chosen = validate_body(auth.clientdict, _AddBody)
        await self._threepids.add_validated(
            requester.user_id, ThreepidCreds(chosen.sid, chosen.client_secret)
        )
        await self._uia.operation_completed(auth)
        return json_response({})

    async def legacy_add(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid (deprecated: /3pid/add replaces it)"""
        requester = await self._auth.require_user(request)
        raw = await read_json_object(request)
        self._threepids.require_3pid_changes()
        creds = raw.get("three_pid_creds", raw.get("threePidCreds"))
        await self._threepids.add_validated(requester.user_id, threepid_creds(creds))
        return json_response({})

    async def delete(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/3pid/delete"""
        requester = await self._auth.require_user(request)
        body = validate_body(await read_json_object(request), _DeleteBody)
        self._threepids.require_3pid_changes()
        address = body.address
        if body.medium == EMAIL:
            # an address that is not one was never bound: it is looked for as given
            with contextlib.suppress(MatrixError):
                address = canonical_email(address)
        # as Synapse: unbound at the identity server first (an identity server that fails
        # leaves the address in place), then removed with the email pusher mailing it
        unbound = await self._identity.unbind(
            requester.user_id, body.medium, address, body.id_server
        )
        await self._threepids.delete(requester.user_id, body.medium, body.address)
        if body.medium == EMAIL:
            await self._pushers.delete_pusher(requester.user_id, EMAIL_APP_ID, address)
        return json_response({"id_server_unbind_result": unbound})

    # -- the links in the mails --

    def _email(self) -> EmailConfig:
        email = self._threepids.email_config
        if email is None:
            raise MatrixError(404, "M_UNRECOGNIZED", "This server sends no email")
        return email

    async def _submit(self, query: Any, success: str, failure: str) -> web.Response:
        try:
            next_link = await self._threepids.submit_token(
                _required(query, "sid"),
                _required(query, "client_secret"),
                _required(query, "token"),
            )
        except ValidationFailed as exc:
            return html_response(self._threepids.page(failure, failure_reason=str(exc)), status=400)
        if next_link:
            raise web.HTTPFound(next_link)
        return html_response(self._threepids.page(success))

    async def password_reset_confirmation(self, request: web.Request) -> web.Response:
        """GET /_synapse/client/password_reset/email/submit_token"""
        self._email()
        # a page with a button rather than validating at once: mail scanners that open
        # every link must not confirm a reset for the user
        query = request.query
        return html_response(
            self._threepids.page(
                "password_reset_confirmation.html",
                sid=_required(query, "sid"),
                client_secret=_required(query, "client_secret"),
                token=_required(query, "token"),
            )
        )

    async def password_reset_submit(self, request: web.Request) -> web.Response:
        """POST /_synapse/client/password_reset/email/submit_token"""
        email = self._email()
        return await self._submit(
            await request.post(),
            email.password_reset_template_success_html,
            email.password_reset_template_failure_html,
        )

    async def registration_submit(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/unstable/registration/email/submit_token"""
        email = self._email()
        return await self._submit(
            request.query,
            email.registration_template_success_html,
            email.registration_template_failure_html,
        )

    async def add_threepid_submit(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/unstable/add_threepid/email/submit_token"""
        email = self._email()
        return await self._submit(
            request.query,
            email.add_threepid_template_success_html,
            email.add_threepid_template_failure_html,
        )


def _required(values: Any, name: str) -> str:
    value = values.get(name)
    if not isinstance(value, str) or not value:
        raise MatrixError(400, "M_MISSING_PARAM", f"Missing '{name}'")
    return value
