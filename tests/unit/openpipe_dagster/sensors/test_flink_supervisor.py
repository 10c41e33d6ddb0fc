"""The Flink supervisor sensor's decisions, against a test-double FlinkService (no cluster)."""

from __future__ import annotations

import dagster as dg
import orjson
import pytest

from flink_jobs.health_windows import plan_fingerprint
from openpipe.config import load_settings
from openpipe_dagster.resources import SettingsResource
from openpipe_dagster.resources.flink import FlinkJob, FlinkService
from openpipe_dagster.sensors.flink import flink_health_job_supervisor, needs_deploy

SETTINGS = load_settings()
CONFIG, PLAN = SETTINGS.fingerprint(), plan_fingerprint(SETTINGS)


class FakeFlinkService(FlinkService):
    """Reports a fixed list of jobs instead of asking a cluster."""

    listed: str = "[]"  # JSON: resources take config-typed fields only

    def jobs(self) -> list[FlinkJob]:
        return [FlinkJob(**job) for job in orjson.loads(self.listed)]

    def ledger(self) -> dict:
        return {"job_id": "a" * 32}


def _job(state: str, config: str = CONFIG, plan: str = PLAN, jid: str = "a" * 32) -> dict:
    name = f"{SETTINGS.flink.job_name} [config {config}, plan {plan}]"
    return dict(
        job_id=jid, name=name, state=state, start_time_ms=1, config_hash=config, plan_hash=plan
    )


def _service(*jobs: dict) -> FakeFlinkService:
    return FakeFlinkService(
        rest_url="http://flink.invalid",
        job_name=SETTINGS.flink.job_name,
        listed=orjson.dumps(jobs).decode(),
    )


def test_running_job_with_current_config_needs_nothing():
    assert needs_deploy(_service(_job("RUNNING")), CONFIG, PLAN) is None


def test_restarting_job_is_left_to_flink():
    assert needs_deploy(_service(_job("RESTARTING")), CONFIG, PLAN) is None


@pytest.mark.parametrize("state", ["CANCELED", "FAILED", "FINISHED"])
def test_ended_job_needs_a_deploy(state):
    assert "no active job" in needs_deploy(_service(_job(state)), CONFIG, PLAN)


def test_missing_job_needs_a_deploy():
    assert needs_deploy(_service(), CONFIG, PLAN) == "no job yet"


def test_old_config_needs_a_replacement():
    reason = needs_deploy(_service(_job("RUNNING", config="0ld0ld0ld0ld")), CONFIG, PLAN)
    assert "runs config 0ld0ld0ld0ld" in reason


def test_two_active_jobs_need_a_deploy():
    jobs = (_job("RUNNING"), _job("RUNNING", jid="b" * 32))
    assert "2 active jobs" in needs_deploy(_service(*jobs), CONFIG, PLAN)


def _evaluate(service: FlinkService):
    resources = {"flink": service, "settings_resource": SettingsResource()}
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources=resources
    ) as context:
        return flink_health_job_supervisor(context)


def test_sensor_requests_one_deploy_run_when_the_job_is_cancelled():
    result = _evaluate(_service(_job("CANCELED")))
    assert isinstance(result, dg.SensorResult)
    assert len(result.run_requests) == 1
    assert result.run_requests[0].run_key.startswith(f"{CONFIG}:{'a' * 32}:")


def test_sensor_skips_when_the_job_runs():
    assert isinstance(_evaluate(_service(_job("RUNNING"))), dg.SkipReason)
