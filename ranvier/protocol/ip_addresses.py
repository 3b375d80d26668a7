"""Which addresses an outbound request (a URL preview, a federation request) may connect
to: pure checks over `ipaddress`, no I/O.

An IPv6 address can carry an IPv4 one inside it (IPv4-mapped `::ffff:a.b.c.d`,
IPv4-compatible `::a.b.c.d`, 6to4 `2002:AABB:CCDD::`, NAT64 `64:ff9b::a.b.c.d`); a
connection to it may end at that IPv4 address, so each form is judged as both.

A host can spell an address in more ways than `ipaddress` reads: legacy IPv4 forms
(`127.1`, `2130706433`, `0177.0.0.1`) and Unicode ones (fullwidth or other decimal digits,
ideographic full stops) that IDNA folds to ASCII. `parse_ip_literal` reads them all, for
a clear early refusal; `connectable_address` is the strict reading for the one address a
socket is about to connect to, where anything but a plain numeric address is refused.
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# always blocked whatever the config says, as in Synapse: "any address" reaches this host
ALWAYS_BLOCKED = ("0.0.0.0/32", "::/128")

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# UTS 46 maps these to "." in host names; NFKC leaves the ideographic one (and turns the
# halfwidth one into it)
_IDEOGRAPHIC_FULL_STOP = "\u3002"


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
    `0x7f.0.0.1`) count too, as resolvers turn them into addresses, and so do Unicode
    spellings (fullwidth digits and dots, Arabic-Indic digits), as URL parsers fold
    some of them to ASCII."""
    host = fold_host(host)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # a fully qualified name may end with a dot, and resolvers accept `127.0.0.1.`
    host = host.rstrip(".")
    if host and all(part for part in host.split(".")) and _looks_numeric(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def fold_host(host: str) -> str:
    """`host` with percent-escapes decoded, compatibility forms (fullwidth, circled,
    mathematical digits and letters) and every Unicode decimal digit made ASCII, the dots
    IDNA treats as label separators made ".", and lowercased: the widest reading of which
    address a host could be taken for. For refusing only, never for connecting."""
    host = unicodedata.normalize("NFKC", unquote(host.strip()))
    host = host.replace(_IDEOGRAPHIC_FULL_STOP, ".")
    return "".join(_ascii_digit(char) for char in host).lower()


def _ascii_digit(char: str) -> str:
    if char.isascii():
        return char
    value = unicodedata.decimal(char, None)
    return char if value is None else str(value)


def connectable_address(host: object) -> IPAddress | None:
    """The address a socket given `host` connects to without asking a resolver, if it is
    a plain numeric one; None for anything else (a name, a legacy spelling, bytes), which a
    connect call might resolve to somewhere unchecked."""
    if not isinstance(host, str) or not host.isascii():
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _looks_numeric(host: str) -> bool:
    return host.isascii() and all(
        part.isdigit() or (part[:2] == "0x" and _is_hex(part[2:])) for part in host.split(".")
    )


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


@dataclass(frozen=True)
class AddressPolicy:
    """An `*ip_range_blacklist` with its `*ip_range_whitelist`: an address is refused when
    any of its forms is in the blacklist, unless one of its forms is whitelisted."""

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

    def is_blocked_text(self, address: object) -> bool:
        """For addresses as resolvers report them and sockets are given them: anything
        but a plain numeric address is refused."""
        parsed = connectable_address(address)
        return parsed is None or self.is_blocked(parsed)


def _contains(networks: tuple[IPNetwork, ...], address: IPAddress) -> bool:
    return any(address.version == network.version and address in network for network in networks)
