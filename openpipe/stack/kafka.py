"""Kafka: a single-node KRaft broker under .openpipe/kafka (or an external cluster)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import uuid

from confluent_kafka import KafkaException

from openpipe import kafka
from openpipe.config import Settings
from openpipe.stack import jars
from openpipe.stack.process import STATE_DIR, ManagedProcess, StackError

KAFKA_DIR = STATE_DIR / "kafka"
DATA_DIR = KAFKA_DIR / "data"
PROPERTIES = KAFKA_DIR / "server.properties"
LOG4J = KAFKA_DIR / "log4j2.yaml"
PROCESS = ManagedProcess("kafka")
#: A log segment's size. After a crash the broker re-reads every segment past its last
#: flush, which is the active one: Kafka's 1 GiB default meant minutes of recovery.
SEGMENT_BYTES = 128 * 1024 * 1024
#: The LogManager's lines while it loads logs at start, and once it has loaded them all.
_LOADING = re.compile(rb"\((\d+)/(\d+) completed in |Loaded \d+ logs in ")

_LOG4J2 = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaConfig
        level: WARN
      - name: org.apache.kafka.common.config.AbstractConfig
        level: WARN
"""


def render_properties(settings: Settings) -> str:
    """server.properties for a combined broker+controller node bound to loopback."""
    host = settings.kafka.bootstrap_servers.split(",")[0].rsplit(":", 1)[0]
    broker, controller = settings.kafka.broker_port, settings.kafka.controller_port
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{controller}",
        "listeners": f"PLAINTEXT://{host}:{broker},CONTROLLER://{host}:{controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{broker}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(DATA_DIR),
        "num.partitions": str(settings.kafka.partitions),
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.retention.hours": "168",
        "log.segment.bytes": str(SEGMENT_BYTES),
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise StackError(
            "`java` is not on PATH; install Java 17 (`apt-get install -y openjdk-17-jre-headless`)."
        )
    return java


def _classpath() -> str:
    return f"{jars.KAFKA_JARS}/*"


def prepare(settings: Settings) -> None:
    """Write the config and format the storage directory on first start."""
    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    PROPERTIES.write_text(render_properties(settings))
    LOG4J.write_text(_LOG4J2)
    if (DATA_DIR / "meta.properties").exists():
        return
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    result = subprocess.run(
        [
            _java(),
            f"-Dlog4j2.configurationFile={LOG4J}",
            "-cp",
            _classpath(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(PROPERTIES),
            "--standalone",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(DATA_DIR, ignore_errors=True)
        raise StackError(
            f"formatting Kafka storage failed: {result.stdout.strip()} {result.stderr.strip()}"
        )


def start(settings: Settings) -> None:
    heap = settings.kafka.heap_mb
    PROCESS.start(
        [
            _java(),
            f"-Xms{heap}m",
            f"-Xmx{heap}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}",
            "-cp",
            _classpath(),
            "kafka.Kafka",
            str(PROPERTIES),
        ]
    )


def recovery_progress(tail_bytes: int = 1 << 20) -> str | None:
    """How far a starting broker is with loading its logs, from the end of its own log."""
    try:
        with PROCESS.log_file.open("rb") as log:
            log.seek(max(log.seek(0, 2) - tail_bytes, 0))
            tail = log.read()
    except FileNotFoundError:
        return None
    found = _LOADING.findall(tail)  # (done, total) per line; ("", "") once all are loaded
    if not found or not found[-1][0]:
        return None
    done, total = found[-1]
    return f"loading its logs: {int(done):,} of {int(total):,}"


def ready(settings: Settings) -> tuple[bool, str]:
    try:
        metadata = kafka.admin_client(settings.kafka.bootstrap_servers).list_topics(timeout=2)
    except KafkaException as exc:
        return False, str(exc.args[0])
    brokers = ",".join(str(b) for b in sorted(metadata.brokers))
    user_topics = [t for t in metadata.topics if not t.startswith("__")]
    return True, f"broker id {brokers}, {len(user_topics)} topics"


def create_topics(settings: Settings) -> None:
    k = settings.kafka
    kafka.ensure_topics(
        kafka.admin_client(k.bootstrap_servers), k.topics.all(), k.partitions, k.replication_factor
    )
