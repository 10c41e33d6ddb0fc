"""Pure scoring for the data-quality checks: fault detection, bad-data band, sink freshness."""

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from openpipe.config import DeviceFamily
from openpipe.events import INVALID_FAULT_KINDS


@dataclass(frozen=True, slots=True)
class KindScore:
    """Rejection quality for one invalid fault kind (None where there is nothing to divide)."""

    kind: str
    rejected: int  # rejected messages that carried this fault
    labelled: int  # rejected messages the validator labelled with this kind
    correctly_labelled: int  # both
    accepted: int | None  # messages with this fault that reached a raw table (None: unknown)

    @property
    def precision(self) -> float | None:
        return self.correctly_labelled / self.labelled if self.labelled else None

    @property
    def recall(self) -> float | None:
        if self.accepted is None:
            return None
        injected = self.rejected + self.accepted
        return self.rejected / injected if injected else None

    @property
    def ok(self) -> bool:
        return self.precision in (None, 1.0) and self.recall in (None, 1.0)


def score_fault_detection(
    dead_letters: Iterable[tuple[str | None, str, int]], accepted: dict[str, int] | None
) -> tuple[dict[str, KindScore], int]:
    """Per kind scores from (injected_fault, error_kind, count) of dead letters, plus the
    false rejections (clean, late or duplicate messages that were dead-lettered).

    Every invalid fault kind is scored, and so is every other error kind a dead letter was
    labelled with (say `bad_timestamp`): a fault labelled with it is a mislabel that
    makes that kind's precision fall below 1.0, so the check fails.
    """
    rejected: dict[str, int] = defaultdict(int)
    labelled: dict[str, int] = defaultdict(int)
    correct: dict[str, int] = defaultdict(int)
    false_rejections = 0
    for injected, error_kind, count in dead_letters:
        labelled[error_kind] += count
        if injected in INVALID_FAULT_KINDS:
            rejected[injected] += count
            correct[injected] += count if injected == error_kind else 0
        else:
            false_rejections += count
    scores = {
        kind: KindScore(
            kind,
            rejected[kind],
            labelled[kind],
            correct[kind],
            None if accepted is None else accepted.get(kind, 0),
        )
        for kind in (*INVALID_FAULT_KINDS, *sorted(set(labelled) - set(INVALID_FAULT_KINDS)))
    }
    return scores, false_rejections


def expected_bad_rate(family: DeviceFamily) -> float:
    """Share of the stored messages (rows + dead letters) expected to be dead letters.

    Invalid kinds are rejected; `duplicate` messages are dropped (stored nowhere), so they
    leave the denominator; `late` ones are valid rows."""
    weights = {kind: w for kind, w in family.fault_mix.items() if w > 0}
    total = sum(weights.values())
    if not total or family.bad_data_probability == 0:
        return 0.0
    p = family.bad_data_probability
    invalid = p * sum(w for k, w in weights.items() if k in INVALID_FAULT_KINDS) / total
    dropped = p * sum(w for k, w in weights.items() if k == "duplicate") / total
    return invalid / (1 - dropped) if dropped < 1 else 0.0


def bad_rate_band(expected: float, messages: int, sigmas: float) -> tuple[float, float]:
    """[low, high] within `sigmas` binomial standard deviations (at least one message) of
    `expected` for a sample of `messages`."""
    if messages <= 0:
        return 0.0, 1.0
    spread = sigmas * math.sqrt(expected * (1 - expected) / messages) + 1 / messages
    return max(0.0, expected - spread), min(1.0, expected + spread)


def pending_lag(marks: dict[int, int], stored: dict[int, int]) -> dict[int, int]:
    """Messages not yet drained per partition (a partition never drained lags by all of it)."""
    return {p: max(0, high - stored.get(p, 0)) for p, high in marks.items()}
