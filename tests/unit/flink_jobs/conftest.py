"""Fixtures for the health-window job tests."""

from __future__ import annotations

import pytest

from openpipe.config import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()
