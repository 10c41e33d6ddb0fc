"""Fixtures for sink integration tests: unique Kafka topics per test, rows cleaned afterwards."""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from openpipe import kafka
from openpipe.config import REPO_ROOT, load_settings
from openpipe.sinks import SINKS
from openpipe.storage import db

pytestmark = pytest.mark.integration
PG_DATA = REPO_ROOT / ".openpipe" / "postgres"


@pytest.fixture(scope="session")
def settings():
    return load_settings()


@pytest.fixture
def window_day() -> str:
    """A date for test windows, two days back: inside retention, so partition maintenance
    (hourly, dropping days past `database.retention_days`) never drops it mid-test."""
    return (datetime.now(UTC) - timedelta(days=2)).date().isoformat()


@pytest.fixture
def connect(settings):
    def _connect():
        return db.connect(settings, application_name="openpipe-sink-tests", autocommit=True)

    return _connect


@pytest.fixture
def make_topic(settings, connect):
    """Creates test-only topics (unique names) and removes them and their rows afterwards."""
    admin = kafka.admin_client(settings.kafka.bootstrap_servers)
    created: list[str] = []

    def _make(label: str) -> str:
        name = f"itest-sinks-{label}-{uuid.uuid4().hex[:8]}"
        futures = admin.create_topics(
            [
                NewTopic(
                    name,
                    settings.kafka.partitions,
                    settings.kafka.replication_factor,
                    config={"max.message.bytes": str(4 * 1024 * 1024)},
                )
            ]
        )
        for future in futures.values():
            future.result()
        created.append(name)
        return name

    yield _make
    if created:
        for future in admin.delete_topics(created).values():
            future.result()
        with connect() as conn:
            for topic in created:
                for table in [*SINKS, "dead_letters"]:
                    conn.execute(f"DELETE FROM {table} WHERE kafka_topic = %s", (topic,))
                conn.execute("DELETE FROM sink_offsets WHERE kafka_topic = %s", (topic,))


@pytest.fixture
def produce(settings):
    """produce(topic, [(key, value, headers), ...], timestamp_ms) with delivery checked."""

    def _produce(topic: str, messages: list, timestamp_ms: int) -> int:
        producer = kafka.make_producer(
            settings.kafka.bootstrap_servers, settings.kafka, **{"message.max.bytes": 4194304}
        )
        failures = kafka.produce_all(producer, topic, messages, timestamp_ms)
        assert not failures, f"undelivered: {failures[:3]}"
        return len(messages)

    return _produce


def _run_drain(sink: str, topic: str, *, crash_at: str | None = None, timeout: float = 180):
    env = {k: v for k, v in os.environ.items() if k != "OPENPIPE_SINK_CRASH_AT"}
    if crash_at:
        env["OPENPIPE_SINK_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "openpipe.sinks", "drain", sink, "--topic", topic, "--until-empty"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def drain_process():
    """Run `python -m openpipe.sinks drain` as a separate process (so it can be SIGKILLed)."""
    return _run_drain


@pytest.fixture
def restart_postgres():
    """Restart the stack's PostgreSQL with pg_ctl (fast mode); it is running again afterwards."""
    log_dir = Path(tempfile.mkdtemp(prefix="openpipe-sink-pg-"))
    shutil.chown(log_dir, "postgres")
    log = log_dir / "postgres.log"
    # pg_ctl restart reuses postmaster.opts; keep them to start the server if restart fails.
    opts = shlex.split((PG_DATA / "postmaster.opts").read_text())
    server_args = [a for i, a in enumerate(opts[1:], 1) if a != "-D" and opts[i - 1] != "-D"]

    def _restart() -> None:
        _pg_ctl("restart", "-m", "fast", "-w", "-l", str(log))

    yield _restart
    if _pg_ctl("status", check=False).returncode != 0:
        _pg_ctl("start", "-w", "-l", str(log), "-o", shlex.join(server_args))


def _pg_ctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        # resolve(): as root in a private clone the cluster lives under ~postgres (a symlink).
        ["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(PG_DATA.resolve()), *args],
        check=check,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )


#: Tests that stop the shared stack (and start it again): after everything else.
RUNS_LAST = ("test_sink_stack_down.py",)


def pytest_collection_modifyitems(config, items):
    """Move the tests that stop the stack to the end of the run, whatever was selected."""
    last = [item for item in items if item.path.name in RUNS_LAST]
    items[:] = [item for item in items if item.path.name not in RUNS_LAST] + last
