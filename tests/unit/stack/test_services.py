"""`openpipe status`: the Flink job read from the REST API as deployed, deploying or down."""

from openpipe.stack.services import DEPLOYED, DEPLOYING, DOWN, flink_job_state

NAME = "openpipe-health-windows"


def _job(state, running=6, total=6, jid="0e81e6fc268796e8"):
    return {
        "jid": jid,
        "name": f"{NAME} [config 3e3a2f62a007, plan 343c0db14f10]",
        "state": state,
        "tasks": {"running": running, "total": total},
    }


def test_running_job_with_every_task_running_is_deployed():
    state, detail = flink_job_state([_job("CANCELED", jid="aaaaaaaa"), _job("RUNNING")], NAME)
    assert state == DEPLOYED
    assert detail == "job 0e81e6fc RUNNING, 6 tasks, supervised by Dagster"


def test_running_job_with_tasks_still_starting_is_deploying():
    assert flink_job_state([_job("RUNNING", running=2)], NAME) == (
        DEPLOYING,
        "job 0e81e6fc RUNNING, 2/6 tasks running",
    )


def test_initializing_or_restarting_job_is_deploying():
    for state in ("INITIALIZING", "CREATED", "RESTARTING"):
        assert flink_job_state([_job(state, running=0)], NAME)[0] == DEPLOYING


def test_only_ended_jobs_or_other_names_mean_down():
    other = {**_job("RUNNING"), "name": "someone-else [config x]"}
    state, detail = flink_job_state([_job("FAILED"), _job("CANCELED"), other], NAME)
    assert state == DOWN
    assert detail == f"no running job named {NAME!r} (earlier ones: CANCELED, FAILED)"
    assert flink_job_state([], NAME) == (DOWN, f"no running job named {NAME!r}")
