"""The compose `kafka-topics` service's script against the live broker of `make up`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from openpipe import kafka
from openpipe.config import REPO_ROOT, Settings

pytestmark = pytest.mark.integration


def test_topic_init_script_leaves_every_configured_topic_in_place(stack: Settings) -> None:
    # The same command the container runs; topics that exist are kept, so this is safe
    # against the shared stack.
    result = subprocess.run(
        [sys.executable, "docker/app/ensure_topics.py"],
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    topics = kafka.admin_client(stack.kafka.bootstrap_servers).list_topics(timeout=10).topics
    for name in stack.kafka.topics.all():
        assert f"{name}: " in result.stderr, result.stderr
        assert len(topics[name].partitions) >= stack.kafka.partitions, name
