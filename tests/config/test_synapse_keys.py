"""Synapse's options in homeserver.yaml: which start Ranvier, which refuse it and why, and
the log configs Synapse writes. The reference (docs/configuration.md) lists every key."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from ranvier.config import load_config
from ranvier.config.models import SIZED_CACHES, HomeserverConfig
from ranvier.config.synapse_keys import RANVIER_ONLY, UNSUPPORTED, UNUSED, reference_tables
from tests.config.files import refusal, write_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_harmless_synapse_keys_are_accepted_and_named_as_not_used(generated: Path) -> None:
    config = load_config(
        write_config(
            generated,
            macaroon_secret_key="x",
            report_stats_endpoint="https://stats.example",
            report_stats=False,  # asks for nothing: not listed
        )
    )
    assert config.not_used_keys == ("macaroon_secret_key", "report_stats_endpoint")


@pytest.mark.parametrize(
    ("key", "value", "feature"),
    [
        ("saml2_config", {"sp_config": {}}, "single sign-on (SAML)"),
        ("cas_config", {"enabled": True, "server_url": "https://cas"}, "single sign-on (CAS)"),
        ("oidc_config", {"issuer": "https://id.example"}, "move its options into one entry"),
        ("sentry", {"dsn": "https://sentry.example"}, "reporting errors to Sentry"),
        ("ui_auth", {"session_timeout": "15s"}, "skipping user-interactive auth"),
        ("block_non_admin_invites", True, "blocking invites from users who are not admins"),
        ("enable_search", False, "turning message search off"),
        ("caches", {"cache_autotuning": {"max_cache_memory_usage": "1G"}}, "auto-tuning"),
    ],
)
def test_features_ranvier_lacks_are_refused_by_name(
    generated: Path, key: str, value: object, feature: str
) -> None:
    message = refusal(write_config(generated, **{key: value}))
    assert "is not supported by Ranvier yet" in message
    assert feature in message
    assert "unknown option" not in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("oidc_providers", []),
        ("sentry", None),
        ("cas_config", {"enabled": False, "server_url": "https://cas"}),
        ("enable_search", True),
        ("modules", None),
    ],
)
def test_lacking_features_switched_off_are_accepted_quietly(
    generated: Path, key: str, value: object
) -> None:
    assert load_config(write_config(generated, **{key: value})).not_used_keys == ()


def test_misspelt_synapse_key_gets_did_you_mean(generated: Path) -> None:
    message = refusal(write_config(generated, oidc_provider=[]))
    assert "oidc_provider: unknown option" in message
    assert "did you mean 'oidc_providers'?" in message


@pytest.mark.parametrize(
    ("listener", "expected"),
    [
        ({"port": 9000, "type": "metrics"}, "Prometheus metrics, which are off"),
        ({"port": 9000, "type": "manhole"}, "the manhole"),
        ({"port": 9000, "type": "replication"}, "workers"),
        ({"port": 9000, "tls": True}, "terminate TLS at a reverse proxy"),
        ({"port": 9000, "resources": [{"names": ["client"], "compress": True}]}, "compress"),
        (
            {"port": 9000, "resources": [{"names": ["client", "static"]}]},
            "'static' cannot be served",
        ),
    ],
)
def test_listeners_that_would_do_nothing_are_refused(
    generated: Path, listener: dict[str, object], expected: str
) -> None:
    message = refusal(write_config(generated, listeners=[listener]))
    assert "listeners[0]" in message and expected in message


def test_cache_factors_size_the_named_caches(generated: Path) -> None:
    config = load_config(
        write_config(
            generated,
            event_cache_size="10K",
            caches={"global_factor": 2.0, "per_cache_factors": {"events": 0.5}},
        )
    )
    assert config.caches.size("events", config.event_cache_size) == 5 * 1024
    assert config.caches.size("redactions", 1000) == 2000
    assert config.caches.ttl_seconds == 30 * 60


def test_cache_expiry_off(generated: Path) -> None:
    config = load_config(write_config(generated, caches={"expire_caches": False}))
    assert config.caches.ttl_seconds is None


def test_unknown_cache_name_is_refused_with_the_known_ones(generated: Path) -> None:
    message = refusal(write_config(generated, caches={"per_cache_factors": {"*getEvent*": 2}}))
    assert "Ranvier has no cache named '*getEvent*'" in message
    assert ", ".join(SIZED_CACHES) in message


def test_txn_limit_refused(generated: Path) -> None:
    raw = yaml.safe_load(generated.read_text())
    raw["database"]["txn_limit"] = 10
    generated.write_text(yaml.safe_dump(raw))
    assert "database.txn_limit:" in refusal(generated)


def test_registration_shared_secret_from_a_file(generated: Path) -> None:
    (generated.parent / "secret").write_text("s3cret\n")
    raw = yaml.safe_load(generated.read_text())
    del raw["registration_shared_secret"]
    raw["registration_shared_secret_path"] = "secret"
    generated.write_text(yaml.safe_dump(raw))
    assert load_config(generated).registration_shared_secret == "s3cret"


# -- log configs

SYNAPSE_OLD_LOG_CONFIG = """
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
  json:
    class: synapse.logging.TerseJsonFormatter
filters:
  context:
    (): synapse.logging.context.LoggingContextFilter
    request: ""
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {log}
    filters: [context]
  jsonfile:
    class: logging.FileHandler
    formatter: json
    filename: {json_log}
  buffer:
    class: synapse.logging.handlers.PeriodicallyFlushingMemoryHandler
    target: file
    capacity: 10
    flushLevel: 30
    period: 0.2
root:
  level: INFO
  handlers: [buffer, jsonfile]
disable_existing_loggers: false
"""


def test_synapse_log_config_is_translated(tmp_path: Path) -> None:
    """In a process of its own: logging set up from a file is process-wide."""
    log, json_log = tmp_path / "homeserver.log", tmp_path / "json.log"
    config = tmp_path / "log.yaml"
    config.write_text(SYNAPSE_OLD_LOG_CONFIG.format(log=log, json_log=json_log))
    script = textwrap.dedent(
        f"""
        import logging, time
        from ranvier.http.logging import current_request_id
        from ranvier.logs import setup_logging
        setup_logging({str(config)!r})
        current_request_id.set("GET-7")
        logging.getLogger("ranvier.test").info("buffered line")
        time.sleep(1)  # the buffer's period (0.2 s) flushes it without a shutdown
        # SIGHUP's reopening (logrotate) reaches the file behind the buffer too
        from ranvier.logs import reopen_log_files
        assert reopen_log_files() == 2
        print(open({str(log)!r}).read(), end="")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert " - INFO - GET-7 - buffered line" in result.stdout
    assert '"log": "buffered line"' in json_log.read_text()
    assert '"request": "GET-7"' in json_log.read_text()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("version: 1\nhandlers: {h: {class: logging.StreamHandler", "is not valid YAML"),
        (
            "version: 1\nhandlers: {h: {class: synapse.logging.RemoteHandler}}",
            "names Synapse's 'synapse.logging.RemoteHandler' (handlers.h)",
        ),
    ],
)
def test_unusable_log_config_refused(generated: Path, content: str, expected: str) -> None:
    config = load_config(generated)
    assert config.log_config is not None
    Path(config.log_config).write_text(content)
    message = refusal(generated)
    assert "log_config:" in message and expected in message


# -- the reference lists every key


def test_configuration_reference_lists_every_key() -> None:
    text = DOCS.read_text()
    start = text.index("<!-- synapse-keys:start")
    block = text[text.index("\n", start) + 1 : text.index("<!-- synapse-keys:end -->")]
    assert block == reference_tables(), (
        "docs/configuration.md's Synapse options differ from ranvier/config/synapse_keys.py: "
        "paste reference_tables() between the synapse-keys markers"
    )
    named = set(text.split("`")[1::2])
    missing = [
        field
        for field in HomeserverConfig.model_fields
        if not any(name == field or name.startswith(f"{field}.") for name in named)
    ]
    assert missing == [], f"docs/configuration.md does not describe: {missing}"


def test_classification_is_one_place() -> None:
    fields = set(HomeserverConfig.model_fields)
    assert not set(UNSUPPORTED) & set(UNUSED)
    assert not (set(UNSUPPORTED) | set(UNUSED)) & fields
    assert set(RANVIER_ONLY) <= fields
