"""Asking application services about users and aliases nobody here knows yet (spec:
application-service-api "Querying").

A bridge need not create every puppet user or portal room in advance: when something here
touches a local user ID or room alias in its namespace that does not exist, the service is
asked (`GET /_matrix/app/v1/users/{userId}`, `/rooms/{roomAlias}`), may create it there and
then, and answers 2xx if it did. Services are asked one at a time, in registration order,
until one says it did (as Synapse). A service that is down or says no changes nothing: the
caller answers as it would have without services.
"""

from __future__ import annotations

import logging

from ranvier.services.appservice.client import AppServiceClient
from ranvier.services.appservice.registry import AppServiceRegistry
from ranvier.storage.users import UserStore

logger = logging.getLogger(__name__)


class AppServiceQueries:
    def __init__(
        self,
        registry: AppServiceRegistry,
        client: AppServiceClient,
        users: UserStore,
    ) -> None:
        self._registry = registry
        self._client = client
        self._users = users

    async def ask_for_alias(self, alias: str) -> bool:
        """Whether a service whose alias namespace matches `alias` says it has just created
        it; the caller looks the alias up again."""
        for service in self._registry.with_alias_in_namespace(alias):
            if await self._client.query_alias(service, alias):
                logger.info("Application service %s provided the alias %s", service.id, alias)
                return True
        return False

    async def ask_for_user(self, user_id: str) -> bool:
        """Whether a service whose user namespace holds `user_id`, a local user nobody has
        registered, says it has just created it; the caller looks the user up again.
        Registered users and the services' own senders are not asked about (as Synapse)."""
        services = self._registry.with_user_in_namespace(user_id)
        if not services or any(service.sender == user_id for service in self._registry.all):
            return False
        if await self._users.get_user(user_id) is not None:
            return False
        for service in services:
            if await self._client.query_user(service, user_id):
                logger.info("Application service %s provided the user %s", service.id, user_id)
                return True
        return False
