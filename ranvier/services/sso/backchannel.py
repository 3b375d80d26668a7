"""Back-channel logout (OpenID Connect Back-Channel Logout 1.0): a provider with
`backchannel_logout_enabled` tells us, server to server, that one of its sessions ended, and
the devices signed in through that session are logged out.

Devices are found by the session ID (`sid`) the provider put in the ID token at sign-in,
recorded when the login token was exchanged (`record`). When the logout token also names
the subject, only devices of the user linked to that subject go, unless the provider is set
to `backchannel_logout_ignore_sub` (for providers whose `sub` differs between the two)."""

from __future__ import annotations

import logging

from ranvier.services.devices import DeviceService
from ranvier.services.sso.oidc import OidcProvider, ProviderError
from ranvier.storage.sso import ExternalIdStore, ProviderSessionStore

logger = logging.getLogger(__name__)


class LogoutRefused(Exception):
    """The logout token is unusable; the message says why (spec 2.8: answered 400)."""


class BackchannelLogout:
    def __init__(
        self,
        providers: list[OidcProvider],
        sessions: ProviderSessionStore,
        external_ids: ExternalIdStore,
        devices: DeviceService,
    ) -> None:
        self._providers = [p for p in providers if p.config.backchannel_logout_enabled]
        self._provider_ids = {p.id for p in self._providers}
        self._sessions = sessions
        self._external_ids = external_ids
        self._devices = devices

    async def record(
        self, user_id: str, device_id: str, auth_provider_id: str, session_id: str
    ) -> None:
        """A device signed in through a provider session, for its logout later."""
        if auth_provider_id in self._provider_ids:
            await self._sessions.add(user_id, device_id, auth_provider_id, session_id)

    async def on_devices_deleted(self, user_id: str, device_ids: list[str]) -> None:
        await self._sessions.forget_devices(user_id, device_ids)

    async def logout(self, logout_token: str) -> int:
        """Log out the devices of the session the token names; how many went."""
        provider, claims = await self._verified(logout_token)
        session_id = claims.get("sid")
        if not isinstance(session_id, str):
            # without a session ID the whole of a user's sign-ins would have to go; as
            # Synapse, only session-scoped logouts are done
            raise LogoutRefused("The logout token names no session (sid)")
        devices = await self._sessions.devices_of(provider.id, session_id)
        subject = claims.get("sub")
        if isinstance(subject, str) and not provider.config.backchannel_logout_ignore_sub:
            owner = await self._external_ids.user_for(provider.id, subject)
            devices = [(user, device) for user, device in devices if user == owner]
        by_user: dict[str, list[str]] = {}
        for user_id, device_id in devices:
            by_user.setdefault(user_id, []).append(device_id)
        for user_id, device_ids in by_user.items():
            await self._devices.delete_devices(user_id, device_ids)
        logger.info("Back-channel logout from %s ended %d device(s)", provider.id, len(devices))
        return len(devices)

    async def _verified(self, logout_token: str) -> tuple[OidcProvider, dict[str, object]]:
        problems = []
        for provider in self._providers:
            try:
                return provider, await provider.check_logout_token(logout_token)
            except ProviderError as exc:
                problems.append(f"{provider.id}: {exc.description}")
        raise LogoutRefused("; ".join(problems) or "No provider has back-channel logout on")
