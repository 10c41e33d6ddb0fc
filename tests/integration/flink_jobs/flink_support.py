"""Helpers for the Flink job integration tests: an isolated job instance on the stack's
cluster, and producing to and consuming from its topics.

Each job instance gets its own job name and its own input/output topics (through
OPENPIPE__* overrides, which the `flink run` subprocess inherits), so tests never touch
the live pipeline's topics or job and never see its data. A module of its own, not
conftest.py: test modules import these by name, and `conftest` is a different module
for every test folder.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from confluent_kafka import Consumer

from openpipe import kafka
from openpipe.config import Settings, load_settings
from openpipe_dagster.resources.flink import FlinkService


@dataclass
class IsolatedJob:
    settings: Settings
    service: FlinkService
    suffix: str

    @property
    def input_topic(self) -> str:
        return self.settings.kafka.topics.wearables


def _require_cluster(settings: Settings) -> None:
    try:
        httpx.get(f"{settings.flink.rest_url}/overview", timeout=3).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(f"Flink REST at {settings.flink.rest_url} is not up ({exc}); run `make up`")


def isolated_job_instance(tmp_path_factory) -> Iterator[IsolatedJob]:
    """Deploy the job under its own name and topics; cancel it and drop them afterwards."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "wearables": f"itest-flink-wearables-{suffix}",
        "health_metrics_1min": f"itest-flink-m1-{suffix}",
        "health_metrics_10min": f"itest-flink-m10-{suffix}",
        "health_alerts": f"itest-flink-alerts-{suffix}",
    }
    overrides = {f"OPENPIPE__KAFKA__TOPICS__{k.upper()}": v for k, v in names.items()}
    overrides["OPENPIPE__FLINK__JOB_NAME"] = f"itest-health-{suffix}"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in overrides.items():
            mp.setenv(key, value)
        settings = load_settings()
        _require_cluster(settings)
        admin = kafka.admin_client(settings.kafka.bootstrap_servers)
        kafka.ensure_topics(
            admin,
            list(names.values()),
            settings.kafka.partitions,
            settings.kafka.replication_factor,
        )
        service = FlinkService(
            rest_url=settings.flink.rest_url,
            job_name=settings.flink.job_name,
            state_dir=str(tmp_path_factory.mktemp("flink-state")),
            # `flink run` alone has taken over 240 s when other suites load both cores.
            submit_timeout_s=600,
        )
        service.deploy(settings)
        try:
            yield IsolatedJob(settings, service, suffix)
        finally:
            for job in service.active_jobs():
                service.cancel(job.job_id)
            for future in admin.delete_topics(list(names.values())).values():
                future.result()


def produce(settings: Settings, messages: list[tuple[int, str, bytes | None, int]]) -> None:
    """Send (partition, key, value, timestamp_ms) messages and wait for every ack."""
    producer = kafka.make_producer(settings.kafka.bootstrap_servers, settings.kafka)
    failures: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    for partition, key, value, ts in messages:
        producer.produce(
            settings.kafka.topics.wearables,
            value=value,
            key=key.encode(),
            partition=partition,
            timestamp=ts,
            on_delivery=on_delivery,
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not failures, failures


def consume_until(
    topics: list[str], prefix: str, expected: int, timeout_s: float
) -> list[tuple[str, dict]]:
    """Committed records of devices named `prefix`* until `expected` came (+5 quiet s) or timeout."""
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
            "group.id": f"itest-flink-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    records: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                record = orjson.loads(message.value())
                assert message.key().decode() == record["device_id"]
                if record["device_id"].startswith(prefix):
                    records.append((message.topic(), record))
            if len(records) >= expected:
                quiet_until = quiet_until or time.monotonic() + 5
                if time.monotonic() > quiet_until:
                    break
    finally:
        consumer.close()
    return records
