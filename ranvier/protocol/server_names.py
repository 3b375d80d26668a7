"""Server names, as the spec's appendix "Server Name" defines them: a hostname (a DNS name,
an IPv4 address or a bracketed IPv6 address), optionally followed by `:port`."""

from __future__ import annotations

import ipaddress
import re

# RFC 1123 labels: letters, digits and hyphens, not starting or ending with a hyphen
_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def server_name_problem(server_name: str) -> str | None:
    """Why `server_name` is not a valid server name, or None if it is."""
    if not server_name:
        return "it is empty"
    host, port = server_name, None
    if server_name.startswith("["):
        end = server_name.find("]")
        if end < 0:
            return "an IPv6 address must be closed with ']'"
        host, rest = server_name[: end + 1], server_name[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return f"only ':port' may follow the address, not {rest!r}"
            port = rest[1:]
    elif ":" in server_name:
        host, port = server_name.rsplit(":", 1)
    valid_port = port is None or (port.isascii() and port.isdigit() and 0 < int(port) < 65536)
    if not valid_port:
        return f"the port {port!r} is not a number from 1 to 65535"
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host} is not an IPv6 address"
        return None
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host!r} is not an IPv4 address"
        return None
    if len(host) > 255:
        return "the hostname is longer than 255 characters"
    labels = host.removesuffix(".").split(".")
    for label in labels:
        if not _DNS_LABEL.fullmatch(label):
            return (
                f"{label!r} is not a valid part of a hostname (letters, digits and '-', "
                "not at the start or end)"
                if label
                else "the hostname has an empty part ('..' or a leading '.')"
            )
    return None
