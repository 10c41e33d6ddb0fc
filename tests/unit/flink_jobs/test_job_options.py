"""What the health job sends to the cluster: its own options and SQL, never a local path."""

from __future__ import annotations

from flink_jobs import health_sql, health_windows
from openpipe.config import REPO_ROOT
from openpipe.stack import flink as stack_flink


def _job_text(settings) -> str:
    topics = settings.kafka.topics
    parts = [
        *health_windows.cluster_job_options(settings).values(),
        health_windows.kafka_source_ddl(settings),
        health_windows.kafka_sink_ddl(settings, "t", topics.health_alerts, "a STRING"),
        health_sql.readings_sql(settings, "s"),
    ]
    return "\n".join(parts)


def test_the_job_names_no_path_of_the_submitting_machine(settings):
    options = health_windows.cluster_job_options(settings)
    assert not set(options) & set(health_windows.CLUSTER_OWNED_OPTIONS)
    text = _job_text(settings)
    assert str(REPO_ROOT) not in text and "file:" not in text


def test_the_local_cluster_configures_where_state_goes(settings):
    conf = stack_flink.render_config(settings)["execution"]["checkpointing"]
    assert conf["dir"].startswith("file://") and conf["savepoint-dir"].startswith("file://")


def test_parallelism_defaults_to_the_partition_count(settings):
    assert settings.flink.job_parallelism == 0
    assert health_windows.job_parallelism(settings) == settings.kafka.partitions
    options = health_windows.cluster_job_options(settings)
    assert options["parallelism.default"] == str(settings.kafka.partitions)
    slots = settings.flink.taskmanagers * settings.flink.task_slots
    assert slots >= settings.kafka.partitions, "the local stack must have a slot per subtask"


def test_the_sinks_batch_like_every_producer_of_the_project(settings):
    tuning = settings.kafka.producer.model_copy(
        update={"linger_ms": 7, "batch_size": 12345, "compression_type": "zstd"}
    )
    kafka = settings.kafka.model_copy(update={"producer": tuning})
    ddl = health_windows.kafka_sink_ddl(
        settings.model_copy(update={"kafka": kafka}), "t", "topic", "a STRING"
    )
    assert "'properties.linger.ms' = '7'" in ddl
    assert "'properties.batch.size' = '12345'" in ddl
    assert "'properties.compression.type' = 'zstd'" in ddl
    assert "'sink.delivery-guarantee' = 'exactly-once'" in ddl
