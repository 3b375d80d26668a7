"""The accounts application services act as: their senders, the users they register in
their namespaces, and whom a request made with an as_token acts for.

spec: application-service-api "Identity assertion" and "Server admin style permissions".
Where the spec is silent the answers are Synapse's: a namespaced user the service never
registered is refused (403), and a service registers its users without the username rules
ordinary users follow (bridges rely on IDs like `@_irc_nick[away]:server`), only within
its own namespace.
"""

from __future__ import annotations

import logging
import re

from cachetools import LRUCache

from ranvier.clock import now_ms
from ranvier.config.appservices import AppService
from ranvier.errors import MatrixError
from ranvier.services.appservice.registry import AppServiceRegistry
from ranvier.storage.devices import DeviceStore
from ranvier.storage.users import UserExistsError, UserStore

logger = logging.getLogger(__name__)

# spec: appendices "Historical user IDs" - what a service may still register: any printable
# ASCII but the colon
_HISTORICAL_LOCALPART = re.compile(r"[\x21-\x39\x3b-\x7e]+")
MAX_USER_ID_BYTES = 255
# user ID -> whether the account is a server admin, for accounts known to exist; users are
# never deleted, and a change to one (admin flag) drops its entry
REGISTERED_CACHE_SIZE = 50_000


def exclusive(message: str) -> MatrixError:
    return MatrixError(400, "M_EXCLUSIVE", message)


class AppServiceUsers:
    def __init__(
        self, registry: AppServiceRegistry, users: UserStore, devices: DeviceStore, server_name: str
    ) -> None:
        self._registry = registry
        self._users = users
        self._devices = devices
        self._server_name = server_name
        self._user_id_to_admin: LRUCache[str, bool] = LRUCache(REGISTERED_CACHE_SIZE)
        # of the users in that cache, those deactivated (an admin may reactivate them)
        self._deactivated: set[str] = set()
        users.on_user_changed(self._forget)

    def _forget(self, user_id: str) -> None:
        self._user_id_to_admin.pop(user_id, None)
        self._deactivated.discard(user_id)

    async def ensure_senders(self) -> None:
        """Create each service's sender account if it is missing (start-up): the sender
        needs no registration, and everything else (rooms, profiles) wants a real user."""
        for service in self._registry.all:
            if await self._users.get_user(service.sender) is not None:
                continue
            try:
                await self._users.create_user(
                    service.sender,
                    password_hash=None,
                    creation_ts=now_ms(),
                    appservice_id=service.id,
                    displayname=service.sender[1:].split(":", 1)[0],
                )
                logger.info(
                    "Created %s, the sender of application service %s", service.sender, service.id
                )
            except UserExistsError:
                pass  # another process made it first

    # -- acting as a user --

    async def acting_user(
        self, service: AppService, user_id: str | None, device_id: str | None
    ) -> tuple[str, bool]:
        """(user ID, is admin) of the user a request of `service` acts as: `user_id` if
        the service may act as them, else its sender. `device_id` must be theirs."""
        if user_id is None:
            user_id = service.sender
        elif not service.is_user_in_namespace(user_id):
            raise MatrixError(
                403,
                "M_FORBIDDEN",
                f"Application service cannot masquerade as this user ({user_id})",
            )
        is_admin = await self._registered_admin_flag(user_id)
        if is_admin is None:
            raise MatrixError(
                403, "M_FORBIDDEN", f"Application service has not registered this user ({user_id})"
            )
        if user_id in self._deactivated:
            # a deactivated account acts no more, whoever holds a token for it
            raise MatrixError(403, "M_USER_DEACTIVATED", f"{user_id} has been deactivated")
        if device_id is not None and await self._devices.get_device(user_id, device_id) is None:
            # spec: "Identity assertion" - a device the user does not have is 400
            raise MatrixError(400, "M_UNKNOWN_DEVICE", f"{user_id} has no device {device_id}")
        return user_id, is_admin

    async def _registered_admin_flag(self, user_id: str) -> bool | None:
        cached = self._user_id_to_admin.get(user_id)
        if cached is not None:
            return cached
        user = await self._users.get_user(user_id)
        if user is None:
            return None
        self._user_id_to_admin[user_id] = user.admin
        if user.deactivated:
            self._deactivated.add(user_id)
        return user.admin

    async def check_login(self, service: AppService, user: str) -> str:
        """m.login.application_service: the user ID (a localpart or a full ID) the service
        logs in as, which must be in its namespace and registered."""
        user_id = user if user.startswith("@") else f"@{user}:{self._server_name}"
        if not service.is_user_in_namespace(user_id):
            raise exclusive(f"{user_id} is not in this application service's namespace")
        if await self._registered_admin_flag(user_id) is None:
            raise MatrixError(
                403, "M_FORBIDDEN", f"Application service has not registered this user ({user_id})"
            )
        return user_id

    # -- registration --

    async def register(self, service: AppService, localpart: str) -> str:
        """m.login.application_service registration of `localpart` by `service`."""
        user_id = f"@{localpart}:{self._server_name}"
        if (
            not localpart
            or not _HISTORICAL_LOCALPART.fullmatch(localpart)
            or len(user_id.encode()) > MAX_USER_ID_BYTES
        ):
            raise MatrixError(400, "M_INVALID_USERNAME", f"{user_id!r} is not a valid user ID")
        if not service.is_user_in_namespace(user_id):
            raise exclusive("Invalid user localpart for this application service.")
        owner = self._registry.exclusive_owner_of_user(user_id)
        if owner is not None and owner.id != service.id:
            raise exclusive("This user ID is reserved by another application service.")
        if await self._users.user_exists_case_insensitive(user_id):
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.")
        try:
            await self._users.create_user(
                user_id,
                password_hash=None,
                creation_ts=now_ms(),
                # as Synapse: a user is the service's when its namespace holds it exclusively
                appservice_id=service.id if service.is_exclusive_user(user_id) else None,
                displayname=localpart,
            )
        except UserExistsError:
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.") from None
        return user_id
