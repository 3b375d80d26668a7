"""homeserver.yaml as typed models. Key names follow Synapse's where the concept is the same.

Every model forbids unknown keys, so a typo fails start-up instead of being silently ignored.
Cross-field refusals (the start-up checks Synapse's upgrade notes promise) live in
`validation.py`; this module only knows shapes and defaults.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ranvier.config.appservices import AppService, load_appservices
from ranvier.config.captcha import DEFAULT_SITEVERIFY_API
from ranvier.config.consent import UserConsentConfig
from ranvier.config.email import EmailConfig
from ranvier.config.jwt import JwtConfig
from ranvier.config.oidc import OidcProviders, SsoConfig, SsoSection
from ranvier.config.retention import (
    DEFAULT_REDACTION_RETENTION_MS,
    MediaRetentionConfig,
    RedactionRetentionPeriod,
    RetentionConfig,
)
from ranvier.config.units import parse_duration_ms, parse_size
from ranvier.protocol.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS
from ranvier.protocol.signing_keys import ED25519, decode_verify_key

# the parts of a URL (urllib.parse.urlsplit's names) url_preview_url_blacklist can match
URL_COMPONENTS = (
    "scheme",
    "netloc",
    "hostname",
    "port",
    "path",
    "query",
    "fragment",
    "username",
    "password",
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ResourceName = Literal[
    "client",
    "federation",
    "keys",
    "media",
    "metrics",
    "openid",
    "replication",
    "health",
    "static",
    "consent",
]


def _client_only() -> list[ResourceName]:
    return ["client"]


class ListenerResource(Section):
    names: list[ResourceName] = Field(default_factory=_client_only)
    compress: bool = False


class Listener(Section):
    port: int = Field(ge=0, le=65535)
    bind_addresses: list[str] = Field(default_factory=lambda: ["127.0.0.1"])
    # Synapse's types; all but "http" and "metrics" are refused with their reason in
    # validation.py
    type: Literal["http", "metrics", "manhole", "replication", "webclient"] = "http"
    tls: bool = False
    x_forwarded: bool = False
    resources: list[ListenerResource] = Field(default_factory=lambda: [ListenerResource()])


class DatabaseConfig(Section):
    # Synapse's names: "psycopg2" means PostgreSQL, whatever driver serves it here (asyncpg)
    name: Literal["sqlite3", "psycopg2"] = "sqlite3"
    args: dict[str, Any] = Field(default_factory=dict)
    allow_unsafe_locale: bool = False
    # Synapse's "reconnect after this many transactions"; only 0 (never) is served
    txn_limit: int = Field(default=0, ge=0)


# The caches `caches.per_cache_factors` may name, with what their size is before the
# factors: "events" is `event_cache_size`. Other caches in the process are fixed in size.
SIZED_CACHES: dict[str, str] = {
    "events": "events, their state groups and transaction IDs, by event ID",
    "state_groups": "the room state of a state group",
    "redactions": "which redaction applies to an event",
}
STATE_GROUPS_CACHE_BASE = 1000
REDACTIONS_CACHE_BASE = 100_000


class CachesConfig(Section):
    global_factor: float = Field(default=0.5, gt=0)
    per_cache_factors: dict[str, float] = Field(default_factory=dict)
    expire_caches: bool = True
    cache_entry_ttl: int = parse_duration_ms("30m")
    sync_response_cache_duration: int = parse_duration_ms("2m")

    @field_validator("cache_entry_ttl", "sync_response_cache_duration", mode="before")
    @classmethod
    def _duration(cls, value: int | str) -> int:
        return parse_duration_ms(value)

    @field_validator("per_cache_factors")
    @classmethod
    def _known_caches(cls, value: dict[str, float]) -> dict[str, float]:
        for name, factor in value.items():
            if name not in SIZED_CACHES:
                raise ValueError(
                    f"Ranvier has no cache named {name!r} (Synapse's cache names differ); "
                    "use one of " + ", ".join(SIZED_CACHES)
                )
            if factor <= 0:
                raise ValueError(f"the factor for {name!r} must be above 0")
        return value

    def size(self, name: str, base: int) -> int:
        """`base` entries scaled by the cache's own factor, or else the global one."""
        return max(1, int(base * self.per_cache_factors.get(name, self.global_factor)))

    @property
    def ttl_seconds(self) -> float | None:
        """How long an entry stays cached after it was cached; None: until evicted."""
        return self.cache_entry_ttl / 1000 if self.expire_caches else None


class ThreepidDelegates(Section):
    # `email` was removed (Synapse 1.66); kept here only so validation.py can name the fix
    email: str | None = None
    msisdn: str | None = None


class RatelimitSettings(Section):
    """One token bucket: `burst_count` actions at once, refilled at `per_second`."""

    # > 0: a bucket that never refills would lock clients out until the server restarts
    per_second: float = Field(gt=0)
    burst_count: float = Field(ge=1)


def _ratelimit_defaults(per_second: float, burst_count: float) -> Any:
    """A `mode="before"` validator filling keys left out with Synapse's default for that
    option, as Synapse does (`rc_login: {address: {per_second: 1}}` keeps burst_count 5)."""

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {"per_second": per_second, "burst_count": burst_count, **value}
        return value

    return fill


# Synapse's defaults
RC_MESSAGE = (0.2, 10)
RC_REGISTRATION = (0.17, 3)
RC_REGISTRATION_TOKEN_VALIDITY = (0.1, 5)
RC_LOGIN_ADDRESS = (0.003, 5)
RC_LOGIN_ACCOUNT = (0.003, 5)
RC_LOGIN_FAILED_ATTEMPTS = (0.17, 3)


def _settings(defaults: tuple[float, float]) -> RatelimitSettings:
    return RatelimitSettings(per_second=defaults[0], burst_count=defaults[1])


class LoginRatelimits(Section):
    # per client IP, every login attempt
    address: RatelimitSettings = Field(default_factory=lambda: _settings(RC_LOGIN_ADDRESS))
    # per account, every successful login
    account: RatelimitSettings = Field(default_factory=lambda: _settings(RC_LOGIN_ACCOUNT))
    # per account, every wrong password
    failed_attempts: RatelimitSettings = Field(
        default_factory=lambda: _settings(RC_LOGIN_FAILED_ATTEMPTS)
    )

    _address = field_validator("address", mode="before")(_ratelimit_defaults(*RC_LOGIN_ADDRESS))
    _account = field_validator("account", mode="before")(_ratelimit_defaults(*RC_LOGIN_ACCOUNT))
    _failed = field_validator("failed_attempts", mode="before")(
        _ratelimit_defaults(*RC_LOGIN_FAILED_ATTEMPTS)
    )


class PasswordPolicy(Section):
    """Rules for new passwords (registration and password change): M_WEAK_PASSWORD."""

    enabled: bool = False
    minimum_length: int = Field(default=0, ge=0)
    require_digit: bool = False
    require_symbol: bool = False
    require_lowercase: bool = False
    require_uppercase: bool = False


class Argon2Cost(Section):
    """argon2id's cost for new password hashes (`password_config.argon2`). The defaults are
    OWASP's first argon2id setting, about 20 ms of one CPU and 19 MiB a hash, so login and
    registration stay quick on a small machine. A hash made at another cost still verifies
    and is rehashed at this one on the user's next login."""

    # passes over the memory
    time_cost: int = 2
    # KiB, the unit of the `m=` a stored hash shows, or a size such as "19M"
    memory_cost: int = 19 * 1024
    # lanes, each hashed on its own thread; at most CPUs / parallelism hashes run at once
    parallelism: int = 1

    @field_validator("memory_cost", mode="before")
    @classmethod
    def _kib(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                size = parse_size(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a size; write KiB (19456) or a size such as '19M'"
                ) from None
            return size // 1024
        return value

    @field_validator("time_cost")
    @classmethod
    def _time(cls, value: int) -> int:
        # past 100 passes a login takes seconds at any memory cost worth having
        if not 1 <= value <= 100:
            raise ValueError("time_cost must be from 1 to 100 passes; OWASP suggests 2")
        return value

    @field_validator("memory_cost")
    @classmethod
    def _memory(cls, value: int) -> int:
        # below 1 MiB argon2id loses the memory-hardness it is chosen for (and 1 MiB covers
        # argon2's own 8 KiB per lane at 64 lanes); 4 GiB a hash, one per CPU, is more than
        # the machines Ranvier runs on have, and more likely a typo ("64G" for "64M")
        if not 1024 <= value <= 4 * 1024 * 1024:
            raise ValueError(
                "memory_cost must be from 1M to 4G (1024 to 4194304 KiB); OWASP suggests '19M'"
            )
        return value

    @field_validator("parallelism")
    @classmethod
    def _lanes(cls, value: int) -> int:
        if not 1 <= value <= 64:
            raise ValueError(
                "parallelism must be from 1 to 64 threads a hash; 1 suits a small machine"
            )
        return value


class PasswordConfig(Section):
    # False turns password login and registration off; "only_for_reauth" (Synapse) keeps
    # passwords only for confirming who you are in user-interactive auth
    enabled: bool | Literal["only_for_reauth"] = True
    # check passwords against the database (off when only a password provider module may)
    localdb_enabled: bool = True
    # a secret mixed into every new hash; Synapse's bcrypt hashes need Synapse's pepper
    pepper: str = ""
    policy: PasswordPolicy = Field(default_factory=PasswordPolicy)
    argon2: Argon2Cost = Field(default_factory=Argon2Cost)


class UserDirectoryConfig(Section):
    """Who POST /user_directory/search finds (Synapse's `user_directory` section)."""

    enabled: bool = True
    # every local user, not only those sharing a room with the searcher or in public rooms
    search_all_users: bool = False
    # local users before remote ones in the results
    prefer_local_users: bool = False
    show_locked_users: bool = False
    exclude_remote_users: bool = False


class PresenceConfig(Section):
    """Synapse's `presence` section."""

    # off: nobody's presence is tracked; GET answers offline, PUT is accepted and ignored
    enabled: bool = True


class PushConfig(Section):
    """Synapse's `push` section."""

    # off: no notifications are worked out for new events, so no unread counts, no
    # /notifications and nothing for pushers to send
    enabled: bool = True
    # off: pushes to gateways leave out the event's content (sender and room still go)
    include_content: bool = True
    # the badge (`counts.unread`) counts rooms with unread notifications; off: notifications
    group_unread_count_by_room: bool = True


class LoginViaExistingSession(Section):
    """Synapse's `login_via_existing_session`: POST /login/get_token (spec v1.7, MSC3882),
    a signed-in client minting a one-time m.login.token for another device."""

    enabled: bool = False
    # the caller confirms who they are (user-interactive auth) before a token is minted
    require_ui_auth: bool = True
    token_timeout: int = parse_duration_ms("5m")

    @field_validator("token_timeout", mode="before")
    @classmethod
    def _duration(cls, value: int | str) -> int:
        return parse_duration_ms(value)


SUPPORT_ROLES = ("m.role.admin", "m.role.security")


class SupportContact(Section):
    """One entry of `well_known_support.contacts` (spec: GET /.well-known/matrix/support)."""

    # spec: m.role.admin or m.role.security; other roles are namespaced (e.g. org.example.x)
    role: str
    matrix_id: str | None = None
    email_address: str | None = None

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        # the m. namespace is the spec's: only its two roles; others must be namespaced
        if value not in SUPPORT_ROLES and (value.startswith("m.") or "." not in value):
            raise ValueError(
                f"{value!r} is not a role: use m.role.admin, m.role.security or a "
                "namespaced role of your own (such as org.example.moderator)"
            )
        return value

    @field_validator("matrix_id")
    @classmethod
    def _matrix_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"@[^:\s]+:\S+", value):
            raise ValueError(f"{value!r} is not a Matrix user ID (such as @admin:example.com)")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> SupportContact:
        if self.matrix_id is None and self.email_address is None:
            raise ValueError("each contact needs a matrix_id or an email_address (or both)")
        return self


class TemplatesConfig(Section):
    """Synapse's `templates` section: a directory whose templates replace Ranvier's own of the
    same name (services/templates.py)."""

    custom_template_directory: str | None = None


class ServerNoticesConfig(Section):
    """Synapse's `server_notices`: the system user that writes to users in a room of their
    own (services/server_notices.py); without `system_mxid_localpart` notices are off."""

    system_mxid_localpart: str | None = None
    system_mxid_display_name: str | None = None
    system_mxid_avatar_url: str | None = None
    room_name: str = "Server Notices"
    room_avatar_url: str | None = None
    room_topic: str | None = None
    # join the user to a new notices room rather than invite them
    auto_join: bool = False

    @field_validator("system_mxid_localpart")
    @classmethod
    def _localpart(cls, value: str | None) -> str | None:
        if value is not None and (
            not value or value != value.lower() or any(c in value for c in ":@ ")
        ):
            raise ValueError(f"{value!r} is not a user ID's localpart (lower case, no ':' or '@')")
        return value


class WellKnownSupport(Section):
    """Ranvier's `well_known_support` (Synapse has no equivalent): who to contact about
    this server, served at GET /.well-known/matrix/support (spec v1.10)."""

    contacts: list[SupportContact] = Field(default_factory=list)
    support_page: str | None = None

    @field_validator("support_page")
    @classmethod
    def _page(cls, value: str | None) -> str | None:
        if value is not None and not is_http_url(value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _something(self) -> WellKnownSupport:
        # spec: at least one of contacts or support_page
        if not self.contacts and self.support_page is None:
            raise ValueError("give at least one contact or a support_page")
        return self


class ThumbnailSize(Section):
    """One entry of `thumbnail_sizes`: a box and how an image is fitted into it."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    # crop: exactly this box (the image's middle); scale: within this box, aspect kept
    method: Literal["crop", "scale"] = "scale"


def _default_thumbnail_sizes() -> list[ThumbnailSize]:
    # spec: client-server-api "Thumbnails", the sizes servers SHOULD produce
    return [
        ThumbnailSize(width=32, height=32, method="crop"),
        ThumbnailSize(width=96, height=96, method="crop"),
        ThumbnailSize(width=320, height=240, method="scale"),
        ThumbnailSize(width=640, height=480, method="scale"),
        ThumbnailSize(width=800, height=600, method="scale"),
    ]


RC_MEDIA_CREATE = (10, 50)
RC_3PID_VALIDATION = (0.003, 5)
RC_THIRD_PARTY_INVITE = (0.2, 10)


class AllowedThreepid(Section):
    """One entry of `allowed_local_3pids`: addresses of this medium matching the regex (from
    its start, as Synapse's re.match) may be used."""

    medium: Literal["email", "msisdn"]
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a valid regex: {exc}") from exc
        return value


class FederationSettings(Section):
    """Synapse's `federation` section: the outbound client's timeout, how often a request
    whose connection failed is tried again (short: someone waits on it; long: a
    transaction, sent in the background), and how destinations that keep failing are
    backed off from (durations as "10m", "7d" or ms)."""

    client_timeout: int = Field(default=parse_duration_ms("60s"), gt=0)
    max_short_retry_delay: int = Field(default=parse_duration_ms("2s"), ge=0)
    max_short_retries: int = Field(default=3, ge=0)
    max_long_retry_delay: int = Field(default=parse_duration_ms("60s"), ge=0)
    max_long_retries: int = Field(default=10, ge=0)
    destination_min_retry_interval: int = Field(default=parse_duration_ms("10m"), gt=0)
    destination_retry_multiplier: float = Field(default=2.0, ge=1)
    destination_max_retry_interval: int = Field(default=parse_duration_ms("7d"), gt=0)

    @field_validator(
        "client_timeout",
        "max_short_retry_delay",
        "max_long_retry_delay",
        "destination_min_retry_interval",
        "destination_max_retry_interval",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: int | str) -> int:
        return parse_duration_ms(value)


class OldSigningKey(Section):
    """One of `old_signing_keys`: a key this server signed with before, published in
    `old_verify_keys` so that what it signed still verifies."""

    key: str
    expired_ts: int = Field(ge=0)

    @field_validator("key")
    @classmethod
    def _public_key(cls, value: str) -> str:
        try:
            decode_verify_key(value)
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not an unpadded base64 ed25519 public key: {exc}"
            ) from exc
        return value


class TrustedKeyServer(Section):
    """One of `trusted_key_servers`: a notary asked for other servers' keys."""

    server_name: str
    # key ID -> unpadded base64 public key; None: its answers are trusted on its TLS
    # certificate alone, as in Synapse
    verify_keys: dict[str, str] | None = None
    accept_keys_insecurely: bool = False

    @field_validator("verify_keys")
    @classmethod
    def _verify_keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError(
                "an empty verify_keys would refuse every answer of this key server; list "
                "its keys ('ed25519:<id>': <base64 key>) or leave verify_keys out"
            )
        for key_id, key in value.items():
            _check_ed25519_key_id(key_id)
            try:
                decode_verify_key(key)
            except ValueError as exc:
                raise ValueError(
                    f"{key_id}: {key!r} is not an unpadded base64 ed25519 public key: {exc}"
                ) from exc
        return value


def _check_ed25519_key_id(key_id: str) -> None:
    algorithm, _, version = key_id.partition(":")
    if algorithm != ED25519 or not version:
        raise ValueError(f"{key_id!r}: key IDs look like 'ed25519:<version>' (only ed25519)")


def _default_trusted_key_servers() -> list[TrustedKeyServer]:
    return [TrustedKeyServer(server_name="matrix.org")]


class MetricsFlags(Section):
    # Synapse's synapse_federation_known_servers gauge; refused when on (validation.py)
    known_servers: bool = False


class HomeserverConfig(Section):
    server_name: str
    public_baseurl: str | None = None
    pid_file: str | None = None
    listeners: list[Listener] = Field(default_factory=lambda: [Listener(port=8008)])
    # PEM files for listeners with `tls: true` (config/tls.py): the certificate, then any
    # intermediates; and its unencrypted private key. Reloaded on SIGHUP.
    tls_certificate_path: str | None = None
    tls_private_key_path: str | None = None
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    signing_key_path: str
    # Where generate-config was told to keep data; relative paths in the file are as written.
    registration_shared_secret: str | None = None
    # a file holding the secret instead (loader.py reads it into the option above)
    registration_shared_secret_path: str | None = None
    enable_registration: bool = False
    enable_registration_without_verification: bool = False
    registration_requires_token: bool = False
    # reCAPTCHA at registration (config/captcha.py); the keys may come from `_path` files
    enable_registration_captcha: bool = False
    recaptcha_public_key: str | None = None
    recaptcha_private_key: str | None = None
    recaptcha_siteverify_api: str = DEFAULT_SITEVERIFY_API
    # signs the links and forms of the server's own pages (the consent form)
    form_secret: str | None = None
    # a policy users accept (config/consent.py); None: no policy
    user_consent: UserConsentConfig | None = None
    # logging in with a JSON web token (config/jwt.py)
    jwt_config: JwtConfig = Field(default_factory=JwtConfig)
    allow_guest_access: bool = False
    # report a taken user ID only when the registration completes (then as M_USER_IN_USE),
    # not from /register/available or an early check
    inhibit_user_in_use_error: bool = False
    password_config: PasswordConfig = Field(default_factory=PasswordConfig)
    presence: PresenceConfig = Field(default_factory=PresenceConfig)
    push: PushConfig = Field(default_factory=PushConfig)
    # token lifetimes (durations: "5m", "1h", or ms); None means no expiry
    refreshable_access_token_lifetime: int | None = parse_duration_ms("5m")
    refresh_token_lifetime: int | None = None
    nonrefreshable_access_token_lifetime: int | None = None
    # however often a session refreshes, it ends this long after login
    session_lifetime: int | None = None
    log_config: str | None = None
    media_store_path: str = "media_store"
    max_upload_size: int = parse_size("50M")
    max_image_pixels: int = parse_size("32M")
    # media: thumbnails of any requested size, not only the nearest of `thumbnail_sizes`
    dynamic_thumbnails: bool = False
    thumbnail_sizes: list[ThumbnailSize] = Field(default_factory=_default_thumbnail_sizes)
    # media uploaded while on is served only by the authenticated /_matrix/client/v1/media
    # endpoints; older media stays reachable on the legacy /_matrix/media ones
    enable_authenticated_media: bool = True
    # POST /_matrix/media/v1/create: IDs a user may hold without content, and for how long
    max_pending_media_uploads: int = Field(default=5, ge=1)
    # other servers' media fetched for our users: bytes fetched per client IP address, a
    # token bucket of this size refilled at this rate (Synapse's defaults)
    remote_media_download_burst_count: int = Field(default=500 * 1024**2, ge=1)
    remote_media_download_per_second: int = Field(default=87 * 1024, gt=0)
    # servers whose media is never fetched (what is cached already is still served)
    prevent_media_downloads_from: list[str] = Field(default_factory=list)
    unused_expiration_time: int = parse_duration_ms("24h")
    # URL previews, off as in Synapse; enabling them requires url_preview_ip_range_blacklist
    # (validation.py), the address ranges previews must never connect to
    url_preview_enabled: bool = False
    url_preview_ip_range_blacklist: list[str] | None = None
    url_preview_ip_range_whitelist: list[str] = Field(default_factory=list)
    # each entry: URL components (scheme, netloc, path, ...) to glob or `^regex` patterns;
    # a URL matching every component of one entry is refused
    url_preview_url_blacklist: list[dict[str, str]] = Field(default_factory=list)
    url_preview_accept_language: list[str] = Field(default_factory=lambda: ["en"])
    max_spider_size: int = parse_size("10M")
    # Ranvier's: how long a fetched preview answers for its URL (Synapse: fixed at 1h)
    url_preview_cache_duration: int = parse_duration_ms("1h")
    # outbound federation (ranvier/federation/): certificates are verified unless off or
    # the name matches a glob of the whitelist; a custom CA list replaces the system's CAs
    federation_verify_certificates: bool = True
    federation_client_minimum_tls_version: Literal["1", "1.1", "1.2", "1.3"] = "1"
    federation_certificate_verification_whitelist: list[str] = Field(default_factory=list)
    federation_custom_ca_list: list[str] | None = None
    # None federates with everyone; a list refuses every other server, both ways
    federation_domain_whitelist: list[str] | None = None
    # addresses outbound federation never connects to (None: Synapse's default list of
    # private, loopback and reserved ranges), but for the whitelisted ones; the
    # deprecated federation_ip_range_blacklist replaces both for federation, as in Synapse
    ip_range_blacklist: list[str] | None = None
    ip_range_whitelist: list[str] = Field(default_factory=list)
    federation_ip_range_blacklist: list[str] | None = None
    federation: FederationSettings = Field(default_factory=FederationSettings)
    # false: this process sends no transaction (no room event or EDU reaches other servers)
    send_federation: bool = True
    # Prometheus metrics (ranvier/metrics/, docs/metrics.md): served by `metrics` listeners
    # and the `metrics` resource, which start-up refuses while this is off
    enable_metrics: bool = False
    metrics_flags: MetricsFlags = Field(default_factory=MetricsFlags)
    # other servers that get their own label on the per-destination federation metrics;
    # None or empty: none do, so the label set stays bounded
    federation_metrics_domains: list[str] | None = None
    caches: CachesConfig = Field(default_factory=CachesConfig)
    # entries of the "events" cache before the cache factors (Synapse's default is 10K)
    event_cache_size: int = parse_size("100K")
    default_room_version: str = DEFAULT_ROOM_VERSION.identifier
    allow_public_rooms_without_auth: bool = False
    # other servers may read our room directory (/federation/v1/publicRooms); Synapse's
    # default since 1.7 is off
    allow_public_rooms_over_federation: bool = False
    # room directory: off lists no rooms and refuses publishing; aliases need membership
    enable_room_list_search: bool = True
    require_membership_for_aliases: bool = True
    web_client_location: str | None = None
    account_threepid_delegates: ThreepidDelegates = Field(default_factory=ThreepidDelegates)
    serve_server_wellknown: bool = False
    extra_well_known_client_content: dict[str, Any] = Field(default_factory=dict)
    # the request body limit for everything but media uploads
    max_request_body_size: int = parse_size("1M")
    # profiles: off refuses users changing their own (admins still may), as in Synapse
    enable_set_displayname: bool = True
    enable_set_avatar_url: bool = True
    enable_3pid_changes: bool = True
    # email (config/email.py); None: the section is absent or empty and no mail is sent
    email: EmailConfig | None = None
    # registration must prove an address of each medium listed (only email is served)
    registrations_require_3pid: list[Literal["email", "msisdn"]] = Field(default_factory=list)
    # when not empty, only addresses matching an entry may be registered or added
    allowed_local_3pids: list[AllowedThreepid] = Field(default_factory=list)
    # requestToken answers as if an unknown or taken address were fine (no mail is sent)
    request_token_inhibit_3pid_errors: bool = False
    # when set, a validation's next_link must point at one of these hosts
    next_link_domain_whitelist: list[str] | None = None
    rc_3pid_validation: RatelimitSettings = Field(
        default_factory=lambda: _settings(RC_3PID_VALIDATION)
    )
    # invites by email address (they make the identity server send mail), per inviting user
    rc_third_party_invite: RatelimitSettings = Field(
        default_factory=lambda: _settings(RC_THIRD_PARTY_INVITE)
    )
    require_auth_for_profile_requests: bool = False
    limit_profile_requests_to_users_who_share_rooms: bool = False
    # false: other servers' profile queries are refused with 403 M_FORBIDDEN
    allow_profile_lookup_over_federation: bool = True
    # other servers see our users' device display names (Synapse's key and default)
    allow_device_name_lookup_over_federation: bool = False
    # the largest room.timeline.limit a stored filter may ask for
    filter_timeline_limit: int = Field(default=100, ge=1)
    user_directory: UserDirectoryConfig = Field(default_factory=UserDirectoryConfig)
    # message retention policies (config/retention.py, docs/retention.md)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    # a local user who leaves (or is kicked or banned from) a room forgets it at once
    forget_rooms_on_leave: bool = False
    # how long a redacted event's original content is kept; None keeps it forever
    redaction_retention_period: RedactionRetentionPeriod = DEFAULT_REDACTION_RETENTION_MS
    # rooms every local user forgot are purged this long after; None keeps them
    forgotten_room_retention_period: RedactionRetentionPeriod = None
    # deleting media nobody fetched for a while (services/media/retention.py)
    media_retention: MediaRetentionConfig = Field(default_factory=MediaRetentionConfig)
    # rate limits (in memory, per process); Synapse's names and defaults
    rc_message: RatelimitSettings = Field(default_factory=lambda: _settings(RC_MESSAGE))
    rc_registration: RatelimitSettings = Field(default_factory=lambda: _settings(RC_REGISTRATION))
    rc_registration_token_validity: RatelimitSettings = Field(
        default_factory=lambda: _settings(RC_REGISTRATION_TOKEN_VALIDITY)
    )
    rc_login: LoginRatelimits = Field(default_factory=LoginRatelimits)
    rc_media_create: RatelimitSettings = Field(default_factory=lambda: _settings(RC_MEDIA_CREATE))
    # TURN for VoIP (GET /voip/turnServer), Synapse's keys: coturn's REST API credentials
    # from turn_shared_secret, else the static turn_username/turn_password
    turn_uris: list[str] = Field(default_factory=list)
    turn_shared_secret: str | None = None
    turn_username: str | None = None
    turn_password: str | None = None
    turn_user_lifetime: int = parse_duration_ms("1h")
    turn_allow_guests: bool = True
    login_via_existing_session: LoginViaExistingSession = Field(
        default_factory=LoginViaExistingSession
    )
    # GET /.well-known/matrix/support; unset answers 404
    well_known_support: WellKnownSupport | None = None
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    # single sign-on (config/oidc.py): OpenID Connect providers and the SSO pages' options
    oidc_providers: OidcProviders = Field(default_factory=list)
    sso: SsoSection = Field(default_factory=SsoConfig)
    server_notices: ServerNoticesConfig = Field(default_factory=ServerNoticesConfig)
    # server keys (GET /_matrix/key/v2/server): how long what we publish stays valid, the
    # keys we signed with before, and the notaries asked for other servers' keys
    key_refresh_interval: int = Field(default=parse_duration_ms("1d"), gt=0)
    old_signing_keys: dict[str, OldSigningKey] = Field(default_factory=dict)
    trusted_key_servers: list[TrustedKeyServer] = Field(
        default_factory=_default_trusted_key_servers
    )
    suppress_key_server_warning: bool = False
    # application services (config/appservices.py): their registration files, whether
    # transactions also carry the hs_token in the query string for services older than
    # spec v1.4, and whether requests made with an as_token update last-seen IPs
    app_service_config_files: list[str] = Field(default_factory=list)
    use_appservice_legacy_authorization: bool = False
    track_appservice_user_ips: bool = False

    # Synapse options in the file that mean nothing here (synapse_keys.UNUSED), for the
    # one start-up line that lists them
    _not_used: tuple[str, ...] = PrivateAttr(default=())
    # the registrations of app_service_config_files, read once (load_config or first use)
    _appservices: tuple[AppService, ...] | None = PrivateAttr(default=None)

    _rc_message = field_validator("rc_message", mode="before")(_ratelimit_defaults(*RC_MESSAGE))
    _rc_media_create = field_validator("rc_media_create", mode="before")(
        _ratelimit_defaults(*RC_MEDIA_CREATE)
    )
    _rc_registration = field_validator("rc_registration", mode="before")(
        _ratelimit_defaults(*RC_REGISTRATION)
    )
    _rc_3pid_validation = field_validator("rc_3pid_validation", mode="before")(
        _ratelimit_defaults(*RC_3PID_VALIDATION)
    )
    _rc_third_party_invite = field_validator("rc_third_party_invite", mode="before")(
        _ratelimit_defaults(*RC_THIRD_PARTY_INVITE)
    )

    @field_validator("email", mode="before")
    @classmethod
    def _empty_email(cls, value: Any) -> Any:
        # Synapse: an empty `email:` section turns nothing on
        return None if value == {} else value

    @field_validator("registrations_require_3pid", "allowed_local_3pids", mode="before")
    @classmethod
    def _null_list(cls, value: Any) -> Any:
        return [] if value is None else value

    _rc_registration_token_validity = field_validator(
        "rc_registration_token_validity", mode="before"
    )(_ratelimit_defaults(*RC_REGISTRATION_TOKEN_VALIDITY))

    @field_validator(
        "refreshable_access_token_lifetime",
        "refresh_token_lifetime",
        "nonrefreshable_access_token_lifetime",
        "session_lifetime",
        mode="before",
    )
    @classmethod
    def _optional_duration(cls, value: int | str | None) -> int | None:
        return None if value is None else parse_duration_ms(value)

    @field_validator(
        "unused_expiration_time",
        "url_preview_cache_duration",
        "turn_user_lifetime",
        "key_refresh_interval",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: int | str) -> int:
        return parse_duration_ms(value)

    @field_validator(
        "max_upload_size",
        "max_image_pixels",
        "remote_media_download_burst_count",
        "remote_media_download_per_second",
        "max_request_body_size",
        "max_spider_size",
        "event_cache_size",
        mode="before",
    )
    @classmethod
    def _size(cls, value: int | str) -> int:
        return parse_size(value)

    @field_validator(
        "url_preview_ip_range_blacklist",
        "url_preview_ip_range_whitelist",
        "ip_range_blacklist",
        "ip_range_whitelist",
        "federation_ip_range_blacklist",
    )
    @classmethod
    def _ip_ranges(cls, value: list[str] | None) -> list[str] | None:
        for entry in value or ():
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an IP address or CIDR range") from exc
        return value

    @field_validator("federation_client_minimum_tls_version", mode="before")
    @classmethod
    def _tls_version(cls, value: Any) -> Any:
        # YAML reads `1.2` as a number; Synapse takes it as the string
        return str(value) if isinstance(value, int | float) else value

    @field_validator("url_preview_url_blacklist")
    @classmethod
    def _url_patterns(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        for entry in value:
            for component, pattern in entry.items():
                if component not in URL_COMPONENTS:
                    raise ValueError(
                        f"{component!r} is not a URL component; use one of "
                        + ", ".join(URL_COMPONENTS)
                    )
                if pattern.startswith("^"):
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        raise ValueError(f"{pattern!r} is not a valid regex: {exc}") from exc
        return value

    @field_validator("old_signing_keys", mode="before")
    @classmethod
    def _old_signing_keys(cls, value: Any) -> Any:
        # Synapse reads `old_signing_keys:` with nothing after it as none
        return {} if value is None else value

    @field_validator("old_signing_keys")
    @classmethod
    def _old_key_ids(cls, value: dict[str, OldSigningKey]) -> dict[str, OldSigningKey]:
        for key_id in value:
            _check_ed25519_key_id(key_id)
        return value

    @field_validator("default_room_version")
    @classmethod
    def _known_room_version(cls, value: str) -> str:
        if value not in KNOWN_ROOM_VERSIONS:
            known = ", ".join(KNOWN_ROOM_VERSIONS)
            raise ValueError(f"room version {value!r} is unknown; use one of {known}")
        return value

    @field_validator("server_name")
    @classmethod
    def _server_name(cls, value: str) -> str:
        # spec: appendices "Server name" - a hostname or IP literal, optionally with a port
        if not value or any(c.isspace() or c in "/@:!#$" for c in value.rsplit(":", 1)[0]):
            raise ValueError(f"{value!r} is not a valid server name (e.g. example.com)")
        return value

    @field_validator("app_service_config_files", mode="before")
    @classmethod
    def _no_appservices(cls, value: Any) -> Any:
        # Synapse's generated file may say `app_service_config_files: null` or leave it empty
        return [] if value is None or value is False else value

    @model_validator(mode="after")
    def _baseurl_ends_with_slash(self) -> HomeserverConfig:
        if self.public_baseurl is not None and not self.public_baseurl.endswith("/"):
            object.__setattr__(self, "public_baseurl", self.public_baseurl + "/")
        return self

    @property
    def not_used_keys(self) -> tuple[str, ...]:
        return self._not_used

    @property
    def appservices(self) -> tuple[AppService, ...]:
        """The registered application services; raises ConfigError if a file is bad."""
        if self._appservices is None:
            self._appservices = load_appservices(self.app_service_config_files, self.server_name)
        return self._appservices

    @property
    def effective_public_baseurl(self) -> str:
        """public_baseurl, or https://server_name/ as Synapse assumes when it is unset."""
        return self.public_baseurl or f"https://{self.server_name}/"


def is_http_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)
