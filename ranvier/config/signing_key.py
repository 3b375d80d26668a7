"""Reading the server's ed25519 signing key from Synapse's key file format."""

from __future__ import annotations

from pathlib import Path

from ranvier.config.errors import ConfigError
from ranvier.protocol.signing_keys import ServerSigningKey, parse_signing_key_file


def load_signing_key(path: str | Path) -> ServerSigningKey:
    """The first key in the file; refuses with the fix when it is missing or unreadable."""
    path = Path(path)
    try:
        keys = parse_signing_key_file(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            [
                f"signing_key_path: {str(path)!r} does not exist; restore the key from a "
                "backup (other servers trust it) or, for a new server, run "
                "`ranvier generate-config`"
            ]
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            [
                f"signing_key_path: {str(path)!r} is not a signing key file "
                f"('ed25519 <version> <base64 seed>' per line): {exc}"
            ]
        ) from None
    if not keys:
        raise ConfigError([f"signing_key_path: {str(path)!r} holds no key"])
    return keys[0]
