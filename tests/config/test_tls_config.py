"""TLS listeners' certificate options: what start-up accepts, and each refusal with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from ranvier.config import load_config
from tests.config.files import refusal, write_config

TLS_LISTENER = {"port": 8448, "tls": True, "resources": [{"names": ["client", "federation"]}]}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pair(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    """A certificate (with its chain) and its key, as PEM files."""
    issued = ca.issue_cert("hs.example.org")
    certificate, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    certificate.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    key.write_bytes(issued.private_key_pem.bytes())
    return certificate, key


def with_tls(generated: Path, certificate: object, key: object, **changes: object) -> Path:
    return write_config(
        generated,
        listeners=[TLS_LISTENER],
        tls_certificate_path=certificate,
        tls_private_key_path=key,
        **changes,
    )


def test_tls_listener_with_a_certificate_and_its_key_loads(
    generated: Path, pair: tuple[Path, Path]
) -> None:
    config = load_config(with_tls(generated, str(pair[0]), str(pair[1])))
    assert config.listeners[0].tls is True
    assert config.tls_certificate_path == str(pair[0])
    assert config.tls_private_key_path == str(pair[1])


def test_relative_paths_are_relative_to_the_config_file(
    generated: Path, pair: tuple[Path, Path]
) -> None:
    directory = generated.parent
    (directory / "certs").mkdir()
    for path in pair:
        path.rename(directory / "certs" / path.name)
    config = load_config(with_tls(generated, "certs/tls.crt", "certs/tls.key"))
    assert config.tls_certificate_path == str(directory / "certs" / "tls.crt")


def test_tls_listener_without_the_files_is_refused(generated: Path) -> None:
    message = refusal(write_config(generated, listeners=[{"port": 8008}, TLS_LISTENER]))
    assert "listeners[1].tls: a TLS listener needs 'tls_certificate_path'" in message
    assert "'tls_private_key_path'" in message and "set both" in message


def test_tls_listener_with_only_the_certificate_is_refused(
    generated: Path, pair: tuple[Path, Path]
) -> None:
    message = refusal(
        write_config(generated, listeners=[TLS_LISTENER], tls_certificate_path=str(pair[0]))
    )
    assert "listeners[0].tls: a TLS listener needs" in message


@pytest.mark.parametrize("present", ["tls_certificate_path", "tls_private_key_path"])
def test_one_file_without_the_other_is_refused(
    generated: Path, pair: tuple[Path, Path], present: str
) -> None:
    path = str(pair[0] if present == "tls_certificate_path" else pair[1])
    message = refusal(write_config(generated, **{present: path}))
    other = {"tls_certificate_path", "tls_private_key_path"} - {present}
    assert f"{other.pop()}: {present} is set without it; set both, or neither" in message


def test_files_without_a_tls_listener_are_accepted_but_still_checked(
    generated: Path, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    # Synapse accepts them without a TLS listener; a bad pair is still found now
    config = load_config(
        write_config(
            generated, tls_certificate_path=str(pair[0]), tls_private_key_path=str(pair[1])
        )
    )
    assert not any(listener.tls for listener in config.listeners)
    missing = tmp_path / "missing.key"
    message = refusal(
        write_config(
            generated, tls_certificate_path=str(pair[0]), tls_private_key_path=str(missing)
        )
    )
    assert f"tls_private_key_path: cannot read {str(missing)!r}: No such file" in message


def test_unreadable_certificate_is_refused(generated: Path, pair: tuple[Path, Path]) -> None:
    missing = pair[0].parent / "nowhere.crt"
    message = refusal(with_tls(generated, str(missing), str(pair[1])))
    assert f"tls_certificate_path: cannot read {str(missing)!r}: No such file" in message


def test_a_directory_is_not_a_certificate(generated: Path, pair: tuple[Path, Path]) -> None:
    message = refusal(with_tls(generated, str(pair[0].parent), str(pair[1])))
    assert "tls_certificate_path: cannot read" in message


def test_certificate_file_without_a_certificate_is_refused(
    generated: Path, pair: tuple[Path, Path]
) -> None:
    # the key where the certificate should be: a common slip
    message = refusal(with_tls(generated, str(pair[1]), str(pair[1])))
    assert f"tls_certificate_path: {str(pair[1])!r} holds no PEM certificate" in message


def test_key_file_without_a_key_is_refused(generated: Path, pair: tuple[Path, Path]) -> None:
    message = refusal(with_tls(generated, str(pair[0]), str(pair[0])))
    assert f"tls_private_key_path: {str(pair[0])!r} holds no PEM private key" in message


def test_key_of_another_certificate_is_refused(
    generated: Path, pair: tuple[Path, Path], ca: trustme.CA, tmp_path: Path
) -> None:
    other_key = tmp_path / "other.key"
    other_key.write_bytes(ca.issue_cert("other.example.org").private_key_pem.bytes())
    message = refusal(with_tls(generated, str(pair[0]), str(other_key)))
    assert f"tls_private_key_path: the key in {str(other_key)!r} does not belong to" in message


def test_encrypted_key_is_refused_without_asking_for_a_passphrase(
    generated: Path, pair: tuple[Path, Path], tmp_path: Path
) -> None:
    key = serialization.load_pem_private_key(pair[1].read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    message = refusal(with_tls(generated, str(pair[0]), str(encrypted)))
    assert "is encrypted with a passphrase" in message and "decrypt it" in message
