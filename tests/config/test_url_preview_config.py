"""The URL preview options: the start-up refusal without a blacklist, bad ranges and
patterns refused by name, and the generated config's commented list of Synapse's ranges."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ranvier.config import load_config
from ranvier.config.generate import SYNAPSE_IP_RANGE_BLACKLIST
from tests.config.files import refusal, write_config


def test_previews_are_off_by_default_with_synapse_defaults(generated: Path) -> None:
    config = load_config(generated)
    assert config.url_preview_enabled is False
    assert config.url_preview_ip_range_blacklist is None
    assert config.url_preview_ip_range_whitelist == []
    assert config.url_preview_url_blacklist == []
    assert config.url_preview_accept_language == ["en"]
    assert config.max_spider_size == 10 * 1024 * 1024
    assert config.url_preview_cache_duration == 60 * 60 * 1000


def test_enabling_previews_without_a_blacklist_refuses_start_up_with_the_fix(
    generated: Path,
) -> None:
    message = refusal(write_config(generated, url_preview_enabled=True))
    assert "url_preview_ip_range_blacklist" in message
    assert "url_preview_enabled: false" in message


def test_an_explicit_blacklist_even_empty_is_accepted(generated: Path) -> None:
    config = load_config(
        write_config(generated, url_preview_enabled=True, url_preview_ip_range_blacklist=[])
    )
    assert config.url_preview_ip_range_blacklist == []


def test_options_parse_sizes_and_durations(generated: Path) -> None:
    config = load_config(
        write_config(
            generated,
            url_preview_enabled=True,
            url_preview_ip_range_blacklist=["10.0.0.0/8", "fc00::/7", "192.168.1.1"],
            url_preview_ip_range_whitelist=["10.1.2.3"],
            url_preview_url_blacklist=[{"netloc": "*.example.com", "path": "^/private"}],
            max_spider_size="64K",
            url_preview_cache_duration="10m",
            url_preview_accept_language=["de", "en;q=0.5"],
        )
    )
    assert config.max_spider_size == 64 * 1024
    assert config.url_preview_cache_duration == 10 * 60 * 1000
    assert config.url_preview_ip_range_whitelist == ["10.1.2.3"]


@pytest.mark.parametrize(
    "key", ["url_preview_ip_range_blacklist", "url_preview_ip_range_whitelist"]
)
def test_a_bad_ip_range_is_refused_by_name(generated: Path, key: str) -> None:
    message = refusal(write_config(generated, **{key: ["10.0.0.0/8", "not-a-range"]}))
    assert key in message and "not-a-range" in message


def test_a_url_pattern_on_an_unknown_component_is_refused(generated: Path) -> None:
    message = refusal(
        write_config(generated, url_preview_url_blacklist=[{"domain": "example.com"}])
    )
    assert "url_preview_url_blacklist" in message and "'domain'" in message
    assert "netloc" in message


def test_a_bad_regex_pattern_is_refused(generated: Path) -> None:
    message = refusal(write_config(generated, url_preview_url_blacklist=[{"path": "^(unclosed"}]))
    assert "url_preview_url_blacklist" in message and "^(unclosed" in message


def test_generated_config_lists_synapses_ranges_commented(generated: Path) -> None:
    text = generated.read_text()
    assert "url_preview_enabled: false" in text
    listed = [
        line.removeprefix("#  - ").strip("'")
        for line in text.split("#url_preview_ip_range_blacklist:\n", 1)[1].splitlines()
        if line.startswith("#  - ")
    ][: len(SYNAPSE_IP_RANGE_BLACKLIST)]
    assert tuple(listed) == SYNAPSE_IP_RANGE_BLACKLIST
    assert {"127.0.0.0/8", "10.0.0.0/8", "169.254.0.0/16", "::1/128", "fe80::/10"} <= set(listed)
    # uncommented, the list is what an admin enables previews with
    uncommented = yaml.safe_load(
        text.replace("#url_preview_ip_range_blacklist:", "url_preview_ip_range_blacklist:")
        .replace("#  - '", "  - '")
        .replace("url_preview_enabled: false", "url_preview_enabled: true")
    )
    assert uncommented["url_preview_ip_range_blacklist"][:19] == list(SYNAPSE_IP_RANGE_BLACKLIST)
