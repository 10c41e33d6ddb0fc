"""What the health job sends to the cluster: its own options and SQL, never a local path."""

from __future__ import annotations

from flink_jobs import health_sql, health_windows, raw_ceiling
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


def _tuned(settings):
    tuning = settings.kafka.producer.model_copy(
        update={"linger_ms": 7, "batch_size": 12345, "compression_type": "zstd"}
    )
    return settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"producer": tuning})}
    )


def _batched_like_the_project(ddl: str) -> bool:
    return (
        "'properties.linger.ms' = '7'" in ddl
        and "'properties.batch.size' = '12345'" in ddl
        and "'properties.compression.type' = 'zstd'" in ddl
    )


def test_the_sinks_batch_like_every_producer_of_the_project(settings):
    ddl = health_windows.kafka_sink_ddl(_tuned(settings), "t", "topic", "a STRING")
    assert _batched_like_the_project(ddl)
    assert "'sink.delivery-guarantee' = 'exactly-once'" in ddl


def test_the_sinks_reuse_a_pool_of_transactional_ids_unless_told_otherwise(settings):
    # A new id per checkpoint stays in the broker's transaction coordinator for 7 days.
    ddl = health_windows.kafka_sink_ddl(settings, "t", "topic", "a STRING")
    assert "'sink.transaction-naming-strategy' = 'POOLING'" in ddl
    old = settings.model_copy(
        update={"flink": settings.flink.model_copy(update={"transaction_naming": "incrementing"})}
    )
    ddl = health_windows.kafka_sink_ddl(old, "t", "topic", "a STRING")
    assert "'sink.transaction-naming-strategy' = 'INCREMENTING'" in ddl


def test_the_pass_through_ceiling_writes_raw_bytes_batched_like_the_job(settings):
    # The benchmark's read-and-write ceiling: the same producer batching as the job's
    # sinks, raw values, no transaction waiting on a checkpoint; without a topic, a blackhole.
    ddl = raw_ceiling.sink_ddl(_tuned(settings), "bench-pass")
    assert _batched_like_the_project(ddl)
    assert "'topic' = 'bench-pass'" in ddl and "'format' = 'raw'" in ddl
    assert "'sink.delivery-guarantee' = 'at-least-once'" in ddl
    assert "'connector' = 'blackhole'" in raw_ceiling.sink_ddl(settings, None)


def test_benchmark_overrides_win_over_the_jobs_own_session_settings(settings):
    t_env = health_windows.stream_table_env({})
    health_windows.configure(t_env, settings, {"pipeline.object-reuse": "false"})
    assert t_env.get_config().get("pipeline.object-reuse", None) == "false"
    health_windows.configure(t_env, settings)
    assert t_env.get_config().get("pipeline.object-reuse", None) == "true"
