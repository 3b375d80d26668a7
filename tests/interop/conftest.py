from tests.integration.conftest import module_database

__all__ = ["module_database"]
