"""Pure helpers shared by the device models: seeded streams, vectorised ids and timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson

IST_OFFSET_HOURS = 5.5
MS_PER_HOUR = 3_600_000
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Byte positions of the 32 hex digits inside the 36-character canonical UUID form.
_UUID_SLOTS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


@dataclass(slots=True)
class EventBatch:
    """Encoded events of one family in one time window, sorted by event time."""

    times_ms: Sequence[int]
    keys: Sequence[str]
    values: Sequence[bytes]

    def __len__(self) -> int:
        return len(self.values)

    def event(self, i: int) -> dict:
        """Event `i` decoded (for the few that faults rewrite)."""
        return orjson.loads(self.values[i])


def due_before(due: np.ndarray, step_ms: int, t1_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """(device index, event time) of every reading due before t1; advances `due` in place."""
    idx_parts, time_parts = [], []
    while len(idx := np.flatnonzero(due < t1_ms)):
        idx_parts.append(idx)
        time_parts.append(due[idx].copy())
        due[idx] += step_ms
    if not idx_parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(idx_parts), np.concatenate(time_parts)


def sort_positions(times_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable time order of events and, per event, its position in that order."""
    order = np.argsort(times_ms, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    return order, position


def family_rng(seed: int, family: str, stream: str) -> np.random.Generator:
    """An independent generator per (seed, family, stream): families never perturb each other."""
    words = [seed & 0xFFFFFFFF, seed >> 32, *family.encode(), 0, *stream.encode()]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


def uuid4_strings(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` random version-4 UUIDs in canonical text form (a numpy str array), drawn from `rng`."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_SLOTS] = digits
    return text.view("S36").ravel().astype("U36")


def event_times(times_ms: np.ndarray) -> np.ndarray:
    """RFC 3339 UTC millisecond strings (a numpy str array) for epoch milliseconds."""
    t = np.asarray(times_ms, dtype=np.int64)
    # Format each distinct second once, then append milliseconds digit by digit.
    seconds, which = np.unique(t // 1000, return_inverse=True)
    prefixes = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").astype("S19")
    text = np.empty((len(t), 24), dtype=np.uint8)
    text[:, :19] = prefixes.view(np.uint8).reshape(-1, 19)[which.ravel()]
    ms = t % 1000
    text[:, 19] = ord(".")
    text[:, 20] = 48 + ms // 100
    text[:, 21] = 48 + ms // 10 % 10
    text[:, 22] = 48 + ms % 10
    text[:, 23] = ord("Z")
    return text.view("S24").ravel().astype("U24")


def ist_hour(times_ms: np.ndarray | float) -> np.ndarray | float:
    """Hour of day (fractional) in India Standard Time, which drives meals and peaks."""
    return (np.asarray(times_ms, dtype=np.float64) / MS_PER_HOUR + IST_OFFSET_HOURS) % 24.0
