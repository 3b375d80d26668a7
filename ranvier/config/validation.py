"""Start-up refusals: options that were removed or combinations that are unsafe.

Each message says what to do instead, in the spirit of Synapse's upgrade notes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ranvier.config.models import HomeserverConfig, is_http_url

# top-level keys that once existed and now refuse start-up, with the fix
REMOVED_KEYS: dict[str, str] = {
    "log_file": "'log_file' was removed: point 'log_config' at a logging configuration file "
    "instead (ranvier generate-config writes one)",
}


def removed_key_problems(raw: dict[str, Any]) -> list[str]:
    return [fix for key, fix in REMOVED_KEYS.items() if key in raw]


def semantic_problems(config: HomeserverConfig, config_dir: Path) -> list[str]:
    problems: list[str] = []
    for index, listener in enumerate(config.listeners):
        if listener.type == "webclient":
            problems.append(
                f"listeners[{index}].type: listeners of type 'webclient' are no longer "
                "supported; remove this listener and set 'web_client_location' to the URL of "
                "a web client if you want '/' to redirect to one"
            )
    if config.web_client_location is not None and not is_http_url(config.web_client_location):
        problems.append(
            f"web_client_location: {config.web_client_location!r} is not an HTTP(S) URL; "
            "it must be the http:// or https:// address of a web client hosted elsewhere"
        )
    if config.account_threepid_delegates.email is not None:
        problems.append(
            "account_threepid_delegates.email: delegating email verification to an identity "
            "server is no longer supported; remove it and configure the 'email' section so "
            "the homeserver sends verification emails itself"
        )
    verified = (
        config.enable_registration_captcha
        or config.registration_requires_token
        or "email" in config.registrations_require_3pid
        or "msisdn" in config.registrations_require_3pid
    )
    if (
        config.enable_registration
        and not verified
        and not config.enable_registration_without_verification
    ):
        problems.append(
            "enable_registration: open registration without email, captcha or token "
            "verification invites spam accounts; set 'registration_requires_token: true' "
            "(or enable captcha or email verification), or, if you really want anyone to "
            "register unverified, set 'enable_registration_without_verification: true'"
        )
    if config.url_preview_enabled and config.url_preview_ip_range_blacklist is None:
        problems.append(
            "url_preview_enabled: URL previews make this server fetch any URL a user names, "
            "so they need an explicit list of address ranges never to fetch from; set "
            "'url_preview_ip_range_blacklist' (ranvier generate-config writes Synapse's "
            "list of private, loopback and link-local ranges to start from), or set "
            "'url_preview_enabled: false'"
        )
    if config.log_config is not None:
        problems += log_config_problems(config_dir / config.log_config)
    return problems


def log_config_problems(path: Path) -> list[str]:
    if not path.exists():
        return [f"log_config: the logging configuration {str(path)!r} does not exist"]
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        return [f"log_config: {str(path)!r} is not valid YAML: {exc}"]
    if not isinstance(raw, dict):
        return [f"log_config: {str(path)!r} must be a YAML mapping (a logging dictConfig)"]
    if raw.get("structured") is True:
        return [
            f"log_config: {str(path)!r} sets 'structured: true', which was removed; write a "
            "standard logging dictConfig (version: 1, formatters, handlers, loggers) instead, "
            "using a JSON formatter for structured output"
        ]
    return []
