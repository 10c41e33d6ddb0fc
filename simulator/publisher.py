"""Where messages go: Kafka (confluent-kafka, idempotent, acks=all) or JSON lines (--dry-run)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import BinaryIO

import orjson
from confluent_kafka import KafkaException, Producer

from openpipe import kafka
from openpipe.config import Settings
from openpipe.events import FAULT_HEADER
from simulator.faults import Outgoing
from simulator.stats import SimulatorStats

log = logging.getLogger(__name__)
QUEUE_MAX_MESSAGES = 500_000
READY_PROBE_INTERVAL_S = 5.0
MAX_BACKOFF_S = 30.0


def producer_config(settings: Settings, **overrides: object) -> dict:
    """The shared producer config (openpipe.kafka) with the simulator's client id and queue."""
    return {
        **kafka.producer_config(settings.kafka.bootstrap_servers, settings.kafka),
        "client.id": "openpipe-simulator",
        "queue.buffering.max.messages": QUEUE_MAX_MESSAGES,
        **overrides,
    }


class KafkaPublisher:
    """Produces messages keyed by device_id; counts acknowledgements and failures."""

    def __init__(self, settings: Settings, stats: SimulatorStats, **overrides: object) -> None:
        self._settings = settings
        self._stats = stats
        self._producer = Producer(
            producer_config(settings, **overrides), logger=logging.getLogger("librdkafka")
        )
        self._family_of = {getattr(settings.kafka.topics, f): f for f in stats.devices}
        self._acked: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self._latencies: list[float] = []
        self._last_error_log = 0.0
        self._headers: dict[str, list[tuple[str, bytes]]] = {}

    def _on_delivery(self, err, msg) -> None:
        if err is None:
            self._acked[msg.topic()] += 1
            self._latencies.append(msg.latency())
            return
        self._failed[msg.topic()] += 1
        now = time.monotonic()
        if now - self._last_error_log > 5:  # one line per 5 s, the counter has the total
            self._last_error_log = now
            log.error("delivery to %s failed: %s", msg.topic(), err)

    def _fold_reports(self) -> None:
        stats = self._stats
        for topic, n in self._acked.items():
            stats.delivered[self._family_of[topic]] += n
        for topic, n in self._failed.items():
            stats.failed[self._family_of[topic]] += n
        self._acked.clear()
        self._failed.clear()
        latencies, self._latencies = self._latencies, []
        stats.observe_latencies(latencies)

    def send(self, family: str, topic: str, outgoing: Outgoing) -> None:
        """Produce a window's messages; on a full local queue wait for deliveries and retry."""
        producer = self._producer
        produce, poll, on_delivery = producer.produce, producer.poll, self._on_delivery
        for key, value, ts in zip(outgoing.keys, outgoing.values, outgoing.times_ms, strict=True):
            try:
                produce(topic, value, key, on_delivery=on_delivery, timestamp=ts)
            except BufferError:
                self._produce_when_room(topic, value, key, ts, None)
            poll(0)
        for key, value, ts, fault in outgoing.labelled:
            headers = self._headers.get(fault)
            if headers is None:
                headers = self._headers[fault] = [(FAULT_HEADER, fault.encode())]
            self._produce_when_room(topic, value, key, ts, headers)
            poll(0)
        self._fold_reports()

    def _produce_when_room(self, topic, value, key, ts, headers) -> None:
        """Produce, serving delivery reports while librdkafka's queue is full (back-pressure)."""
        while True:
            try:
                self._producer.produce(
                    topic, value, key, on_delivery=self._on_delivery, timestamp=ts, headers=headers
                )
                return
            except BufferError:
                self._stats.buffer_full += 1
                self._producer.poll(0.05)

    def wait(self, seconds: float) -> None:
        """Serve delivery reports for up to `seconds` (the real-time loop's sleep)."""
        self._producer.poll(max(seconds, 0))
        self._fold_reports()

    def wait_until_ready(self, stop: threading.Event) -> bool:
        """Block until Kafka answers with our topics, backing off; False if stopped first."""
        backoff, attempt = 1.0, 0
        while not stop.is_set():
            attempt += 1
            problem = self.probe(timeout=min(backoff, 5.0))
            if problem is None:
                log.info("Kafka at %s is ready", self._settings.kafka.bootstrap_servers)
                return True
            log.warning(
                "Kafka not ready (attempt %d): %s; retrying in %.0f s", attempt, problem, backoff
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        return False

    def probe(self, timeout: float = 5.0) -> str | None:
        """Check the broker and our topics; update readiness; return the problem or None."""
        try:
            metadata = self._producer.list_topics(timeout=timeout)
        except KafkaException as exc:
            problem = (
                f"cannot reach {self._settings.kafka.bootstrap_servers}: {exc.args[0]}; "
                "start the stack with `openpipe up` or fix kafka.bootstrap_servers"
            )
        else:
            missing = sorted(set(self._family_of) - set(metadata.topics))
            problem = (
                f"topics {missing} do not exist; materialize the kafka_topics asset"
                if missing
                else None
            )
        self._stats.kafka_ready = problem is None
        self._stats.kafka_error = problem
        return problem

    def start_probing(self, stop: threading.Event) -> threading.Thread:
        """Keep readiness current from a background thread until `stop` is set."""

        def loop() -> None:
            while not stop.wait(READY_PROBE_INTERVAL_S):
                self.probe()

        thread = threading.Thread(target=loop, name="kafka-ready-probe", daemon=True)
        thread.start()
        return thread

    def close(self, timeout: float = 30.0) -> int:
        """Flush outstanding messages; return how many were still undelivered."""
        remaining = self._producer.flush(timeout)
        self._fold_reports()
        if remaining:
            log.error(
                "%d messages were not delivered within %.0f s of shutdown", remaining, timeout
            )
        return remaining


class DryRunPublisher:
    """Writes one JSON line per message: {"topic", "key", "headers", "value"}."""

    def __init__(self, stats: SimulatorStats, out: BinaryIO) -> None:
        self._stats = stats
        self._out = out
        self._headers = {None: b"{}"}

    def send(self, family: str, topic: str, outgoing: Outgoing) -> None:
        """Write a window's messages; the value is the event object, or raw text if malformed."""
        write, dumps, headers = self._out.write, orjson.dumps, self._headers
        topic_json = dumps(topic)
        for key, value, _ts, fault in outgoing.messages():
            hdr = headers.get(fault)
            if hdr is None:
                hdr = headers[fault] = dumps({FAULT_HEADER: fault})
            body = dumps(value.decode()) if fault == "malformed_json" else value
            write(
                b'{"topic":%s,"key":%s,"headers":%s,"value":%s}\n'
                % (topic_json, dumps(key), hdr, body)
            )
        self._stats.delivered[family] += len(outgoing)

    def wait(self, seconds: float) -> None:
        """Sleep (there are no delivery reports to serve)."""
        self._out.flush()
        time.sleep(max(seconds, 0))

    def close(self, timeout: float = 30.0) -> int:
        """Flush the output."""
        self._out.flush()
        return 0
