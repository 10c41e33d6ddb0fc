"""FlinkService finds checkpoints where the live cluster of `make up` says it writes them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from openpipe.config import Settings
from openpipe_dagster.resources.flink import FlinkService

pytestmark = pytest.mark.integration


def test_checkpoint_dir_is_the_clusters_own(stack: Settings) -> None:
    try:
        config = httpx.get(f"{stack.flink.rest_url}/jobmanager/config", timeout=5).json()
    except httpx.HTTPError:
        pytest.fail("the Flink JobManager is not up; run `make up`")
    configured = {e["key"]: e["value"] for e in config}["execution.checkpointing.dir"]
    service = FlinkService(rest_url=stack.flink.rest_url, job_name=stack.flink.job_name)
    assert service.cluster_checkpoint_dir() == Path(urlparse(configured).path)


def test_no_checkpoint_dir_when_the_cluster_is_unreachable() -> None:
    service = FlinkService(rest_url="http://127.0.0.1:9", job_name="j")
    assert service.cluster_checkpoint_dir() is None
    assert service.latest_checkpoint("a" * 32) is None
