"""The chaos run's account of every event, its pass conditions and its Markdown report (pure).

Per raw topic every offset the run covered is filed exactly once: a stored row, a dead
letter, or a duplicate dropped because its event_id is stored at another offset. Per
Flink output topic (upserts) every window key's latest message must be what the table
holds; earlier messages of the same key are superseded re-emissions.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RawAccount:
    """One raw topic over the run's offset range [start, end) of each partition."""

    topic: str
    table: str
    acknowledged: int  # messages Kafka holds in the range (it acknowledged every one)
    stored: int = 0  # offsets with a row in the table
    dead_letters: dict[str, int] = field(default_factory=dict)  # error_kind -> offsets
    duplicates_dropped: int = 0  # no row, no dead letter, event_id stored at another offset
    lost: int = 0  # none of the three
    filed_twice: int = 0  # offsets with two outcomes (two rows, or a row and a dead letter)
    ids_stored_twice: int = 0  # event_ids with more than one row
    offset_gaps: int = 0  # offsets missing from the log range (none on a plain topic)
    unsettled: int = 0  # messages the sink had not reached when the account was taken
    injected: dict[str, int] = field(default_factory=dict)  # openpipe-fault header -> count
    lost_examples: list[str] = field(default_factory=list)
    probes: ProbeAccount | None = None

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())

    @property
    def balanced(self) -> bool:
        """acknowledged = stored + dead-lettered + dropped duplicates."""
        return self.acknowledged == self.stored + self.dead_lettered + self.duplicates_dropped

    def problems(self) -> list[str]:
        """Every pass condition this topic breaks, in words; empty when it passes."""
        found = []
        if not self.balanced:
            found.append(
                f"{self.topic}: acknowledged {self.acknowledged} != stored {self.stored} + dead "
                f"letters {self.dead_lettered} + duplicates {self.duplicates_dropped}"
            )
        if self.lost:
            found.append(
                f"{self.topic}: {self.lost} message(s) neither stored, dead-lettered nor a "
                f"duplicate (e.g. {', '.join(self.lost_examples[:5])})"
            )
        if self.filed_twice:
            found.append(f"{self.topic}: {self.filed_twice} offset(s) filed twice (overlap)")
        if self.ids_stored_twice:
            found.append(f"{self.topic}: {self.ids_stored_twice} event_id(s) stored twice")
        if self.offset_gaps:
            found.append(f"{self.topic}: {self.offset_gaps} offset(s) missing in the log (gap)")
        if self.unsettled:
            found.append(f"{self.topic}: sink still {self.unsettled} message(s) behind")
        if self.probes is not None:
            found += [f"{self.topic}: probes: {p}" for p in self.probes.problems()]
        return found


@dataclass
class ProbeAccount:
    """The harness's own probes on one topic, judged one by one from their delivery reports."""

    sent: int
    acknowledged: int
    delivery_failed: int
    by_kind: dict[str, int] = field(default_factory=dict)  # valid/duplicate/out_of_range acked
    wrong: dict[str, int] = field(default_factory=dict)  # "expected -> got" -> count
    outside_range: int = 0  # acked at an offset the account did not cover

    def problems(self) -> list[str]:
        found = [f"{n} {what}" for what, n in sorted(self.wrong.items())]
        if self.outside_range:
            found.append(f"{self.outside_range} acknowledged outside the accounted offsets")
        if self.sent != self.acknowledged + self.delivery_failed:
            found.append(
                f"{self.sent - self.acknowledged - self.delivery_failed} without a delivery report"
            )
        return found


@dataclass
class UpsertAccount:
    """One Flink output topic: window results upserted by key."""

    topic: str
    table: str
    acknowledged: int  # committed messages in the range
    keys: int = 0  # distinct keys among them
    keys_matching: int = 0  # the table holds the key's latest message
    keys_missing: int = 0
    keys_stale: int = 0  # the table holds other values than the key's latest message
    superseded: int = 0  # earlier messages of a key (re-emissions, replays): dropped duplicates
    dead_letters: dict[str, int] = field(default_factory=dict)
    keys_in_two_partitions: int = 0
    unsettled: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letters.values())

    @property
    def balanced(self) -> bool:
        return self.acknowledged == self.keys + self.superseded + self.dead_lettered

    def problems(self) -> list[str]:
        found = []
        if not self.balanced:
            found.append(
                f"{self.topic}: acknowledged {self.acknowledged} != keys {self.keys} + "
                f"superseded {self.superseded} + dead letters {self.dead_lettered}"
            )
        if self.keys_missing:
            found.append(
                f"{self.topic}: {self.keys_missing} window key(s) missing from {self.table} "
                f"(e.g. {', '.join(self.examples[:3])})"
            )
        if self.keys_stale:
            found.append(
                f"{self.topic}: {self.keys_stale} key(s) hold other values than their latest message"
            )
        if self.unsettled:
            found.append(f"{self.topic}: sink still {self.unsettled} message(s) behind")
        return found


@dataclass
class WindowComparison:
    """Flink window tables against a batch recomputation from the stored readings."""

    first_window: str
    last_window: str
    windows: int = 0
    matching: int = 0
    explained_by_late: int = 0
    mismatched: int = 0
    late_events: int = 0
    mismatch_examples: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        if not self.mismatched:
            return []
        return [
            f"windows: {self.mismatched} of {self.windows} differ beyond late events "
            f"(e.g. {'; '.join(self.mismatch_examples[:3])})"
        ]


@dataclass
class FaultRecord:
    """One fault as it happened."""

    planned_s: float
    at: str  # wall clock, UTC
    kind: str
    target: str
    outcome: str  # "injected", "skipped: ..." or "error: ..."
    recovery: str = ""
    recovery_s: float | None = None
    stalled: bool = False  # a killed sink session was not replaced in time
    # `openpipe up` failed after the fault, or the simulator's supervisor did not relaunch it
    recovery_failed: bool = False


class SessionWatch:
    """Whether a sink whose session was killed got a new one, or stalled.

    A sink gets a session only while its topic has unread messages, so the wait for one
    ends well in two ways: a session starts, or, once `limit_s` has passed, the sink has
    nothing to drain (a health-metrics-10min sink is idle until the next 10-minute window
    closes). It stalled when, after `limit_s`, it kept lagging for `grace_s` with no session
    (a few sensor ticks: lag that arrived just before the limit is not a stall).
    """

    def __init__(self, limit_s: float = 300, grace_s: float = 60) -> None:
        self.limit_s = limit_s
        self.grace_s = grace_s
        self.lagging_since: float | None = None

    def outcome(self, elapsed_s: float, lag: int) -> str | None:
        """'idle', 'stalled' or None (keep waiting), from one lag sample after the limit."""
        if lag <= 0:
            return "idle"
        if self.lagging_since is None:
            self.lagging_since = elapsed_s
        return "stalled" if elapsed_s - self.lagging_since >= self.grace_s else None


def verdict(
    raw: list[RawAccount],
    upserts: list[UpsertAccount],
    windows: list[WindowComparison],
    faults: list[FaultRecord] = (),
) -> list[str]:
    """All failed pass conditions; the run passes when this is empty."""
    problems = [
        f"{f.kind} at {f.at}: {f.recovery}" for f in faults if f.stalled or f.recovery_failed
    ]
    problems += [p for account in raw for p in account.problems()]
    problems += [p for account in upserts for p in account.problems()]
    problems += [p for comparison in windows for p in comparison.problems()]
    return problems


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def account_table(raw: list[RawAccount], upserts: list[UpsertAccount]) -> list[str]:
    """The per-topic account as Markdown table lines."""
    lines = [
        "| topic | acknowledged | stored | dead letters | duplicates dropped | lost | "
        "filed twice | ids stored twice | balanced |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for a in raw:
        lines.append(
            f"| {a.topic} | {a.acknowledged:,} | {a.stored:,} | {a.dead_lettered:,} | "
            f"{a.duplicates_dropped:,} | {a.lost:,} | {a.filed_twice:,} | {a.ids_stored_twice:,} "
            f"| {'yes' if a.balanced else 'NO'} |"
        )
    for u in upserts:
        lines.append(
            f"| {u.topic} (upserts) | {u.acknowledged:,} | {u.keys_matching:,} keys | "
            f"{u.dead_lettered:,} | {u.superseded:,} superseded | {u.keys_missing:,} | - | "
            f"{u.keys_stale:,} stale | {'yes' if u.balanced else 'NO'} |"
        )
    return lines


def render_report(
    *,
    title: str,
    settings_line: str,
    faults: list[FaultRecord],
    raw: list[RawAccount],
    upserts: list[UpsertAccount],
    windows: list[WindowComparison],
    notes: list[str],
) -> str:
    """The whole Markdown report: verdict, fault log, account, windows, notes."""
    problems = verdict(raw, upserts, windows, faults)
    out = [f"# {title}", "", settings_line, ""]
    out.append(f"**Verdict: {'PASS' if not problems else 'FAIL'}**")
    out += [f"- {p}" for p in problems]
    out += ["", "## Faults", ""]
    hit: dict[str, int] = {}
    for f in faults:
        if f.outcome == "injected":
            hit[f.kind] = hit.get(f.kind, 0) + 1
    out.append("Injected: " + _kinds(hit))
    out += [
        "",
        "| planned s | at (UTC) | fault | target | outcome | recovery | recovered in s |",
        "|---:|---|---|---|---|---|---:|",
    ]
    for f in faults:
        seconds = "" if f.recovery_s is None else f"{f.recovery_s:.1f}"
        outcome = f.outcome.splitlines()[0].replace("|", "/") if f.outcome else ""
        out.append(
            f"| {f.planned_s:.1f} | {f.at} | {f.kind} | {f.target} | {outcome} | "
            f"{f.recovery} | {seconds} |"
        )
    out += ["", "## Account", ""]
    out += account_table(raw, upserts)
    out.append("")
    for a in raw:
        out.append(f"- {a.topic}: dead letters by kind: {_kinds(a.dead_letters)}")
        out.append(f"  injected faults (header): {_kinds(a.injected)}")
        if a.probes is not None:
            p = a.probes
            out.append(
                f"  probes: sent {p.sent}, acknowledged {p.acknowledged} ({_kinds(p.by_kind)}), "
                f"delivery failed {p.delivery_failed}, wrong outcome {sum(p.wrong.values())}"
            )
    for u in upserts:
        out.append(
            f"- {u.topic}: {u.keys:,} window keys, dead letters {_kinds(u.dead_letters)}, "
            f"keys in two partitions {u.keys_in_two_partitions}"
        )
    out += ["", "## Flink windows vs a batch recomputation", ""]
    for w in windows:
        out.append(
            f"- windows starting {w.first_window} .. {w.last_window}: {w.windows:,} compared, "
            f"{w.matching:,} equal, {w.explained_by_late:,} differ only by late events "
            f"({w.late_events:,} late events excluded), {w.mismatched:,} mismatched"
        )
        out += [f"  - {m}" for m in w.mismatch_examples[:10]]
    if notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"
