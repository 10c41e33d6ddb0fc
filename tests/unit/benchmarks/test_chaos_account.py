"""The account's arithmetic, its pass conditions and the report (no stack needed)."""

from system_account import (
    FaultRecord,
    ProbeAccount,
    RawAccount,
    SessionWatch,
    UpsertAccount,
    WindowComparison,
    render_report,
    verdict,
)


def _raw(**changes) -> RawAccount:
    account = RawAccount(
        "virtual-gps",
        "gps_points",
        acknowledged=1000,
        stored=950,
        dead_letters={"out_of_range": 30, "malformed_json": 10},
        duplicates_dropped=10,
    )
    for name, value in changes.items():
        setattr(account, name, value)
    return account


def test_balanced_account_passes():
    assert _raw().balanced
    assert verdict([_raw()], [], []) == []


def test_lost_message_fails_and_is_named():
    account = _raw(stored=949, lost=1, lost_examples=["2:4711"])
    problems = verdict([account], [], [])
    assert any("949" in p and "!=" in p for p in problems)
    assert any("2:4711" in p for p in problems)


def test_offset_filed_twice_fails_even_when_sums_hide_it():
    # A row and a dead letter at one offset, and one message lost elsewhere: sums balance.
    account = _raw(filed_twice=1, lost=1)
    assert account.balanced
    assert len(verdict([account], [], [])) == 2


def test_event_id_stored_twice_fails():
    assert verdict([_raw(ids_stored_twice=2)], [], [])


def test_unsettled_sink_fails():
    assert any("behind" in p for p in verdict([_raw(unsettled=5)], [], []))


def test_probe_with_wrong_outcome_fails():
    probes = ProbeAccount(sent=10, acknowledged=10, delivery_failed=0)
    probes.wrong = {"valid probe(s): expected stored, got lost": 1}
    assert any("probes" in p for p in verdict([_raw(probes=probes)], [], []))


def test_probe_without_delivery_report_fails():
    probes = ProbeAccount(sent=10, acknowledged=8, delivery_failed=1)
    assert probes.problems() == ["1 without a delivery report"]


def test_upsert_account_balances_keys_superseded_and_dead_letters():
    account = UpsertAccount(
        "health-alerts",
        "health_alerts",
        acknowledged=12,
        keys=10,
        superseded=1,
        dead_letters={"out_of_range": 1},
        keys_matching=10,
    )
    assert account.balanced and not account.problems()
    account.keys_missing, account.keys_matching = 1, 9
    assert any("missing" in p for p in account.problems())


def test_window_mismatch_fails_but_late_events_do_not():
    late_only = WindowComparison(
        "a", "b", windows=5, matching=3, explained_by_late=2, late_events=4
    )
    assert verdict([], [], [late_only]) == []
    mismatch = WindowComparison("a", "b", windows=5, matching=4, mismatched=1)
    assert verdict([], [], [mismatch])


def test_report_has_verdict_faults_and_account():
    faults = [
        FaultRecord(
            1.0, "13:31:00", "kafka_broker_sigkill", "kafka pid 1", "injected", "openpipe up", 30.2
        ),
        FaultRecord(9.0, "13:31:40", "sink_worker_sigkill", "", "skipped: no sink run", "x"),
    ]
    text = render_report(
        title="Chaos run t",
        settings_line="seed 1",
        faults=faults,
        raw=[_raw()],
        upserts=[],
        windows=[WindowComparison("a", "b", windows=1, matching=1)],
        notes=["n"],
    )
    assert "**Verdict: PASS**" in text
    assert "Injected: kafka_broker_sigkill 1" in text
    assert "| virtual-gps | 1,000 | 950 | 40 | 10 | 0 | 0 | 0 | yes |" in text
    assert "30.2" in text


def test_a_sink_left_without_a_session_fails_the_run():
    replaced = FaultRecord(10.0, "12:00:00", "sink_worker_sigkill", "gps_points run ab", "injected")
    stalled = FaultRecord(
        20.0,
        "12:00:10",
        "sink_worker_sigkill",
        "gps_points run cd",
        "injected",
        "Dagster: no new gps_points session within 300 s",
        stalled=True,
    )
    assert verdict([_raw()], [], [], [replaced]) == []
    [problem] = verdict([_raw()], [], [], [replaced, stalled])
    assert "12:00:10" in problem and "no new gps_points session" in problem


def test_a_sink_with_nothing_to_drain_needs_no_new_session():
    # health_metrics_10min gets messages once per 10-minute window: no lag, no session due.
    assert SessionWatch(limit_s=300, grace_s=60).outcome(300.0, 0) == "idle"


def test_lag_left_unserved_past_the_grace_is_a_stall():
    watch = SessionWatch(limit_s=300, grace_s=60)
    assert watch.outcome(300.0, 5) is None  # arrived just before the limit: a sensor tick away
    assert watch.outcome(330.0, 9) is None
    assert watch.outcome(360.0, 9) == "stalled"


def test_lag_drained_within_the_grace_is_not_a_stall():
    watch = SessionWatch(limit_s=300, grace_s=60)
    assert watch.outcome(300.0, 5) is None
    assert watch.outcome(340.0, 0) == "idle"


def test_a_failed_recovery_fails_the_run():
    # A stack that `openpipe up` could not bring back is not a pass, whatever the sums say.
    up = FaultRecord(60, "13:31:00", "kafka_broker_sigkill", "kafka pid 1", "injected")
    up.recovery, up.recovery_failed = "openpipe up FAILED (1)", True
    problems = verdict([_raw()], [], [], [up])
    assert problems == ["kafka_broker_sigkill at 13:31:00: openpipe up FAILED (1)"]
    up.recovery_failed = False
    assert verdict([_raw()], [], [], [up]) == []
