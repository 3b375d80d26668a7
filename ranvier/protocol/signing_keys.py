"""Server signing keys: an ed25519 key with its key ID, and how they are written down.

spec: appendices "Signing Details" - the signing key identifier is `<algorithm>:<key id>`,
and the only algorithm is `ed25519`.
"""

from __future__ import annotations

from dataclasses import dataclass

from nacl.signing import SigningKey, VerifyKey

from ranvier.protocol.unpadded_base64 import decode_base64, encode_base64

ED25519 = "ed25519"


@dataclass(frozen=True, slots=True)
class ServerSigningKey:
    """A server's private signing key with its identifier, e.g. `ed25519:a_xyz`."""

    key_id: str
    signing_key: SigningKey

    def __post_init__(self) -> None:
        algorithm, _, version = self.key_id.partition(":")
        if algorithm != ED25519 or not version:
            raise ValueError(f"signing key ID must look like 'ed25519:<id>', not {self.key_id!r}")

    @classmethod
    def from_seed(cls, seed: bytes, version: str) -> ServerSigningKey:
        """The key whose 32-byte ed25519 seed is `seed`, identified as `ed25519:<version>`."""
        return cls(f"{ED25519}:{version}", SigningKey(seed))

    @classmethod
    def generate(cls, version: str) -> ServerSigningKey:
        return cls(f"{ED25519}:{version}", SigningKey.generate())

    @property
    def verify_key(self) -> VerifyKey:
        return self.signing_key.verify_key

    @property
    def verify_key_base64(self) -> str:
        """The public key as published under `verify_keys` in /_matrix/key/v2/server."""
        return encode_base64(bytes(self.verify_key))

    def sign(self, message: bytes) -> bytes:
        """The detached 64-byte signature of `message`."""
        return self.signing_key.sign(message).signature


def decode_verify_key(key_base64: str) -> VerifyKey:
    """A public ed25519 key from its unpadded base64 form; ValueError if it is not one."""
    raw = decode_base64(key_base64)
    if len(raw) != 32:
        raise ValueError(f"an ed25519 public key is 32 bytes, got {len(raw)}")
    return VerifyKey(raw)


def parse_signing_key_file(text: str) -> list[ServerSigningKey]:
    """Keys from a signing key file, one `ed25519 <version> <base64 seed>` per line.

    This is the format Synapse writes (`*.signing.key`), so keys carry over between servers.
    Raises ValueError naming the bad line.
    """
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or parts[0] != ED25519:
            raise ValueError(f"line {number}: expected 'ed25519 <key id> <base64 seed>'")
        seed = decode_base64(parts[2])
        if len(seed) != 32:
            raise ValueError(f"line {number}: an ed25519 seed is 32 bytes, got {len(seed)}")
        keys.append(ServerSigningKey.from_seed(seed, parts[1]))
    return keys


def format_signing_key_file(keys: list[ServerSigningKey]) -> str:
    """The text of a signing key file for `keys` (inverse of parse_signing_key_file)."""
    return "".join(
        f"{ED25519} {key.key_id.partition(':')[2]} {encode_base64(bytes(key.signing_key))}\n"
        for key in keys
    )
