"""The probe stream: labelled events the chaos and soak harnesses produce themselves.

Every probe carries a device_id starting with `probe-<run id>-`, so its rows are easy to
find, and the harness keeps Kafka's delivery report of each one: topic, partition and
offset by event_id. A few probes are deliberately bad (out of range, labelled with the
`openpipe-fault` header like the simulator's) or re-sent duplicates, so the account
checks every outcome of the drain against exact expectations.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import orjson
from confluent_kafka import Producer

from openpipe import kafka
from openpipe.config import Settings
from openpipe.events import FAULT_HEADER, format_event_time

log = logging.getLogger(__name__)
# librdkafka's own warnings (a leader not found while the broker restarts) are expected here.
logging.getLogger("librdkafka.probe").setLevel(logging.ERROR)
FAMILIES = ("wearables", "restaurants", "gps")
VALID, DUPLICATE, OUT_OF_RANGE = "valid", "duplicate", "out_of_range"
#: One probe in this many is out of range, and one in this many re-sends an earlier one.
BAD_EVERY = 40
DUPLICATE_EVERY = 45


def probe_event(family: str, run_id: str, n: int, time_ms: int, bad: bool = False) -> dict:
    """The n-th probe event of `family`, measured at time_ms; out of range when `bad`."""
    device = f"probe-{run_id}-{family[0]}{n % 8}"
    event = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "event_time": format_event_time(time_ms),
        "device_id": device,
    }
    if family == "wearables":
        event |= {
            "device_type": "wearable",
            "patient_id": f"{device}-patient",
            "metric": "heart_rate",
            "heart_rate_bpm": 900.0 if bad else 60.0 + n % 40,
        }
    elif family == "gps":
        event |= {
            "device_type": "gps_tracker",
            "vehicle_id": f"{device}-vehicle",
            "route_id": "probe_route",
            "city": "Mumbai",
            "lat": 19.07 + (n % 100) / 10_000,
            "lon": 72.87,
            "speed_kmh": 900.0 if bad else 30.0 + n % 20,
            "heading_deg": float(n % 360),
            "accuracy_m": 3.0,
        }
    elif family == "restaurants":
        quantity = 1 + n % 3
        event |= {
            "device_type": "restaurant_pos",
            "restaurant_id": f"{device}-restaurant",
            "city": "Mumbai",
            "order_id": f"{device}-order-{n}",
            "table_number": 9999 if bad else 1 + n % 12,
            "items": [{"dish_code": "D001", "quantity": quantity, "unit_price_inr": 250.0}],
            "total_inr": 250.0 * quantity,
            "order_status": "placed",
            "payment_status": "pending",
            "payment_method": None,
        }
    else:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    return event


def probe_kind(n: int) -> str:
    """What the n-th probe of a family is: valid, a re-sent duplicate or out of range."""
    if n and n % DUPLICATE_EVERY == 0:
        return DUPLICATE
    if n % BAD_EVERY == BAD_EVERY - 1:
        return OUT_OF_RANGE
    return VALID


@dataclass
class ProbeLedger:
    """Delivery reports of the probes, by event_id (thread-safe through one lock)."""

    # (topic, partition, offset) -> (event_id, kind, produced at, epoch s)
    acked: dict[tuple[str, int, int], tuple[str, str, float]] = field(default_factory=dict)
    failed: Counter = field(default_factory=Counter)  # topic -> deliveries Kafka refused
    sent: Counter = field(default_factory=Counter)  # topic -> produce() calls
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acked_count(self, topic: str) -> int:
        with self.lock:
            return sum(1 for t, _, _ in self.acked if t == topic)


class ProbeProducer:
    """A thread producing probes at `rate` events/s, spread over the three raw topics."""

    def __init__(self, settings: Settings, run_id: str, rate: float) -> None:
        self.settings, self.run_id, self.rate = settings, run_id, rate
        self.ledger = ProbeLedger()
        self.topics = {f: getattr(settings.kafka.topics, f) for f in FAMILIES}
        self._producer = Producer(
            {
                **kafka.producer_config(settings.kafka.bootstrap_servers, settings.kafka),
                "client.id": f"openpipe-probe-{run_id}",
                "linger.ms": 5,
                # A broker or database outage of a few minutes must not fail a delivery.
                "message.timeout.ms": 900_000,
            },
            logger=logging.getLogger("librdkafka.probe"),
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)
        self._recent: dict[str, list[tuple[bytes, bytes, str]]] = {f: [] for f in FAMILIES}
        self.first_ms: int | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, flush_timeout_s: float = 300.0) -> int:
        """Stop producing and wait for delivery reports; returns how many stayed unreported."""
        self._stop.set()
        self._thread.join()
        left = self._producer.flush(flush_timeout_s)
        if left:
            log.error(
                "probe: %d messages without a delivery report after %.0f s", left, flush_timeout_s
            )
        return left

    def _run(self) -> None:
        rng = random.Random(self.run_id)
        n = 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            family = FAMILIES[n % len(FAMILIES)]
            self._produce_one(family, n // len(FAMILIES), rng)
            n += 1
            next_at += interval
            self._producer.poll(0)
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -5:  # fell far behind (a stalled broker): do not burst to catch up
                next_at = time.monotonic()

    def _produce_one(self, family: str, n: int, rng: random.Random) -> None:
        topic = self.topics[family]
        now_ms = int(time.time() * 1000)
        self.first_ms = self.first_ms or now_ms
        kind = probe_kind(n)
        recent = self._recent[family]
        if kind == DUPLICATE and recent:
            key, value, event_id = rng.choice(recent)
        else:
            if kind == DUPLICATE:
                kind = VALID
            event = probe_event(family, self.run_id, n, now_ms, bad=kind == OUT_OF_RANGE)
            key, value, event_id = (
                event["device_id"].encode(),
                orjson.dumps(event),
                event["event_id"],
            )
            if kind == VALID:
                recent.append((key, value, event_id))
                del recent[:-50]
        headers = None if kind == VALID else [(FAULT_HEADER, kind.encode())]
        produced_at = time.time()

        def on_delivery(err, msg, event_id=event_id, kind=kind, produced_at=produced_at) -> None:
            with self.ledger.lock:
                if err is None:
                    key_ = (msg.topic(), msg.partition(), msg.offset())
                    self.ledger.acked[key_] = (event_id, kind, produced_at)
                else:
                    self.ledger.failed[msg.topic()] += 1

        kafka.produce_waiting(
            self._producer, topic, value=value, key=key, headers=headers, on_delivery=on_delivery
        )
        with self.ledger.lock:
            self.ledger.sent[topic] += 1
