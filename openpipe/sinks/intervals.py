"""What a sink session wrote per interval: the figures of one materialization (pure, no I/O)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: Freshness samples kept per committed chunk (every k-th message): percentiles stay
#: accurate to a few tenths of a second without keeping one number per message.
AGE_SAMPLES_PER_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ChunkReport:
    """One committed transaction: what it read and wrote, and the offsets after it."""

    messages: int
    rows_written: int
    duplicates_dropped: int  # within the chunk + keys already stored
    dead_letters: dict[str, int]
    committed: dict[int, int]  # partition -> next offset, after this transaction
    ages_s: list[float]  # commit time - Kafka timestamp, sampled
    via_staging: bool = False


@dataclass
class IntervalReport:
    """A materialization's numbers: one interval of a session (or the whole of it)."""

    seconds: float
    messages: int = 0
    rows_written: int = 0
    duplicates_dropped: int = 0
    dead_letters: dict[str, int] = field(default_factory=dict)
    transactions: int = 0
    offsets: dict[int, int] = field(default_factory=dict)
    lag_after: dict[int, int] = field(default_factory=dict)
    freshness_p50_s: float | None = None
    freshness_p95_s: float | None = None

    @property
    def wrote_something(self) -> bool:
        return self.rows_written > 0 or sum(self.dead_letters.values()) > 0

    @property
    def rows_per_second(self) -> float:
        return self.rows_written / self.seconds if self.seconds > 0 else 0.0


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) of sorted values, nearest rank; None when empty."""
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def sample_ages(timestamps_ms: list[int], now_ms: float) -> list[float]:
    """Seconds from each sampled Kafka timestamp to now (timestamps <= 0 are unknown)."""
    step = max(1, len(timestamps_ms) // AGE_SAMPLES_PER_CHUNK)
    return [(now_ms - ts) / 1000 for ts in timestamps_ms[::step] if ts > 0]


class IntervalStats:
    """Adds chunk reports up; `take()` closes the interval and starts the next."""

    def __init__(self, interval_s: float, started: float) -> None:
        self.interval_s = interval_s
        self.started = started
        self._reset(started)

    def _reset(self, now: float) -> None:
        self.opened = now
        self.messages = self.rows = self.duplicates = self.transactions = 0
        self.dead: Counter = Counter()
        self.offsets: dict[int, int] = {}
        self.ages: list[float] = []

    def add(self, report: ChunkReport) -> None:
        self.messages += report.messages
        self.rows += report.rows_written
        self.duplicates += report.duplicates_dropped
        self.dead.update(report.dead_letters)
        self.transactions += 1
        self.offsets.update(report.committed)
        self.ages.extend(report.ages_s)

    def due(self, now: float) -> bool:
        """True when the interval is over (whether or not it wrote anything)."""
        return now - self.opened >= self.interval_s

    def take(self, now: float, lag_after: dict[int, int]) -> IntervalReport:
        """The interval's report; the next interval starts at `now`."""
        ages = sorted(self.ages)
        report = IntervalReport(
            seconds=now - self.opened,
            messages=self.messages,
            rows_written=self.rows,
            duplicates_dropped=self.duplicates,
            dead_letters=dict(self.dead),
            transactions=self.transactions,
            offsets=dict(sorted(self.offsets.items())),
            lag_after=dict(sorted(lag_after.items())),
            freshness_p50_s=percentile(ages, 0.5),
            freshness_p95_s=percentile(ages, 0.95),
        )
        self._reset(now)
        return report
