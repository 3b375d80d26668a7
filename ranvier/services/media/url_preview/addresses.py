"""Which addresses a URL preview may connect to: pure checks over `ipaddress`, no I/O.

An IPv6 address can carry an IPv4 one inside it (IPv4-mapped `::ffff:a.b.c.d`,
IPv4-compatible `::a.b.c.d`, 6to4 `2002:AABB:CCDD::`, NAT64 `64:ff9b::a.b.c.d`); a
connection to it may end at that IPv4 address, so each form is judged as both.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# always blocked whatever the config says, as in Synapse: "any address" reaches this host
ALWAYS_BLOCKED = ("0.0.0.0/32", "::/128")

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def parse_networks(ranges: Iterable[str]) -> list[IPNetwork]:
    """CIDR ranges (or single addresses) as networks; host bits set are accepted, as
    Synapse's config does. Raises ValueError naming the bad entry."""
    networks: list[IPNetwork] = []
    for entry in ranges:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP address or CIDR range") from exc
    return networks


def address_forms(address: IPAddress) -> list[IPAddress]:
    """The address and every IPv4 address embedded in it that a connection could reach."""
    forms: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        unscoped = ipaddress.IPv6Address(address.packed)
        if unscoped != address:
            forms.append(unscoped)
        mapped = unscoped.ipv4_mapped
        if mapped is not None:
            forms.append(mapped)
        sixtofour = unscoped.sixtofour
        if sixtofour is not None:
            forms.append(sixtofour)
        if unscoped in _NAT64 or (unscoped in _IPV4_COMPATIBLE and int(unscoped) > 1):
            forms.append(ipaddress.IPv4Address(int(unscoped) & 0xFFFFFFFF))
    return forms


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address if `host` (as a URL carries it: IPv6 maybe in brackets, maybe with a
    zone) is an IP literal, else None. Legacy IPv4 spellings (`127.1`, `2130706433`,
    `0x7f.0.0.1`) count too: resolvers turn them into addresses."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # a fully qualified name may end with a dot, and resolvers accept `127.0.0.1.`
    host = host.removesuffix(".")
    if host and all(part for part in host.split(".")) and _looks_numeric(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _looks_numeric(host: str) -> bool:
    return all(
        part.isdigit() or (part[:2].lower() == "0x" and _is_hex(part[2:]))
        for part in host.split(".")
    )


def _is_hex(text: str) -> bool:
    return text == "" or all(c in "0123456789abcdefABCDEF" for c in text)


@dataclass(frozen=True)
class AddressPolicy:
    """`url_preview_ip_range_blacklist` and `_whitelist`: an address is refused when any
    of its forms is in the blacklist, unless one of its forms is whitelisted."""

    blacklist: tuple[IPNetwork, ...]
    whitelist: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_config(cls, blacklist: Iterable[str], whitelist: Iterable[str] = ()) -> AddressPolicy:
        return cls(
            tuple(parse_networks([*blacklist, *ALWAYS_BLOCKED])),
            tuple(parse_networks(whitelist)),
        )

    def is_blocked(self, address: IPAddress) -> bool:
        forms = address_forms(address)
        if not any(_contains(self.blacklist, form) for form in forms):
            return False
        return not any(_contains(self.whitelist, form) for form in forms)

    def is_blocked_text(self, address: str) -> bool:
        """For addresses as resolvers report them; an unparseable one is refused."""
        try:
            return self.is_blocked(ipaddress.ip_address(address))
        except ValueError:
            return True


def _contains(networks: tuple[IPNetwork, ...], address: IPAddress) -> bool:
    return any(address.version == network.version and address in network for network in networks)
