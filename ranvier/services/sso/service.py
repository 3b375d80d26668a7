"""Signing in through an OpenID Connect provider, from the client's redirect to the login
token it gets back, and confirming who you are (user-interactive auth's m.login.sso) the same
way.

The browser's trip: `start_login` makes the provider's authorization URL and a server-side
session (state, nonce, PKCE verifier, where to send the client) whose ID the browser keeps in a
cookie; `callback` checks what the provider sent back against that session, asks the provider
who the user is, and maps them to a Matrix user: one linked before (user_external_ids), an
existing user of the mapped name (allow_existing_users), a new user, or, when the mapping
leaves the name open or taken, the username picker (`submit_username`). The client then gets
an m.login.token, straight away for clients in `sso.client_whitelist` and after a
confirmation page for any other (a phishing link must not hand a token to someone else's
site silently).

The endpoints turn the outcomes (`Redirect`, `Page`, `PickUsername`, `SsoError`) into HTTP.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ranvier.clock import now_ms
from ranvier.config.models import HomeserverConfig
from ranvier.errors import MatrixError
from ranvier.services.accounts import AccountService
from ranvier.services.consent import ConsentService
from ranvier.services.login import SSO_LOGIN, LoginService
from ranvier.services.profiles import DISPLAYNAME, ProfileService
from ranvier.services.sso.mapping import MappingError, UserMapper, meets_requirements
from ranvier.services.sso.oidc import OidcProvider, ProviderError
from ranvier.services.threepids import EMAIL, EMAIL_IDENTITY, ProvenThreepid, canonical_email
from ranvier.services.uia import UserInteractiveAuth
from ranvier.storage.sso import ExternalIdStore, ExternalIdTaken, SsoSessionStore
from ranvier.storage.users import UserStore

logger = logging.getLogger(__name__)

# the user-interactive auth stage this service completes
SSO = SSO_LOGIN
CALLBACK_PATH = "/_synapse/client/oidc/callback"
PICK_USERNAME_PATH = "/_synapse/client/pick_username/account_details"
# Synapse's lifetimes: the trip to the provider, a new user choosing their name, and the
# login token the client exchanges at once
LOGIN_SESSION_LIFETIME_MS = 60 * 60 * 1000
USERNAME_SESSION_LIFETIME_MS = 15 * 60 * 1000
LOGIN_TOKEN_LIFETIME_MS = 2 * 60 * 1000
_LOGIN_SESSION = "oidc"
_USERNAME_SESSION = "username_mapping"

# Synapse's template names, so an admin's customised pages carry over
ERROR_TEMPLATE = "sso_error.html"
PICKER_TEMPLATE = "sso_login_idp_picker.html"
ACCOUNT_DETAILS_TEMPLATE = "sso_auth_account_details.html"
REDIRECT_CONFIRM_TEMPLATE = "sso_redirect_confirm.html"
AUTH_CONFIRM_TEMPLATE = "sso_auth_confirm.html"
AUTH_SUCCESS_TEMPLATE = "sso_auth_success.html"
DEACTIVATED_TEMPLATE = "sso_account_deactivated.html"
CONSENT_TEMPLATE = "sso_new_user_consent.html"
CONSENT_PATH = "/_synapse/client/new_user_consent"


class SsoError(Exception):
    """Shown to the user as the error page: a short code, a sentence, an HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class Page:
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    status: int = 200


@dataclass(frozen=True)
class PickUsername:
    """Send the browser to the username picker, holding this session."""

    session_id: str


@dataclass(frozen=True)
class AskConsent:
    """Send the browser to the new-user consent page, holding this session."""

    session_id: str


@dataclass(frozen=True)
class StartedLogin:
    provider_url: str
    session_id: str


class SsoService:
    def __init__(
        self,
        config: HomeserverConfig,
        providers: list[OidcProvider],
        sessions: SsoSessionStore,
        external_ids: ExternalIdStore,
        users: UserStore,
        accounts: AccountService,
        login: LoginService,
        profiles: ProfileService,
        uia: UserInteractiveAuth,
        consent: ConsentService | None,
    ) -> None:
        self._config = config
        # the policy a new user accepts before their account is made, when
        # user_consent.require_at_registration asks for it
        self._consent = (
            consent if consent is not None and consent.config.require_at_registration else None
        )
        self._providers = {provider.id: provider for provider in providers}
        self._mappers = {
            provider.id: UserMapper(provider.config.user_mapping_provider.config)
            for provider in providers
        }
        self._sessions = sessions
        self._external_ids = external_ids
        self._users = users
        self._accounts = accounts
        self._login = login
        self._profiles = profiles
        self._uia = uia

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()

    # -- providers --

    def _provider(self, provider_id: str) -> OidcProvider:
        provider = self._providers.get(provider_id)
        if provider is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Unknown identity provider {provider_id!r}")
        return provider

    def only_provider(self) -> str | None:
        """The provider's ID when there is one, so no choice is needed."""
        return next(iter(self._providers)) if len(self._providers) == 1 else None

    def picker_page(self, client_redirect_url: str) -> Page:
        return Page(
            PICKER_TEMPLATE,
            {
                "redirect_url": client_redirect_url,
                "server_name": self._config.server_name,
                "providers": [
                    {
                        "idp_id": provider.id,
                        "idp_name": provider.config.idp_name,
                        "idp_icon": provider.config.idp_icon,
                        "idp_brand": provider.config.idp_brand,
                    }
                    for provider in self._providers.values()
                ],
            },
        )

    # -- to the provider --

    async def start_login(
        self,
        provider_id: str,
        client_redirect_url: str | None,
        *,
        ui_auth_session_id: str | None = None,
    ) -> StartedLogin:
        provider = self._provider(provider_id)
        try:
            request = await provider.authorization_request()
        except ProviderError as exc:
            logger.warning("Provider %s unusable: %s", provider.id, exc.description)
            raise SsoError(exc.error, "The identity provider cannot be reached right now") from exc
        session_id = secrets.token_urlsafe(32)
        now = now_ms()
        await self._sessions.put(
            session_id,
            _LOGIN_SESSION,
            {
                "idp": provider.id,
                "state": request.state,
                "nonce": request.nonce,
                "code_verifier": request.code_verifier,
                "redirect_url": client_redirect_url,
                "ui_auth_session_id": ui_auth_session_id,
            },
            now + LOGIN_SESSION_LIFETIME_MS,
            now,
        )
        return StartedLogin(request.url, session_id)

    # -- back from the provider --

    async def callback(
        self, session_id: str | None, params: Mapping[str, str]
    ) -> Redirect | Page | PickUsername | AskConsent:
        if session_id is None:
            raise SsoError(
                "missing_session",
                "Your browser did not keep the session of this sign-in (cookies may be "
                "blocked); start signing in again from your client",
            )
        session = await self._sessions.take(session_id, _LOGIN_SESSION, now_ms())
        if session is None:
            raise SsoError(
                "unknown_session", "This sign-in has expired or was already used; start again"
            )
        if "error" in params:
            # the provider refused (or the user cancelled) and says why
            raise SsoError(params["error"], params.get("error_description", "Sign-in refused"))
        if params.get("state") != session["state"]:
            raise SsoError("mismatching_state", "This answer belongs to another sign-in")
        code = params.get("code")
        if not code:
            raise SsoError("missing_code", "The identity provider sent no authorization code")
        provider = self._provider(session["idp"])
        try:
            claims, id_claims = await provider.claims_for_code(
                code, session["nonce"], session["code_verifier"]
            )
        except ProviderError as exc:
            logger.warning("Sign-in through %s failed: %s", provider.id, exc.description)
            raise SsoError(exc.error, exc.description) from exc
        if not meets_requirements(claims, provider.config.attribute_requirements):
            raise SsoError("unauthorised", "You are not authorised to sign in here.", 401)
        mapper = self._mappers[provider.id]
        try:
            subject = mapper.subject(claims)
        except MappingError as exc:
            raise SsoError("mapping_error", str(exc), 500) from exc
        user_id = await self._external_ids.user_for(provider.id, subject)
        if session.get("ui_auth_session_id") is not None:
            return await self._confirm_identity(session["ui_auth_session_id"], user_id)
        redirect_url = session["redirect_url"]
        provider_session = id_claims.get("sid") if id_claims else None
        if user_id is not None:
            return await self._known_user(provider, user_id, claims, redirect_url, provider_session)
        try:
            mapped = mapper.map(claims)
        except MappingError as exc:
            raise SsoError("mapping_error", str(exc), 500) from exc
        if mapped.localpart is not None and not mapped.confirm_localpart:
            existing = await self._existing_user(mapped.localpart)
            if existing is not None and provider.config.allow_existing_users:
                await self._link(provider.id, subject, existing)
                return await self._known_user(
                    provider, existing, claims, redirect_url, provider_session
                )
            if existing is None:
                self._require_registration(provider)
                try:
                    await self._accounts.check_available(mapped.localpart)
                except MatrixError as exc:
                    raise SsoError(
                        "mapping_error", f"{mapped.localpart!r}: {exc.error}", 500
                    ) from exc
                if self._consent is not None:
                    return AskConsent(
                        await self._pending_registration(
                            provider.id,
                            subject,
                            mapped.localpart,
                            mapped.display_name,
                            redirect_url,
                            provider_session,
                            chosen=True,
                            email=mapped.email,
                        )
                    )
                user_id = await self._register(
                    provider.id, subject, mapped.localpart, mapped.display_name, mapped.email
                )
                return await self._hand_to_client(
                    user_id, redirect_url, provider, True, provider_session
                )
        self._require_registration(provider)
        # the user chooses a name: no template, confirmation asked for, or the name is taken
        return PickUsername(
            await self._pending_registration(
                provider.id,
                subject,
                mapped.localpart,
                mapped.display_name,
                redirect_url,
                provider_session,
                chosen=False,
                email=mapped.email,
            )
        )

    async def _pending_registration(
        self,
        provider_id: str,
        subject: str,
        localpart: str | None,
        display_name: str | None,
        redirect_url: str | None,
        provider_session: Any,
        *,
        chosen: bool,
        email: str | None,
    ) -> str:
        """A session for a new user who still has a step to take in the browser: choose a
        username, or (once `chosen`) accept the policy. Its ID goes in a cookie."""
        pending_id = secrets.token_urlsafe(32)
        now = now_ms()
        await self._sessions.put(
            pending_id,
            _USERNAME_SESSION,
            {
                "idp": provider_id,
                "subject": subject,
                "localpart": localpart,
                "display_name": display_name,
                "use_display_name": True,
                "chosen": chosen,
                "redirect_url": redirect_url,
                "provider_session": provider_session,
                "email": email,
            },
            now + USERNAME_SESSION_LIFETIME_MS,
            now,
        )
        return pending_id

    def _require_registration(self, provider: OidcProvider) -> None:
        if not provider.config.enable_registration:
            raise SsoError(
                "registration_disabled",
                "There is no account for you on this server, and new accounts cannot be "
                "made by signing in here",
                403,
            )

    async def _existing_user(self, localpart: str) -> str | None:
        user_id = self._accounts.user_id(localpart)
        user = await self._users.get_user(user_id)
        return None if user is None else user.user_id

    async def _known_user(
        self,
        provider: OidcProvider,
        user_id: str,
        claims: dict[str, Any],
        redirect_url: str | None,
        provider_session: Any,
    ) -> Redirect | Page:
        user = await self._users.get_user(user_id)
        if user is None or user.deactivated:
            return Page(DEACTIVATED_TEMPLATE, status=403)
        if self._config.sso.update_profile_information:
            await self._update_display_name(provider, user_id, claims)
        return await self._hand_to_client(user_id, redirect_url, provider, False, provider_session)

    async def _update_display_name(
        self, provider: OidcProvider, user_id: str, claims: dict[str, Any]
    ) -> None:
        try:
            display_name = self._mappers[provider.id].map(claims).display_name
        except MappingError:
            return
        if display_name is None:
            return
        try:
            current = await self._profiles.get_field(user_id, DISPLAYNAME, None)
        except MatrixError:  # no display name yet
            current = {}
        if current.get(DISPLAYNAME) != display_name:
            await self._profiles.set_field(
                user_id, DISPLAYNAME, display_name, requester=user_id, is_admin=True, is_guest=False
            )

    async def _link(self, provider_id: str, subject: str, user_id: str) -> None:
        try:
            await self._external_ids.add(provider_id, subject, user_id)
        except ExternalIdTaken:
            raise SsoError(
                "already_linked", "This identity was just linked to another account; try again"
            ) from None

    async def _register(
        self,
        provider_id: str,
        subject: str,
        localpart: str,
        display_name: str | None,
        email: str | None,
    ) -> str:
        registered = await self._accounts.register(
            localpart=localpart,
            password_hash=None,
            device_id=None,
            display_name=None,
            inhibit_login=True,
            refresh=False,
            displayname=display_name,
        )
        await self._link(provider_id, subject, registered.user_id)
        logger.info("Registered %s through %s", registered.user_id, provider_id)
        if email is not None:
            await self._keep_email(registered.user_id, email)
        return registered.user_id

    async def _keep_email(self, user_id: str, email: str) -> None:
        """The address email_template made is the provider's word: it is bound to the new
        account as a validated address (as Synapse does), through the same registration
        hooks as an address proven by mail (so notif_for_new_users gives it a pusher)."""
        try:
            address = canonical_email(email)
        except MatrixError:
            logger.warning("%s: email_template made %r, not an email address", user_id, email)
            return
        proven = ProvenThreepid(EMAIL, address, now_ms())
        await self._accounts.registered_through(user_id, {EMAIL_IDENTITY: proven.as_json()})

    async def _hand_to_client(
        self,
        user_id: str,
        redirect_url: str | None,
        provider: OidcProvider,
        new_user: bool,
        provider_session: Any,
    ) -> Redirect | Page:
        if redirect_url is None:
            raise SsoError("missing_redirect", "There is no client to return to")
        token = await self._login.create_login_token(
            user_id,
            LOGIN_TOKEN_LIFETIME_MS,
            auth_provider_id=provider.id,
            auth_provider_session_id=provider_session
            if isinstance(provider_session, str)
            else None,
        )
        target = add_query_parameter(redirect_url, "loginToken", token)
        if any(redirect_url.startswith(prefix) for prefix in self._config.sso.client_whitelist):
            return Redirect(target)
        display_name = None
        try:
            profile = await self._profiles.get_field(user_id, DISPLAYNAME, None)
            display_name = profile.get(DISPLAYNAME)
        except MatrixError:
            pass
        parts = urlsplit(redirect_url)
        return Page(
            REDIRECT_CONFIRM_TEMPLATE,
            {
                "display_url": parts.netloc + parts.path,
                "redirect_url": target,
                "server_name": self._config.server_name,
                "new_user": new_user,
                "user_id": user_id,
                "user_profile": {"display_name": display_name},
            },
        )

    # -- the username picker --

    async def _username_session(self, session_id: str | None) -> dict[str, Any]:
        session = (
            None
            if session_id is None
            else await self._sessions.get(session_id, _USERNAME_SESSION, now_ms())
        )
        if session is None:
            raise SsoError(
                "unknown_session", "This sign-in has expired; start signing in again", 400
            )
        return session

    async def account_details_page(
        self, session_id: str | None, error: str | None = None, status: int = 200
    ) -> Page:
        session = await self._username_session(session_id)
        provider = self._provider(session["idp"])
        return Page(
            ACCOUNT_DETAILS_TEMPLATE,
            {
                "idp": {"idp_id": provider.id, "idp_name": provider.config.idp_name},
                "user_attributes": {
                    "localpart": session["localpart"],
                    "display_name": session["display_name"],
                },
                "server_name": self._config.server_name,
                "error": error,
            },
            status,
        )

    async def check_username(self, localpart: str) -> None:
        """M_INVALID_USERNAME, M_EXCLUSIVE or M_USER_IN_USE unless it could be registered."""
        await self._accounts.check_available(localpart.lower())

    async def submit_username(
        self, session_id: str | None, localpart: str, use_display_name: bool
    ) -> Redirect | Page | AskConsent:
        session = await self._username_session(session_id)
        localpart = localpart.strip().lower()
        try:
            await self._accounts.check_available(localpart)
        except MatrixError as exc:
            return await self.account_details_page(session_id, exc.error, 400)
        assert session_id is not None
        if self._consent is not None:
            # the choice is kept; the account is made once the policy is accepted
            await self._sessions.delete(session_id)
            provider = self._provider(session["idp"])
            display_name = session["display_name"] if use_display_name else None
            return AskConsent(
                await self._pending_registration(
                    provider.id,
                    session["subject"],
                    localpart,
                    display_name,
                    session["redirect_url"],
                    session.get("provider_session"),
                    chosen=True,
                    email=session.get("email"),
                )
            )
        return await self._register_pending(
            session_id, session, localpart, use_display_name, consented_version=None
        )

    async def _register_pending(
        self,
        session_id: str,
        session: dict[str, Any],
        localpart: str,
        use_display_name: bool,
        *,
        consented_version: str | None,
    ) -> Redirect | Page:
        provider = self._provider(session["idp"])
        display_name = session["display_name"] if use_display_name else None
        try:
            user_id = await self._register(
                provider.id, session["subject"], localpart, display_name, session.get("email")
            )
        except MatrixError as exc:
            # taken between the check and now
            return await self.account_details_page(session_id, exc.error, 400)
        await self._sessions.delete(session_id)
        if consented_version is not None and self._consent is not None:
            await self._consent.record_consent(user_id, consented_version)
        return await self._hand_to_client(
            user_id, session["redirect_url"], provider, True, session.get("provider_session")
        )

    # -- the new user's consent --

    async def _consent_session(self, session_id: str | None) -> dict[str, Any]:
        session = await self._username_session(session_id)
        if self._consent is None or not session.get("chosen"):
            raise SsoError("unknown_session", "There is no policy to accept in this sign-in")
        return session

    async def consent_page(self, session_id: str | None) -> Page:
        """sso_new_user_consent.html: the policy a new user accepts before their account is
        made (user_consent.require_at_registration)."""
        session = await self._consent_session(session_id)
        assert self._consent is not None
        return Page(
            CONSENT_TEMPLATE,
            {
                "user_id": self._accounts.user_id(session["localpart"]),
                "user_profile": {"display_name": session["display_name"]},
                "consent_version": self._consent.config.version,
                "terms_url": self._consent.policy_url(),
                "policy_name": self._consent.config.policy_name,
                "server_name": self._config.server_name,
            },
        )

    async def accept_consent(
        self, session_id: str | None, accepted_version: str | None
    ) -> Redirect | Page:
        session = await self._consent_session(session_id)
        assert self._consent is not None and session_id is not None
        if accepted_version != self._consent.config.version:
            # an old page, from before the policy changed: show the current one
            page = await self.consent_page(session_id)
            return Page(page.template, page.context, 400)
        return await self._register_pending(
            session_id,
            session,
            session["localpart"],
            True,
            consented_version=accepted_version,
        )

    # -- user-interactive auth --

    def reauth_page(self, fallback_url: str, provider_ids: list[str]) -> Page:
        """sso_auth_confirm.html: what the user is about to confirm, with a link per
        provider."""
        return Page(
            AUTH_CONFIRM_TEMPLATE,
            {
                "description": "confirm your identity",
                "idps": [
                    {
                        "idp_id": provider_id,
                        "idp_name": self._provider(provider_id).config.idp_name,
                        "url": add_query_parameter(fallback_url, "idp", provider_id),
                    }
                    for provider_id in provider_ids
                ],
                "server_name": self._config.server_name,
            },
        )

    def provider_ids(self) -> list[str]:
        return list(self._providers)

    async def _confirm_identity(self, ui_auth_session_id: str, user_id: str | None) -> Page:
        if user_id is None:
            raise SsoError(
                "unknown_identity",
                "This identity is not linked to any account on this server",
                403,
            )
        session = await self._uia.live_session(ui_auth_session_id)
        if session is None:
            raise SsoError("unknown_session", "The request you were confirming has expired")
        # Every re-authentication names the requester in its operation; an identity that
        # is someone else's must not complete the stage (the endpoints check again)
        if user_id not in session.operation.split():
            raise SsoError(
                "wrong_user",
                "You signed in as someone other than the account asking you to confirm",
                403,
            )
        await self._uia.record_stage_result(session, SSO, user_id)
        return Page(AUTH_SUCCESS_TEMPLATE)

    async def has_identity(self, user_id: str) -> bool:
        """Whether `user_id` can confirm who they are through a configured provider."""
        return any(
            provider in self._providers for provider, _ in await self._external_ids.of_user(user_id)
        )


def add_query_parameter(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(query)))


class SsoStage:
    """UIA m.login.sso: done on the provider's side, through the fallback page, and recorded
    there; a client naming the stage before that is told to use the page."""

    async def check(self, auth: Any, session: Any) -> Any:
        if SSO in session.completed:
            return session.completed[SSO]
        raise MatrixError(
            401,
            "M_FORBIDDEN",
            "Confirm your identity through single sign-on first (the stage's fallback page)",
        )

    async def on_complete(self, session: Any) -> None:
        pass

    def params(self) -> dict[str, Any] | None:
        return None
