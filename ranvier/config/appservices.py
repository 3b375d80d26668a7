"""Application service registrations: the YAML files `app_service_config_files` names.

spec: application-service-api "Registration". Each file registers one service: its ID,
where it listens (`url`, or null for a service that wants no traffic), the token it sends
(`as_token`) and the one we send it (`hs_token`), its bot user (`sender_localpart`), and the
namespaces of user IDs, room aliases and room IDs it is interested in or owns
(`exclusive`). Everything is checked at start-up, all files at once, and every problem is
named with its file: a bad regex, a missing key, a token or ID used twice.

Namespace regexes match from the start of the ID and need not match all of it, as
Synapse matches them (`re.match`): registrations written for Synapse mean the same here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ranvier.config.errors import ConfigError

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAMESPACE_KINDS = ("users", "aliases", "rooms")

# keys a registration may carry that ask for nothing of us (bridges write them for other
# servers or for themselves); any other unknown key is named in a start-up warning
_KNOWN_KEYS = {
    "id",
    "url",
    "as_token",
    "hs_token",
    "sender_localpart",
    "namespaces",
    "rate_limited",
    "protocols",
    "receive_ephemeral",
    "push_ephemeral",
    "de.sorunome.msc2409.push_ephemeral",
    "org.matrix.msc3202",
    "ip_range_whitelist",
}


@dataclass(frozen=True)
class Namespace:
    regex: re.Pattern[str]
    exclusive: bool

    def matches(self, value: str) -> bool:
        return self.regex.match(value) is not None


@dataclass(frozen=True)
class AppService:
    id: str
    url: str | None
    as_token: str
    hs_token: str
    # the full user ID of sender_localpart on this server: the service's own bot
    sender: str
    users: tuple[Namespace, ...] = ()
    aliases: tuple[Namespace, ...] = ()
    rooms: tuple[Namespace, ...] = ()
    # requests of its masqueraded users count against rate limits (never the sender's)
    rate_limited: bool = True
    protocols: tuple[str, ...] = ()
    # MSC2409 / spec v1.13: typing, receipts and presence pushed in transactions
    receive_ephemeral: bool = False
    # MSC3202: to-device messages, device list changes and one-time key counts pushed too
    msc3202: bool = False
    # as_token requests from elsewhere are refused; None: from anywhere
    ip_range_whitelist: tuple[IpNetwork, ...] | None = None
    # the registration file, for messages
    source: str = ""
    unknown_keys: tuple[str, ...] = field(default=())

    @property
    def server_name(self) -> str:
        return self.sender.split(":", 1)[1]

    def _is_local(self, user_id: str) -> bool:
        return user_id.split(":", 1)[-1] == self.server_name

    def is_user_in_namespace(self, user_id: str) -> bool:
        """A local user the service may act as: its sender, or one its users regex matches."""
        if user_id == self.sender:
            return True
        return self._is_local(user_id) and any(ns.matches(user_id) for ns in self.users)

    def is_exclusive_user(self, user_id: str) -> bool:
        if user_id == self.sender:
            return True
        return self._is_local(user_id) and any(
            ns.exclusive and ns.matches(user_id) for ns in self.users
        )

    def is_alias_in_namespace(self, alias: str) -> bool:
        return any(ns.matches(alias) for ns in self.aliases)

    def is_exclusive_alias(self, alias: str) -> bool:
        return any(ns.exclusive and ns.matches(alias) for ns in self.aliases)

    def is_room_in_namespace(self, room_id: str) -> bool:
        return any(ns.matches(room_id) for ns in self.rooms)

    def is_exclusive_room(self, room_id: str) -> bool:
        return any(ns.exclusive and ns.matches(room_id) for ns in self.rooms)

    def allows_address(self, address: str) -> bool:
        if self.ip_range_whitelist is None:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.ip_range_whitelist)


def load_appservices(paths: Sequence[str], server_name: str) -> tuple[AppService, ...]:
    """Every registration in `paths`, checked alone and together; raises ConfigError naming
    every problem."""
    services: list[AppService] = []
    problems: list[str] = []
    for path in paths:
        service, file_problems = _load_file(Path(path), server_name)
        problems += file_problems
        if service is not None:
            services.append(service)
    problems += _clashes(services)
    if problems:
        raise ConfigError(problems, "app_service_config_files")
    return tuple(services)


def _clashes(services: Sequence[AppService]) -> list[str]:
    problems = []
    seen_ids: dict[str, str] = {}
    seen_tokens: dict[str, str] = {}
    for service in services:
        if service.id in seen_ids:
            problems.append(
                f"{service.source}: id {service.id!r} is already the id of the service in "
                f"{seen_ids[service.id]}; each application service needs its own id"
            )
        seen_ids.setdefault(service.id, service.source)
        if service.as_token in seen_tokens:
            problems.append(
                f"{service.source}: as_token is the same as the one in "
                f"{seen_tokens[service.as_token]}; each application service needs its own "
                "as_token, or requests could not tell them apart"
            )
        seen_tokens.setdefault(service.as_token, service.source)
    return problems


def _load_file(path: Path, server_name: str) -> tuple[AppService | None, list[str]]:
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        return None, [f"{where}: cannot read the registration file: {exc.strerror}"]
    except yaml.YAMLError as exc:
        return None, [f"{where}: not valid YAML: {exc}"]
    if not isinstance(raw, dict):
        return None, [f"{where}: a registration must be a YAML mapping"]
    problems: list[str] = []
    strings: dict[str, str] = {}
    for key in ("id", "as_token", "hs_token", "sender_localpart"):
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            problems.append(f"{where}: {key!r} is required and must be a non-empty string")
        else:
            strings[key] = value
    if "url" not in raw:
        problems.append(
            f"{where}: 'url' is required: the address the service listens on, or null if "
            "it wants no transactions"
        )
    url = raw.get("url")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        problems.append(f"{where}: 'url' must be an http:// or https:// URL, or null")
        url = None
    namespaces: dict[str, tuple[Namespace, ...]] = {}
    raw_namespaces = raw.get("namespaces")
    if raw_namespaces is None:
        raw_namespaces = {}
    if not isinstance(raw_namespaces, dict):
        problems.append(f"{where}: 'namespaces' must be a mapping of users, aliases and rooms")
        raw_namespaces = {}
    for kind in NAMESPACE_KINDS:
        namespaces[kind], kind_problems = _namespaces(where, kind, raw_namespaces.get(kind))
        problems += kind_problems
    for flag in (
        "rate_limited",
        "receive_ephemeral",
        "push_ephemeral",
        "de.sorunome.msc2409.push_ephemeral",
        "org.matrix.msc3202",
    ):
        if flag in raw and not isinstance(raw[flag], bool):
            problems.append(f"{where}: {flag!r} must be true or false")
    protocols = raw.get("protocols") or []
    if not isinstance(protocols, list) or not all(isinstance(p, str) for p in protocols):
        problems.append(f"{where}: 'protocols' must be a list of protocol names")
        protocols = []
    whitelist, whitelist_problems = _ip_ranges(where, raw.get("ip_range_whitelist"))
    problems += whitelist_problems
    sender = f"@{strings.get('sender_localpart', '')}:{server_name}"
    if "sender_localpart" in strings and not re.fullmatch(
        r"[a-z0-9._=/+-]+", strings["sender_localpart"]
    ):
        problems.append(
            f"{where}: sender_localpart {strings['sender_localpart']!r} is not a valid user "
            "ID localpart (lower-case letters, digits and ._=/+- only)"
        )
    if problems:
        return None, problems
    return (
        AppService(
            id=strings["id"],
            url=url.rstrip("/") if url else None,
            as_token=strings["as_token"],
            hs_token=strings["hs_token"],
            sender=sender,
            users=namespaces["users"],
            aliases=namespaces["aliases"],
            rooms=namespaces["rooms"],
            rate_limited=raw.get("rate_limited", True) is not False,
            protocols=tuple(protocols),
            receive_ephemeral=any(
                raw.get(flag) is True
                for flag in (
                    "receive_ephemeral",
                    "push_ephemeral",
                    "de.sorunome.msc2409.push_ephemeral",
                )
            ),
            msc3202=raw.get("org.matrix.msc3202") is True,
            ip_range_whitelist=whitelist,
            source=where,
            unknown_keys=tuple(sorted(str(k) for k in raw if k not in _KNOWN_KEYS)),
        ),
        [],
    )


def _namespaces(where: str, kind: str, raw: Any) -> tuple[tuple[Namespace, ...], list[str]]:
    if raw is None:
        return (), []
    if not isinstance(raw, list):
        return (), [f"{where}: namespaces.{kind} must be a list of {{exclusive, regex}}"]
    found: list[Namespace] = []
    problems: list[str] = []
    for index, entry in enumerate(raw):
        at = f"{where}: namespaces.{kind}[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{at} must be a mapping with 'exclusive' and 'regex'")
            continue
        if not isinstance(entry.get("exclusive"), bool):
            problems.append(f"{at}.exclusive is required and must be true or false")
        regex = entry.get("regex")
        if not isinstance(regex, str):
            problems.append(f"{at}.regex is required and must be a string")
            continue
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            problems.append(f"{at}.regex {regex!r} is not a valid regular expression: {exc}")
            continue
        if isinstance(entry.get("exclusive"), bool):
            found.append(Namespace(compiled, entry["exclusive"]))
    return tuple(found), problems


def _ip_ranges(where: str, raw: Any) -> tuple[tuple[IpNetwork, ...] | None, list[str]]:
    if raw is None:
        return None, []
    if not isinstance(raw, list):
        return None, [f"{where}: 'ip_range_whitelist' must be a list of IP ranges"]
    networks: list[IpNetwork] = []
    problems: list[str] = []
    for entry in raw:
        try:
            networks.append(ipaddress.ip_network(str(entry), strict=False))
        except ValueError:
            problems.append(f"{where}: ip_range_whitelist: {entry!r} is not an IP range")
    return tuple(networks), problems
