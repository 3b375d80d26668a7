"""The policy users consent to (Synapse's `user_consent`): the m.login.terms stage of
registration (spec: client-server-api "Terms of service at registration"), the consent page's
signed links, recording a user's consent, and refusing their events until they consent when
`block_events_error` is set.

The page at /_matrix/consent is reached through links signed with `form_secret` (an HMAC of
the user named in the link), so a link mailed or shown to one user cannot consent for another.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ranvier.clock import now_ms
from ranvier.config.consent import UserConsentConfig
from ranvier.errors import MatrixError
from ranvier.protocol.event_builder import EventTemplate
from ranvier.services.uia import UIASession
from ranvier.storage.users import UserStore

if TYPE_CHECKING:
    # (server notices make accounts, whose registration flows name this module's stage)
    from ranvier.services.server_notices import ServerNoticesService

logger = logging.getLogger(__name__)

STAGE_TYPE = "m.login.terms"
MEMBER = "m.room.member"
CONSENT_PATH = "/_matrix/consent"
# the key of the policy in m.login.terms' params, as Synapse names it
POLICY_KEY = "privacy_policy"
# a version names a template file: nothing that could leave the template directory
SAFE_VERSION = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
# user types that never need to consent, as Synapse: support and bot accounts
EXEMPT_USER_TYPES = frozenset({"support", "bot"})


class ConsentService:
    def __init__(
        self,
        config: UserConsentConfig,
        form_secret: str,
        public_baseurl: str,
        server_name: str,
        users: UserStore,
        notices: ServerNoticesService | None = None,
    ) -> None:
        self.config = config
        # the server notices the policy is announced by, and whose system user sends
        # without consenting (None: server notices are off)
        self._notices = notices
        self._secret = form_secret.encode()
        self._public_baseurl = public_baseurl
        self._server_name = server_name
        self._users = users
        # users known to have accepted the current version: consent is never withdrawn, and
        # a new version means a restart with the new config
        self._consented: set[str] = set()
        # users told of the current version, or who need not be
        self._noticed: set[str] = set()

    def user_mac(self, user: str) -> str:
        """The signature of a consent link for `user` (as written in the link's `u`)."""
        return hmac.new(self._secret, user.encode(), hashlib.sha256).hexdigest()

    def check_mac(self, user: str, mac: str) -> None:
        if not hmac.compare_digest(self.user_mac(user), mac):
            raise MatrixError(403, "M_FORBIDDEN", "This consent link is not valid for this user")

    def qualified_user_id(self, user: str) -> str:
        """A link's `u` (a localpart, or a full user ID) as a user ID."""
        return user if user.startswith("@") else f"@{user}:{self._server_name}"

    def consent_uri(self, user_id: str) -> str:
        """The signed link at which `user_id` reads and accepts the policy."""
        localpart = user_id[1:].partition(":")[0]
        query = urlencode({"u": localpart, "h": self.user_mac(localpart)})
        return f"{self._public_baseurl}{CONSENT_PATH.lstrip('/')}?{query}"

    def policy_url(self) -> str:
        """The public (unsigned) page of the current policy, for the m.login.terms stage."""
        query = urlencode({"v": self.config.version})
        return f"{self._public_baseurl}{CONSENT_PATH.lstrip('/')}?{query}"

    def policy_version(self, requested: str | None) -> str:
        """The version a page asks for (the current one by default), checked to be safe as
        a file name."""
        version = self.config.version if requested is None else requested
        if not SAFE_VERSION.match(version):
            raise MatrixError(400, "M_INVALID_PARAM", f"{version!r} is not a policy version")
        return version

    async def has_consented(self, user_id: str, version: str | None = None) -> bool:
        version = self.config.version if version is None else version
        if version == self.config.version and user_id in self._consented:
            return True
        consented = await self._users.get_consent_version(user_id) == version
        if consented and version == self.config.version:
            self._consented.add(user_id)
        return consented

    async def require_user(self, user_id: str) -> None:
        if await self._users.get_user(user_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", "No such user on this server")

    async def record_consent(self, user_id: str, version: str) -> None:
        await self.require_user(user_id)
        await self._users.set_consent(user_id, version, now_ms())
        if version == self.config.version:
            self._consented.add(user_id)

    async def registered_through(self, user_id: str, completed: Mapping[str, Any]) -> None:
        """An AccountService hook: a registration that passed m.login.terms accepted the
        current policy."""
        if STAGE_TYPE in completed:
            await self.record_consent(user_id, self.config.version)

    async def check_send(self, template: EventTemplate) -> None:
        """A RoomEventSender check (wired when `block_events_error` is set): a local user
        who has not accepted the current policy sends nothing, as Synapse; accounts of
        application services, support and bot accounts are exempt."""
        error = self.config.block_events_error
        if error is None or await self.has_consented(template.sender):
            return
        if await self._is_server_notice_traffic(template):
            return
        user = await self._users.get_user(template.sender)
        if user is None or user.appservice_id is not None or user.user_type in EXEMPT_USER_TYPES:
            return
        uri = self.consent_uri(template.sender)
        raise MatrixError(
            403, "M_CONSENT_NOT_GIVEN", _format_block_error(error, uri), consent_uri=uri
        )

    async def _is_server_notice_traffic(self, template: EventTemplate) -> bool:
        """The system user's notices, and a user's own membership in their notices room
        (they must be able to join it to read the notice asking them to consent)."""
        if self._notices is None or not self._notices.enabled:
            return False
        if template.sender == self._notices.system_user_id:
            return True
        return (
            template.type == MEMBER
            and template.room_id is not None
            and template.state_key == template.sender
            and await self._notices.is_notice_room(template.sender, template.room_id)
        )

    async def on_user_syncing(self, user_id: str, is_guest: bool) -> None:
        """Send the user `server_notice_content` (with their consent link) once per policy
        version, if they have not accepted it, as Synapse does when a user syncs."""
        content = self.config.server_notice_content
        if content is None or self._notices is None or user_id in self._noticed:
            return
        if is_guest and not self.config.send_server_notice_to_guests:
            return
        accepted, noticed = await self._users.get_consent_notice_state(user_id)
        if self.config.version not in (accepted, noticed):
            notice = _substituted(content, {"consent_uri": self.consent_uri(user_id)})
            try:
                await self._notices.send_notice(
                    self._notices.system_user_id, user_id, "m.room.message", None, notice, None
                )
            except Exception:
                # the user's sync goes on; the next one tries again
                logger.exception("Could not send %s the consent server notice", user_id)
                return
            await self._users.set_consent_server_notice_sent(user_id, self.config.version)
        self._noticed.add(user_id)

    def stage(self) -> TermsStage:
        return TermsStage(self)


def _substituted(value: Any, values: Mapping[str, str]) -> Any:
    """`value` with `%(name)s` in every string filled from `values` (a string the admin
    wrote with a stray % stays as it is)."""
    if isinstance(value, str):
        try:
            return value % values
        except (KeyError, ValueError, TypeError):
            return value
    if isinstance(value, Mapping):
        return {key: _substituted(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_substituted(item, values) for item in value]
    return value


def _format_block_error(error: str, uri: str) -> str:
    try:
        return error % {"consent_uri": uri}
    except (KeyError, ValueError, TypeError):
        # an admin's text with a stray % still tells the user where to go
        return f"{error} {uri}"


class TermsStage:
    """m.login.terms: the client showed the policy and the user accepted it. Nothing to check
    (spec: the client submits just the type and session); the registration records it."""

    def __init__(self, consent: ConsentService) -> None:
        self._consent = consent

    async def check(self, auth: Any, session: UIASession) -> Any:
        return self._consent.config.version

    async def on_complete(self, session: UIASession) -> None:
        pass

    def params(self) -> dict[str, Any] | None:
        config = self._consent.config
        return {
            "policies": {
                POLICY_KEY: {
                    "version": config.version,
                    "en": {"name": config.policy_name, "url": self._consent.policy_url()},
                }
            }
        }
