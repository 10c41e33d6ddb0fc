"""`openpipe reload`: what the webserver answers becomes a clear message (GraphQL stubbed)."""

import os

import httpx
import pytest

from openpipe.config import load_settings
from openpipe.stack import cli, dagster
from openpipe.stack.process import ManagedProcess, StackError


@pytest.fixture(autouse=True)
def code_server(monkeypatch, tmp_path):
    """A code server of this test's own: a reload marks its pid file, not the stack's."""
    server = ManagedProcess("dagster-code-server", home=tmp_path)
    server.pid_file.write_text("1\n")
    os.utime(server.pid_file, (1, 1))
    monkeypatch.setattr(dagster, "CODE_SERVER", server)
    return server


def answer(monkeypatch, reply):
    def fake(settings, query, variables=None, *, timeout_s=10):
        assert variables == {"name": dagster.LOCATION}
        assert timeout_s == dagster.RELOAD_TIMEOUT_S
        if isinstance(reply, Exception):
            raise reply
        return {"reloadRepositoryLocation": reply}

    monkeypatch.setattr(dagster, "graphql", fake)


def test_a_location_that_loads_is_reloaded(monkeypatch, capsys, code_server):
    answer(
        monkeypatch,
        {"__typename": "WorkspaceLocationEntry", "locationOrLoadError": {"__typename": "X"}},
    )
    assert cli.main(["reload"]) == 0
    assert "reloaded openpipe_dagster.definitions" in capsys.readouterr().out
    assert code_server.pid_file.stat().st_mtime > 1  # its code is the latest now


def test_definitions_that_do_not_load_are_shown_with_their_error(monkeypatch, capsys):
    error = {"__typename": "PythonError", "message": "ImportError: no module named nope"}
    answer(monkeypatch, {"__typename": "WorkspaceLocationEntry", "locationOrLoadError": error})
    assert cli.main(["reload"]) == 1
    err = capsys.readouterr().err
    assert "openpipe_dagster.definitions does not load" in err
    assert "no module named nope" in err


def test_an_unknown_location_is_named(monkeypatch, capsys):
    answer(
        monkeypatch,
        {"__typename": "RepositoryLocationNotFound", "message": "Location openpipe not found"},
    )
    assert cli.main(["reload"]) == 1
    assert "reloading openpipe failed: Location openpipe not found" in capsys.readouterr().err


def test_a_webserver_that_does_not_answer_says_to_check_the_stack(monkeypatch):
    answer(monkeypatch, httpx.ConnectError("refused"))
    with pytest.raises(StackError, match=r"did not answer the reload \(ConnectError\)"):
        dagster.reload_code(load_settings())
