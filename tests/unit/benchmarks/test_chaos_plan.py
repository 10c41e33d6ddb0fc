"""The seeded fault plan: repeatable, complete, spaced, and every kind anywhere."""

import itertools

import pytest
from system_plan import FAULTS, default_counts, parse_counts, plan_faults


def test_same_seed_gives_the_same_plan():
    counts = default_counts()
    assert plan_faults(7, counts, 900) == plan_faults(7, counts, 900)
    assert plan_faults(7, counts, 900) != plan_faults(8, counts, 900)


def test_plan_has_every_fault_of_the_default_counts():
    plan = plan_faults(15, default_counts(), 720)
    kinds = [f.kind for f in plan]
    assert {kind: kinds.count(kind) for kind in FAULTS} == {
        "kafka_broker_sigkill": 5,
        "sink_worker_sigkill": 20,
        "dagster_daemon_sigkill": 5,
        "postgres_immediate_stop": 3,
        "flink_taskmanager_sigkill": 5,
        "simulator_sigterm": 2,
    }


def test_moments_are_ordered_spaced_and_inside_the_run():
    plan = plan_faults(3, default_counts(), 600, min_gap_s=10)
    moments = [f.at_s for f in plan]
    assert moments == sorted(moments)
    assert all(b - a >= 9.9 for a, b in itertools.pairwise(moments))
    assert moments[0] >= 0 and moments[-1] < 600


def test_plan_that_cannot_fit_says_so():
    with pytest.raises(ValueError, match="do not fit"):
        plan_faults(1, default_counts(), 100, min_gap_s=10)


def test_recovery_follows_the_design():
    recovery = {f.kind: f.recovery for f in plan_faults(2, default_counts(), 900)}
    assert recovery["kafka_broker_sigkill"] == "up"
    assert recovery["postgres_immediate_stop"] == "up"
    assert recovery["sink_worker_sigkill"] == "supervision"
    assert recovery["simulator_sigterm"] == "supervision"


def test_counts_override_named_kinds_only():
    counts = parse_counts("kafka_broker_sigkill=0, sink_worker_sigkill=3")
    assert counts["kafka_broker_sigkill"] == 0
    assert counts["sink_worker_sigkill"] == 3
    assert counts["postgres_immediate_stop"] == 3


@pytest.mark.parametrize("text", ["broker=2", "sink_worker_sigkill=two"])
def test_bad_counts_name_the_problem(text):
    with pytest.raises(ValueError, match=r"unknown fault kind|whole number"):
        parse_counts(text)


def test_no_faults_is_an_empty_plan():
    assert plan_faults(1, dict.fromkeys(FAULTS, 0), 60) == []
