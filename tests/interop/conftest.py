from tests.integration.conftest import module_database, server

__all__ = ["module_database", "server"]
