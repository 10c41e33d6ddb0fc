"""SettingsResource: the effective OpenPipe settings inside a run or sensor evaluation."""

from __future__ import annotations

from functools import cached_property

import dagster as dg

from openpipe.config import Settings, load_settings


class SettingsResource(dg.ConfigurableResource):
    """The effective OpenPipe settings (config file plus OPENPIPE__* overrides).

    Definitions are built from one `Settings` at load time; a run or sensor process loads
    the same file and environment again here, lazily, so no value is read at import.
    """

    config_path: str | None = None

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)
