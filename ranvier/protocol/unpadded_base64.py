"""Unpadded base64, standard and URL-safe alphabets.

spec: appendices "Unpadded Base64" and "URL-safe unpadded Base64".
"""

from __future__ import annotations

import binascii

import unpaddedbase64


def encode_base64(data: bytes, *, urlsafe: bool = False) -> str:
    """Encode without `=` padding; `urlsafe` switches `+/` for `-_`."""
    return unpaddedbase64.encode_base64(data, urlsafe=urlsafe)


def decode_base64(text: str) -> bytes:
    """Decode either alphabet, with or without padding (the spec says implementations SHOULD).

    Raises ValueError when the text is not base64.
    """
    try:
        return unpaddedbase64.decode_base64(text)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise ValueError(f"invalid base64: {text[:40]!r}") from e
