"""Pure helpers shared by the device models: seeded streams, vectorised ids and timestamps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from openpipe.events import SCHEMA_VERSION

IST_OFFSET_HOURS = 5.5
MS_PER_HOUR = 3_600_000
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Byte positions of the 32 hex digits inside the 36-character canonical UUID form.
_UUID_SLOTS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


@dataclass(slots=True)
class EventBatch:
    """Events of one family in one time window, sorted by event time."""

    times_ms: list[int]
    keys: list[str]
    events: list[dict]

    def __len__(self) -> int:
        return len(self.events)


def family_rng(seed: int, family: str, stream: str) -> np.random.Generator:
    """An independent generator per (seed, family, stream): families never perturb each other."""
    words = [seed & 0xFFFFFFFF, seed >> 32, *family.encode(), 0, *stream.encode()]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))


def uuid4_strings(rng: np.random.Generator, n: int) -> list[str]:
    """`n` random version-4 UUIDs in canonical text form, drawn from `rng`."""
    if n == 0:
        return []
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX[raw >> 4]
    digits[:, 1::2] = _HEX[raw & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_SLOTS] = digits
    return text.view("S36").ravel().astype("U36").tolist()


def event_times(times_ms: np.ndarray) -> list[str]:
    """RFC 3339 UTC millisecond strings for an array of epoch milliseconds."""
    stamps = np.asarray(times_ms, dtype=np.int64).astype("datetime64[ms]")
    return np.datetime_as_string(stamps, unit="ms", timezone="UTC").tolist()


def ist_hour(times_ms: np.ndarray | float) -> np.ndarray | float:
    """Hour of day (fractional) in India Standard Time, which drives meals and peaks."""
    return (np.asarray(times_ms, dtype=np.float64) / MS_PER_HOUR + IST_OFFSET_HOURS) % 24.0


def envelope(event_id: str, event_time: str, device_type: str, device_id: str) -> dict:
    """The common fields every event starts with, in contract order."""
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "event_time": event_time,
        "device_type": device_type,
        "device_id": device_id,
    }
