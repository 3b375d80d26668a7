"""Reading /_synapse/metrics the way Prometheus does: its text format, parsed by
prometheus_client's own parser, into samples a test can look up by name and labels."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.client import request

SERVER_NAME = "test.localhost"


@dataclass(frozen=True)
class Scrape:
    # (sample name, sorted label pairs) -> value
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    families: frozenset[str]

    def value(self, sample: str, /, **labels: str) -> float:
        """The sample's value; 0 when the series does not exist yet (as PromQL's rate
        sees a counter that was never incremented)."""
        return self.samples.get((sample, tuple(sorted(labels.items()))), 0.0)

    def matching(self, sample: str, /, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every series of `sample` whose labels include `labels`."""
        wanted = set(labels.items())
        return {
            key: value
            for (name, key), value in self.samples.items()
            if name == sample and wanted <= set(key)
        }


def parse(text: str) -> Scrape:
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(samples, frozenset(families))


def scrape(url: str) -> Scrape:
    reply = request("GET", url)
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(reply.body.decode())
