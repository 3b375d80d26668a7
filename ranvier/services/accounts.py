"""Accounts: user ID rules, registration (users and guests), password change, deactivation.

spec: appendices "User Identifiers" and client-server-api "Account registration and
management".
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ranvier.clock import now_ms
from ranvier.config.models import HomeserverConfig
from ranvier.errors import MatrixError
from ranvier.services.appservice.registry import AppServiceRegistry
from ranvier.services.captcha import STAGE_TYPE as RECAPTCHA
from ranvier.services.consent import STAGE_TYPE as TERMS
from ranvier.services.devices import DeviceService
from ranvier.services.login import SSO_LOGIN, LoginService, Session
from ranvier.services.passwords import PasswordHasher
from ranvier.services.threepids import EMAIL_IDENTITY
from ranvier.services.tokens import AccessTokens
from ranvier.services.uia import DUMMY, PASSWORD
from ranvier.storage.sso import ExternalIdStore
from ranvier.storage.users import UserExistsError, UserStore

# spec: appendices "User Identifiers" - the characters new user IDs may use
_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
MAX_USER_ID_BYTES = 255
REGISTRATION_TOKEN = "m.login.registration_token"
# how many digits a generated (guest or unnamed) localpart has
_GENERATED_DIGITS = 10


def invalid_username(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_USERNAME", error)


def user_in_use() -> MatrixError:
    return MatrixError(400, "M_USER_IN_USE", "User ID already taken.")


@dataclass(frozen=True)
class Registered:
    user_id: str
    session: Session | None  # None with inhibit_login

    def response(self, server_name: str) -> dict[str, Any]:
        if self.session is None:
            return {"user_id": self.user_id, "home_server": server_name}
        return self.session.response(server_name)


class AccountService:
    def __init__(
        self,
        config: HomeserverConfig,
        users: UserStore,
        hasher: PasswordHasher,
        login: LoginService,
        devices: DeviceService,
        access_tokens: AccessTokens,
        appservices: AppServiceRegistry,
        external_ids: ExternalIdStore,
    ) -> None:
        self._config = config
        # a user's single sign-on identities: they may confirm who they are through one
        self._external_ids = external_ids
        self._appservices = appservices
        self._users = users
        self._hasher = hasher
        self._login = login
        self._devices = devices
        self._access_tokens = access_tokens
        # what else a user keeps on the server that deactivation erases: each is called with
        # the user ID after the devices are gone and before the account is marked deactivated
        self.on_deactivated: list[Callable[[str], Awaitable[None]]] = []
        # told of each account /register created, with the auth stages it completed and
        # what they proved (a registration that accepted the policy records consent)
        self.on_registered: list[Callable[[str, Mapping[str, Any]], Awaitable[None]]] = []

    async def registered_through(self, user_id: str, completed: Mapping[str, Any]) -> None:
        for hook in self.on_registered:
            await hook(user_id, completed)

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self._config.server_name}"

    # -- user IDs --

    def validate_localpart(self, localpart: str, *, guest: bool = False) -> None:
        if not localpart:
            raise invalid_username("User ID cannot be empty")
        if not _LOCALPART.fullmatch(localpart):
            raise invalid_username("User ID can only contain characters a-z, 0-9, or '=_-./+'")
        if localpart.startswith("_"):
            # reserved for application services' users, as in Synapse
            raise invalid_username("User ID may not begin with _")
        if localpart.isdigit() and not guest:
            raise invalid_username("Numeric user IDs are reserved for guest users.")
        if len(self.user_id(localpart).encode()) > MAX_USER_ID_BYTES:
            raise invalid_username(f"User ID may not be longer than {MAX_USER_ID_BYTES} bytes")

    def check_not_reserved(self, localpart: str) -> None:
        """400 M_EXCLUSIVE for a user ID an application service holds exclusively: only
        that service may register it (spec: application-service-api)."""
        if self._appservices.exclusive_owner_of_user(self.user_id(localpart)) is not None:
            raise MatrixError(
                400, "M_EXCLUSIVE", "This user ID is reserved by an application service."
            )

    async def check_available(self, localpart: str) -> None:
        """400 M_INVALID_USERNAME or M_USER_IN_USE unless `localpart` could be registered."""
        self.validate_localpart(localpart)
        self.check_not_reserved(localpart)
        if self._config.inhibit_user_in_use_error:
            return
        if await self._users.user_exists_case_insensitive(self.user_id(localpart)):
            raise user_in_use()

    # -- registration --

    def require_registration_enabled(self) -> None:
        if not self._config.enable_registration or not self.registration_flows():
            raise MatrixError(403, "M_FORBIDDEN", "Registration has been disabled")

    def registration_flows(self) -> list[list[str]]:
        # as Synapse: the captcha, then the policy, go in front of every flow (after a
        # registration token); a captcha alone is verification enough for the dummy flow
        shared: list[str] = []
        if self._config.enable_registration_captcha:
            shared.append(RECAPTCHA)
        consent = self._config.user_consent
        if consent is not None and consent.require_at_registration:
            shared.append(TERMS)
        # as Synapse: with `registrations_require_3pid: [email]` every flow proves an address;
        # with email configured but not required, a flow with the address is offered beside
        email_required = "email" in self._config.registrations_require_3pid
        email_choices = [[EMAIL_IDENTITY]] if email_required else [[]]
        if not email_required and self._config.email is not None:
            email_choices.append([EMAIL_IDENTITY])
        if self._config.registration_requires_token:
            return [[REGISTRATION_TOKEN, *shared, *email] for email in email_choices]
        if email_required:
            return [[*shared, EMAIL_IDENTITY]]
        if (
            self._config.enable_registration_without_verification
            or self._config.enable_registration_captcha
        ):
            return [[*shared, *(email or [DUMMY])] for email in email_choices]
        return []

    def check_username(self, username: str | None) -> str | None:
        """The requested localpart (lower-cased, as Synapse does) if any, checked."""
        if username is None:
            return None
        username = username.lower()
        self.validate_localpart(username)
        return username

    def check_new_password(self, password: str | None) -> None:
        if password is None:
            if self._login.password_login_enabled:
                raise MatrixError(400, "M_MISSING_PARAM", "Missing 'password'")
            return
        self._hasher.check_policy(password)

    async def hash_password(self, password: str) -> str:
        return await self._hasher.hash(password)

    async def guest_to_upgrade(
        self, guest_access_token: str | None, username: str | None
    ) -> str | None:
        """The localpart of the guest account a registration upgrades, or None when it
        creates an account. spec "Guest access": a guest upgrades through the ordinary
        registration, giving its access token as `guest_access_token` and its own
        localpart as `username` (so the numeric localpart is allowed here)."""
        if guest_access_token is None:
            return None
        if username is None:
            raise MatrixError(400, "M_MISSING_PARAM", "Upgrading a guest needs its 'username'")
        localpart = username.lower()
        info = await self._access_tokens.lookup(guest_access_token)
        if (
            info is None
            or not info.is_guest
            or info.deactivated
            or info.user_id != self.user_id(localpart)
        ):
            raise MatrixError(
                403,
                "M_FORBIDDEN",
                "Cannot register taken user ID without valid guest credentials for that user.",
            )
        return localpart

    async def precheck_username(self, localpart: str | None) -> None:
        if localpart is not None:
            await self.check_available(localpart)

    async def register(
        self,
        *,
        localpart: str | None,
        password_hash: str | None,
        device_id: str | None,
        display_name: str | None,
        inhibit_login: bool,
        refresh: bool,
        admin: bool = False,
        user_type: str | None = None,
        displayname: str | None = None,
        upgrade_guest: bool = False,
    ) -> Registered:
        if upgrade_guest and localpart is not None:
            # the guest keeps its user ID, rooms and devices; it logs in anew below
            user_id = self.user_id(localpart)
            if not await self._users.upgrade_guest(user_id, password_hash):
                raise user_in_use()
        elif localpart is None:
            user_id = await self._create_generated(password_hash, guest=False)
        else:
            self.validate_localpart(localpart)
            self.check_not_reserved(localpart)
            user_id = self.user_id(localpart)
            if await self._users.user_exists_case_insensitive(user_id):
                raise user_in_use()
            try:
                await self._users.create_user(
                    user_id,
                    password_hash=password_hash,
                    creation_ts=now_ms(),
                    admin=admin,
                    user_type=user_type,
                    # the localpart unless the admin chose a display name
                    displayname=displayname or localpart,
                )
            except UserExistsError:
                raise user_in_use() from None
        return await self.log_in_registered(
            user_id,
            device_id=device_id,
            display_name=display_name,
            inhibit_login=inhibit_login,
            refresh=refresh,
        )

    async def log_in_registered(
        self,
        user_id: str,
        *,
        device_id: str | None,
        display_name: str | None,
        inhibit_login: bool,
        refresh: bool,
    ) -> Registered:
        """The answer to a registration of `user_id`: a new session unless `inhibit_login`.
        Also what a retried registration gets, its account already made."""
        if inhibit_login:
            return Registered(user_id, None)
        session = await self._login.start_session(user_id, device_id, display_name, refresh=refresh)
        return Registered(user_id, session)

    async def register_guest(
        self, *, device_id: str | None, display_name: str | None, refresh: bool
    ) -> Registered:
        if not self._config.allow_guest_access:
            raise MatrixError(403, "M_FORBIDDEN", "Guest access is disabled")
        user_id = await self._create_generated(None, guest=True)
        session = await self._login.start_session(user_id, device_id, display_name, refresh=refresh)
        return Registered(user_id, session)

    async def _create_generated(self, password_hash: str | None, *, guest: bool) -> str:
        # numeric localparts: the namespace the username rules keep free for this
        while True:
            localpart = str(secrets.randbelow(9 * 10 ** (_GENERATED_DIGITS - 1)) + 10**9)
            user_id = self.user_id(localpart)
            try:
                await self._users.create_user(
                    user_id,
                    password_hash=password_hash,
                    creation_ts=now_ms(),
                    is_guest=guest,
                    displayname=localpart,
                )
            except UserExistsError:
                continue
            return user_id

    # -- password and deactivation --

    async def reauth_flows_for(self, user_id: str) -> list[list[str]]:
        """How `user_id` may confirm who they are (user-interactive auth), as Synapse offers
        it: their password if they have one, single sign-on if an identity of theirs at a
        configured provider is linked. A client takes the first flow it can do, so one the
        user could never complete must not be offered."""
        flows = []
        user = await self._users.get_user(user_id)
        if self._login.password_auth_enabled and user is not None and user.password_hash:
            flows.append([PASSWORD])
        providers = {provider.auth_provider_id for provider in self._config.oidc_providers}
        if providers and any(
            provider in providers for provider, _ in await self._external_ids.of_user(user_id)
        ):
            flows.append([SSO_LOGIN])
        return flows

    def require_password_changes_enabled(self) -> None:
        if self._config.password_config.enabled is not True:
            raise MatrixError(403, "M_FORBIDDEN", "Password changes are disabled on this server")

    async def change_password(
        self,
        user_id: str,
        new_password: str,
        *,
        logout_devices: bool,
        keep_device_id: str | None,
    ) -> None:
        self._hasher.check_policy(new_password)
        await self._users.set_password_hash(user_id, await self._hasher.hash(new_password))
        if logout_devices:
            # spec: every other session is logged out; the one that asked stays
            await self._devices.delete_all_devices(user_id, except_device_id=keep_device_id)

    async def deactivate(self, user_id: str, *, erase: bool) -> None:
        await self._devices.delete_all_devices(user_id)
        for erase_user_data in self.on_deactivated:
            await erase_user_data(user_id)
        await self._users.deactivate(user_id, erase=erase)
        self._access_tokens.invalidate_user(user_id)

    # -- command line --

    async def register_from_command_line(
        self, localpart: str, password: str, *, admin: bool
    ) -> str:
        """`ranvier register-user`: the username rules apply, the password policy and the
        registration switches do not (the admin is deciding)."""
        registered = await self.register(
            localpart=localpart,
            password_hash=await self._hasher.hash(password),
            device_id=None,
            display_name=None,
            inhibit_login=True,
            refresh=False,
            admin=admin,
        )
        return registered.user_id
