"""The certificate HTTPS listeners serve: Synapse's `tls_certificate_path` (PEM, the
certificate then any intermediates) and `tls_private_key_path` (PEM, unencrypted).

Checked at start-up with a sentence naming the fix, loaded into one `ssl.SSLContext` that
every TLS listener shares, and loaded again into that same context on SIGHUP, so new
handshakes get the new certificate while open connections keep theirs.
"""

from __future__ import annotations

import ssl
from pathlib import Path

MINIMUM_TLS_VERSION = ssl.TLSVersion.TLSv1_2


class CertificateFileError(Exception):
    """A certificate or key file that cannot be served; the message says which and why."""


def _refuse_passphrase() -> bytes:
    # OpenSSL would otherwise ask for the passphrase on the terminal
    raise CertificateFileError("encrypted")


def _new_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_TLS_VERSION
    context.set_alpn_protocols(["http/1.1"])
    return context


def _load(context: ssl.SSLContext, certificate_path: str, private_key_path: str) -> None:
    """Load the pair into `context`, or raise CertificateFileError saying what is wrong."""
    for option, path in (
        ("tls_certificate_path", certificate_path),
        ("tls_private_key_path", private_key_path),
    ):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise CertificateFileError(
                f"{option}: cannot read {path!r}: {exc.strerror or exc}"
            ) from None
    try:
        # any PEM certificate in the file, else this refuses
        ssl.create_default_context(cafile=certificate_path)
    except ssl.SSLError:
        raise CertificateFileError(
            f"tls_certificate_path: {certificate_path!r} holds no PEM certificate; it must "
            "hold the server's certificate ('-----BEGIN CERTIFICATE-----'), followed by any "
            "intermediate certificates"
        ) from None
    try:
        context.load_cert_chain(certificate_path, private_key_path, password=_refuse_passphrase)
    except CertificateFileError:
        raise CertificateFileError(
            f"tls_private_key_path: {private_key_path!r} is encrypted with a passphrase; "
            "Ranvier cannot ask for one, so decrypt it (openssl pkey -in KEY -out KEY.plain)"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise CertificateFileError(
                f"tls_private_key_path: the key in {private_key_path!r} does not belong to "
                f"the certificate in {certificate_path!r}; point both options at files of "
                "the same certificate (the server's own certificate must come first in "
                "the certificate file)"
            ) from None
        raise CertificateFileError(
            f"tls_private_key_path: {private_key_path!r} holds no PEM private key the "
            f"certificate can use ({exc}); it must hold the certificate's unencrypted "
            "private key ('-----BEGIN PRIVATE KEY-----')"
        ) from None


def certificate_problems(certificate_path: str, private_key_path: str) -> list[str]:
    """What start-up refuses about the pair, if anything."""
    try:
        _load(_new_context(), certificate_path, private_key_path)
    except CertificateFileError as exc:
        return [str(exc)]
    return []


class ServerCertificate:
    """The SSLContext of every TLS listener, and its reload."""

    def __init__(self, certificate_path: str | Path, private_key_path: str | Path) -> None:
        self.certificate_path = str(certificate_path)
        self.private_key_path = str(private_key_path)
        self.context = _new_context()
        _load(self.context, self.certificate_path, self.private_key_path)

    def reload(self) -> str:
        """Read both files again. A bad pair raises CertificateFileError and changes
        nothing: the pair is tried in a context of its own first, because a failed load can
        leave a context with the new certificate and no key."""
        try:
            _load(_new_context(), self.certificate_path, self.private_key_path)
        except CertificateFileError as exc:
            raise CertificateFileError(f"kept serving the old TLS certificate: {exc}") from None
        _load(self.context, self.certificate_path, self.private_key_path)
        return f"reloaded the TLS certificate from {self.certificate_path}"
