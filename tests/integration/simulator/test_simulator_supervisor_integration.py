"""Dagster keeps the simulator alive: kill it, and the supervisor sensor redeploys it."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from openpipe.config import Settings
from openpipe_dagster.resources.simulator import SimulatorService

pytestmark = pytest.mark.integration
RESTART_DEADLINE_S = 60


def _wait_running(service: SimulatorService, timeout_s: float, not_pid: int | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = service.status()
        if status.running and status.pid != not_pid:
            return status
        time.sleep(1)
    return None


def test_killed_simulator_is_restarted_by_dagster_within_a_minute(stack: Settings) -> None:
    service = SimulatorService()
    before = _wait_running(service, 120)
    if before is None:
        pytest.fail(
            "no Dagster-managed simulator is running: is the dagster-daemon up and the "
            "simulator_supervisor sensor on? (or it was stopped on purpose: materialize "
            f"simulator_service); state: {service.status()}",
            pytrace=False,
        )
    assert (
        before.dashboard_url == f"http://{stack.monitoring.host}:{stack.monitoring.simulator_port}"
    )
    os.killpg(before.pid, signal.SIGKILL)  # a crash: no chance to clean up
    killed_at = time.monotonic()
    after = _wait_running(service, RESTART_DEADLINE_S + 30, not_pid=before.pid)
    elapsed = time.monotonic() - killed_at
    assert after is not None, f"not restarted within {RESTART_DEADLINE_S + 30} s"
    assert elapsed <= RESTART_DEADLINE_S, f"restarted after {elapsed:.0f} s"
    assert after.config_hash == stack.fingerprint()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{after.dashboard_url}/health/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    else:
        pytest.fail("the restarted simulator never became ready")
