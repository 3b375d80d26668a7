"""`ranvier generate-config`: a commented homeserver.yaml, a log config and a signing key."""

from __future__ import annotations

import secrets
from pathlib import Path

import yaml

from ranvier.protocol.room_versions import DEFAULT_ROOM_VERSION
from ranvier.protocol.signing_keys import ServerSigningKey, format_signing_key_file

_TEMPLATE = """\
# Ranvier homeserver configuration. Key names follow Synapse's where the meaning is the same,
# so an existing homeserver.yaml mostly carries over. Unknown keys refuse start-up.
# Relative paths below are relative to the directory of this file.

# The public name of this server: the part after ':' in @user:{server_name}. It cannot be
# changed once users and rooms exist.
server_name: {server_name}

# The URL clients use to reach this server. Defaults to https://<server_name>/.
#public_baseurl: https://matrix.example.com/

# Where `ranvier start` keeps the process ID.
pid_file: {pid_file}

# HTTP listeners. Put a TLS-terminating reverse proxy in front for production and set
# x_forwarded: true so client addresses are logged correctly. Or serve HTTPS here: set
# tls: true and name the PEM files below (reloaded on SIGHUP).
listeners:
  - port: 8008
    type: http
    tls: false
    bind_addresses: ['127.0.0.1']
    x_forwarded: false
    resources:
      - names: [client, federation]
        compress: false
#tls_certificate_path: /path/to/fullchain.pem
#tls_private_key_path: /path/to/privkey.pem

# The database. sqlite3 suits small servers and testing; for anything else use PostgreSQL:
#database:
#  name: psycopg2            # Synapse's name for PostgreSQL; Ranvier talks to it with asyncpg
#  allow_unsafe_locale: false
#  args:
#    user: ranvier
#    password: secretpassword
#    database: ranvier       # must have LC_COLLATE and LC_CTYPE 'C'
#    host: 127.0.0.1
#    port: 5432
#    cp_min: 5
#    cp_max: 10
database:
  name: sqlite3
  args:
    database: {database_path}

# Logging, as a Python logging dictConfig in YAML.
log_config: {log_config}

# Where uploaded media is stored, and the largest upload accepted.
media_store_path: {media_store_path}
max_upload_size: 50M
# Images with more pixels than this are not thumbnailed.
max_image_pixels: 32M
# Media uploaded while this is on is served only to clients with an access token
# (/_matrix/client/v1/media); media from before stays reachable on /_matrix/media/v3.
#enable_authenticated_media: true
# Thumbnails are made once for the nearest of these sizes (or any size asked for with
# dynamic_thumbnails: true). These are the spec's sizes.
#thumbnail_sizes:
#  - {{width: 32, height: 32, method: crop}}
#  - {{width: 96, height: 96, method: crop}}
#  - {{width: 320, height: 240, method: scale}}
#  - {{width: 640, height: 480, method: scale}}
#  - {{width: 800, height: 600, method: scale}}

# The key this server signs events and requests with. Keep it safe and never share it.
signing_key_path: {signing_key_path}

# Servers asked for another server's signing keys when it cannot be asked itself (notaries).
# This is Synapse's default, written out: matrix.org. Give a key server's verify_keys
# ('ed25519:<id>': <base64 key>) to check its answers' signatures as well as its TLS
# certificate. Set suppress_key_server_warning: true to keep matrix.org without the
# start-up warning about it.
trusted_key_servers:
  - server_name: "matrix.org"
#suppress_key_server_warning: false
# How long other servers may use the keys this server publishes before asking again.
#key_refresh_interval: 1d
# Keys this server signed with before (key ID: {{key: <base64 public key>, expired_ts:
# <ms>}}), so what they signed still verifies.
#old_signing_keys:
#  "ed25519:id": {{key: "base64string", expired_ts: 123456789123}}

# Lets `register_new_matrix_user`-style tools create accounts with an HMAC of this secret.
registration_shared_secret: {registration_shared_secret}

# Registration. Open registration needs a verification step (a token, captcha or email);
# set enable_registration_without_verification only if you accept unverified sign-ups.
enable_registration: false
#registration_requires_token: true
#enable_registration_without_verification: false

# Passwords. New ones are hashed with argon2id at this cost: the defaults (OWASP's) take
# about 20 ms of one CPU and 19 MiB a hash. memory_cost is in KiB, as the m= of a stored
# hash, or a size like 64M; parallelism is threads a hash. At most CPUs / parallelism
# hashes run at once. Changing the cost rehashes each password at the user's next login.
#password_config:
#  argon2:
#    time_cost: 2
#    memory_cost: 19M
#    parallelism: 1

# URL previews: when a client asks, the server fetches a URL and answers with its title,
# description and image. That lets users make the server send requests, so before enabling
# them list every address range it must never connect to - private networks, loopback,
# link-local, cloud metadata services - in url_preview_ip_range_blacklist (required). These
# are Synapse's recommended ranges; requests to names that resolve into them are refused too.
url_preview_enabled: false
#url_preview_ip_range_blacklist:
{ip_range_blacklist}
# Ranges allowed even though the blacklist covers them (e.g. an internal wiki).
#url_preview_ip_range_whitelist:
#  - '192.168.1.1'
# URLs never previewed: each entry maps URL components (scheme, netloc, hostname, port,
# path, query, fragment, username, password) to a glob, or a regex starting with '^'; a
# URL matching every component of an entry is refused.
#url_preview_url_blacklist:
#  - netloc: 'google.com'
#  - scheme: 'http'
#  - netloc: '^(?:.*\\.)?example\\.org$'
#    path: '/private/*'
#max_spider_size: 10M
#url_preview_accept_language:
#  - en

# Cache sizing: the events, state_groups and redactions caches hold their base size
# (event_cache_size for events) times global_factor, or times their own factor from
# per_cache_factors; with expire_caches, an entry goes cache_entry_ttl after it was cached.
#event_cache_size: 100K
caches:
  global_factor: 0.5
  #per_cache_factors:
  #  events: 2.0
  expire_caches: true
  cache_entry_ttl: 30m

# The room version new rooms get unless the client asks for another.
default_room_version: "{default_room_version}"

# The public room directory is private to this server's users unless this is set.
allow_public_rooms_without_auth: false

# Other servers may read the public room directory (for their users' room lists).
allow_public_rooms_over_federation: false
"""

# Synapse's recommended url_preview_ip_range_blacklist: loopback, private, carrier-grade
# NAT, link-local, documentation/benchmarking and multicast ranges of IPv4 and IPv6
SYNAPSE_IP_RANGE_BLACKLIST = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "192.0.0.0/24",
    "169.254.0.0/16",
    "192.88.99.0/24",
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "2001:db8::/32",
    "ff00::/8",
    "fec0::/10",
)

_LOG_CONFIG = {
    "version": 1,
    "formatters": {
        "precise": {
            "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
            "%(request)s - %(message)s",
        }
    },
    "filters": {"request": {"()": "ranvier.http.logging.RequestIdFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "precise",
            "filters": ["request"],
        }
    },
    "loggers": {"ranvier": {"level": "INFO"}, "aiohttp.access": {"level": "WARNING"}},
    "root": {"level": "INFO", "handlers": ["console"]},
    "disable_existing_loggers": False,
}


def generate_config(
    server_name: str, config_path: str | Path, data_dir: str | Path | None = None
) -> list[Path]:
    """Write the config, its log config and a signing key; never overwrite existing files.

    Returns the files written.
    """
    config_path = Path(config_path).absolute()
    if config_path.exists():
        raise FileExistsError(f"{config_path} already exists; not overwriting it")
    config_dir = config_path.parent
    data = Path(data_dir).absolute() if data_dir else config_dir
    data.mkdir(parents=True, exist_ok=True)
    config_dir.mkdir(parents=True, exist_ok=True)

    signing_key_path = config_dir / f"{server_name}.signing.key"
    log_config_path = config_dir / f"{server_name}.log.config"
    written = [config_path]
    if not signing_key_path.exists():
        write_signing_key(signing_key_path)
        written.append(signing_key_path)
    if not log_config_path.exists():
        log_config_path.write_text(yaml.safe_dump(_LOG_CONFIG, sort_keys=False))
        written.append(log_config_path)

    config_path.write_text(
        _TEMPLATE.format(
            server_name=server_name,
            pid_file=_relative(data / "homeserver.pid", config_dir),
            database_path=_relative(data / "homeserver.db", config_dir),
            log_config=_relative(log_config_path, config_dir),
            media_store_path=_relative(data / "media_store", config_dir),
            signing_key_path=_relative(signing_key_path, config_dir),
            registration_shared_secret=secrets.token_urlsafe(32),
            default_room_version=DEFAULT_ROOM_VERSION.identifier,
            ip_range_blacklist="\n".join(
                f"#  - '{ip_range}'" for ip_range in SYNAPSE_IP_RANGE_BLACKLIST
            ),
        )
    )
    return written


def write_signing_key(path: Path) -> None:
    """One line per key, `ed25519 <version> <unpadded base64 seed>`, as Synapse writes it."""
    key = ServerSigningKey.generate("a_" + secrets.token_hex(2))
    with open(path, "x") as stream:
        stream.write(format_signing_key_file([key]))
    path.chmod(0o600)


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)
