"""The chaos run's fault plan: which fault at which moment, drawn from a seed (pure, no I/O).

The same seed, counts and duration give the same plan, so a failing run can be repeated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Fault kinds, how many of each a default run injects, and how the stack recovers:
#: "up" = the harness runs `openpipe up` right after, as an operator would; "supervision" =
#: nothing but Dagster (run monitoring, retries, sensors, the simulator supervisor).
FAULTS: dict[str, tuple[int, str]] = {
    "kafka_broker_sigkill": (5, "up"),
    "sink_worker_sigkill": (20, "supervision"),
    "dagster_daemon_sigkill": (5, "up"),
    "postgres_immediate_stop": (3, "up"),
    "flink_taskmanager_sigkill": (5, "up"),
    "simulator_sigterm": (2, "supervision"),
}


@dataclass(frozen=True, slots=True)
class PlannedFault:
    """One fault: seconds after the fault phase starts, and its kind."""

    at_s: float
    kind: str

    @property
    def recovery(self) -> str:
        return FAULTS[self.kind][1]


def default_counts() -> dict[str, int]:
    """The issue's default count of each fault kind."""
    return {kind: count for kind, (count, _) in FAULTS.items()}


def parse_counts(text: str) -> dict[str, int]:
    """'kafka_broker_sigkill=2,sink_worker_sigkill=5' -> counts; kinds not named keep the default."""
    counts = default_counts()
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, number = item.partition("=")
        if kind not in FAULTS:
            raise ValueError(f"unknown fault kind {kind!r}; choose from {', '.join(FAULTS)}")
        if not number.isdigit():
            raise ValueError(f"{kind}: count must be a whole number, got {number!r}")
        counts[kind] = int(number)
    return counts


def plan_faults(
    seed: int, counts: dict[str, int], duration_s: float, min_gap_s: float = 5.0
) -> list[PlannedFault]:
    """Faults at random moments in [0, duration_s), at least min_gap_s apart, in time order.

    Moments are drawn first (sorted, gaps enforced), then the kinds are shuffled over
    them, so every kind can land anywhere in the run, next to any other kind.
    """
    kinds = [kind for kind in FAULTS for _ in range(counts.get(kind, 0))]
    if not kinds:
        return []
    if min_gap_s * (len(kinds) - 1) >= duration_s:
        raise ValueError(
            f"{len(kinds)} faults at least {min_gap_s:g} s apart do not fit in {duration_s:g} s; "
            "lengthen the run or lower the counts"
        )
    rng = random.Random(seed)
    # Draw in the space left after the gaps, then put the gaps back: uniform and exact.
    slack = duration_s - min_gap_s * (len(kinds) - 1)
    moments = sorted(rng.uniform(0, slack) for _ in kinds)
    moments = [m + i * min_gap_s for i, m in enumerate(moments)]
    rng.shuffle(kinds)
    return [PlannedFault(round(at, 1), kind) for at, kind in zip(moments, kinds, strict=True)]
