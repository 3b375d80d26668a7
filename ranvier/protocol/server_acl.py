"""Server access control lists: whether an `m.room.server_acl` lets a server take part in
a room.

spec: client-server-api "Server Access Control Lists (ACLs) for rooms" and the event's
schema (m.room.server_acl): no ACL event allows everyone; then an IP literal is denied when
`allow_ip_literals` is false; then a match in `deny` denies; then a match in `allow`
allows; anything else is denied. Entries are case-insensitive globs (appendices "Glob-style
matching": `*` any run of characters, `?` exactly one) matched against the server name
without its port.

Content that breaks the schema is read the way Synapse reads it, so that every server in a
room comes to the same answer: an `allow_ip_literals` that is not a boolean counts as true,
an `allow` or `deny` that is not a list counts as empty, and entries that are not strings
are skipped. A malformed `allow` therefore denies everyone, as a missing one does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SERVER_ACL = "m.room.server_acl"


@dataclass(frozen=True, slots=True)
class ServerAcl:
    allow_ip_literals: bool
    # lower-cased globs
    allow: tuple[str, ...]
    deny: tuple[str, ...]

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> ServerAcl:
        allow_ip_literals = content.get("allow_ip_literals", True)
        return cls(
            allow_ip_literals if isinstance(allow_ip_literals, bool) else True,
            _globs(content.get("allow")),
            _globs(content.get("deny")),
        )

    def allows(self, server_name: str) -> bool:
        """Whether the server (a server name, with or without a port) may take part."""
        host = host_of(server_name).lower()
        if not self.allow_ip_literals and is_ip_literal(host):
            return False
        if any(glob_matches(glob, host) for glob in self.deny):
            return False
        return any(glob_matches(glob, host) for glob in self.allow)


def server_allowed(acl_content: Mapping[str, Any] | None, server_name: str) -> bool:
    """Whether `server_name` may take part in a room whose current m.room.server_acl has
    this content (None: the room has no ACL)."""
    if acl_content is None:
        return True
    return ServerAcl.from_content(acl_content).allows(server_name)


def host_of(server_name: str) -> str:
    """The server name without its port: `[::1]:8448` -> `[::1]`, `a.org:80` -> `a.org`."""
    if server_name.startswith("["):
        end = server_name.find("]")
        return server_name if end < 0 else server_name[: end + 1]
    host, _, _ = server_name.partition(":")
    return host


def is_ip_literal(host: str) -> bool:
    """An IPv6 literal (in brackets, as server names write it) or a dotted-quad IPv4."""
    if host.startswith("["):
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def glob_matches(glob: str, text: str) -> bool:
    """Whether the whole of `text` matches `glob` (`*` and `?`; no other special
    characters). Compare lower-cased strings for case-insensitive matching.

    A two-pointer walk that returns to the last `*` on a mismatch: at most
    len(glob) * len(text) steps whatever the pattern, where a regular expression
    built from a glob such as `*a*a*a*a*b` can take exponentially long.
    """
    g = t = 0
    star = -1  # index in glob of the last `*` seen
    resume = 0  # index in text that `*` has swallowed up to
    while t < len(text):
        if g < len(glob) and (glob[g] == "?" or glob[g] == text[t]):
            g += 1
            t += 1
        elif g < len(glob) and glob[g] == "*":
            star, resume = g, t
            g += 1
        elif star >= 0:
            resume += 1
            g, t = star + 1, resume
        else:
            return False
    while g < len(glob) and glob[g] == "*":
        g += 1
    return g == len(glob)


def _globs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(entry.lower() for entry in value if isinstance(entry, str))
