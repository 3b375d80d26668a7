"""Third-party identifiers (email addresses): proving an address by a link mailed to it, and
the addresses bound to accounts.

spec: client-server-api "Adding Account Administrative Contact Information" and the
`requestToken` endpoints. A client starts a validation session with a client_secret of its
own; the server mails a link holding a token; following the link validates the session;
the session ID and client_secret (`threepid_creds`) then prove the address to the
`m.login.email.identity` stage of user-interactive auth (registration, password reset) or
to `/account/3pid/add`. As in Synapse, a repeated request with the same send_attempt
answers the same session without mailing again.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlencode, urlparse

from ranvier.clock import now_ms
from ranvier.config.email import EmailConfig
from ranvier.config.models import HomeserverConfig
from ranvier.errors import MatrixError
from ranvier.services.email.mailer import Mailer, MailNotSent
from ranvier.services.templates import Templates
from ranvier.services.tokens import hash_token
from ranvier.services.uia import StageAuth, ThreepidCreds, UIASession
from ranvier.storage.threepids import ThreepidInUse, ThreepidStore, UserThreepid

logger = logging.getLogger(__name__)

EMAIL_IDENTITY = "m.login.email.identity"
EMAIL = "email"
MSISDN = "msisdn"
# spec: client_secret "[0-9a-zA-Z.=_-]", at most 255 characters
_CLIENT_SECRET = re.compile(r"[0-9a-zA-Z.=_\-]{1,255}")
# sessions are forgotten a day after they began, or after the token lifetime if longer:
# long enough to finish a registration after following the link
SESSION_LIFETIME_MS = 24 * 60 * 60 * 1000


class Purpose(Enum):
    """What a validation is for: which mail, which link, which pages."""

    REGISTRATION = "registration"
    PASSWORD_RESET = "password_reset"
    ADD_THREEPID = "add_threepid"


# where each purpose's link points, under public_baseurl (Synapse's paths)
SUBMIT_PATHS = {
    Purpose.REGISTRATION: "_matrix/client/unstable/registration/email/submit_token",
    Purpose.PASSWORD_RESET: "_synapse/client/password_reset/email/submit_token",
    Purpose.ADD_THREEPID: "_matrix/client/unstable/add_threepid/email/submit_token",
}


def threepid_denied() -> MatrixError:
    return MatrixError(
        403, "M_THREEPID_DENIED", "Third party identifier is not allowed on this server"
    )


def email_not_supported() -> MatrixError:
    return MatrixError(
        400,
        "M_THREEPID_MEDIUM_NOT_SUPPORTED",
        "This server does not send email (no 'email' section in its configuration)",
    )


def phone_not_supported() -> MatrixError:
    return MatrixError(
        400,
        "M_THREEPID_MEDIUM_NOT_SUPPORTED",
        "This server does not verify phone numbers: it sends no SMS",
    )


def canonical_email(address: str) -> str:
    """The form an address is stored and compared in: the domain lower-cased and the local
    part case-folded, as Synapse does, so Alice@Example.org is alice@example.org."""
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or "@" in local or any(c.isspace() for c in address):
        raise MatrixError(400, "M_INVALID_PARAM", f"{address!r} is not an email address")
    return f"{local.casefold()}@{domain.lower()}"


def check_client_secret(client_secret: str) -> None:
    if not _CLIENT_SECRET.fullmatch(client_secret):
        raise MatrixError(
            400,
            "M_INVALID_PARAM",
            "client_secret must be 1 to 255 characters of 0-9, a-z, A-Z, '.', '=', '_', '-'",
        )


@dataclass(frozen=True)
class ProvenThreepid:
    medium: str
    address: str
    validated_at: int

    def as_json(self) -> dict[str, Any]:
        return {"medium": self.medium, "address": self.address, "validated_at": self.validated_at}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ProvenThreepid:
        return cls(str(value["medium"]), str(value["address"]), int(value["validated_at"]))


class ValidationFailed(Exception):
    """A link from a mail did not validate its session; the message is for the page."""


def threepid_json(threepid: UserThreepid) -> dict[str, Any]:
    return {
        "medium": threepid.medium,
        "address": threepid.address,
        "validated_at": threepid.validated_at,
        "added_at": threepid.added_at,
    }


class ThreepidService:
    def __init__(
        self,
        config: HomeserverConfig,
        store: ThreepidStore,
        mailer: Mailer | None,
        templates: Templates,
        on_email_registered: Callable[[str, str], Awaitable[None]] | None = None,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._config = config
        self._store = store
        self._mailer = mailer
        self._templates = templates
        # told (user ID, address) when a registration bound an email address: the email
        # pusher of `email.notif_for_new_users`
        self._on_email_registered = on_email_registered
        self._clock_ms = clock_ms

    @property
    def email_config(self) -> EmailConfig | None:
        return self._config.email

    def _email(self) -> EmailConfig:
        if self._config.email is None or self._mailer is None:
            raise email_not_supported()
        return self._config.email

    # -- rules --

    def is_allowed(self, medium: str, address: str) -> bool:
        """allowed_local_3pids: none listed allows every address (Synapse's rule)."""
        rules = self._config.allowed_local_3pids
        if not rules:
            return True
        return any(
            rule.medium == medium and re.match(rule.pattern, address) is not None for rule in rules
        )

    def require_3pid_changes(self) -> None:
        if not self._config.enable_3pid_changes:
            raise MatrixError(400, "M_FORBIDDEN", "3PID changes are disabled on this server")

    def check_next_link(self, next_link: str | None) -> None:
        if next_link is None:
            return
        parsed = urlparse(next_link)
        whitelist = self._config.next_link_domain_whitelist
        if (
            parsed.scheme not in ("http", "https")
            or not parsed.hostname
            or (whitelist is not None and parsed.hostname not in whitelist)
        ):
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                "'next_link' must be an http(s) URL of a host this server allows",
            )

    # -- requestToken --

    async def request_token(
        self,
        purpose: Purpose,
        *,
        client_secret: str,
        email: str,
        send_attempt: int,
        next_link: str | None,
    ) -> str:
        """The session ID of the validation of `email` for `purpose`, mailing a new link
        unless this send_attempt was mailed already."""
        config = self._email()
        check_client_secret(client_secret)
        address = canonical_email(email)
        self.check_next_link(next_link)
        if purpose is Purpose.ADD_THREEPID:
            self.require_3pid_changes()
        if purpose is not Purpose.PASSWORD_RESET and not self.is_allowed(EMAIL, address):
            raise threepid_denied()
        owner = await self._store.owner(EMAIL, address)
        refusal = None
        if purpose is Purpose.PASSWORD_RESET and owner is None:
            refusal = MatrixError(
                400, "M_THREEPID_NOT_FOUND", "Email not found: no account has this address"
            )
        elif purpose is not Purpose.PASSWORD_RESET and owner is not None:
            refusal = MatrixError(400, "M_THREEPID_IN_USE", "Email is already in use by an account")
        if refusal is not None:
            if self._config.request_token_inhibit_3pid_errors:
                # answer like a success, so the endpoint cannot tell who is registered; no
                # mail goes out and the session ID leads nowhere
                return secrets.token_urlsafe(24)
            raise refusal

        now = self._clock_ms()
        await self._store.delete_sessions_created_before(now - self._session_lifetime(config))
        existing = await self._store.find_session(client_secret, EMAIL, address)
        if existing is not None and send_attempt <= existing.last_send_attempt:
            return existing.session_id
        token = secrets.token_urlsafe(32)
        session_id = existing.session_id if existing else secrets.token_urlsafe(24)
        link = self._link(purpose, session_id, client_secret, token)
        await self._send_validation_mail(config, purpose, address, link)
        expires_at = now + config.validation_token_lifetime
        if existing is None:
            await self._store.start_session(
                session_id,
                medium=EMAIL,
                address=address,
                client_secret=client_secret,
                send_attempt=send_attempt,
                token_hash=hash_token(token),
                next_link=next_link,
                now_ms=now,
                expires_at=expires_at,
            )
        else:
            await self._store.add_token(
                session_id,
                send_attempt=send_attempt,
                token_hash=hash_token(token),
                next_link=next_link,
                expires_at=expires_at,
            )
        return session_id

    @staticmethod
    def _session_lifetime(config: EmailConfig) -> int:
        return max(SESSION_LIFETIME_MS, config.validation_token_lifetime)

    def _link(self, purpose: Purpose, session_id: str, client_secret: str, token: str) -> str:
        query = urlencode({"token": token, "client_secret": client_secret, "sid": session_id})
        return f"{self._config.effective_public_baseurl}{SUBMIT_PATHS[purpose]}?{query}"

    async def _send_validation_mail(
        self, config: EmailConfig, purpose: Purpose, address: str, link: str
    ) -> None:
        assert self._mailer is not None
        if purpose is Purpose.PASSWORD_RESET:
            html_name = config.password_reset_template_html
            text_name = config.password_reset_template_text
            subject = config.subjects.password_reset
        elif purpose is Purpose.REGISTRATION:
            html_name = config.registration_template_html
            text_name = config.registration_template_text
            subject = config.subjects.email_validation
        else:
            html_name = config.add_threepid_template_html
            text_name = config.add_threepid_template_text
            subject = config.subjects.email_validation
        context = {
            "link": link,
            "server_name": self._config.server_name,
            "app_name": config.app_name,
        }
        try:
            await self._mailer.send(
                address,
                subject % {"server_name": self._config.server_name, "app": config.app_name},
                self._templates.render(text_name, **context),
                self._templates.render(html_name, **context),
            )
        except MailNotSent as exc:
            raise MatrixError(
                502, "M_UNKNOWN", "The validation email could not be sent; try again later"
            ) from exc

    # -- the links in the mails --

    async def submit_token(self, session_id: str, client_secret: str, token: str) -> str | None:
        """Validate the session with the token from its link; the link's next_link, if it
        had one. Raises ValidationFailed."""
        session = await self._store.get_session(session_id)
        if session is None or not secrets.compare_digest(session.client_secret, client_secret):
            raise ValidationFailed("This validation session is unknown or has ended.")
        submitted = await self._store.submit_token(session_id, hash_token(token), self._clock_ms())
        if submitted is None:
            raise ValidationFailed("This link is not valid, or has been used already.")
        if submitted.expires_at <= self._clock_ms():
            raise ValidationFailed("This link has expired; ask for a new one.")
        return submitted.next_link

    def page(self, template: str, **context: Any) -> str:
        return self._templates.render(template, **context)

    # -- what a validated session proves --

    async def proven(self, creds: ThreepidCreds) -> ProvenThreepid:
        """The address a validated session proves; 401 M_UNAUTHORIZED until its link was
        followed (the UIA stage's refusal)."""
        session = await self._store.get_session(creds.sid)
        if session is None or not secrets.compare_digest(
            session.client_secret, creds.client_secret
        ):
            raise MatrixError(401, "M_UNAUTHORIZED", "Unknown validation session")
        if session.validated_at is None:
            raise MatrixError(
                401,
                "M_UNAUTHORIZED",
                "The email address has not been validated yet: follow the link in the mail",
            )
        return ProvenThreepid(session.medium, session.address, session.validated_at)

    # -- the account's addresses --

    async def list_threepids(self, user_id: str) -> list[dict[str, Any]]:
        return [threepid_json(threepid) for threepid in await self._store.user_threepids(user_id)]

    async def add_validated(self, user_id: str, creds: ThreepidCreds) -> None:
        """POST /account/3pid/add: bind the address a validated session proves."""
        self.require_3pid_changes()
        proven = await self._proven_for_add(creds)
        if not self.is_allowed(proven.medium, proven.address):
            raise threepid_denied()
        await self._bind(user_id, proven)
        await self._store.delete_session(creds.sid)

    async def _proven_for_add(self, creds: ThreepidCreds) -> ProvenThreepid:
        try:
            return await self.proven(creds)
        except MatrixError as error:
            # outside user-interactive auth the spec answers 400 for this
            raise MatrixError(400, "M_THREEPID_AUTH_FAILED", error.error) from None

    async def bind_registered(self, user_id: str, completed: Mapping[str, Any]) -> None:
        """After a registration that proved an address (m.login.email.identity), bind it."""
        result = completed.get(EMAIL_IDENTITY)
        if not isinstance(result, dict):
            return
        proven = ProvenThreepid.from_json(result)
        try:
            await self._store.add(
                user_id, proven.medium, proven.address, proven.validated_at, self._clock_ms()
            )
        except ThreepidInUse:
            # another account took the address between validation and registration
            logger.warning("%s registered with %s, which another account holds", user_id, proven)
            return
        if proven.medium == EMAIL and self._on_email_registered is not None:
            await self._on_email_registered(user_id, proven.address)

    async def _bind(self, user_id: str, proven: ProvenThreepid) -> None:
        try:
            await self._store.add(
                user_id, proven.medium, proven.address, proven.validated_at, self._clock_ms()
            )
        except ThreepidInUse:
            raise MatrixError(
                400, "M_THREEPID_IN_USE", "This address is in use by another account"
            ) from None

    async def delete(self, user_id: str, medium: str, address: str) -> None:
        """POST /account/3pid/delete."""
        self.require_3pid_changes()
        if medium == EMAIL:
            try:
                address = canonical_email(address)
            except MatrixError:
                return
        await self._store.remove(user_id, medium, address)

    async def on_deactivated(self, user_id: str) -> None:
        await self._store.remove_all(user_id)

    # -- password reset --

    async def password_reset_user(self, completed: Mapping[str, Any]) -> str:
        """The account whose address the email stage of a password reset proved."""
        proven = ProvenThreepid.from_json(completed[EMAIL_IDENTITY])
        user_id = await self._store.owner(proven.medium, proven.address)
        if user_id is None:
            raise MatrixError(404, "M_NOT_FOUND", "No account has this email address")
        return user_id


class EmailIdentityStage:
    """m.login.email.identity: `threepid_creds` naming a session whose link was followed."""

    def __init__(self, threepids: ThreepidService) -> None:
        self._threepids = threepids

    async def check(self, auth: StageAuth, session: UIASession) -> Any:
        if auth.threepid_creds is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Missing 'threepid_creds'")
        proven = await self._threepids.proven(auth.threepid_creds)
        return proven.as_json()

    async def on_complete(self, session: UIASession) -> None:
        pass

    def params(self) -> dict[str, Any] | None:
        return None
