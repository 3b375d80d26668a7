"""Profiles: display name, avatar URL and custom fields (spec: client-server-api "Profiles").

Who may see and change a profile, and what a valid value is, is decided here. A change is
announced to the listeners registered with `on_change` after it commits: the rooms service
will register one that sends the new m.room.member events into the user's rooms.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from ranvier.config.models import HomeserverConfig
from ranvier.errors import MatrixError
from ranvier.storage.profiles import Profile, ProfileStore

logger = logging.getLogger(__name__)

DISPLAYNAME = "displayname"
AVATAR_URL = "avatar_url"
TIME_ZONE = "m.tz"

# Synapse's limits, which clients have learned to live with
MAX_DISPLAYNAME_LENGTH = 256
MAX_AVATAR_URL_LENGTH = 1000
# spec: PUT /profile/{userId}/{keyName} - M_KEY_TOO_LARGE and M_PROFILE_TOO_LARGE
MAX_KEY_BYTES = 255
MAX_PROFILE_BYTES = 64 * 1024

# spec: the keyName pattern of profile.yaml, with `-` allowed as the Common Namespaced
# Identifier Grammar allows it
_KEY_NAME = re.compile(r"(avatar_url|displayname|m\.tz|[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+)")


@dataclass(frozen=True)
class ProfileChange:
    user_id: str
    before: Profile
    after: Profile
    by_admin: bool

    @property
    def membership_fields_changed(self) -> bool:
        """Display name and avatar are copied into the user's m.room.member events."""
        return (self.before.displayname, self.before.avatar_url) != (
            self.after.displayname,
            self.after.avatar_url,
        )


ProfileChangeListener = Callable[[ProfileChange], Awaitable[None]]
# (requester, target) -> whether they share a room
SharedRoomCheck = Callable[[str, str], Awaitable[bool]]
# (user on another server, field or None for all) -> the profile as their server gives it,
# or the MatrixError to answer (services/federation/queries.py asks with /query/profile)
RemoteProfileQuery = Callable[[str, str | None], Awaitable[dict[str, Any]]]


async def no_rooms_yet(requester: str, target: str) -> bool:
    # until rooms exist, no two users share one
    return False


def not_found(error: str = "Profile not found") -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", error)


def invalid_param(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


def forbidden(error: str) -> MatrixError:
    return MatrixError(403, "M_FORBIDDEN", error)


def profile_json(profile: Profile) -> dict[str, Any]:
    """The profile as GET /profile/{userId} shows it: unset fields are absent."""
    body: dict[str, Any] = dict(profile.fields)
    if profile.displayname is not None:
        body[DISPLAYNAME] = profile.displayname
    if profile.avatar_url is not None:
        body[AVATAR_URL] = profile.avatar_url
    return body


def _one_field(body: dict[str, Any], key: str) -> dict[str, Any]:
    if key not in body:
        if key in (DISPLAYNAME, AVATAR_URL):
            # As Synapse: the two fields every profile has answer 200 {} when unset
            # (the spec allows this or a 404); a custom field that is not set is 404.
            return {}
        raise not_found(f"The user has no profile field {key!r}")
    return {key: body[key]}


def check_key_name(key: str) -> None:
    if len(key.encode()) > MAX_KEY_BYTES:
        raise MatrixError(
            400, "M_KEY_TOO_LARGE", f"Profile field names are at most {MAX_KEY_BYTES} bytes"
        )
    if _KEY_NAME.fullmatch(key) is None:
        raise invalid_param(
            f"{key!r} is not a profile field name: use displayname, avatar_url, m.tz or a "
            "namespaced name such as com.example.field"
        )


def validated_value(key: str, value: Any) -> Any:
    """The value to store for `key` (None: unset), or M_INVALID_PARAM."""
    if value is None:
        # spec: servers MAY reject null; storing it would read back as "no such field"
        raise invalid_param(f"'{key}' cannot be null; use DELETE to remove the field")
    if key == DISPLAYNAME:
        if not isinstance(value, str):
            raise invalid_param("'displayname' must be a string")
        if len(value) > MAX_DISPLAYNAME_LENGTH:
            raise invalid_param(
                f"The display name is too long (at most {MAX_DISPLAYNAME_LENGTH} characters)"
            )
        # an empty (or blank) display name unsets it, as in Synapse
        return value.strip() or None
    if key == AVATAR_URL:
        if not isinstance(value, str):
            raise invalid_param("'avatar_url' must be a string")
        if value == "":
            return None
        if len(value) > MAX_AVATAR_URL_LENGTH:
            raise invalid_param(
                f"The avatar URL is too long (at most {MAX_AVATAR_URL_LENGTH} characters)"
            )
        # The spec asks clients for an mxc:// URI but does not have servers refuse
        # anything else; Synapse stores any string (clients and bots set http URLs), and
        # clients must cope with a member event's avatar that is not mxc anyway.
        return value
    if key == TIME_ZONE and not isinstance(value, str):
        raise invalid_param("'m.tz' must be a string naming an IANA time zone")
    return value


def _with_value(profile: Profile, key: str, value: Any) -> Profile:
    if key == DISPLAYNAME:
        return replace(profile, displayname=value)
    if key == AVATAR_URL:
        return replace(profile, avatar_url=value)
    fields = dict(profile.fields)
    if value is None:
        fields.pop(key, None)
    else:
        fields[key] = value
    return replace(profile, fields=fields)


def _check_size(profile: Profile) -> None:
    size = len(orjson.dumps(profile_json(profile)))
    if size > MAX_PROFILE_BYTES:
        raise MatrixError(
            400,
            "M_PROFILE_TOO_LARGE",
            f"The profile would be {size} bytes; profiles are limited to {MAX_PROFILE_BYTES}",
        )


class ProfileService:
    def __init__(
        self,
        config: HomeserverConfig,
        store: ProfileStore,
        shares_room: SharedRoomCheck = no_rooms_yet,
        *,
        remote: RemoteProfileQuery,
    ) -> None:
        self._config = config
        self._store = store
        self._shares_room = shares_room
        self._remote = remote
        self._listeners: list[ProfileChangeListener] = []
        # run with the requester's user ID before any change; raising refuses it (a
        # suspended account may not change profiles: services/suspension.py)
        self.before_change: list[Callable[[str], Awaitable[None]]] = []

    def on_change(self, listener: ProfileChangeListener) -> None:
        self._listeners.append(listener)

    @property
    def requires_auth_for_lookups(self) -> bool:
        return self._config.require_auth_for_profile_requests

    @property
    def limits_lookups_to_shared_rooms(self) -> bool:
        return self._config.limit_profile_requests_to_users_who_share_rooms

    def _is_local(self, user_id: str) -> bool:
        return user_id.partition(":")[2] == self._config.server_name

    @staticmethod
    def _check_user_id(user_id: str) -> None:
        localpart, colon, server = user_id[1:].partition(":")
        if not user_id.startswith("@") or not localpart or not colon or not server:
            raise invalid_param(f"{user_id!r} is not a valid user ID")

    async def _check_visible(self, target: str, requester: str | None) -> None:
        self._check_user_id(target)
        if (
            self.limits_lookups_to_shared_rooms
            and requester is not None
            and requester != target
            and not await self._shares_room(requester, target)
        ):
            raise forbidden("You do not share a room with this user")

    async def _local_profile(self, target: str) -> Profile:
        profile = await self._store.get_profile(target)
        if profile is None:
            raise not_found()
        return profile

    async def get_profile(self, target: str, requester: str | None) -> dict[str, Any]:
        """GET /profile/{userId}: every field that is set; 404 if none is. A user of
        another server: what their server answers (as Synapse, passed on as it came)."""
        await self._check_visible(target, requester)
        if not self._is_local(target):
            return await self._remote(target, None)
        body = profile_json(await self._local_profile(target))
        if not body:
            raise not_found()
        return body

    async def get_field(self, target: str, key: str, requester: str | None) -> dict[str, Any]:
        check_key_name(key)
        await self._check_visible(target, requester)
        if self._is_local(target):
            body = profile_json(await self._local_profile(target))
        else:
            body = await self._remote(target, key)
        return _one_field(body, key)

    async def federation_query(self, target: str, field: str | None) -> dict[str, Any]:
        """GET /_matrix/federation/v1/query/profile: the profile of a user of this server,
        or only `field` of it, for another server."""
        if not self._config.allow_profile_lookup_over_federation:
            # spec: query.yaml - servers may refuse profile lookups with 403 M_FORBIDDEN
            raise forbidden("Profile lookup over federation is disabled on this homeserver")
        self._check_user_id(target)
        if not self._is_local(target):
            raise invalid_param(f"{target} is not a user of this homeserver")
        if field is not None:
            check_key_name(field)
        body = profile_json(await self._local_profile(target))
        return body if field is None else _one_field(body, field)

    async def set_field(
        self,
        target: str,
        key: str,
        value: Any,
        *,
        requester: str,
        is_admin: bool,
        is_guest: bool,
    ) -> ProfileChange:
        """PUT /profile/{userId}/{keyName}: `value` as the request body gave it."""
        self._check_user_id(target)
        check_key_name(key)
        value = validated_value(key, value)
        return await self._change(target, key, value, requester, is_admin, is_guest)

    async def delete_field(
        self, target: str, key: str, *, requester: str, is_admin: bool, is_guest: bool
    ) -> ProfileChange:
        """DELETE /profile/{userId}/{keyName}; deleting an absent field succeeds."""
        self._check_user_id(target)
        check_key_name(key)
        return await self._change(target, key, None, requester, is_admin, is_guest)

    async def _change(
        self,
        target: str,
        key: str,
        value: Any,
        requester: str,
        is_admin: bool,
        is_guest: bool,
    ) -> ProfileChange:
        for check in self.before_change:
            await check(requester)
        by_admin = is_admin and target != requester
        if target != requester and not is_admin:
            raise forbidden("You cannot change another user's profile")
        if not self._is_local(target):
            raise MatrixError(400, "M_INVALID_PARAM", "That user is not on this server")
        if is_guest and key != DISPLAYNAME:
            # spec: guest access - guests may only change their display name
            raise MatrixError(
                403, "M_GUEST_ACCESS_FORBIDDEN", "Guests may only change their display name"
            )

        def change(profile: Profile) -> Profile:
            if not is_admin:
                self._check_switches(profile, key)
            after = _with_value(profile, key, value)
            _check_size(after)
            return after

        result = await self._store.modify_profile(target, change)
        if result is None:
            raise not_found("No such user")
        update = ProfileChange(target, result[0], result[1], by_admin)
        if update.before != update.after:
            await self._announce(update)
        return update

    def _check_switches(self, profile: Profile, key: str) -> None:
        # As Synapse: with a switch off, a user who has no display name (or avatar) yet may
        # still set a first one, e.g. after single sign-on registration.
        if key == DISPLAYNAME and not self._config.enable_set_displayname and profile.displayname:
            raise forbidden("Changing your display name is disabled on this server")
        if key == AVATAR_URL and not self._config.enable_set_avatar_url and profile.avatar_url:
            raise forbidden("Changing your avatar is disabled on this server")

    async def _announce(self, update: ProfileChange) -> None:
        for listener in self._listeners:
            try:
                await listener(update)
            except Exception:
                # the profile is already changed; a failed follow-up must not undo the reply
                logger.exception("Profile change listener failed for %s", update.user_id)
