"""Credentials in request bodies, parsed at the edge: the fields of m.login.password (at
/login and in user-interactive auth) and the `auth` object of user-interactive auth (spec:
client-server-api "User-Interactive Authentication API", "Identifier types")."""

from __future__ import annotations

from typing import Any

from ranvier.errors import MatrixError
from ranvier.http.json import RequestBody, validate_body
from ranvier.services.captcha import STAGE_TYPE as RECAPTCHA
from ranvier.services.registration_tokens import STAGE_TYPE as REGISTRATION_TOKEN
from ranvier.services.threepids import EMAIL_IDENTITY
from ranvier.services.uia import (
    PASSWORD,
    AuthResult,
    PasswordCredentials,
    StageAuth,
    ThreepidCreds,
    UserInteractiveAuth,
)

USER_IDENTIFIER = "m.id.user"
THIRDPARTY_IDENTIFIER = "m.id.thirdparty"


class _UserIdentifier(RequestBody):
    type: str
    user: str | None = None
    # m.id.thirdparty
    medium: str | None = None
    address: str | None = None


class _PasswordFields(RequestBody):
    identifier: _UserIdentifier | None = None
    # the deprecated form: the user at the top level
    user: str | None = None
    # the deprecated top-level form of a third-party identifier
    medium: str | None = None
    address: str | None = None
    password: str


class _TokenFields(RequestBody):
    token: str


class _CaptchaFields(RequestBody):
    # a missing answer is the stage's own refusal (M_CAPTCHA_NEEDED), not a bad body
    response: str | None = None


class _AuthFields(RequestBody):
    type: str | None = None
    session: str | None = None


def _thirdparty(medium: str | None, address: str | None, password: str) -> PasswordCredentials:
    if not medium or not address:
        raise MatrixError(
            400, "M_MISSING_PARAM", "A third-party identifier needs 'medium' and 'address'"
        )
    return PasswordCredentials(user="", password=password, medium=medium, address=address)


def password_credentials(body: dict[str, Any]) -> PasswordCredentials:
    """The m.login.password fields of `body`, or the spec's 400."""
    fields = validate_body(body, _PasswordFields)
    if fields.identifier is not None:
        if fields.identifier.type == THIRDPARTY_IDENTIFIER:
            return _thirdparty(fields.identifier.medium, fields.identifier.address, fields.password)
        if fields.identifier.type != USER_IDENTIFIER:
            raise MatrixError(
                400, "M_UNKNOWN", f"Unsupported identifier type {fields.identifier.type!r}"
            )
        user = fields.identifier.user
    elif fields.medium is not None or fields.address is not None:
        return _thirdparty(fields.medium, fields.address, fields.password)
    else:
        user = fields.user
    if not user:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing the user to log in as")
    return PasswordCredentials(user=user, password=fields.password)


class _UserFields(RequestBody):
    identifier: _UserIdentifier | None = None
    user: str | None = None


def appservice_login_user(body: dict[str, Any]) -> str:
    """The user an m.login.application_service login names (an m.id.user identifier, or
    the deprecated top-level `user`)."""
    fields = validate_body(body, _UserFields)
    if fields.identifier is not None:
        if fields.identifier.type != USER_IDENTIFIER:
            raise MatrixError(
                400, "M_UNKNOWN", f"Unsupported identifier type {fields.identifier.type!r}"
            )
        user = fields.identifier.user
    else:
        user = fields.user
    if not user:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing the user to log in as")
    return user


def login_token(body: dict[str, Any]) -> str:
    return validate_body(body, _TokenFields).token


class _ThreepidCredsFields(RequestBody):
    sid: str
    client_secret: str


def threepid_creds(value: Any) -> ThreepidCreds:
    """A validation session named by `sid` and `client_secret` (m.login.email.identity's
    `threepid_creds`, the body of /account/3pid/add), or the spec's 400."""
    if value is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'threepid_creds'")
    if not isinstance(value, dict):
        raise MatrixError(400, "M_BAD_JSON", "'threepid_creds' must be an object")
    fields = validate_body(value, _ThreepidCredsFields)
    return ThreepidCreds(sid=fields.sid, client_secret=fields.client_secret)


def stage_auth(value: Any, client_ip: str | None = None) -> StageAuth | None:
    """The `auth` object of a request body, or None if there is none."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MatrixError(400, "M_BAD_JSON", "'auth' must be an object")
    fields = validate_body(value, _AuthFields)
    try:
        if fields.type == PASSWORD:
            return StageAuth(fields.type, fields.session, password=password_credentials(value))
        if fields.type == REGISTRATION_TOKEN:
            return StageAuth(fields.type, fields.session, token=login_token(value))
        if fields.type == EMAIL_IDENTITY:
            creds = value.get("threepid_creds", value.get("threepidCreds"))
            return StageAuth(fields.type, fields.session, threepid_creds=threepid_creds(creds))
        if fields.type == RECAPTCHA:
            response = validate_body(value, _CaptchaFields).response
            return StageAuth(
                fields.type, fields.session, captcha_response=response, client_ip=client_ip
            )
    except MatrixError as problem:
        return StageAuth(fields.type, fields.session, problem=problem)
    return StageAuth(fields.type, fields.session)


async def user_interactive_auth(
    uia: UserInteractiveAuth,
    body: dict[str, Any],
    flows: list[list[str]],
    *,
    operation: str,
    server_values: dict[str, Any] | None = None,
    client_ip: str | None = None,
) -> AuthResult:
    """`UserInteractiveAuth.authenticate` for a request body: its `auth` parsed, the rest
    kept as what the session authorises."""
    clientdict = {key: value for key, value in body.items() if key != "auth"}
    return await uia.authenticate(
        stage_auth(body.get("auth"), client_ip),
        clientdict,
        flows,
        operation=operation,
        server_values=server_values,
    )
