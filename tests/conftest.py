"""Shared fixtures. Integration tests (marked `integration`) need the stack from `make up`."""

from __future__ import annotations

import pytest

from openpipe.config import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The running local stack; fails (not skips) with what to do when it is down."""
    from openpipe.stack import components

    down = []
    for component in (components.POSTGRES, components.KAFKA):
        ok, detail = component.ready(settings)
        if not ok:
            down.append(f"{component.name}: {detail}")
    if down:
        pytest.fail("the stack is not up (run `make up`): " + "; ".join(down), pytrace=False)
    return settings
