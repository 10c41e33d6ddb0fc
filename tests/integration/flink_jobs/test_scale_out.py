"""Scale-out: the job at parallelism 3 over two TaskManagers, one of them killed mid-stream."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from crafted import (
    BASE_MS,
    completed_checkpoints,
    expected_rows,
    flush,
    output_rows,
    output_topics,
    rounded,
    stream,
)
from flink_support import IsolatedJob, consume_until, isolated_job_instance, produce

from openpipe.config import load_settings
from openpipe.stack import flink as stack_flink

pytestmark = pytest.mark.integration

SECOND = 2  # the local stack's second TaskManager (flink.taskmanagers allows up to 8)


def _taskmanager_ids(rest_url: str) -> set[str]:
    response = httpx.get(f"{rest_url}/taskmanagers", timeout=5).json()
    return {tm["id"] for tm in response["taskmanagers"]}


@pytest.fixture(scope="module")
def second_taskmanager() -> Iterator[str]:
    """A second TaskManager next to the stack's first for this module; yields its cluster id."""
    settings = load_settings()
    second = stack_flink.taskmanager_process(SECOND)
    assert not second.running(), "a second TaskManager already runs; this test kills its own"
    before = _taskmanager_ids(settings.flink.rest_url)
    stack_flink.start_taskmanager(SECOND)
    deadline = time.monotonic() + 90
    while not (new := _taskmanager_ids(settings.flink.rest_url) - before):
        assert time.monotonic() < deadline, "the second TaskManager did not register in 90 s"
        time.sleep(1)
    yield new.pop()
    second.stop()


@pytest.fixture(scope="module")
def spread_job(second_taskmanager, tmp_path_factory) -> Iterator[IsolatedJob]:
    yield from isolated_job_instance(tmp_path_factory)


def _taskmanagers_of(job: IsolatedJob, job_id: str) -> set[str]:
    service = job.service
    found = set()
    for vertex in service._get(f"/jobs/{job_id}")["vertices"]:
        detail = service._get(f"/jobs/{job_id}/vertices/{vertex['id']}")
        found |= {s["taskmanager-id"] for s in detail["subtasks"]}
    return found


def test_job_on_two_taskmanagers_survives_losing_one_exactly(spread_job, second_taskmanager):
    job, prefix = spread_job, f"itest-{spread_job.suffix}-scaleout"
    partitions = job.settings.kafka.partitions
    running = job.service.status()
    detail = job.service._get(f"/jobs/{running.job_id}")
    assert {v["parallelism"] for v in detail["vertices"]} == {partitions}
    hosts = _taskmanagers_of(job, running.job_id)
    # Slots go to the least used TaskManager, which is not always the second: the one that
    # dies is one that holds subtasks, and the job must finish on what is left.
    victim = SECOND if second_taskmanager in hosts else 1
    print(f"subtasks on {len(hosts)} TaskManager(s); killing TaskManager {victim}")

    messages = stream(prefix, BASE_MS, partitions)
    half = len(messages) // 2
    produce(job.settings, messages[:half])
    before = completed_checkpoints(job.service, running.job_id)
    deadline = time.monotonic() + 60
    while completed_checkpoints(job.service, running.job_id) < before + 2:
        assert time.monotonic() < deadline, "no checkpoint completed within 60 s"
        time.sleep(1)
    os.kill(stack_flink.taskmanager_process(victim).pid(), signal.SIGKILL)
    produce(job.settings, messages[half:] + flush(prefix, BASE_MS + 3_600_000, partitions))
    if victim == 1:  # the stack's own TaskManager comes back, as `make up` would bring it
        time.sleep(5)
        if not stack_flink.TASKMANAGER.running():
            stack_flink.start_taskmanager()

    want = expected_rows(job, messages, prefix)
    total = sum(len(r) for r in want.values())
    got = output_rows(consume_until(output_topics(job), prefix, total, timeout_s=240), job, prefix)
    for name in want:
        assert rounded(got[name]) == want[name], name  # exact: nothing lost, nothing twice
    assert job.service.status().job_id == running.job_id  # recovered in place
