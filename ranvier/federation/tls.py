"""Which certificates outbound federation trusts.

As Synapse: certificates are verified unless `federation_verify_certificates` is off or
the name being verified matches a glob of `federation_certificate_verification_whitelist`;
`federation_custom_ca_list`, when set, replaces the system's trusted CAs;
`federation_client_minimum_tls_version` is the oldest TLS spoken.
"""

from __future__ import annotations

import re
import ssl
import warnings
from collections.abc import Sequence
from pathlib import Path

_TLS_VERSIONS = {
    "1": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def glob_pattern(glob: str) -> re.Pattern[str]:
    """A whole-name, case-insensitive match for a glob with `*` (any run of characters,
    dots included) and `?` (one character), as Synapse reads these lists."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile("".join(parts), re.IGNORECASE)


class TlsPolicy:
    """The SSL contexts for outbound federation, one verifying and one not."""

    def __init__(
        self,
        *,
        verify: bool = True,
        verification_whitelist: Sequence[str] = (),
        custom_ca_files: Sequence[str] | None = None,
        minimum_version: str = "1",
    ) -> None:
        self._verify = verify
        self._whitelist = [glob_pattern(glob) for glob in verification_whitelist]
        minimum = _TLS_VERSIONS[minimum_version]
        self._verifying = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if custom_ca_files:
            # a fresh context holds no CAs: the listed ones replace the system's
            self._verifying = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            for path in custom_ca_files:
                self._verifying.load_verify_locations(cadata=Path(path).read_text())
        self._unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._unverified.check_hostname = False
        self._unverified.verify_mode = ssl.CERT_NONE
        with warnings.catch_warnings():
            # Synapse's default lets TLS 1.0 servers federate; Python warns it is old
            warnings.simplefilter("ignore", DeprecationWarning)
            self._verifying.minimum_version = minimum
            self._unverified.minimum_version = minimum

    def verifies(self, tls_name: str) -> bool:
        return self._verify and not any(p.fullmatch(tls_name) for p in self._whitelist)

    def context_for(self, tls_name: str) -> ssl.SSLContext:
        """The context for a connection whose certificate must be valid for `tls_name`."""
        return self._verifying if self.verifies(tls_name) else self._unverified
