"""One homeserver per test module and engine that sends its mail to a capturing SMTP server
on loopback, with its public_baseurl on loopback so the links in the mails can be followed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.email.smtp import CapturingSmtpServer
from tests.integration.conftest import module_database
from tests.integration.homeserver import RunningServer, free_port, start_server, write_test_config

__all__ = ["module_database"]

# quick enough that a test can wait for a link to expire
TOKEN_LIFETIME_SECONDS = 4


def email_section(smtp: CapturingSmtpServer, **extra: Any) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "notif_from": "Your Friendly %(app)s homeserver <noreply@test.localhost>",
        "app_name": "Ranvier Test",
        "validation_token_lifetime": f"{TOKEN_LIFETIME_SECONDS}s",
        **extra,
    }


@pytest.fixture(scope="module")
def smtp(module_database: dict[str, Any]) -> Iterator[CapturingSmtpServer]:
    # one per engine's server (module_database is), so their mails stay apart
    with CapturingSmtpServer() as server:
        yield server


def email_server(**overrides: Any) -> Any:
    """A module-scoped `server` fixture: email through `smtp`, and `overrides`."""

    @pytest.fixture(scope="module")
    def server(
        tmp_path_factory: pytest.TempPathFactory,
        module_database: dict[str, Any],
        smtp: CapturingSmtpServer,
    ) -> Iterator[RunningServer]:
        port = free_port()
        config = write_test_config(
            tmp_path_factory.mktemp("hs"),
            module_database,
            port,
            public_baseurl=f"http://127.0.0.1:{port}/",
            email=email_section(smtp),
            **{"rc_3pid_validation": {"per_second": 1000, "burst_count": 1000}, **overrides},
        )
        running = start_server(config, port)
        try:
            yield running
        finally:
            assert running.stop() == 0, running.log()

    return server
