"""What a server admin may do to accounts (Synapse's user admin API): look users up and list
them, create or modify them, reset passwords, deactivate, promote, see where they connect
from; and shared-secret registration, the admin's bootstrap before any admin exists.

Admin actions skip the password policy and the registration switches, as in Synapse (the
admin is deciding), but not the user ID rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ranvier.clock import now_ms
from ranvier.config.models import HomeserverConfig
from ranvier.errors import MatrixError
from ranvier.services.accounts import AccountService
from ranvier.services.devices import DeviceService
from ranvier.services.login import LoginService, Session
from ranvier.services.passwords import PasswordHasher
from ranvier.services.profiles import AVATAR_URL, DISPLAYNAME, ProfileService, validated_value
from ranvier.services.shared_secret import NonceStore, mac_matches, registration_mac
from ranvier.services.sso.external_ids import ExternalId, ExternalIds
from ranvier.services.threepids import EMAIL, MSISDN, canonical_email, threepid_json
from ranvier.storage.threepids import ThreepidStore
from ranvier.storage.user_admin import UserAdminQueries, UserAdminView, UserListQuery
from ranvier.storage.users import UserStore

# Synapse's user types besides a person (NULL)
USER_TYPES = ("bot", "support")
# Synapse refuses longer passwords here (hashing huge inputs costs CPU)
MAX_PASSWORD_LENGTH = 512


def invalid_param(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


def user_not_found() -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", "User not found")


def user_json(user: UserAdminView) -> dict[str, Any]:
    """GET /_synapse/admin/v2/users/{user_id}: Synapse's fields; creation_ts in seconds there,
    as Synapse answers (its list answers milliseconds)."""
    return {
        "name": user.name,
        "displayname": user.displayname,
        "threepids": [],
        "avatar_url": user.avatar_url,
        "is_guest": user.is_guest,
        "admin": user.admin,
        "deactivated": user.deactivated,
        "erased": user.erased,
        "shadow_banned": user.shadow_banned,
        "creation_ts": user.creation_ts // 1000,
        "last_seen_ts": user.last_seen_ts,
        "appservice_id": user.appservice_id,
        "consent_server_notice_sent": None,
        "consent_version": user.consent_version,
        "consent_ts": user.consent_ts,
        "external_ids": [],
        "user_type": user.user_type,
        "locked": user.locked,
        "suspended": user.suspended,
    }


def user_list_entry(user: UserAdminView) -> dict[str, Any]:
    return {
        "name": user.name,
        "is_guest": user.is_guest,
        "admin": user.admin,
        "user_type": user.user_type,
        "deactivated": user.deactivated,
        "erased": user.erased,
        "shadow_banned": user.shadow_banned,
        "displayname": user.displayname,
        "avatar_url": user.avatar_url,
        "creation_ts": user.creation_ts,
        "last_seen_ts": user.last_seen_ts,
        "locked": user.locked,
    }


@dataclass(frozen=True)
class UserChanges:
    """A parsed PUT /_synapse/admin/v2/users/{user_id} body; None means "not given"."""

    password: str | None = None
    logout_devices: bool = True
    displayname: str | None = None
    avatar_url: str | None = None
    admin: bool | None = None
    deactivated: bool | None = None
    locked: bool | None = None
    user_type_given: bool = False
    user_type: str | None = None
    # (medium, address) pairs replacing the user's third-party identifiers
    threepids: list[tuple[str, str]] | None = None
    # single sign-on identities replacing the user's
    external_ids: list[ExternalId] | None = None


class AdminUserService:
    def __init__(
        self,
        config: HomeserverConfig,
        queries: UserAdminQueries,
        users: UserStore,
        accounts: AccountService,
        login: LoginService,
        devices: DeviceService,
        profiles: ProfileService,
        hasher: PasswordHasher,
        threepids: ThreepidStore,
        external_ids: ExternalIds,
    ) -> None:
        self._threepids = threepids
        self._external_ids = external_ids
        self._config = config
        self._queries = queries
        self._users = users
        self._accounts = accounts
        self._login = login
        self._devices = devices
        self._profiles = profiles
        self._hasher = hasher
        self.nonces = NonceStore()

    @property
    def server_name(self) -> str:
        return self._config.server_name

    # -- checks shared by the endpoints --

    def require_local(self, user_id: str, error: str = "Can only look up local users") -> None:
        localpart, colon, server = user_id[1:].partition(":")
        if not user_id.startswith("@") or not localpart or not colon:
            raise invalid_param(f"{user_id!r} is not a valid user ID")
        if server != self._config.server_name:
            raise invalid_param(error)

    async def _existing(self, user_id: str) -> UserAdminView:
        user = await self._queries.get_user(user_id)
        if user is None:
            raise user_not_found()
        return user

    def _check_user_type(self, user_type: str | None) -> None:
        if user_type is not None and user_type not in USER_TYPES:
            raise invalid_param(f"Invalid user type; use one of {', '.join(USER_TYPES)} or null")

    def _check_password(self, password: str) -> None:
        if len(password) > MAX_PASSWORD_LENGTH:
            raise invalid_param(f"Passwords may be at most {MAX_PASSWORD_LENGTH} characters")

    # -- query and list --

    async def get_user(self, user_id: str) -> dict[str, Any]:
        self.require_local(user_id)
        return await self._user_json(await self._existing(user_id))

    async def list_users(self, query: UserListQuery) -> dict[str, Any]:
        found, total = await self._queries.list_users(query)
        body: dict[str, Any] = {"users": [user_list_entry(u) for u in found], "total": total}
        if query.start + query.limit < total:
            body["next_token"] = str(query.start + len(found))
        return body

    async def is_admin(self, user_id: str) -> bool:
        self.require_local(user_id, "Only local users can be admins of this homeserver")
        return (await self._existing(user_id)).admin

    async def set_admin(self, requester: str, user_id: str, admin: bool) -> None:
        self.require_local(user_id, "Only local users can be admins of this homeserver")
        await self._existing(user_id)
        if user_id == requester and not admin:
            raise invalid_param("You may not demote yourself.")
        await self._users.set_admin(user_id, admin)

    # -- create or modify --

    async def create_or_modify(
        self, requester: str, user_id: str, changes: UserChanges
    ) -> tuple[bool, dict[str, Any]]:
        """(created, the user as GET shows it)."""
        self.require_local(user_id, "This endpoint can only be used with local users")
        self._check_user_type(changes.user_type)
        if changes.password is not None:
            self._check_password(changes.password)
            self._accounts.require_password_changes_enabled()
        if changes.deactivated and changes.locked:
            raise invalid_param("A user cannot be deactivated and locked at once")
        # profile values are checked before anything is written: no partial changes
        for key, value in ((DISPLAYNAME, changes.displayname), (AVATAR_URL, changes.avatar_url)):
            if value is not None:
                validated_value(key, value)
        threepids = await self._checked_threepids(user_id, changes.threepids)
        if changes.external_ids is not None:
            await self._external_ids.check_free(user_id, changes.external_ids)
        existing = await self._queries.get_user(user_id)
        if existing is None:
            await self._create(user_id, changes)
            await self._replace_threepids(user_id, threepids)
            await self._replace_external_ids(user_id, changes.external_ids)
            return True, await self._user_json(await self._existing(user_id))
        await self._modify(requester, existing, changes)
        await self._replace_threepids(user_id, threepids)
        await self._replace_external_ids(user_id, changes.external_ids)
        return False, await self._user_json(await self._existing(user_id))

    # -- third-party identifiers --

    async def _user_json(self, user: UserAdminView) -> dict[str, Any]:
        body = user_json(user)
        body["threepids"] = [
            threepid_json(threepid) for threepid in await self._threepids.user_threepids(user.name)
        ]
        body["external_ids"] = await self._external_ids.of_user(user.name)
        return body

    async def _replace_external_ids(
        self, user_id: str, external_ids: list[ExternalId] | None
    ) -> None:
        if external_ids is not None:
            await self._external_ids.replace(user_id, external_ids)

    async def _checked_threepids(
        self, user_id: str, threepids: list[tuple[str, str]] | None
    ) -> list[tuple[str, str]] | None:
        """The addresses a PUT sets, canonical, once none is another account's; checked
        before anything is written so a refusal changes nothing."""
        if threepids is None:
            return None
        checked = []
        for medium, address in threepids:
            if medium == EMAIL:
                address = canonical_email(address)
            elif medium != MSISDN:
                raise invalid_param(f"Unknown medium {medium!r}; use email or msisdn")
            owner = await self._threepids.owner(medium, address)
            if owner is not None and owner != user_id:
                raise MatrixError(
                    409, "M_THREEPID_IN_USE", f"{address} belongs to another account ({owner})"
                )
            checked.append((medium, address))
        return checked

    async def _replace_threepids(
        self, user_id: str, threepids: list[tuple[str, str]] | None
    ) -> None:
        # Synapse: the list given replaces the user's addresses
        if threepids is not None:
            await self._threepids.replace_all(user_id, threepids, now_ms())

    async def user_by_threepid(self, medium: str, address: str) -> dict[str, Any]:
        """GET /_synapse/admin/v1/threepid/{medium}/users/{address}"""
        if medium == EMAIL:
            address = canonical_email(address)
        user_id = await self._threepids.owner(medium, address)
        if user_id is None:
            raise user_not_found()
        return {"user_id": user_id}

    async def _create(self, user_id: str, changes: UserChanges) -> None:
        localpart = user_id[1:].partition(":")[0]
        registered = await self._accounts.register(
            localpart=localpart,
            password_hash=await self._hash(changes.password),
            device_id=None,
            display_name=None,
            inhibit_login=True,
            refresh=False,
            admin=bool(changes.admin),
            user_type=changes.user_type,
            displayname=changes.displayname or None,
        )
        if changes.avatar_url:
            await self._set_profile(registered.user_id, AVATAR_URL, changes.avatar_url)
        if changes.locked:
            await self._users.set_locked(registered.user_id, True)

    async def _modify(self, requester: str, user: UserAdminView, changes: UserChanges) -> None:
        user_id = user.name
        if changes.admin is False and user.admin and user_id == requester:
            raise invalid_param("You may not demote yourself.")
        reactivating = changes.deactivated is False and user.deactivated
        if (
            reactivating
            and changes.password is None
            and self._login.password_login_enabled
            and not await self._has_password(user_id)
        ):
            raise invalid_param("Must provide a password to re-activate an account.")
        # everything is checked: from here on only writes
        if changes.displayname is not None:
            await self._set_profile(user_id, DISPLAYNAME, changes.displayname)
        if changes.avatar_url is not None:
            await self._set_profile(user_id, AVATAR_URL, changes.avatar_url)
        if changes.admin is not None and changes.admin != user.admin:
            await self._users.set_admin(user_id, changes.admin)
        if changes.password is not None:
            await self._set_password(user_id, changes.password, changes.logout_devices)
        if changes.deactivated and not user.deactivated:
            await self._accounts.deactivate(user_id, erase=False)
        elif reactivating:
            await self._users.reactivate(user_id)
        if changes.locked is not None and changes.locked != user.locked:
            await self._users.set_locked(user_id, changes.locked)
        if changes.user_type_given:
            await self._users.set_user_type(user_id, changes.user_type)

    async def _hash(self, password: str | None) -> str | None:
        return None if password is None else await self._hasher.hash(password)

    async def _has_password(self, user_id: str) -> bool:
        user = await self._users.get_user(user_id)
        return user is not None and user.password_hash is not None

    async def _set_profile(self, user_id: str, key: str, value: str) -> None:
        # "" removes the field, as in Synapse's admin API
        if value == "":
            await self._profiles.delete_field(
                user_id, key, requester=user_id, is_admin=True, is_guest=False
            )
        else:
            await self._profiles.set_field(
                user_id, key, value, requester=user_id, is_admin=True, is_guest=False
            )

    async def _set_password(self, user_id: str, password: str, logout_devices: bool) -> None:
        await self._users.set_password_hash(user_id, await self._hasher.hash(password))
        if logout_devices:
            await self._devices.delete_all_devices(user_id)

    # -- password reset, deactivation, whois --

    async def reset_password(self, user_id: str, password: str, logout_devices: bool) -> None:
        self.require_local(user_id, "Can only reset the password of local users")
        self._check_password(password)
        self._accounts.require_password_changes_enabled()
        user = await self._existing(user_id)
        if user.deactivated:
            raise MatrixError(
                400, "M_INVALID_PARAM", "The user is deactivated; reactivate it to set a password"
            )
        await self._set_password(user_id, password, logout_devices)

    async def deactivate(self, user_id: str, erase: bool) -> None:
        self.require_local(user_id, "Can only deactivate local users")
        await self._existing(user_id)
        await self._accounts.deactivate(user_id, erase=erase)

    async def whois(self, requester: str, requester_is_admin: bool, user_id: str) -> dict[str, Any]:
        # spec: callable by the user themselves or by a server admin
        if user_id != requester and not requester_is_admin:
            raise MatrixError(403, "M_FORBIDDEN", "You are not a server admin")
        self.require_local(user_id, "Can only whois a local user")
        device_id_to_connections: dict[str, list[dict[str, Any]]] = {}
        for connection in await self._devices.connections(user_id):
            device_id_to_connections.setdefault(connection.device_id or "", []).append(
                {
                    "ip": connection.ip,
                    "last_seen": connection.last_seen_ts,
                    "user_agent": connection.user_agent,
                }
            )
        devices = {
            device_id: {"sessions": [{"connections": connections}]}
            for device_id, connections in device_id_to_connections.items()
        }
        return {"user_id": user_id, "devices": devices}

    # -- shared-secret registration --

    def require_shared_secret(self) -> str:
        secret = self._config.registration_shared_secret
        if not secret:
            raise MatrixError(400, "M_UNKNOWN", "Shared secret registration is not enabled")
        return secret

    async def register_with_shared_secret(
        self,
        *,
        nonce: str,
        username: str,
        password: str,
        admin: bool,
        user_type: str | None,
        displayname: str | None,
        mac: str,
        refresh: bool,
    ) -> Session:
        """Check the nonce and MAC in Synapse's order and with its errors, then register
        and log in: the new account gets a device and an access token."""
        secret = self.require_shared_secret()
        if not self.nonces.consume(nonce):
            raise MatrixError(400, "M_UNKNOWN", "unrecognised nonce")
        if len(username) > MAX_PASSWORD_LENGTH or "\x00" in username:
            raise MatrixError(400, "M_INVALID_USERNAME", "Invalid username")
        if len(password) > MAX_PASSWORD_LENGTH or "\x00" in password:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid password")
        self._check_user_type(user_type)
        expected = registration_mac(secret, nonce, username, password, admin, user_type)
        if not mac_matches(expected, mac):
            raise MatrixError(403, "M_FORBIDDEN", "HMAC incorrect")
        registered = await self._accounts.register(
            # Synapse lower-cases the name rather than refusing it
            localpart=username.lower(),
            password_hash=await self._hash(password),
            device_id=None,
            display_name=None,
            inhibit_login=False,
            refresh=refresh,
            admin=admin,
            user_type=user_type,
            displayname=displayname or None,
        )
        assert registered.session is not None
        return registered.session
