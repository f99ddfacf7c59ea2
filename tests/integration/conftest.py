"""Fixtures of the integration tests (API fixtures live in ``conftest_api``)."""

from tests.integration.conftest_api import api, api_settings

__all__ = ["api", "api_settings"]
