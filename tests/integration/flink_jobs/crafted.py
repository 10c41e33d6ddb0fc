"""Crafted wearable streams with faults, and reading the job's outputs back, for the job tests."""

from __future__ import annotations

import time

import orjson

from flink_jobs.reference import expected_outputs, wearable_event
from openpipe_dagster.resources.flink import FlinkService

TEN_MIN = 600_000
#: Far enough back that the stream plus its flush event stays behind the broker's clock.
BASE_MS = (int(time.time() * 1000) // TEN_MIN) * TEN_MIN - 3 * 3_600_000
METRIC_FIELDS = ("metrics_1min", "metrics_10min")


def stream(prefix: str, base_ms: int, partitions: int) -> list[tuple[int, str, bytes | None, int]]:
    """Readings of 6 devices over 12 minutes, in time order per partition, with faults."""
    messages = []
    for d in range(6):
        device = f"{prefix}-d{d}"
        partition = d % partitions
        for i in range(72):  # heart rate every 10 s
            t = base_ms + i * 10_000
            event = wearable_event(device, "heart_rate", t, heart_rate_bpm=88 + d * 4 + (i % 5))
            messages.append((partition, device, orjson.dumps(event), t))
            if i % 17 == 0:  # a duplicate, re-sent a little later
                messages.append((partition, device, orjson.dumps(event), t + 3_000))
            if i % 23 == 0:  # an out-of-range reading in the same window
                bad = wearable_event(device, "heart_rate", t + 1_000, heart_rate_bpm=400)
                messages.append((partition, device, orjson.dumps(bad), t + 1_000))
        for i in range(24):  # blood pressure every 30 s
            t = base_ms + i * 30_000 + 5_000
            event = wearable_event(
                device, "blood_pressure", t, systolic_mmhg=128 + d * 3, diastolic_mmhg=82 + d * 2
            )
            messages.append((partition, device, orjson.dumps(event), t))
        for i in range(5):  # glucose every 150 s
            t = base_ms + i * 150_000 + 7_000
            event = wearable_event(device, "blood_sugar", t, glucose_mg_dl=150 + d * 10 + i)
            messages.append((partition, device, orjson.dumps(event), t))
    messages.sort(key=lambda m: m[3])
    return messages


def flush(prefix: str, at_ms: int, partitions: int) -> list[tuple[int, str, bytes | None, int]]:
    """One invalid reading per partition far ahead: moves every partition's watermark on."""
    event = wearable_event(f"{prefix}-flush", "heart_rate", at_ms, heart_rate_bpm=999)
    return [(p, f"{prefix}-flush", orjson.dumps(event), at_ms) for p in range(partitions)]


def output_rows(records: list[tuple[str, dict]], job, prefix: str) -> dict[str, list[tuple]]:
    topics = job.settings.kafka.topics
    names = {
        topics.health_metrics_1min: "metrics_1min",
        topics.health_metrics_10min: "metrics_10min",
        topics.health_alerts: "alerts",
    }
    out: dict[str, list[tuple]] = {"metrics_1min": [], "metrics_10min": [], "alerts": []}
    for topic, record in records:
        if record["device_id"].startswith(prefix):
            out[names[topic]].append(tuple(record.values()))
    return out


def rounded(rows) -> list[tuple]:
    return sorted(tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows)


def expected_rows(job, messages, prefix):
    expected = expected_outputs(job.settings, [(v, ts) for _, _, v, ts in messages])
    return {
        k: rounded(r for r in rows if r[3 if k == "alerts" else 2].startswith(prefix))
        for k, rows in expected.items()
    }


def output_topics(job) -> list[str]:
    t = job.settings.kafka.topics
    return [t.health_metrics_1min, t.health_metrics_10min, t.health_alerts]


def completed_checkpoints(service: FlinkService, job_id: str) -> int:
    return service._get(f"/jobs/{job_id}/checkpoints")["counts"]["completed"]
