"""Every option of Synapse's configuration manual that Ranvier does not implement, by kind.

A Synapse homeserver.yaml should start Ranvier, and nothing in it may be accepted and then
quietly ignored when it asks for something. So each Synapse key is one of:

- implemented: a field of `models.HomeserverConfig` (not listed here);
- UNSUPPORTED: a feature Ranvier lacks. Start-up refuses the key, naming the feature, unless
  its value asks for nothing (Synapse's default, empty, or disabled);
- UNUSED: harmless here (secrets for Synapse's own cookies, federation settings before
  federation exists, tuning of Synapse internals). Accepted, and listed once at start-up,
  unless the value asks for nothing.

Anything else is an unknown option (a typo, usually), refused with "did you mean".
Implementing a feature moves its key from here into the models: one line here goes.
Dotted keys (`caches.cache_autotuning`) name a key inside a section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Quiet:
    """Which values ask for nothing, so the key is accepted without a word."""

    test: Callable[[Any], bool]
    # the same in words, for the reference tables
    shown: str

    def __call__(self, value: Any) -> bool:
        return self.test(value)


def _empty(value: Any) -> bool:
    """Asks for nothing: null, false, or an empty list, mapping or string."""
    return value is None or value is False or value == [] or value == {} or value == ""


EMPTY = Quiet(_empty, "empty, `false` or `null`")


def off(*also: Any) -> Quiet:
    """Quiet when empty, false or null, or equal to one of `also` (Synapse's defaults)."""
    shown = "".join(f", `{_yaml(value)}`" for value in also)
    return Quiet(
        lambda value: _empty(value) or any(value == other for other in also),
        f"empty, `false`, `null`{shown}",
    )


def default(*values: Any) -> Quiet:
    """Quiet when null or one of `values`: for options whose default is on, where `false`
    asks for something Ranvier cannot do."""
    shown = " or ".join(f"`{_yaml(value)}`" for value in values)
    return Quiet(
        lambda value: value is None or any(value == v for v in values), f"`null` or {shown}"
    )


DISABLED_SECTION = Quiet(
    lambda value: _empty(value) or (isinstance(value, dict) and value.get("enabled") is False),
    "empty, or `enabled: false`",
)


def _yaml(value: Any) -> str:
    if value is True:
        return "true"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_yaml(inner)}" for key, inner in value.items())
    return str(value)


@dataclass(frozen=True)
class Unsupported:
    # what Ranvier lacks, in words an admin knows
    feature: str
    quiet: Quiet = EMPTY
    # what to do instead, when there is something better than removing it
    fix: str = "remove it"


@dataclass(frozen=True)
class Unused:
    # why it has no meaning here
    reason: str
    quiet: Quiet = EMPTY


WORKERS = Unsupported("workers (several processes sharing one homeserver)")
# one process, which is the one that sends (Synapse's default is `[master]`)
ONE_INSTANCE = Quiet(
    lambda value: (
        value is None or (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str))
    ),
    "`null`, or a list of one name (this process)",
)

UNSUPPORTED: dict[str, Unsupported] = {
    # -- server
    "modules": Unsupported("Synapse's Python modules (plugins)"),
    "daemonize": Unsupported(
        "forking into the background",
        fix="use `ranvier start` (or a service manager) to run in the background",
    ),
    "include_profile_data_on_invite": Unsupported(
        "leaving profile data out of invites", quiet=default(True)
    ),
    "block_non_admin_invites": Unsupported("blocking invites from users who are not admins"),
    "enable_search": Unsupported("turning message search off", quiet=default(True)),
    "manhole": Unsupported("the manhole (a Python shell into the running server)"),
    "manhole_settings": Unsupported("the manhole (a Python shell into the running server)"),
    "http_proxy": Unsupported("sending outbound requests through a proxy"),
    "https_proxy": Unsupported("sending outbound requests through a proxy"),
    "no_proxy_hosts": Unsupported("sending outbound requests through a proxy"),
    "matrix_authentication_service": Unsupported(
        "delegating authentication to Matrix Authentication Service", quiet=DISABLED_SECTION
    ),
    "delete_stale_devices_after": Unsupported("deleting devices unused for a while"),
    "max_event_delay_duration": Unsupported("delayed events"),
    "user_types": Unsupported("custom user types"),
    "experimental_features": Unsupported("Synapse's experimental features"),
    # -- homeserver blocking
    "hs_disabled": Unsupported("disabling the server with hs_disabled"),
    "limit_usage_by_mau": Unsupported("limits on monthly active users"),
    "allow_per_room_profiles": Unsupported(
        "refusing per-room display names and avatars", quiet=default(True)
    ),
    "max_avatar_size": Unsupported("a limit on the size of avatars"),
    "allowed_avatar_mimetypes": Unsupported("limits on the type of avatars"),
    "user_ips_max_age": Unsupported(
        "pruning where sessions were last seen (Ranvier keeps it, as `null` does)"
    ),
    # -- database
    "databases": Unsupported(
        "splitting data over several databases", fix="use the single `database` section"
    ),
    "caches.cache_autotuning": Unsupported("cache auto-tuning by memory use"),
    # -- rate limits Ranvier does not enforce yet
    "rc_admin_redaction": Unsupported("rate limiting admins' redactions"),
    "rc_joins": Unsupported("rate limiting room joins"),
    "rc_joins_per_room": Unsupported("rate limiting joins per room"),
    "rc_invites": Unsupported("rate limiting invites"),
    "rc_presence": Unsupported("rate limiting presence updates"),
    "rc_delayed_event_mgmt": Unsupported("delayed events"),
    "rc_reports": Unsupported("rate limiting reports"),
    "rc_room_creation": Unsupported("rate limiting room creation"),
    "rc_user_directory": Unsupported("rate limiting user directory searches"),
    # -- media
    "enable_media_repo": Unsupported(
        "serving media from another process (a media worker)", quiet=default(True)
    ),
    "enable_local_media_storage": Unsupported(
        "keeping media only in storage providers", quiet=default(True)
    ),
    "media_storage_providers": Unsupported("media storage providers"),
    "media_upload_limits": Unsupported("per-user media upload limits over time"),
    "oembed": Unsupported("oEmbed in URL previews"),
    # -- VoIP
    "matrix_rtc": Unsupported("MatrixRTC transports"),
    # -- registration
    "default_identity_server": Unsupported(
        "advertising an identity server",
        fix="put `m.identity_server: {base_url: ...}` in extra_well_known_client_content",
    ),
    "auto_join_rooms": Unsupported("joining new users to rooms automatically"),
    "allow_underscore_prefixed_registration": Unsupported("registering user IDs that begin with _"),
    # -- sessions
    "ui_auth": Unsupported("skipping user-interactive auth shortly after the last one"),
    # -- monitoring
    "sentry": Unsupported("reporting errors to Sentry"),
    # -- API
    "room_prejoin_state": Unsupported("choosing the state sent with invites"),
    # -- single sign-on
    "saml2_config": Unsupported("single sign-on (SAML)", quiet=DISABLED_SECTION),
    "cas_config": Unsupported("single sign-on (CAS)", quiet=DISABLED_SECTION),
    "oidc_config": Unsupported(
        "the older single-provider oidc_config",
        quiet=DISABLED_SECTION,
        fix="move its options into one entry of the oidc_providers list (its idp_id "
        "defaults to `oidc`, so users who signed in before keep their accounts)",
    ),
    # -- rooms
    "encryption_enabled_by_default_for_room_type": Unsupported(
        "encrypting new rooms by default", quiet=off("off")
    ),
    "alias_creation_rules": Unsupported("rules for who may create room aliases"),
    "room_list_publication_rules": Unsupported("rules for who may publish rooms"),
    "default_power_level_content_override": Unsupported("changing new rooms' power levels"),
    "exclude_rooms_from_sync": Unsupported("leaving rooms out of every /sync"),
    "exclude_rooms_from_presence": Unsupported("leaving rooms out of presence"),
    "opentracing": Unsupported("OpenTracing", quiet=DISABLED_SECTION),
    "background_updates": Unsupported("tuning background updates"),
    "auto_accept_invites": Unsupported("accepting invites automatically", quiet=DISABLED_SECTION),
    # -- workers
    "worker_replication_secret": WORKERS,
    "worker_replication_secret_path": WORKERS,
    "start_pushers": Unsupported(
        "sending pushes from another process (a pusher worker)", quiet=default(True)
    ),
    "pusher_instances": WORKERS,
    "instance_map": WORKERS,
    "stream_writers": WORKERS,
    "run_background_tasks_on": Unsupported(
        "running background tasks on a worker", quiet=default("master", "main")
    ),
    "update_user_directory_from_worker": WORKERS,
    "notify_appservices_from_worker": WORKERS,
    "media_instance_running_background_jobs": WORKERS,
    "redis": Unsupported("Redis (used by workers)", quiet=DISABLED_SECTION),
    "worker_app": WORKERS,
    "federation_sender_instances": Unsupported(
        "federation senders other than this process (workers)",
        ONE_INSTANCE,
        "to send nothing, set send_federation: false instead; else remove it",
    ),
    "worker_name": WORKERS,
    "worker_listeners": WORKERS,
    "worker_manhole": WORKERS,
    "worker_daemonize": WORKERS,
    "worker_pid_file": WORKERS,
    "worker_log_config": WORKERS,
    # -- federation: what of it is not built yet
    "federation_whitelist_endpoint_enabled": Unsupported(
        "the client endpoint listing federation_domain_whitelist"
    ),
    "rc_federation": Unsupported("rate limits on other servers' requests"),
    "limit_remote_rooms": Unsupported("limits on joining large remote rooms", DISABLED_SECTION),
    "key_server_signing_keys_path": Unsupported(
        "a separate key for notary answers",
        fix="remove it; notary answers are signed with the server's own signing key",
    ),
    "outbound_federation_restricted_to": Unsupported("workers (federation senders)"),
}

UNUSED: dict[str, Unused] = {
    # -- Synapse internals
    "print_pidfile": Unused("Ranvier prints its pid with `ranvier status`"),
    "user_agent_suffix": Unused("Synapse's outbound User-Agent"),
    "use_frozen_dicts": Unused("a Synapse debugging aid"),
    "soft_file_limit": Unused("Synapse's file descriptor limit; set it in the service manager"),
    "gc_thresholds": Unused("Synapse's garbage collector tuning"),
    "gc_min_interval": Unused("Synapse's garbage collector tuning"),
    "dummy_events_threshold": Unused("forward extremities come from federation"),
    "server_context": Unused("a label for Synapse's metrics and logs"),
    "track_puppeted_user_ips": Unused("admin puppeting is not supported"),
    "macaroon_secret_key": Unused("Ranvier's tokens are not macaroons"),
    "macaroon_secret_key_path": Unused("Ranvier's tokens are not macaroons"),
    "report_stats": Unused("Ranvier sends no usage statistics"),
    "report_stats_endpoint": Unused("Ranvier sends no usage statistics"),
    "stats": Unused("Synapse's room and user statistics tables", quiet=off({"enabled": True})),
    # -- only meaningful with a feature that is refused unless off
    "admin_contact": Unused("shown in limits Ranvier does not enforce"),
    "hs_disabled_message": Unused("hs_disabled is not supported"),
    "max_mau_value": Unused("monthly active user limits are not supported"),
    "mau_trial_days": Unused("monthly active user limits are not supported"),
    "mau_appservice_trial_days": Unused("monthly active user limits are not supported"),
    "mau_limit_alerting": Unused("monthly active user limits are not supported", off(True)),
    "mau_stats_only": Unused("monthly active user limits are not supported"),
    "mau_limit_reserved_threepids": Unused("monthly active user limits are not supported"),
    # new hashes are argon2id (password_config.argon2); Synapse's bcrypt ones verify as they are
    "bcrypt_rounds": Unused("Ranvier makes no bcrypt hashes"),
    "disable_msisdn_registration": Unused("phone number registration is not supported"),
    "enable_3pid_lookup": Unused("third-party ID lookup is not supported", off(True)),
    "autocreate_auto_join_rooms": Unused("auto_join_rooms is not supported", off(True)),
    "autocreate_auto_join_rooms_federated": Unused("auto_join_rooms is not supported", off(True)),
    "autocreate_auto_join_room_preset": Unused("auto_join_rooms is not supported"),
    "auto_join_mxid_localpart": Unused("auto_join_rooms is not supported"),
    "auto_join_rooms_for_guests": Unused("auto_join_rooms is not supported", off(True)),
    # -- federation: what of it has no meaning here yet
    "federation_rr_transactions_per_room_per_second": Unused(
        "Synapse's pacing of outbound transactions; Ranvier sends one at a time per server",
        off(50),
    ),
}

# Ranvier's own options, which Synapse's manual does not have
RANVIER_ONLY = ("url_preview_cache_duration", "max_request_body_size", "well_known_support")


def unsupported_problem(key: str, entry: Unsupported) -> str:
    return (
        f"{key}: {entry.feature} is not supported by Ranvier yet; {entry.fix} "
        "(see docs/configuration.md, 'Synapse options')"
    )


def reference_tables() -> str:
    """The tables docs/configuration.md shows; a test holds them equal. To print them:
    python -c 'from ranvier.config.synapse_keys import reference_tables as t; print(t())'"""
    lines = [
        "| Synapse option | refused, because Ranvier lacks | accepted quietly when |",
        "|---|---|---|",
    ]
    for key, entry in sorted(UNSUPPORTED.items()):
        fix = "" if entry.fix == "remove it" else f"; {entry.fix}"
        lines.append(f"| `{key}` | {entry.feature}{fix} | {entry.quiet.shown} |")
    lines += [
        "",
        "| Synapse option | accepted, listed as not used, because | not listed when |",
        "|---|---|---|",
    ]
    for key, unused in sorted(UNUSED.items()):
        lines.append(f"| `{key}` | {unused.reason} | {unused.quiet.shown} |")
    return "\n".join(lines) + "\n"
