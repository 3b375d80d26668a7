"""The registered application services, looked up by token, ID, namespace or protocol.

Registrations come from config (config/appservices.py) and never change while the process
runs; this is the one place that answers "which service owns this user, alias or room".
"""

from __future__ import annotations

from collections.abc import Sequence

from ranvier.config.appservices import AppService


class AppServiceRegistry:
    def __init__(self, services: Sequence[AppService]) -> None:
        self.all: tuple[AppService, ...] = tuple(services)
        self._by_token = {service.as_token: service for service in services}
        self._by_id = {service.id: service for service in services}

    def __bool__(self) -> bool:
        return bool(self.all)

    def by_token(self, as_token: str) -> AppService | None:
        return self._by_token.get(as_token)

    def by_id(self, appservice_id: str) -> AppService | None:
        return self._by_id.get(appservice_id)

    def exclusive_owner_of_user(self, user_id: str) -> AppService | None:
        """The service that reserved `user_id` (its sender, or an exclusive namespace)."""
        return next((s for s in self.all if s.is_exclusive_user(user_id)), None)

    def exclusive_owner_of_alias(self, alias: str) -> AppService | None:
        return next((s for s in self.all if s.is_exclusive_alias(alias)), None)

    def with_user_in_namespace(self, user_id: str) -> list[AppService]:
        return [s for s in self.all if s.is_user_in_namespace(user_id)]

    def with_alias_in_namespace(self, alias: str) -> list[AppService]:
        return [s for s in self.all if s.is_alias_in_namespace(alias)]

    def speaking(self, protocol: str) -> list[AppService]:
        """The services that declare `protocol` in their registration's `protocols`."""
        return [s for s in self.all if protocol in s.protocols]
