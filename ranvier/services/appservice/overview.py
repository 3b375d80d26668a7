"""What an admin sees of the registered application services: one start-up log line per
service, a warning for registration keys Ranvier does not know, and the text
`ranvier appservices` prints (commands.py adds each service's backlog to it)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ranvier.config.appservices import NAMESPACE_KINDS, AppService, Namespace

logger = logging.getLogger(__name__)


def namespace_summary(namespaces: Sequence[Namespace]) -> str:
    if not namespaces:
        return "none"
    return ", ".join(
        f"{ns.regex.pattern}{' (exclusive)' if ns.exclusive else ''}" for ns in namespaces
    )


def describe(service: AppService) -> dict[str, str]:
    """Label -> value, in the order an admin reads them."""
    described = {
        "url": service.url or "none (sent nothing)",
        "sender": service.sender,
    }
    for kind in NAMESPACE_KINDS:
        described[kind] = namespace_summary(getattr(service, kind))
    if service.protocols:
        described["protocols"] = ", ".join(service.protocols)
    described["registration"] = service.source
    return described


def log_registrations(services: Sequence[AppService]) -> None:
    for service in services:
        logger.info(
            "Application service %s: %s",
            service.id,
            "; ".join(f"{label} {value}" for label, value in describe(service).items()),
        )
        if service.unknown_keys:
            # a Synapse-only or misspelt key: the service may expect something we do not do
            logger.warning(
                "Application service %s (%s): unknown registration keys, not used: %s",
                service.id,
                service.source,
                ", ".join(service.unknown_keys),
            )
