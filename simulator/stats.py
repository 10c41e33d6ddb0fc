"""Simulator counters, the rate history the dashboard draws, and the Prometheus collector.

Counters are plain ints bumped per batch by the simulation thread (no per-message lock);
the collector reads them at scrape time. No per-device labels.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from openpipe.events import FAMILIES

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HISTORY_POINTS = 180


class SimulatorStats:
    """Totals per family and fault kind, delivery outcomes, latency buckets and readiness."""

    def __init__(self) -> None:
        self.produced: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.faults: Counter[tuple[str, str]] = Counter()
        self.buffer_full = 0
        self.kafka_ready = False
        self.kafka_error: str | None = "not checked yet"
        self.virtual_time_ms = 0
        self.started_at = time.time()
        self.devices: dict[str, int] = dict.fromkeys(FAMILIES, 0)
        self.rate_multipliers: dict[str, float] = dict.fromkeys(FAMILIES, 1.0)
        self._latency_counts = np.zeros(len(LATENCY_BUCKETS) + 1, dtype=np.int64)
        self._latency_sum = 0.0
        self._history: deque[dict] = deque(maxlen=HISTORY_POINTS)
        self._lock = threading.Lock()

    def count_batch(self, family: str, faults: Mapping[str, int], n: int) -> None:
        """Record `n` messages handed to the producer, `faults[kind]` of them faulty."""
        self.produced[family] += n
        for kind, count in faults.items():
            self.faults[family, kind] += count

    def observe_latencies(self, seconds: list[float]) -> None:
        """Fold a batch of produce-to-ack latencies into the histogram."""
        if not seconds:
            return
        values = np.asarray(seconds)
        idx = np.searchsorted(LATENCY_BUCKETS, values, side="left")
        with self._lock:
            self._latency_counts += np.bincount(idx, minlength=len(self._latency_counts))
            self._latency_sum += float(values.sum())

    def sample(self, now: float | None = None) -> None:
        """Append one point (totals per family) to the history the dashboard charts."""
        point = {
            "t": now if now is not None else time.time(),
            "produced": dict(self.produced),
            "delivered": dict(self.delivered),
        }
        with self._lock:
            self._history.append(point)

    def rates(self, window_s: float = 5.0) -> dict[str, float]:
        """Messages per second per family over the last `window_s` of history."""
        with self._lock:
            points = list(self._history)
        if len(points) < 2:
            return dict.fromkeys(FAMILIES, 0.0)
        last = points[-1]
        first = next((p for p in points if last["t"] - p["t"] <= window_s), points[0])
        span = max(last["t"] - first["t"], 1e-9)
        return {
            f: (last["produced"].get(f, 0) - first["produced"].get(f, 0)) / span for f in FAMILIES
        }

    def history(self) -> list[dict]:
        """Per-second rates per family over the retained history, oldest first."""
        with self._lock:
            points = list(self._history)
        out = []
        for before, after in itertools.pairwise(points):
            span = max(after["t"] - before["t"], 1e-9)
            out.append(
                {
                    "t": after["t"],
                    **{
                        f: (after["produced"].get(f, 0) - before["produced"].get(f, 0)) / span
                        for f in FAMILIES
                    },
                }
            )
        return out

    def snapshot(self) -> dict:
        """Everything the dashboard shows, as plain JSON-ready data."""
        faults: dict[str, dict[str, int]] = {f: {} for f in FAMILIES}
        for (family, kind), n in sorted(self.faults.items()):
            faults[family][kind] = n
        return {
            "kafka_ready": self.kafka_ready,
            "kafka_error": self.kafka_error,
            "uptime_s": round(time.time() - self.started_at, 1),
            "virtual_time_ms": self.virtual_time_ms,
            "buffer_full": self.buffer_full,
            "rates": {f: round(r, 1) for f, r in self.rates().items()},
            "families": {
                f: {
                    "devices": self.devices[f],
                    "rate_multiplier": self.rate_multipliers[f],
                    "produced": self.produced[f],
                    "delivered": self.delivered[f],
                    "delivery_failures": self.failed[f],
                    "faults": faults[f],
                }
                for f in FAMILIES
            },
        }

    def registry(self) -> CollectorRegistry:
        """A Prometheus registry exposing these statistics."""
        registry = CollectorRegistry(auto_describe=True)
        registry.register(_StatsCollector(self))
        return registry

    def latency_histogram(self) -> tuple[list[int], float]:
        """Cumulative bucket counts (last is +Inf) and the sum of latencies."""
        with self._lock:
            return np.cumsum(self._latency_counts).tolist(), self._latency_sum


class _StatsCollector(Collector):
    def __init__(self, stats: SimulatorStats) -> None:
        self._stats = stats

    def collect(self):
        s = self._stats
        events = CounterMetricFamily(
            "openpipe_simulator_events", "Messages handed to the producer.", labels=["family"]
        )
        delivered = CounterMetricFamily(
            "openpipe_simulator_delivered", "Messages Kafka acknowledged.", labels=["family"]
        )
        failed = CounterMetricFamily(
            "openpipe_simulator_delivery_failures",
            "Messages Kafka reported as not delivered.",
            labels=["family"],
        )
        devices = GaugeMetricFamily(
            "openpipe_simulator_devices", "Simulated devices.", labels=["family"]
        )
        rate = GaugeMetricFamily(
            "openpipe_simulator_rate_multiplier", "Send-rate multiplier.", labels=["family"]
        )
        for family in FAMILIES:
            events.add_metric([family], s.produced[family])
            delivered.add_metric([family], s.delivered[family])
            failed.add_metric([family], s.failed[family])
            devices.add_metric([family], s.devices[family])
            rate.add_metric([family], s.rate_multipliers[family])
        faults = CounterMetricFamily(
            "openpipe_simulator_faults",
            "Faulty messages injected, by kind.",
            labels=["family", "kind"],
        )
        for (family, kind), n in sorted(s.faults.items()):
            faults.add_metric([family, kind], n)
        buffer_full = CounterMetricFamily(
            "openpipe_simulator_producer_buffer_full",
            "Times the producer queue was full and the simulator waited.",
        )
        buffer_full.add_metric([], s.buffer_full)
        ready = GaugeMetricFamily("openpipe_simulator_kafka_ready", "1 when Kafka is reachable.")
        ready.add_metric([], 1.0 if s.kafka_ready else 0.0)
        counts, total = s.latency_histogram()
        bounds = [str(b) for b in LATENCY_BUCKETS] + ["+Inf"]
        latency = HistogramMetricFamily(
            "openpipe_simulator_produce_latency_seconds",
            "Time from produce() to Kafka's acknowledgement.",
            buckets=list(zip(bounds, counts, strict=True)),
            sum_value=total,
        )
        yield from (events, delivered, failed, devices, rate, faults, buffer_full, ready, latency)
