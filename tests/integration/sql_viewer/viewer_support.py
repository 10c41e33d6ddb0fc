"""Helpers for the viewer's integration tests, which import them by name (a module of its
own, not conftest.py: `conftest` is a different module for every test folder)."""

from __future__ import annotations

from dataclasses import dataclass

from openpipe.config import Settings, load_settings


@dataclass(frozen=True)
class Fixture:
    schema: str
    readings: str  # schema.table, as the API names it
    devices: str
    sequence: str
    owner_pid: int


def viewer_settings(**viewer: object) -> Settings:
    """The configured settings with some viewer limits overridden."""
    settings = load_settings()
    return settings.model_copy(update={"viewer": settings.viewer.model_copy(update=viewer)})
