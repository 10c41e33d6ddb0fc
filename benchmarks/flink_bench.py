"""Flink benchmark: the health job against raw-bytes ceilings, and alert latency at scale.

Usage: uv run python benchmarks/flink_bench.py [--events 300000] [--rounds 3]
       [--latency-seconds 180] [--only throughput|latency] [--state-backend hashmap|rocksdb]
       [--checkpoint-interval SECONDS] [--flink-option KEY=VALUE ...]

Everything runs on the stack's Flink cluster and Kafka with scratch topics and job names
(OPENPIPE__* overrides, which the `flink run` subprocess inherits), so the live pipeline
is untouched.

1. Throughput. A backlog of wearable events from the simulator's fleet model on its
   virtual clock (Kafka timestamp = event time) is drained, in alternating order each
   round, by the ceiling (`flink_jobs/raw_ceiling.py`: the same topic read as raw bytes
   into a blackhole, same parallelism, bounded), by the pass-through (the same, writing
   each value to a scratch topic) and by the health-window job (decoding, windows,
   dedupe, alerts, three exactly-once sinks). Start = the moment the job's last task
   switched to RUNNING (Flink's task timestamps). End = the ceilings' own end time; for
   the health job, the broker's append time (LogAppendTime topics) of its last output
   record, once the committed outputs equal the Python reference model row for row.
   The ratios printed are the medians of the rounds' health/ceiling and
   health/pass-through ratios.
2. Alert latency at 100,000 devices. The simulator's wearable fleet scaled to a
   100,000-device simulator (~16,300 readings/s) streams in real time, with 30 extra
   devices reporting 130 bpm every second; each of their alerts is timed from window end
   + watermark delay to (a) readable (committed) in Kafka and (b) its row in
   health_alerts, stored by one sink session as the stack runs them. The alerts
   topic stamps the broker's append time, which splits (a) into written (lag + firing)
   and the commit wait (checkpoint); Flink's REST API gives the checkpoints' durations,
   the source's backlog, busy time and the TaskManager's CPU and GC time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import NewTopic

from flink_jobs import health_windows, raw_ceiling
from flink_jobs.reference import expected_outputs, wearable_event
from openpipe import kafka
from openpipe.config import REPO_ROOT, Settings, load_settings
from openpipe.sinks import SINKS
from openpipe.sinks.drain import SinkSession
from openpipe.stack import flink as local_flink
from openpipe.stack import kafka as local_kafka
from openpipe.stack.process import ManagedProcess, cpu_seconds, group_members
from openpipe.storage import db
from openpipe_dagster.resources.flink import FlinkService, FlinkServiceError
from simulator.wearables import WearableFleet

CEILING = REPO_ROOT / "flink_jobs" / "raw_ceiling.py"
#: The jobs of a throughput round, in the order of rounds 1, 3, ... (rounds 2, 4, ... reverse
#: it): the raw-bytes read into a blackhole, the raw-bytes pass-through to Kafka, the health job.
CEILINGS = ("ceiling", "pass-through")
JOBS = (*CEILINGS, "health")
HEALTH_JOB = REPO_ROOT / "flink_jobs" / "health_windows.py"
OUTPUT_KEYS = ("health_metrics_1min", "health_metrics_10min", "health_alerts")
SIMULATOR_DEVICES = 100_000


def _clear_overrides() -> None:
    for key in list(os.environ):
        if key.startswith("OPENPIPE__"):
            del os.environ[key]


def _settings(job: str, wearables: str, outputs: dict[str, str], **extra: str) -> Settings:
    """Settings (and the `flink run` environment) pointing at scratch topics and job name."""
    _clear_overrides()
    os.environ["OPENPIPE__FLINK__JOB_NAME"] = job
    os.environ["OPENPIPE__KAFKA__TOPICS__WEARABLES"] = wearables
    for key, topic in outputs.items():
        os.environ[f"OPENPIPE__KAFKA__TOPICS__{key.upper()}"] = topic
    os.environ.update(extra)
    return load_settings()


def _checkpoint_interval(seconds: int | None) -> dict[str, str]:
    """The override of flink.checkpoint_interval_s for a benchmark job, if one is asked for."""
    return {"OPENPIPE__FLINK__CHECKPOINT_INTERVAL_S": str(seconds)} if seconds else {}


def _create_topics(settings: Settings, names: list[str], append_time: bool = False) -> None:
    """Scratch topics; output topics stamp records with the broker's append time."""
    config = {"message.timestamp.type": "LogAppendTime"} if append_time else {}
    k = settings.kafka
    topics = [NewTopic(n, k.partitions, k.replication_factor, config=config) for n in names]
    admin = kafka.admin_client(k.bootstrap_servers)  # kept alive until the futures resolve
    for future in admin.create_topics(topics).values():
        future.result()


def _drop_topics(settings: Settings, names: list[str]) -> None:
    admin = kafka.admin_client(settings.kafka.bootstrap_servers)
    for topic, future in admin.delete_topics(names).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:  # already gone
                print(f"could not delete scratch topic {topic}: {exc}")


class _Sender:
    """A producer that keeps what Kafka refused: a benchmark on lost input measures nothing.

    (Kafka 4 refuses records stamped more than `message.timestamp.after.max.ms`, 1 h by
    default, ahead of the broker's clock; a backlog on a virtual clock must end before now.)
    """

    def __init__(self, settings: Settings) -> None:
        self.producer = kafka.make_producer(settings.kafka.bootstrap_servers, settings.kafka)
        self.refused: list = []

    def _delivered(self, err, _message) -> None:
        if err is not None:
            self.refused.append(err)

    def send(self, topic: str, key: bytes, value: bytes, ts: int, **kw) -> None:
        kafka.produce_waiting(
            self.producer,
            topic,
            value=value,
            key=key,
            timestamp=ts,
            on_delivery=self._delivered,
            **kw,
        )
        self.producer.poll(0)

    def flush(self, timeout_s: float) -> None:
        """Wait for every acknowledgement; raise if one is missing or Kafka refused any."""
        left = self.producer.flush(timeout_s)
        if left or self.refused:
            first = f", the first: {self.refused[0]}" if self.refused else ""
            raise RuntimeError(
                f"Kafka refused {len(self.refused):,} benchmark events and left {left:,} "
                f"unacknowledged after {timeout_s:.0f} s{first}"
            )


def _backlog(settings: Settings, events: int) -> tuple[list[tuple[bytes, int]], int]:
    """Produce `events` fleet readings plus a window-closing flush; returns them and the flush time."""
    messages, flush_ms = backlog_readings(settings, events, int(time.time() * 1000))
    sender, topic = _Sender(settings), settings.kafka.topics.wearables
    for key, value, ts in messages:
        sender.send(topic, key, value, ts)
    # An invalid reading far ahead on every partition moves every watermark past the backlog.
    flush = orjson.dumps(wearable_event("bench-flush", "heart_rate", flush_ms, heart_rate_bpm=999))
    for partition in range(settings.kafka.partitions):
        sender.send(topic, b"bench-flush", flush, flush_ms, partition=partition)
    sender.flush(60)
    return [(v, ts) for _, v, ts in messages], flush_ms


def backlog_readings(
    settings: Settings, events: int, now_ms: int
) -> tuple[list[tuple[bytes, bytes, int]], int]:
    """The backlog's readings and its flush time (an hour past them), all stamped before now.

    It starts on a 10-minute boundary 6 h back, or earlier by whole windows when `events`
    take longer than that on the fleet's clock: the broker refuses the future.
    """
    start = (now_ms // 600_000) * 600_000 - 6 * 3_600_000
    while True:
        messages, end = _fleet_readings(settings, events, start)
        flush_ms = end + 3_600_000
        if flush_ms <= now_ms:
            return messages, flush_ms
        start -= -(-(flush_ms - now_ms) // 600_000) * 600_000


def _fleet_readings(
    settings: Settings, events: int, start: int
) -> tuple[list[tuple[bytes, bytes, int]], int]:
    """The first `events` readings of the fleet from `start`, and the end of their last window."""
    fleet = WearableFleet(settings.devices.wearables, seed=7, start_ms=start)
    messages: list[tuple[bytes, bytes, int]] = []
    t = start
    while len(messages) < events:
        batch = fleet.generate(t, t + 600_000)
        messages += [
            (k.encode(), v, ts)
            for k, v, ts in zip(batch.keys, batch.values, batch.times_ms, strict=True)
        ]
        t += 600_000
    return messages[:events], t


def _service(settings: Settings) -> FlinkService:
    return FlinkService(
        rest_url=settings.flink.rest_url,
        job_name=settings.flink.job_name,
        state_dir=tempfile.mkdtemp(prefix="flink-bench-"),
    )


def _ceiling_round(backlog: str, label: str, pass_through: bool) -> float:
    """Seconds a raw-bytes job needs for the backlog, from all tasks RUNNING to FINISHED.

    The blackhole ceiling reads; the pass-through one also writes every value to a
    scratch topic (`raw_ceiling.PASS_THROUGH_ENV`).
    """
    kind = "pass" if pass_through else "ceiling"
    settings = _settings(f"bench-{kind}-{label}", backlog, {})
    topic = f"bench-pass-through-{label}" if pass_through else None
    if topic:
        _create_topics(settings, [topic])
        os.environ[raw_ceiling.PASS_THROUGH_ENV] = topic
    service = _service(settings)
    try:
        job_id = service.submit(script=CEILING)
        started = service.all_tasks_running(job_id)
        service.wait_for_state(job_id, {"FINISHED"}, timeout_s=600)
        deadline = time.monotonic() + 30
        while (ended := service._get(f"/jobs/{job_id}")["end-time"]) <= 0:  # -1 for a moment
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind} job {job_id} FINISHED without an end time")
            time.sleep(0.2)
    finally:
        if topic:
            del os.environ[raw_ceiling.PASS_THROUGH_ENV]
            _drop_topics(settings, [topic])
    return (ended - started) / 1000


def _health_round(
    backlog: str, label: str, expected: int, backend: str, checkpoint_s: int | None
) -> float:
    """Seconds the health job needs, from all tasks RUNNING to its last output's append time.

    The job checkpoints as deployed (flink.checkpoint_interval_s) unless `checkpoint_s`
    says otherwise; the end time is when the broker appended the last output inside the
    open transaction, so the commit that follows is waited for but not timed.
    """
    outputs = {key: f"bench-{key.replace('_', '-')}-{label}" for key in OUTPUT_KEYS}
    settings = _settings(
        f"bench-health-{label}",
        backlog,
        outputs,
        OPENPIPE__FLINK__STATE_BACKEND=backend,
        **_checkpoint_interval(checkpoint_s),
    )
    _create_topics(settings, list(outputs.values()), append_time=True)
    service = _service(settings)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"bench-count-{label}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe(list(outputs.values()))
    job_id = service.submit(script=HEALTH_JOB)
    try:
        started = service.all_tasks_running(job_id)
        seen, last_ms, grew = 0, 0, time.monotonic()
        while seen < expected:
            if time.monotonic() - grew > 90:
                raise RuntimeError(
                    f"health job: {seen} outputs committed, {expected} expected, no growth for "
                    "90 s; its results differ from the reference model"
                )
            for message in consumer.consume(10_000, 0.5):
                if not message.error():
                    seen += 1
                    last_ms = max(last_ms, message.timestamp()[1])
                    grew = time.monotonic()
        if seen != expected:
            raise RuntimeError(f"health job: {seen} outputs committed, {expected} expected")
    finally:
        consumer.close()
        service.cancel(job_id)
        _drop_topics(settings, list(outputs.values()))
    return (last_ms - started) / 1000


def _cpu_s() -> dict[str, float]:
    """CPU seconds used so far by the local TaskManager JVMs and the Kafka broker."""

    def used(*processes: ManagedProcess) -> float:
        leaders = [pid for process in processes if (pid := process.pid()) is not None]
        return cpu_seconds([member for leader in leaders for member in group_members(leader)])

    return {
        "taskmanagers": used(*local_flink.TASKMANAGERS),
        "kafka": used(local_kafka.PROCESS),
    }


def _cpu_text(us_per_event: dict[str, float]) -> str:
    return ", ".join(f"{name} {us:.1f} µs/event" for name, us in us_per_event.items())


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def throughput(
    events: int, rounds: int, backend: str, checkpoint_s: int | None = None
) -> dict[str, float]:
    """Rounds of ceiling and health job on one backlog; rates, and the median ratio."""
    suffix = uuid.uuid4().hex[:6]
    backlog = f"bench-backlog-{suffix}"
    settings = _settings(f"bench-{suffix}", backlog, {})
    _create_topics(settings, [backlog])
    try:
        messages, _ = _backlog(settings, events)
        expected = sum(len(rows) for rows in expected_outputs(settings, messages).values())
        rates: dict[str, list[float]] = {job: [] for job in JOBS}
        ratios: dict[str, list[float]] = {job: [] for job in CEILINGS}
        cpu_rounds: list[dict[str, dict[str, float]]] = []  # job -> process -> µs/event
        for r in range(rounds):
            order = JOBS if r % 2 == 0 else JOBS[::-1]
            load = _load()
            seconds, cpu_us = {}, {}
            for which in order:
                label = f"{suffix}-{r}"
                cpu_before = _cpu_s()
                seconds[which] = (
                    _health_round(backlog, label, expected, backend, checkpoint_s)
                    if which == "health"
                    else _ceiling_round(backlog, label, pass_through=which == "pass-through")
                )
                cpu_us[which] = {
                    name: (used - cpu_before[name]) / len(messages) * 1e6
                    for name, used in _cpu_s().items()
                }
            for job in JOBS:
                rates[job].append(len(messages) / seconds[job])
            for job in CEILINGS:
                ratios[job].append(rates["health"][-1] / rates[job][-1])
            cpu_rounds.append(cpu_us)
            jobs = "; ".join(
                f"{job} {rates[job][-1]:,.0f} ev/s ({seconds[job]:.2f} s, CPU "
                f"{_cpu_text(cpu_us[job])})"
                for job in JOBS
            )
            print(
                f"  round {r + 1} (load {load} -> {_load()}): {jobs}; health ratio to the "
                f"ceiling {ratios['ceiling'][-1]:.2f}, to the pass-through "
                f"{ratios['pass-through'][-1]:.2f}",
                flush=True,
            )
    finally:
        _drop_topics(settings, [backlog])
    return {
        "events": len(messages),
        "outputs": expected,
        **{f"{job}_events_s": statistics.median(rates[job]) for job in JOBS},
        **{f"{job}_ratio": statistics.median(ratios[job]) for job in CEILINGS},
        **{
            f"{job}_cpu_us": statistics.median(r[job]["taskmanagers"] for r in cpu_rounds)
            for job in JOBS
        },
    }


def simulator_wearable_rate(settings: Settings) -> float:
    """Readings/s of the wearables of a SIMULATOR_DEVICES simulator with the configured mix."""
    d = settings.devices
    share = d.wearables.count / (d.wearables.count + d.restaurants.count + d.gps.count)
    fleet = WearableFleet(d.wearables, seed=1, start_ms=0)
    per_device = sum(
        1000 / fleet.interval_ms(m) for m in ("heart_rate", "blood_pressure", "blood_sugar")
    )
    return SIMULATOR_DEVICES * share * per_device


def _stream_fleet(
    settings: Settings, sender: _Sender, stop: threading.Event, produced: list[int]
) -> None:
    """The scaled wearable fleet in real time: each second's readings sent as that second ends."""
    d = settings.devices
    share = d.wearables.count / (d.wearables.count + d.restaurants.count + d.gps.count)
    config = d.wearables.model_copy(update={"count": round(SIMULATOR_DEVICES * share)})
    now = int(time.time() * 1000)
    fleet = WearableFleet(config, seed=11, start_ms=now)
    topic, t = settings.kafka.topics.wearables, now
    while not stop.is_set():
        wait = (t + 1000) / 1000 - time.time()
        if wait > 0:
            time.sleep(wait)
        batch = fleet.generate(t, t + 1000)
        for key, value, ts in zip(batch.keys, batch.values, batch.times_ms, strict=True):
            sender.send(topic, key.encode(), value, ts)
        produced[0] += len(batch.values)
        t += 1000


def _sample_job(
    service: FlinkService, job_id: str, stop: threading.Event, out: list, checkpoints: dict
) -> None:
    """Every 5 s: the source's unread records (Kafka lag), the busiest subtask's busy ms/s and the seconds each completed checkpoint took (trigger to last ack)."""
    while not stop.wait(5):
        try:
            history = service._get(f"/jobs/{job_id}/checkpoints").get("history", [])
            for c in history:
                if c["status"] == "COMPLETED":
                    checkpoints[c["id"]] = c["end_to_end_duration"] / 1000
            pending, busy = 0, 0.0
            for vertex in service._get(f"/jobs/{job_id}")["vertices"]:
                path = f"/jobs/{job_id}/vertices/{vertex['id']}/subtasks/metrics"
                names = [m["id"] for m in service._get(path)]
                wanted = [n for n in names if n.endswith(".pendingRecords")]
                wanted.append("busyTimeMsPerSecond")
                for metric in service._get(f"{path}?get={','.join(wanted)}&agg=sum,max"):
                    if metric["id"].endswith(".pendingRecords"):
                        pending += float(metric.get("sum", 0))
                    else:
                        busy = max(busy, float(metric.get("max", 0)))
            out.append({"pending": pending, "busy": busy})
        except (FlinkServiceError, KeyError, ValueError):
            continue


_TM_METRICS = (
    "Status.JVM.CPU.Time",
    "Status.JVM.GarbageCollector.G1_Young_Generation.Time",
    "Status.JVM.GarbageCollector.G1_Old_Generation.Time",
)


def _taskmanager_counters(service: FlinkService) -> dict[str, float]:
    """CPU time (ns) and GC time (ms) summed over the cluster's TaskManagers (NaN if unknown)."""
    totals = dict.fromkeys(_TM_METRICS, 0.0)
    try:
        for tm in service._get("/taskmanagers")["taskmanagers"]:
            path = f"/taskmanagers/{tm['id']}/metrics?get={','.join(_TM_METRICS)}"
            for metric in service._get(path):
                totals[metric["id"]] += float(metric["value"])
    except (FlinkServiceError, KeyError, ValueError):
        return dict.fromkeys(_TM_METRICS, float("nan"))
    return totals


def alert_latency(
    seconds: float, checkpoint_s: int | None = None, devices: int = 30
) -> dict[str, float]:
    """p50/p95 seconds from window end + watermark delay to the alert in Kafka and in Postgres.

    `checkpoint_s` overrides flink.checkpoint_interval_s for this job (`_settings` clears
    the OPENPIPE__* variables of the calling shell, so an exported override has no effect).
    """
    suffix = uuid.uuid4().hex[:6]
    outputs = {key: f"bench-lat-{key.replace('_', '-')}-{suffix}" for key in OUTPUT_KEYS}
    settings = _settings(
        f"bench-lat-{suffix}",
        f"bench-lat-wearables-{suffix}",
        outputs,
        **_checkpoint_interval(checkpoint_s),
    )
    _create_topics(settings, [settings.kafka.topics.wearables])
    # Outputs stamped with the broker's append time: when Flink wrote an alert (inside its
    # transaction), apart from when the transaction committed and made it readable.
    _create_topics(settings, list(outputs.values()), append_time=True)
    delay_s = settings.flink.watermark_delay_seconds
    service = _service(settings)
    job = service.deploy(settings).job
    prefix = f"bench-lat-{suffix}"
    stop = threading.Event()
    kafka_seen: dict[tuple[str, str], float] = {}
    appended: dict[tuple[str, str], float] = {}
    produced = [0]

    def read_alerts() -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "group.id": f"{prefix}-reader",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe([settings.kafka.topics.health_alerts])
        while not stop.is_set():
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                record = orjson.loads(message.value())
                if record["device_id"].startswith(prefix):
                    alert = (record["device_id"], record["window_end"])
                    kafka_seen[alert] = time.time()
                    appended[alert] = message.timestamp()[1] / 1000
        consumer.close()

    samples: list[dict] = []
    checkpoint_s: dict[int, float] = {}
    fleet, probes = _Sender(settings), _Sender(settings)
    threads = [
        threading.Thread(target=read_alerts, daemon=True),
        threading.Thread(target=_stream_fleet, args=(settings, fleet, stop, produced), daemon=True),
        threading.Thread(
            target=_sample_job,
            args=(service, job.job_id, stop, samples, checkpoint_s),
            daemon=True,
        ),
    ]
    for thread in threads:
        thread.start()
    sink = f"bench-{suffix}"

    def connect():
        return db.connect(settings, application_name="flink-bench", autocommit=True)

    sink_stop = threading.Event()
    sink_errors: list[Exception] = []

    def store_alerts() -> None:
        """The alerts topic into health_alerts by one sink session, as the stack runs them;
        a failure is re-raised on the main thread once the run ends."""
        session = SinkSession(
            SINKS["health_alerts"],
            settings,
            connect=connect,
            make_consumer=lambda group: kafka.make_consumer(
                settings.kafka.bootstrap_servers, group
            ),
            sink=sink,
            shards=1,
            stop=sink_stop,
        )
        try:
            with session:
                session.run(seconds=seconds + 600)  # until sink_stop
        except Exception as exc:
            sink_errors.append(exc)

    storing = threading.Thread(target=store_alerts, daemon=True)
    storing.start()
    started, cpu_started = time.monotonic(), time.process_time()
    tm_started = _taskmanager_counters(service)
    try:
        while time.monotonic() - started < seconds:
            now_ms = int(time.time() * 1000)
            for d in range(devices):
                event = wearable_event(f"{prefix}-d{d}", "heart_rate", now_ms, heart_rate_bpm=130)
                key = event["device_id"].encode()
                probes.send(settings.kafka.topics.wearables, key, orjson.dumps(event), now_ms)
            time.sleep(max(0.0, 1 - (time.time() * 1000 - now_ms) / 1000))
        probes.flush(30)
        with connect() as conn:
            rows = conn.execute(
                "SELECT device_id, window_end, ingested_at FROM health_alerts "
                "WHERE device_id LIKE %s",
                (f"{prefix}-%",),
            ).fetchall()
    finally:
        elapsed = time.monotonic() - started
        bench_cpu = (time.process_time() - cpu_started) / elapsed
        tm = _taskmanager_counters(service)
        tm_cpu_s = (tm["Status.JVM.CPU.Time"] - tm_started["Status.JVM.CPU.Time"]) / 1e9
        tm_gc_s = sum(tm[k] - tm_started[k] for k in _TM_METRICS[1:]) / 1000
        stop.set()
        sink_stop.set()
        for thread in [*threads, storing]:
            thread.join(30)
        service.cancel(job.job_id)
        with connect() as conn:
            conn.execute("DELETE FROM health_alerts WHERE device_id LIKE %s", (f"{prefix}-%",))
            conn.execute("DELETE FROM sink_offsets WHERE sink = %s", (sink,))
        _drop_topics(settings, [settings.kafka.topics.wearables, *outputs.values()])
    fleet.flush(30)  # the stream thread has stopped: every fleet reading acknowledged?
    if sink_errors:
        raise RuntimeError("the alerts' sink session failed") from sink_errors[0]

    def due(window_end: datetime) -> float:
        return window_end.timestamp() + delay_s

    pg = sorted(ingested.timestamp() - due(end) for _, end, ingested in rows)
    to_kafka = sorted(
        seen - (datetime.fromisoformat(end).timestamp() + delay_s)
        for (_, end), seen in kafka_seen.items()
    )
    to_append = sorted(
        at - (datetime.fromisoformat(end).timestamp() + delay_s)
        for (_, end), at in appended.items()
    )
    commit_wait = sorted(kafka_seen[a] - appended[a] for a in kafka_seen if a in appended)
    checkpoints = sorted(checkpoint_s.values())

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    return {
        "checkpoint_interval_s": settings.flink.checkpoint_interval_s,
        "alerts": len(to_kafka),
        "fleet_events_s": produced[0] / elapsed,
        "kafka_p50_s": pct(to_kafka, 0.5),
        "kafka_p95_s": pct(to_kafka, 0.95),
        "postgres_p50_s": pct(pg, 0.5),
        "postgres_p95_s": pct(pg, 0.95),
        "written_p50_s": pct(to_append, 0.5),
        "written_p95_s": pct(to_append, 0.95),
        "commit_wait_p50_s": pct(commit_wait, 0.5),
        "commit_wait_p95_s": pct(commit_wait, 0.95),
        # Each window's alerts come out together: its slowest, to Kafka, per window end.
        "windows": {
            end[11:19]: max(
                seen - (datetime.fromisoformat(e).timestamp() + delay_s)
                for (_, e), seen in kafka_seen.items()
                if e == end
            )
            for end in sorted({end for _, end in kafka_seen})
        },
        "checkpoints": len(checkpoints),
        "checkpoint_p50_s": pct(checkpoints, 0.5),
        "checkpoint_max_s": checkpoints[-1] if checkpoints else float("nan"),
        "max_pending": max((s["pending"] for s in samples), default=0),
        "busiest": max((s["busy"] for s in samples), default=0) / 10,
        "bench_cpu": bench_cpu * 100,
        # The TaskManagers' CPU (all their jobs: the live one too) per fleet reading.
        "tm_cpu": tm_cpu_s / elapsed * 100,
        "tm_cpu_us_per_event": tm_cpu_s / max(produced[0], 1) * 1e6,
        "tm_gc": tm_gc_s / elapsed * 100,
    }


def _running_jobs() -> str:
    settings = load_settings()
    try:
        jobs = httpx.get(f"{settings.flink.rest_url}/jobs/overview", timeout=5).json()["jobs"]
    except httpx.HTTPError:
        return "?"
    return ", ".join(j["name"].split(" [")[0] for j in jobs if j["state"] == "RUNNING") or "none"


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=180)
    parser.add_argument("--only", choices=("throughput", "latency"))
    parser.add_argument("--state-backend", choices=("hashmap", "rocksdb"))
    parser.add_argument(
        "--checkpoint-interval",
        type=int,
        metavar="SECONDS",
        help="flink.checkpoint_interval_s for the health job (default: the setting)",
    )
    parser.add_argument(
        "--flink-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra Flink option for the health job (repeatable), to compare job options",
    )
    args = parser.parse_args()
    options = dict(option.split("=", 1) for option in args.flink_option)
    if options:
        os.environ[health_windows.EXTRA_OPTIONS_ENV] = orjson.dumps(options).decode()
    started = datetime.now(UTC)
    configured = load_settings()
    realtime = simulator_wearable_rate(configured)
    backend = args.state_backend or configured.flink.state_backend
    overrides = {k: v for k, v in os.environ.items() if k.startswith("OPENPIPE__FLINK__")}
    print(
        f"flink bench: load {_load()}, other jobs on the cluster: {_running_jobs()}; "
        f"extra job options {options or 'none'}, settings overrides {overrides or 'none'}"
    )
    if args.only != "latency":
        print(
            f"flink throughput ({args.events:,} events backlog, {args.rounds} rounds, "
            f"{backend} state, checkpoints every "
            f"{args.checkpoint_interval or configured.flink.checkpoint_interval_s} s):"
        )
        tp = throughput(args.events, args.rounds, backend, args.checkpoint_interval)
        print(
            f"flink throughput medians: ceiling (raw bytes -> blackhole) "
            f"{tp['ceiling_events_s']:,.0f} ev/s, pass-through (raw bytes -> Kafka) "
            f"{tp['pass-through_events_s']:,.0f} ev/s, health job {tp['health_events_s']:,.0f} "
            f"ev/s ({tp['outputs']:,} outputs); ratio to the ceiling {tp['ceiling_ratio']:.2f}, "
            f"to the pass-through {tp['pass-through_ratio']:.2f} (target >= 0.5); sustained "
            f"{tp['health_events_s'] / realtime:.1f}x the real-time wearable rate of a "
            f"{SIMULATOR_DEVICES:,}-device simulator ({realtime:,.0f} ev/s); TaskManager CPU "
            f"per event, whole job with its start: ceiling {tp['ceiling_cpu_us']:.1f} µs, "
            f"pass-through {tp['pass-through_cpu_us']:.1f} µs, health job "
            f"{tp['health_cpu_us']:.1f} µs"
        )
    if args.only != "throughput":
        lat = alert_latency(args.latency_seconds, args.checkpoint_interval)
        print(
            f"flink alert latency with a {SIMULATOR_DEVICES:,}-device fleet streaming "
            f"({lat['fleet_events_s']:,.0f} ev/s; window end + watermark delay -> ...; "
            f"{lat['alerts']} alerts): Kafka p50 {lat['kafka_p50_s']:.1f} s p95 "
            f"{lat['kafka_p95_s']:.1f} s (target <= 10 s); PostgreSQL p50 "
            f"{lat['postgres_p50_s']:.1f} s p95 {lat['postgres_p95_s']:.1f} s"
        )
        print(
            f"  where it went: written into the open transaction p50 {lat['written_p50_s']:.1f} s "
            f"p95 {lat['written_p95_s']:.1f} s, then the commit (checkpoint) wait p50 "
            f"{lat['commit_wait_p50_s']:.1f} s p95 {lat['commit_wait_p95_s']:.1f} s; per window end "
            f"{', '.join(f'{w} {s:.1f} s' for w, s in lat['windows'].items())}; "
            f"{lat['checkpoints']} checkpoints (every {lat['checkpoint_interval_s']} s), "
            f"p50 {lat['checkpoint_p50_s']:.1f} s max {lat['checkpoint_max_s']:.1f} s; source lag "
            f"max {lat['max_pending']:,.0f} records; busiest subtask max "
            f"{lat['busiest']:.0f} % busy; TaskManager CPU {lat['tm_cpu']:.0f} % of a core "
            f"({lat['tm_cpu_us_per_event']:.0f} µs per reading), in GC pauses "
            f"{lat['tm_gc']:.0f} % of the time; this script's own CPU {lat['bench_cpu']:.0f} % "
            "of a core"
        )
    _clear_overrides()
    print(f"started {started:%Y-%m-%d %H:%M} UTC, load now {_load()}")


if __name__ == "__main__":
    main()
