"""Start-up refusals: options that were removed or combinations that are unsafe.

Each message says what to do instead, in the spirit of Synapse's upgrade notes.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from ranvier.config.captcha import captcha_problems
from ranvier.config.consent import consent_problems
from ranvier.config.log_config import LogConfigError, read_log_config
from ranvier.config.metrics import metrics_problems
from ranvier.config.models import HomeserverConfig, is_http_url
from ranvier.config.tls import certificate_problems

# top-level keys that once existed and now refuse start-up, with the fix
REMOVED_KEYS: dict[str, str] = {
    "log_file": "'log_file' was removed: point 'log_config' at a logging configuration file "
    "instead (ranvier generate-config writes one)",
    "enable_legacy_metrics": "'enable_legacy_metrics' was removed (Synapse 1.73 dropped the "
    "old metric names it brought back): remove it, and use the current names listed in "
    "docs/metrics.md in your rules and dashboards",
}


def removed_key_problems(raw: dict[str, Any]) -> list[str]:
    return [fix for key, fix in REMOVED_KEYS.items() if key in raw]


# listener types other than "http" and "metrics" (config/metrics.py), and why each is refused
LISTENER_TYPES_REFUSED: dict[str, str] = {
    "webclient": "listeners of type 'webclient' are no longer supported; remove this "
    "listener and set 'web_client_location' to the URL of a web client if you want '/' to "
    "redirect to one",
    "manhole": "the manhole (a Python shell into the running server) is not offered by "
    "Ranvier; remove this listener",
    "replication": "replication serves workers, which Ranvier does not have yet; remove this "
    "listener",
}

# resource names served: "client" (with media and the admin API, as in Synapse), "media",
# "federation", "keys" (the server key API, also part of "federation"), "openid", and
# "health" (GET /health is on every listener anyway), "metrics" (/_synapse/metrics)
RESOURCES_REFUSED: dict[str, str] = {
    "replication": "replication serves workers, which Ranvier does not have yet",
    "static": "Synapse's static files are not served by Ranvier",
}


def listener_problems(config: HomeserverConfig) -> list[str]:
    problems: list[str] = []
    for index, listener in enumerate(config.listeners):
        where = f"listeners[{index}]"
        if listener.type in LISTENER_TYPES_REFUSED:
            problems.append(f"{where}.type: {LISTENER_TYPES_REFUSED[listener.type]}")
        for r_index, resource in enumerate(listener.resources):
            if resource.compress:
                problems.append(
                    f"{where}.resources[{r_index}].compress: Ranvier does not compress "
                    "responses; let the reverse proxy compress them and set 'compress: false'"
                )
            for name in resource.names:
                if name in RESOURCES_REFUSED:
                    problems.append(
                        f"{where}.resources[{r_index}].names: '{name}' cannot be served: "
                        f"{RESOURCES_REFUSED[name]}; remove it from the list"
                    )
    return problems


def tls_problems(config: HomeserverConfig) -> list[str]:
    """A TLS listener needs both files; both files must make a pair OpenSSL can serve. The
    files are checked whenever they are named, TLS listener or not (Synapse accepts them
    without one), so a bad pair is found before a listener is switched to TLS."""
    certificate, key = config.tls_certificate_path, config.tls_private_key_path
    tls_listeners = [i for i, listener in enumerate(config.listeners) if listener.tls]
    if tls_listeners and (certificate is None or key is None):
        return [
            f"listeners[{tls_listeners[0]}].tls: a TLS listener needs 'tls_certificate_path' "
            "(a PEM file: the server's certificate, then any intermediates) and "
            "'tls_private_key_path' (its unencrypted PEM private key); set both, or set "
            "'tls: false' and terminate TLS at a reverse proxy"
        ]
    if certificate is None and key is None:
        return []
    if certificate is None or key is None:
        given, missing = (
            ("tls_certificate_path", "tls_private_key_path")
            if key is None
            else ("tls_private_key_path", "tls_certificate_path")
        )
        return [f"{missing}: {given} is set without it; set both, or neither"]
    return certificate_problems(certificate, key)


def template_directory_problems(config: HomeserverConfig) -> list[str]:
    directory = config.templates.custom_template_directory
    # relative paths were made relative to the configuration file by the loader
    if directory is None or Path(directory).is_dir():
        return []
    return [
        f"templates.custom_template_directory: {directory!r} is not a directory; create it "
        "(templates it lacks fall back to Ranvier's own) or remove the option"
    ]


def email_problems(config: HomeserverConfig) -> list[str]:
    problems = []
    email = config.email
    directory = email.template_dir if email is not None else None
    if directory is not None and not Path(directory).is_dir():
        problems.append(
            f"email.template_dir: {directory!r} is not a directory; create it, or better "
            "move your templates to templates.custom_template_directory (email.template_dir "
            "is deprecated), or remove the option"
        )
    if email is not None:
        # as Synapse reads every template at start-up: a name an option gives must be found
        # in the admin's directories or among Ranvier's own
        searched = [
            Path(directory)
            for directory in (config.templates.custom_template_directory, directory)
            if directory is not None and Path(directory).is_dir()
        ]
        searched.append(Path(__file__).resolve().parent.parent / "templates")
        for option, name in email.template_names().items():
            if not any((folder / name).is_file() for folder in searched):
                problems.append(
                    f"email.{option}: no template {name!r} in "
                    + ", ".join(str(folder) for folder in searched)
                    + "; add it or remove the option to use Ranvier's own"
                )
    if "msisdn" in config.registrations_require_3pid:
        problems.append(
            "registrations_require_3pid: Ranvier cannot verify phone numbers (it sends no "
            "SMS); remove msisdn from the list"
        )
    if "email" in config.registrations_require_3pid and email is None:
        problems.append(
            "registrations_require_3pid: email addresses can only be verified with the "
            "'email' section configured (smtp_host, smtp_port, notif_from); add it or "
            "remove email from the list"
        )
    return problems


def sign_in_problems(config: HomeserverConfig) -> list[str]:
    """Captcha and consent: what their pages and checks need."""
    problems = captcha_problems(
        config.enable_registration_captcha,
        config.recaptcha_public_key,
        config.recaptcha_private_key,
        config.recaptcha_siteverify_api,
    )
    problems += consent_problems(
        config.user_consent,
        config.form_secret,
        config.public_baseurl,
        config.server_notices.system_mxid_localpart is not None,
    )
    serves_consent = any(
        "consent" in resource.names
        for listener in config.listeners
        for resource in listener.resources
    )
    if serves_consent and config.user_consent is None:
        problems.append(
            "listeners: the 'consent' resource serves the policy configured in "
            "'user_consent', which is not set; configure user_consent or remove 'consent' "
            "from the listener's resources"
        )
    return problems


def semantic_problems(config: HomeserverConfig, config_dir: Path) -> list[str]:
    problems = listener_problems(config)
    problems += sign_in_problems(config)
    problems += metrics_problems(config)
    problems += tls_problems(config)
    problems += template_directory_problems(config)
    problems += email_problems(config)
    if config.database.txn_limit:
        problems.append(
            "database.txn_limit: Ranvier keeps its database connections open and cannot "
            "reconnect after a number of transactions; remove it or set it to 0"
        )
    if config.account_threepid_delegates.msisdn is not None:
        problems.append(
            "account_threepid_delegates.msisdn: verifying phone numbers is not supported by "
            "Ranvier yet; remove it"
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
    # a token, a captcha or a verified address keeps out spam accounts (as Synapse)
    if (
        config.enable_registration
        and not config.registration_requires_token
        and not config.enable_registration_captcha
        and not config.registrations_require_3pid
        and not config.enable_registration_without_verification
    ):
        problems.append(
            "enable_registration: open registration without verification invites spam "
            "accounts; set 'registration_requires_token: true' (tokens are made with the "
            "admin API), or 'registrations_require_3pid: [email]' (with the 'email' "
            "section), or, if you really want anyone to register unverified, set "
            "'enable_registration_without_verification: true'"
        )
    if config.url_preview_enabled and config.url_preview_ip_range_blacklist is None:
        problems.append(
            "url_preview_enabled: URL previews make this server fetch any URL a user names, "
            "so they need an explicit list of address ranges never to fetch from; set "
            "'url_preview_ip_range_blacklist' (ranvier generate-config writes Synapse's "
            "list of private, loopback and link-local ranges to start from), or set "
            "'url_preview_enabled: false'"
        )
    problems += federation_tls_problems(config)
    problems += turn_problems(config)
    problems += trusted_key_server_problems(config)
    if config.log_config is not None:
        problems += log_config_problems(config_dir / config.log_config)
    return problems


def turn_problems(config: HomeserverConfig) -> list[str]:
    """TURN options that would give clients nothing: Synapse then answers /voip/turnServer
    with {} and says nothing, which leaves calls failing behind NAT with no clue why."""
    has_secret = config.turn_shared_secret is not None
    has_static = config.turn_username is not None or config.turn_password is not None
    if not config.turn_uris:
        if has_secret or has_static:
            return [
                "turn_uris: TURN credentials are set but no TURN server is named; add "
                "turn_uris (such as 'turn:turn.example.com:3478?transport=udp') or remove "
                "the turn_* options"
            ]
        return []
    if has_secret and has_static:
        return [
            "turn_shared_secret: set either turn_shared_secret (coturn's REST API "
            "credentials) or turn_username and turn_password, not both"
        ]
    if has_static and (config.turn_username is None or config.turn_password is None):
        return ["turn_username, turn_password: static TURN credentials need both"]
    if not has_secret and not has_static:
        return [
            "turn_uris: TURN servers need credentials; set turn_shared_secret (the "
            "static-auth-secret of coturn's use-auth-secret mode) or turn_username and "
            "turn_password"
        ]
    if config.turn_user_lifetime < 1000:
        return ["turn_user_lifetime: must be at least one second"]
    return []


def federation_tls_problems(config: HomeserverConfig) -> list[str]:
    """Each of federation_custom_ca_list must be a readable file of PEM certificates: as
    the list replaces the system's CAs, a bad file would fail every federation request."""
    problems: list[str] = []
    for path in config.federation_custom_ca_list or ():
        try:
            text = Path(path).read_text()
            if not text.strip():
                raise ValueError("the file is empty")
            ssl.create_default_context(cadata=text)
        except (ssl.SSLError, ValueError) as exc:  # SSLError before OSError, its base
            problems.append(
                f"federation_custom_ca_list: {path!r} holds no usable PEM certificate: {exc}"
            )
        except OSError as exc:
            problems.append(f"federation_custom_ca_list: cannot read {path!r}: {exc.strerror}")
    return problems


def log_config_problems(path: Path) -> list[str]:
    try:
        read_log_config(path)
    except LogConfigError as exc:
        return [str(exc)]
    return []


def trusted_key_server_problems(config: HomeserverConfig) -> list[str]:
    """Synapse's refusals: without TLS certificate checks, a key server must have its
    answers signed by keys given here (or `accept_keys_insecurely`), and not by matrix.org's
    old `ed25519:auto` key alone."""
    if config.federation_verify_certificates:
        return []
    problems: list[str] = []
    for index, server in enumerate(config.trusted_key_servers):
        if server.accept_keys_insecurely:
            continue
        where = f"trusted_key_servers[{index}]"
        if not server.verify_keys:
            problems.append(
                f"{where}: with federation_verify_certificates off, answers of key server "
                f"{server.server_name} would be taken with no signature and no TLS check; "
                "give its verify_keys, turn federation_verify_certificates on, or, if you "
                "are sure, set 'accept_keys_insecurely: true' on it"
            )
        elif server.server_name == "matrix.org" and "ed25519:auto" in server.verify_keys:
            problems.append(
                f"{where}: with federation_verify_certificates off, matrix.org's answers "
                "would be checked with its old, possibly compromised key 'ed25519:auto'; "
                "turn federation_verify_certificates on, or, if you are sure, set "
                "'accept_keys_insecurely: true' on it"
            )
    return problems


def key_server_warning(config: HomeserverConfig) -> str | None:
    """Synapse's start-up warning about matrix.org as the trusted key server."""
    if "trusted_key_servers" not in config.model_fields_set:
        return (
            "No trusted_key_servers are configured, so other servers' keys are also asked "
            "of the default, matrix.org. Trusted key servers should be long-lived and "
            "stable, which makes matrix.org a good choice for many admins, but you may "
            "choose another: set 'trusted_key_servers' to your choice and "
            "'suppress_key_server_warning: true' to silence this warning"
        )
    if not config.suppress_key_server_warning and any(
        server.server_name == "matrix.org" for server in config.trusted_key_servers
    ):
        return (
            "This server uses matrix.org as a trusted key server (trusted_key_servers). "
            "matrix.org is long-lived, stable and trusted, but you may prefer another; "
            "to keep it and silence this warning, set 'suppress_key_server_warning: true'"
        )
    return None
