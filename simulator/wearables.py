"""Wearable patients: personas with baselines, circadian drift, noise and episodes (pure, seeded).

Heart rate, blood pressure and glucose are computed for all due devices at once with numpy.
Exercise raises heart rate (and some systolic pressure), meals raise glucose along a
gamma-shaped post-meal curve, stress raises blood pressure, so valid readings sometimes
cross the alert thresholds for real reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import orjson

from openpipe.config import PERSONAS, WearableDevices
from openpipe.events import SCHEMA_VERSION
from simulator.common import (
    MS_PER_HOUR,
    EventBatch,
    due_before,
    event_times,
    family_rng,
    ist_hour,
    sort_positions,
    uuid4_strings,
)

MINUTE_MS = 60_000
MEAL_HOURS_IST = np.array([8.5, 13.5, 20.5])
METRICS = ("heart_rate", "blood_pressure", "blood_sugar")
# Physiological clamps, well inside the validation ranges, so clean readings stay valid.
HR_CLAMP = (32.0, 215.0)
SYS_CLAMP = (75.0, 235.0)
DIA_CLAMP = (40.0, 150.0)
GLUCOSE_CLAMP = (45.0, 550.0)


@dataclass(frozen=True, slots=True)
class WearablePersona:
    """Population parameters of one persona: (mean, sd) baselines and episode habits."""

    heart_rate: tuple[float, float]
    systolic: tuple[float, float]
    diastolic: tuple[float, float]
    glucose: tuple[float, float]
    meal_rise: tuple[float, float]  # mg/dL above baseline at the post-meal peak
    meal_peak_minutes: float
    exercise_every_hours: float
    exercise_minutes: tuple[float, float]
    exercise_hr_gain: tuple[float, float]
    stress_every_hours: float
    stress_systolic_gain: tuple[float, float]
    stress_minutes: tuple[float, float] = (10, 45)


PERSONA_PROFILES: dict[str, WearablePersona] = {
    "healthy": WearablePersona(
        (70, 6), (117, 6), (76, 4), (90, 5), (25, 45), 45, 30, (20, 50), (35, 60), 10, (10, 22)
    ),
    "hypertensive": WearablePersona(
        (76, 6), (147, 8), (94, 5), (98, 8), (30, 50), 50, 48, (20, 40), (30, 50), 6, (15, 32)
    ),
    "diabetic": WearablePersona(
        (78, 6), (128, 8), (82, 5), (150, 14), (85, 150), 70, 40, (20, 40), (30, 50), 10, (10, 24)
    ),
    "tachycardic": WearablePersona(
        (103, 5), (122, 7), (79, 5), (92, 6), (25, 45), 45, 48, (15, 30), (30, 45), 8, (10, 24)
    ),
    "athlete": WearablePersona(
        (53, 4), (112, 5), (70, 4), (86, 5), (20, 35), 40, 14, (40, 90), (50, 85), 14, (8, 18)
    ),
}
assert set(PERSONA_PROFILES) == set(PERSONAS), "every configured persona needs a profile"


def _ramp(t: np.ndarray, start: np.ndarray, end: np.ndarray, rise_ms: float, fall_ms: float):
    """Episode intensity in [0, 1]: linear rise from start, exponential recovery after end."""
    rising = np.clip((t - start) / rise_ms, 0.0, 1.0)
    recovering = np.exp(-np.maximum(t - end, 0) / fall_ms)
    return np.where(t < start, 0.0, np.where(t < end, rising, recovering))


def _meal_curve(since_ms: np.ndarray, peak_ms: np.ndarray) -> np.ndarray:
    """Glucose response shape x*e^(1-x), peaking at 1 when x = since/peak = 1."""
    x = np.maximum(since_ms, 0) / peak_ms
    return x * np.exp(1.0 - x)


class WearableFleet:
    """All simulated wearables; `generate` returns the readings due in a time window."""

    family = "wearables"
    device_type = "wearable"

    def __init__(self, config: WearableDevices, seed: int, start_ms: int) -> None:
        self._config = config
        self._rng = family_rng(seed, self.family, "model")
        self._id_rng = family_rng(seed, self.family, f"ids@{start_ms}")
        self._names = list(config.personas)
        weights = np.array([config.personas[name] for name in self._names], dtype=float)
        self._persona_p = weights / weights.sum()
        self._profiles = [PERSONA_PROFILES[name] for name in self._names]
        self.rate_multiplier = 1.0
        self._next_number = 0
        self._state: dict[str, np.ndarray] = {}
        self.device_ids: list[str] = []
        self.patient_ids: list[str] = []
        self.add(config.count, start_ms)

    @property
    def count(self) -> int:
        return len(self.device_ids)

    def interval_ms(self, metric: str) -> int:
        """Milliseconds between readings of one device for `metric` at the current rate."""
        seconds = getattr(self._config, f"{metric}_interval_s")
        return max(1, round(seconds * 1000 / self.rate_multiplier))

    def persona_of(self, index: int) -> str:
        """The persona name of device `index` (for tests and the dashboard)."""
        return self._names[int(self._state["persona"][index])]

    def add(self, n: int, now_ms: int) -> None:
        """Add `n` new patients whose first readings start after `now_ms`."""
        if n <= 0:
            return
        rng = self._rng
        persona = rng.choice(len(self._names), size=n, p=self._persona_p)
        cols = {name: np.empty(n) for name in _PROFILE_COLUMNS}
        for k, profile in enumerate(self._profiles):
            m = persona == k
            c = int(m.sum())
            for name, (mean, sd) in (
                ("hr_base", profile.heart_rate),
                ("sys_base", profile.systolic),
                ("dia_base", profile.diastolic),
                ("glu_base", profile.glucose),
            ):
                cols[name][m] = rng.normal(mean, sd, c)
            cols["meal_peak"][m] = profile.meal_peak_minutes * MINUTE_MS
            cols["ex_gap"][m] = profile.exercise_every_hours * MS_PER_HOUR
            cols["st_gap"][m] = profile.stress_every_hours * MS_PER_HOUR
        state = {
            "persona": persona.astype(np.int8),
            **cols,
            "meal_offset_h": rng.normal(0, 0.5, n),
            "wander": np.zeros(n),
            "wander_t": np.full(n, float(now_ms)),
        }
        for metric in METRICS:
            state[f"due_{metric}"] = now_ms + (rng.random(n) * self.interval_ms(metric)).astype(
                np.int64
            )
        for episode in _EPISODES:
            for part in ("start", "end", "gain"):
                state[f"{episode}_{part}"] = np.zeros(n)
        hour = ist_hour(now_ms)
        back = (hour - (MEAL_HOURS_IST[None, :] + state["meal_offset_h"][:, None])) % 24
        state["meal_last"] = now_ms - back.min(axis=1) * MS_PER_HOUR
        state["meal_prev"] = state["meal_last"] - 5 * MS_PER_HOUR
        state["meal_last_gain"] = self._meal_rises(persona)
        state["meal_prev_gain"] = self._meal_rises(persona)
        state["meal_next"] = self._next_meal(state["meal_last"], state["meal_offset_h"])
        old = self.count
        self._state = (
            state
            if not self._state
            else {k: np.concatenate([self._state[k], state[k]]) for k in self._state}
        )
        for episode in _EPISODES:
            self._schedule(episode, np.arange(old, old + n), now_ms)
        numbers = range(self._next_number, self._next_number + n)
        self.device_ids += [f"wear-{i:06d}" for i in numbers]
        self.patient_ids += [f"patient-{i:06d}" for i in numbers]
        self._next_number += n

    def remove(self, n: int) -> None:
        """Retire the `n` most recently added devices."""
        keep = max(0, self.count - n)
        self._state = {k: v[:keep] for k, v in self._state.items()}
        del self.device_ids[keep:], self.patient_ids[keep:]

    def _meal_rises(self, persona: np.ndarray) -> np.ndarray:
        low = np.array([p.meal_rise[0] for p in self._profiles])[persona]
        high = np.array([p.meal_rise[1] for p in self._profiles])[persona]
        return self._rng.uniform(low, high)

    def _next_meal(self, after_ms: np.ndarray, offset_h: np.ndarray) -> np.ndarray:
        hour = ist_hour(after_ms)
        ahead = ((MEAL_HOURS_IST[None, :] + offset_h[:, None]) - hour[:, None]) % 24
        ahead = np.where(ahead < 2.5, ahead + 24, ahead).min(axis=1)
        jitter = self._rng.normal(0, 0.3, len(after_ms))
        return after_ms + np.maximum(ahead + jitter, 2.0) * MS_PER_HOUR

    def _schedule(self, episode: str, idx: np.ndarray, after_ms: np.ndarray | int) -> None:
        """Draw the next exercise ("ex") or stress ("st") episode of devices `idx`."""
        s, rng = self._state, self._rng
        minutes_of, gain_of = _EPISODES[episode]
        profiles = [self._profiles[k] for k in s["persona"][idx]]
        start = after_ms + rng.exponential(1.0, len(idx)) * s[f"{episode}_gap"][idx]
        minutes = np.array([getattr(p, minutes_of) for p in profiles]).reshape(-1, 2)
        gains = np.array([getattr(p, gain_of) for p in profiles]).reshape(-1, 2)
        s[f"{episode}_start"][idx] = start
        s[f"{episode}_end"][idx] = start + rng.uniform(minutes[:, 0], minutes[:, 1]) * MINUTE_MS
        s[f"{episode}_gain"][idx] = rng.uniform(gains[:, 0], gains[:, 1])

    def _advance_episodes(self, now_ms: int) -> None:
        s = self._state
        for episode in _EPISODES:
            # An episode is over once its recovery has faded; then the next one is drawn.
            done = np.flatnonzero(s[f"{episode}_end"] + _RECOVERY_MS[episode] < now_ms)
            if len(done):
                self._schedule(episode, done, now_ms)
        ate = np.flatnonzero(s["meal_next"] < now_ms)
        if len(ate):
            s["meal_prev"][ate] = s["meal_last"][ate]
            s["meal_prev_gain"][ate] = s["meal_last_gain"][ate]
            s["meal_last"][ate] = s["meal_next"][ate]
            s["meal_last_gain"][ate] = self._meal_rises(s["persona"][ate])
            s["meal_next"][ate] = self._next_meal(s["meal_last"][ate], s["meal_offset_h"][ate])

    def _due(self, metric: str, t1: int) -> tuple[np.ndarray, np.ndarray]:
        return due_before(self._state[f"due_{metric}"], self.interval_ms(metric), t1)

    def _circadian(self, t: np.ndarray) -> np.ndarray:
        return np.cos(2 * np.pi * (ist_hour(t) - 16.0) / 24.0)

    def heart_rate(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Heart rate (bpm) of devices `idx` at times `t`; advances their slow wander."""
        s, rng = self._state, self._rng
        decay = np.exp(-np.maximum(t - s["wander_t"][idx], 0) / (10 * MINUTE_MS))
        wander = s["wander"][idx] * decay + 3.0 * np.sqrt(1 - decay**2) * rng.normal(size=len(idx))
        s["wander"][idx], s["wander_t"][idx] = wander, t
        exercise = s["ex_gain"][idx] * _ramp(
            t, s["ex_start"][idx], s["ex_end"][idx], 3 * MINUTE_MS, 4 * MINUTE_MS
        )
        stress = 0.4 * s["st_gain"][idx] * self._stress(idx, t)
        hr = s["hr_base"][idx] + 5.0 * self._circadian(t) + exercise + stress + wander
        return np.clip(hr + rng.normal(0, 2.0, len(idx)), *HR_CLAMP)

    def _stress(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        s = self._state
        return _ramp(t, s["st_start"][idx], s["st_end"][idx], 2 * MINUTE_MS, 10 * MINUTE_MS)

    def blood_pressure(self, idx: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Systolic and diastolic pressure (mmHg), with night dipping, stress and exercise."""
        s, rng = self._state, self._rng
        stress = s["st_gain"][idx] * self._stress(idx, t)
        exercise = s["ex_gain"][idx] * _ramp(
            t, s["ex_start"][idx], s["ex_end"][idx], 3 * MINUTE_MS, 6 * MINUTE_MS
        )
        day = self._circadian(t)
        systolic = s["sys_base"][idx] + 6 * day + stress + 0.35 * exercise
        diastolic = s["dia_base"][idx] + 4 * day + 0.5 * stress + 0.05 * exercise
        systolic = np.clip(systolic + rng.normal(0, 4.0, len(idx)), *SYS_CLAMP)
        diastolic = np.clip(diastolic + rng.normal(0, 3.0, len(idx)), *DIA_CLAMP)
        return systolic, np.minimum(diastolic, systolic - 15)

    def glucose(self, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Interstitial glucose (mg/dL) like a CGM: baseline plus the last two meals' curves."""
        s, rng = self._state, self._rng
        peak = s["meal_peak"][idx]
        meals = s["meal_last_gain"][idx] * _meal_curve(t - s["meal_last"][idx], peak)
        meals += s["meal_prev_gain"][idx] * _meal_curve(t - s["meal_prev"][idx], peak)
        exercise = _ramp(t, s["ex_start"][idx], s["ex_end"][idx], 10 * MINUTE_MS, 30 * MINUTE_MS)
        level = s["glu_base"][idx] + meals - 12 * exercise
        return np.clip(level + rng.normal(0, 4.0, len(idx)), *GLUCOSE_CLAMP)

    def generate(self, t0_ms: int, t1_ms: int) -> EventBatch:
        """Readings with event time before `t1_ms`, encoded, sorted by time."""
        self._advance_episodes(t1_ms)
        idx_hr, t_hr = self._due("heart_rate", t1_ms)
        idx_bp, t_bp = self._due("blood_pressure", t1_ms)
        idx_bs, t_bs = self._due("blood_sugar", t1_ms)
        idx = np.concatenate([idx_hr, idx_bp, idx_bs])
        times = np.concatenate([t_hr, t_bp, t_bs])
        order, position = sort_positions(times)
        # ids are drawn in time order, so they do not depend on how metrics are grouped
        ids = uuid4_strings(self._id_rng, len(idx))[position]
        stamps = event_times(times)
        # itemgetter reuses the existing id strings (numpy would allocate new ones)
        dev, pat = _pick(self.device_ids, idx), _pick(self.patient_ids, idx)
        a, b = len(idx_hr), len(idx_hr) + len(idx_bp)
        dumps = orjson.dumps
        hr = np.round(self.heart_rate(idx_hr, t_hr), 1).tolist()
        values = [
            dumps(
                {
                    "schema_version": SCHEMA_VERSION,
                    "event_id": e,
                    "event_time": t,
                    "device_type": "wearable",
                    "device_id": d,
                    "patient_id": p,
                    "metric": "heart_rate",
                    "heart_rate_bpm": v,
                }
            )
            for e, t, d, p, v in zip(
                ids[:a].tolist(),
                stamps[:a].tolist(),
                dev[:a],
                pat[:a],
                hr,
                strict=True,
            )
        ]
        systolic, diastolic = self.blood_pressure(idx_bp, t_bp)
        values += [
            dumps(
                {
                    "schema_version": SCHEMA_VERSION,
                    "event_id": e,
                    "event_time": t,
                    "device_type": "wearable",
                    "device_id": d,
                    "patient_id": p,
                    "metric": "blood_pressure",
                    "systolic_mmhg": v,
                    "diastolic_mmhg": w,
                }
            )
            for e, t, d, p, v, w in zip(
                ids[a:b].tolist(),
                stamps[a:b].tolist(),
                dev[a:b],
                pat[a:b],
                np.round(systolic).tolist(),
                np.round(diastolic).tolist(),
                strict=True,
            )
        ]
        glucose = np.round(self.glucose(idx_bs, t_bs), 1).tolist()
        values += [
            dumps(
                {
                    "schema_version": SCHEMA_VERSION,
                    "event_id": e,
                    "event_time": t,
                    "device_type": "wearable",
                    "device_id": d,
                    "patient_id": p,
                    "metric": "blood_sugar",
                    "glucose_mg_dl": v,
                }
            )
            for e, t, d, p, v in zip(
                ids[b:].tolist(),
                stamps[b:].tolist(),
                dev[b:],
                pat[b:],
                glucose,
                strict=True,
            )
        ]
        ordered = order.tolist()
        in_order = itemgetter(*ordered)(values) if len(ordered) > 1 else values
        return EventBatch(times[order].tolist(), _pick(dev, order), in_order)


def _pick(items: list | tuple, idx: np.ndarray) -> list | tuple:
    """items[i] for i in idx, looping in C."""
    if len(idx) > 1:
        return itemgetter(*idx.tolist())(items)
    return [items[i] for i in idx.tolist()]


_EPISODES = {
    "ex": ("exercise_minutes", "exercise_hr_gain"),
    "st": ("stress_minutes", "stress_systolic_gain"),
}
_RECOVERY_MS = {"ex": 30 * MINUTE_MS, "st": 50 * MINUTE_MS}
_PROFILE_COLUMNS = (
    "hr_base",
    "sys_base",
    "dia_base",
    "glu_base",
    "meal_peak",
    "ex_gap",
    "st_gap",
)
