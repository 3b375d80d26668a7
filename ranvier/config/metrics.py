"""Start-up refusals for the Prometheus metrics options: nothing that asks for metrics is
accepted while `enable_metrics` is off, since it would then quietly do nothing."""

from __future__ import annotations

from ranvier.config.models import HomeserverConfig

TURN_ON = "set 'enable_metrics: true'"


def metrics_problems(config: HomeserverConfig) -> list[str]:
    problems: list[str] = []
    for index, listener in enumerate(config.listeners):
        where = f"listeners[{index}]"
        if listener.type == "metrics":
            if not config.enable_metrics:
                # Synapse only warns and leaves the port closed; a scraper then sees a
                # dead target with no reason given
                problems.append(
                    f"{where}: a metrics listener serves Prometheus metrics, which are off; "
                    f"{TURN_ON} or remove this listener"
                )
            if "resources" in listener.model_fields_set and any(
                resource.names for resource in listener.resources
            ):
                problems.append(
                    f"{where}.resources: a metrics listener serves only the metrics; remove "
                    "its resources, or make it 'type: http' with the 'metrics' resource"
                )
            continue
        if not config.enable_metrics and any(
            "metrics" in resource.names for resource in listener.resources
        ):
            problems.append(
                f"{where}.resources: 'metrics' serves Prometheus metrics, which are off; "
                f"{TURN_ON} or remove 'metrics' from the names"
            )
    if config.metrics_flags.known_servers:
        problems.append(
            "metrics_flags.known_servers: the synapse_federation_known_servers gauge is not "
            "offered by Ranvier; remove the flag or set it to false"
        )
    if config.federation_metrics_domains and not config.enable_metrics:
        problems.append(
            f"federation_metrics_domains: labels metrics, which are off; {TURN_ON} or "
            "remove the option"
        )
    return problems
