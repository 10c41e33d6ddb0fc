"""The local stack's Dagster code server: one long-lived process that the webserver and
the daemon load the code location from, and `openpipe reload`."""

from __future__ import annotations

import pytest

from openpipe.config import Settings
from openpipe.stack import cli, components
from openpipe.stack import dagster as stack_dagster

pytestmark = pytest.mark.integration

_LOCATIONS = """
{ workspaceOrError { ... on Workspace { locationEntries { name
    displayMetadata { key value }
    locationOrLoadError { __typename } } } } }
"""


def test_the_webserver_loads_the_location_from_the_code_server(stack: Settings) -> None:
    ok, detail = stack_dagster.code_server_ready(stack)
    assert ok, detail
    entries = stack_dagster.graphql(stack, _LOCATIONS)["workspaceOrError"]["locationEntries"]
    (entry,) = [e for e in entries if e["name"] == stack_dagster.LOCATION]
    metadata = {m["key"]: m["value"] for m in entry["displayMetadata"]}
    assert metadata.get("socket") == str(stack_dagster.CODE_SOCKET)
    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"


def test_reload_keeps_the_same_code_server_process(stack: Settings, capsys) -> None:
    before = components.DAGSTER_CODE_SERVER.process.pid()
    assert cli.main(["reload"]) == 0
    assert "reloaded openpipe_dagster.definitions" in capsys.readouterr().out
    assert components.DAGSTER_CODE_SERVER.process.pid() == before
    assert stack_dagster.code_server_ready(stack)[0]
