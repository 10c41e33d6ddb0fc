"""FlinkService: which address it links users to, and which paths it sends the cluster."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from openpipe.config import load_settings
from openpipe_dagster.resources import build_resources
from openpipe_dagster.resources.flink import FlinkService

# What docker-compose.yml sets: Dagster reaches the cluster by its service name, the
# browser through the port published on the host.
COMPOSE = {
    "OPENPIPE__FLINK__REST_URL": "http://flink-jobmanager:8081",
    "OPENPIPE__FLINK__UI_URL": "http://127.0.0.1:8083",
}


def test_job_links_use_the_ui_url_the_browser_opens() -> None:
    flink = build_resources(load_settings(environ=COMPOSE))["flink"]
    assert flink.rest_url == "http://flink-jobmanager:8081"
    assert flink.ui_url("f" * 32) == f"http://127.0.0.1:8083/#/job/running/{'f' * 32}/overview"


def test_job_links_default_to_the_rest_url() -> None:
    settings = load_settings(environ={})
    flink = build_resources(settings)["flink"]
    assert flink.ui_url("f" * 32).startswith(f"{settings.flink.rest_url}/#/job/")


def test_stop_with_savepoint_lets_the_cluster_choose_the_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A directory of the machine running Dagster does not exist on a containerised or
    # remote JobManager; the cluster's execution.checkpointing.savepoint-dir does.
    sent: list[dict[str, Any]] = []

    def refuse(url: str, json: dict[str, Any], timeout: float) -> httpx.Response:
        sent.append(json)
        raise httpx.ConnectError("no cluster in a unit test")

    monkeypatch.setattr(httpx, "post", refuse)
    service = FlinkService(rest_url="http://flink.invalid", job_name="j", state_dir="/nowhere")
    assert service.stop_with_savepoint("a" * 32) is None
    assert sent == [{"drain": False}]
