"""Fault injection (docs/architecture.md §3): turns a family's clean events into labelled Kafka messages.

Each generated event becomes exactly one message. With the family's
`bad_data_probability` that message is faulty, its kind drawn from `fault_mix`:
invalid kinds mutate the event so that `openpipe.events` rejects it with the same error
kind; `duplicate` sends an earlier clean message again byte for byte instead; `late` holds
the valid event back past its Flink window plus the watermark delay.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter

import numpy as np
import orjson

from openpipe.config import DeviceFamily, Settings
from openpipe.events import FAMILY_FIELDS, METRIC_FIELDS, NULLABLE_FIELDS, format_event_time
from simulator.common import EventBatch, family_rng

#: One Kafka message: (key, value, timestamp in ms, fault kind or None).
Message = tuple[str, bytes, int, str | None]
RECENT_MESSAGES = 2048


@dataclass(slots=True)
class Outgoing:
    """One window's messages: clean ones as parallel sequences, then the labelled ones."""

    keys: Sequence[str]
    values: Sequence[bytes]
    times_ms: Sequence[int]
    labelled: list[Message]

    def __len__(self) -> int:
        return len(self.keys) + len(self.labelled)

    def fault_counts(self) -> Counter[str]:
        """Labelled messages by fault kind."""
        return Counter(m[3] for m in self.labelled)

    def messages(self) -> list[Message]:
        """All messages in send order (clean first), as tuples."""
        clean = zip(self.keys, self.values, self.times_ms, repeat(None), strict=False)
        return [*clean, *self.labelled]


def _take(items: Sequence, positions: list[int]) -> Sequence:
    """items[p] for each p, fast (operator.itemgetter runs the loop in C)."""
    if len(positions) > 1:
        return itemgetter(*positions)(items)
    return [items[p] for p in positions]


class FaultInjector:
    """Seeded per-family fault decisions and mutations; no I/O."""

    def __init__(self, family: str, config: DeviceFamily, settings: Settings, seed: int) -> None:
        self.family = family
        self.probability = config.bad_data_probability
        kinds = [(k, w) for k, w in config.fault_mix.items() if w > 0]
        self.kinds = [k for k, _ in kinds]
        weights = np.array([w for _, w in kinds], dtype=float)
        self._kind_p = weights / weights.sum() if len(weights) else weights
        self._rng = family_rng(seed, family, "faults")
        self._py = random.Random(int(self._rng.integers(2**63)))
        self._v = settings.validation
        flink = settings.flink
        self._late_base_ms = flink.watermark_delay_seconds * 1000
        self._window_ms = {
            "heart_rate": flink.heart_rate_window_s * 1000,
            "blood_pressure": flink.blood_pressure_window_s * 1000,
            "blood_sugar": flink.blood_sugar_window_s * 1000,
        }
        self._recent: deque[tuple[str, bytes]] = deque(maxlen=RECENT_MESSAGES)
        self._held: list[tuple[int, int, str, bytes]] = []
        self._held_seq = 0

    @property
    def held_back(self) -> int:
        """Late messages waiting for release."""
        return len(self._held)

    def apply(self, batch: EventBatch, until_ms: int) -> Outgoing:
        """Messages for `batch` plus the late ones due before `until_ms`."""
        n = len(batch)
        faulty = np.flatnonzero(self._rng.random(n) < self.probability) if self.kinds else ()
        labelled: list[Message] = []
        if not len(faulty):
            out = Outgoing(batch.keys, batch.values, batch.times_ms, labelled)
        else:
            kinds = self._rng.choice(len(self.kinds), size=len(faulty), p=self._kind_p)
            drawn = set(faulty.tolist())
            keep = np.ones(n, dtype=bool)
            for i, k in zip(faulty.tolist(), kinds.tolist(), strict=True):
                message = self._inject(self.kinds[k], i, batch, drawn)
                if message is not batch:
                    keep[i] = False
                    if message is not None:
                        labelled.append(message)
            kept = np.flatnonzero(keep).tolist()
            out = Outgoing(
                _take(batch.keys, kept),
                _take(batch.values, kept),
                _take(batch.times_ms, kept),
                labelled,
            )
        tail = slice(-RECENT_MESSAGES, None)
        self._recent.extend(zip(out.keys[tail], out.values[tail], strict=True))
        labelled += self.release(until_ms)
        return out

    def release(self, until_ms: int) -> list[Message]:
        """Late messages whose hold ends before `until_ms`."""
        out: list[Message] = []
        held = self._held
        while held and held[0][0] < until_ms:
            when, _, key, value = heapq.heappop(held)
            out.append((key, value, when, "late"))
        return out

    def drop_held(self) -> int:
        """Forget the late messages still held back (their hold ends after the run); how many."""
        dropped = len(self._held)
        self._held.clear()
        return dropped

    def _inject(self, kind: str, i: int, batch: EventBatch, drawn: set[int]):
        """The labelled message for event `i`; None when held back; `batch` to send it clean."""
        key, t, value = batch.keys[i], batch.times_ms[i], batch.values[i]
        if kind == "duplicate":
            earlier = self._earlier(i, batch, drawn)
            if earlier is None:  # nothing was sent yet that could be repeated
                return batch
            return (earlier[0], earlier[1], t, kind)
        if kind == "late":
            metric = batch.event(i).get("metric") if self.family == "wearables" else None
            window = self._window_ms.get(metric, self._window_ms["heart_rate"])
            hold = self._late_base_ms + window + self._py.randint(5_000, 30_000)
            self._held_seq += 1
            heapq.heappush(self._held, (t + hold, self._held_seq, key, value))
            return None
        if kind == "malformed_json":
            return (key, value[: self._py.randint(1, len(value) - 1)], t, kind)
        event = batch.event(i)
        getattr(self, f"_{kind}")(event, t)
        return (key, orjson.dumps(event), t, kind)

    def _earlier(self, i: int, batch: EventBatch, drawn: set[int]) -> tuple[str, bytes] | None:
        if self._recent:
            return self._recent[self._py.randrange(len(self._recent))]
        for j in range(i - 1, -1, -1):
            if j not in drawn:
                return batch.keys[j], batch.values[j]
        return None

    def _fields(self, event: dict) -> list[str]:
        fields = list(FAMILY_FIELDS[self.family])
        if self.family == "wearables":
            fields += METRIC_FIELDS[event["metric"]]
        return fields

    def _missing_field(self, event: dict, t: int) -> None:
        del event[self._py.choice(self._fields(event))]

    def _null_value(self, event: dict, t: int) -> None:
        fields = [f for f in self._fields(event) if f not in NULLABLE_FIELDS]
        event[self._py.choice(fields)] = None

    def _wrong_type(self, event: dict, t: int) -> None:
        name = self._py.choice(self._fields(event))
        value = event[name]
        if isinstance(value, int | float) and not isinstance(value, bool):
            event[name] = str(value)
        elif isinstance(value, list):
            event[name] = orjson.dumps(value).decode()
        else:  # strings and null become numbers
            event[name] = self._py.randint(1, 99_999)

    def _out_of_range(self, event: dict, t: int) -> None:
        v, py = self._v, self._py
        if self.family == "wearables":
            names = METRIC_FIELDS[event["metric"]]
            name = py.choice(names)
            bounds = getattr(v, name)
        elif self.family == "gps":
            name = py.choice(("lat", "lon", "speed_kmh", "accuracy_m"))
            bounds = {"lat": (-90, 90), "lon": (-180, 180)}.get(name) or getattr(v, name)
        else:
            name = py.choice(("table_number", "quantity"))
            bounds = getattr(v, name)
            if name == "quantity":
                line = dict(event["items"][0])
                line["quantity"] = _outside(bounds, py, integer=True)
                event["items"] = [line, *event["items"][1:]]
                return
        event[name] = _outside(bounds, py, integer=name == "table_number")

    def _future_timestamp(self, event: dict, t: int) -> None:
        ahead = self._v.max_future_seconds * 1000 + self._py.randint(60_000, 6 * 3_600_000)
        event["event_time"] = format_event_time(t + ahead)

    def _stale_timestamp(self, event: dict, t: int) -> None:
        behind = self._v.max_age_hours * 3_600_000 + self._py.randint(3_600_000, 72 * 3_600_000)
        event["event_time"] = format_event_time(t - behind)


def _outside(bounds, py: random.Random, *, integer: bool) -> float:
    """A finite value just outside `bounds` (a Range or a (low, high) pair)."""
    low, high = (bounds.low, bounds.high) if hasattr(bounds, "low") else bounds
    span = max(high - low, 10.0)
    if py.random() < 0.5 or low - 1 < -1e9:
        value = high + py.uniform(1.0, span)
    else:
        value = low - py.uniform(1.0, span)
    return int(value) + (1 if value > high else -1) if integer else round(value, 1)
