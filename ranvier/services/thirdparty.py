"""Third-party networks (spec: client-server-api "Third-party Networks"; the service side in
application-service-api "Third-party Networks"): the protocols this server's bridges speak,
and lookups of users and locations on those networks.

Application services answer all of it. A protocol is known when a registration declares it
(`protocols`); its metadata is what the services declaring it answer at
`/_matrix/app/v1/thirdparty/protocol/{protocol}`, the first answer's fields with the
instances of every answer, each instance given `instance_id` "{service id}|{network_id}"
(Synapse's form, which /publicRooms' `third_party_instance_id` names). Lookups on one
protocol go to every service declaring it, reverse lookups (`alias`, `userid`) to every
service declaring any; the results are concatenated. A service that fails or answers
something malformed is left out and logged, never an error for the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from cachetools import TTLCache

from ranvier.config.appservices import AppService
from ranvier.services.appservice.client import AppServiceClient
from ranvier.services.appservice.registry import AppServiceRegistry

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

# what a lookup looks for: the spec's /thirdparty/user and /thirdparty/location
EntityKind = Literal["user", "location"]

# the field naming the Matrix side of each result (spec: ThirdPartyUser, ThirdPartyLocation)
_MATRIX_ID_FIELD: dict[EntityKind, str] = {"user": "userid", "location": "alias"}

# Clients ask for the protocols whenever they open the room directory, and a bridge's
# metadata changes only when it is reconfigured; Synapse likewise reuses an answer (SyTest's
# single-protocol test relies on it). Failures are not kept, so a service that was down is
# asked again next time.
PROTOCOL_CACHE_SECONDS = 300.0
_PROTOCOL_CACHE_SIZE = 1000


class ThirdPartyLookup:
    def __init__(self, registry: AppServiceRegistry, client: AppServiceClient) -> None:
        self._registry = registry
        self._client = client
        self._metadata_by_service_protocol: TTLCache[tuple[str, str], JsonDict] = TTLCache(
            _PROTOCOL_CACHE_SIZE, PROTOCOL_CACHE_SECONDS
        )

    def _declared_protocols(self) -> list[str]:
        return list(dict.fromkeys(p for service in self._registry.all for p in service.protocols))

    async def protocols(self) -> dict[str, JsonDict]:
        """Protocol name -> its metadata, for every protocol a service here answers for."""
        names = self._declared_protocols()
        found = await asyncio.gather(*(self.protocol(name) for name in names))
        return {
            name: metadata
            for name, metadata in zip(names, found, strict=True)
            if metadata is not None
        }

    async def protocol(self, name: str) -> JsonDict | None:
        """One protocol's metadata, None when no service declaring it answers for it."""
        services = self._registry.speaking(name)
        answers = await asyncio.gather(*(self._metadata(s, name) for s in services))
        valid = [answer for answer in answers if answer is not None]
        if not valid:
            return None
        merged = dict(valid[0])
        merged["instances"] = [instance for answer in valid for instance in answer["instances"]]
        return merged

    async def _metadata(self, service: AppService, protocol: str) -> JsonDict | None:
        key = (service.id, protocol)
        cached = self._metadata_by_service_protocol.get(key)
        if cached is not None:
            return cached
        answer = await self._client.protocol(service, protocol)
        if not answer.ok:
            return None
        metadata = _checked_metadata(service, protocol, answer.body)
        if metadata is not None:
            self._metadata_by_service_protocol[key] = metadata
        return metadata

    async def query(
        self, kind: EntityKind, protocol: str | None, fields: Mapping[str, Sequence[str]]
    ) -> list[JsonDict]:
        """The users or locations matching `fields`: on one protocol's network, or with
        `protocol` None, the reverse lookup (the `alias` or `userid` field) on every one."""
        if protocol is None:
            services = [s for s in self._registry.all if s.protocols]
        else:
            services = self._registry.speaking(protocol)
        answers = await asyncio.gather(
            *(self._client.thirdparty_lookup(s, kind, protocol, fields) for s in services)
        )
        found: list[JsonDict] = []
        for service, answer in zip(services, answers, strict=True):
            if answer.ok:
                found += _checked_results(service, kind, answer.body)
        return found


def _checked_metadata(service: AppService, protocol: str, body: Any) -> JsonDict | None:
    """The service's answer with instance IDs added, or None (logged) if it is not protocol
    metadata. Only `instances` is checked, as Synapse does: the other fields pass through."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        logger.warning(
            "Application service %s answered malformed metadata for protocol %s: %.200r",
            service.id,
            protocol,
            body,
        )
        return None
    instances = []
    for instance in body["instances"]:
        if not isinstance(instance, dict):
            logger.warning(
                "Application service %s: leaving out a protocol %s instance that is not an "
                "object: %.200r",
                service.id,
                protocol,
                instance,
            )
            continue
        network_id = instance.get("network_id")
        if isinstance(network_id, str):
            instance = {**instance, "instance_id": f"{service.id}|{network_id}"}
        instances.append(instance)
    return {**body, "instances": instances}


def _checked_results(service: AppService, kind: EntityKind, body: Any) -> list[JsonDict]:
    """The well-formed results of a lookup (spec: a protocol, the Matrix ID, the fields);
    the others are logged and left out."""
    if not isinstance(body, list):
        logger.warning(
            "Application service %s answered a third-party %s lookup with something not a "
            "list: %.200r",
            service.id,
            kind,
            body,
        )
        return []
    matrix_id_field = _MATRIX_ID_FIELD[kind]
    results = []
    for result in body:
        if (
            isinstance(result, dict)
            and isinstance(result.get("protocol"), str)
            and isinstance(result.get(matrix_id_field), str)
            and isinstance(result.get("fields"), dict)
        ):
            results.append(result)
        else:
            logger.warning(
                "Application service %s: leaving out a malformed third-party %s: %.200r",
                service.id,
                kind,
                result,
            )
    return results
