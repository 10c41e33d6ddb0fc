"""The running stack answers as each engine should (needs `make up`)."""

import time
import uuid

import dagster as dg
import psycopg
import pytest

from openpipe import kafka
from openpipe.stack import dagster as dagster_stack
from openpipe.stack import flink
from openpipe_dagster.assets.infrastructure import kafka_topics
from openpipe_dagster.resources import KafkaResource, SettingsResource

pytestmark = pytest.mark.integration


def test_kafka_round_trip_keeps_key_headers_and_value(stack):
    topic = f"test-roundtrip-{uuid.uuid4().hex[:8]}"
    admin = kafka.admin_client(stack.kafka.bootstrap_servers)
    kafka.ensure_topics(admin, [topic], partitions=3, replication_factor=1)
    try:
        producer = kafka.make_producer(stack.kafka.bootstrap_servers, stack.kafka)
        acked = []
        for i in range(30):
            producer.produce(
                topic,
                key=f"dev-{i % 5}",
                value=f'{{"n": {i}}}'.encode(),
                headers=[("openpipe-fault", b"late")] if i == 7 else None,
                on_delivery=lambda err, msg: acked.append(err is None),
            )
        assert producer.flush(10) == 0
        assert acked == [True] * 30

        consumer = kafka.make_consumer(stack.kafka.bootstrap_servers, f"test-{uuid.uuid4()}")
        consumer.subscribe([topic])
        seen = {}
        deadline = time.monotonic() + 30
        while len(seen) < 30 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                seen[int(msg.value().decode()[6:-1])] = msg
        consumer.close()
        assert sorted(seen) == list(range(30))
        assert seen[7].headers() == [("openpipe-fault", b"late")]
        assert seen[3].key() == b"dev-3"
        # The key decides the partition: one device's events stay in order on one partition.
        assert len({m.partition() for m in seen.values() if m.key() == b"dev-2"}) == 1
    finally:
        admin.delete_topics([topic])


def test_configured_topics_exist_with_configured_partitions(stack):
    metadata = kafka.admin_client(stack.kafka.bootstrap_servers).list_topics(timeout=10)
    for name in stack.kafka.topics.all():
        assert len(metadata.topics[name].partitions) == stack.kafka.partitions


def _reader(settings) -> psycopg.Connection:
    """A reader session with its read-only default lifted: privileges alone must hold."""
    conn = psycopg.connect(settings.database.dsn(reader=True), autocommit=True)
    conn.execute("SET default_transaction_read_only = off")
    return conn


def test_reader_sessions_are_read_only_by_default(stack):
    with psycopg.connect(stack.database.dsn(reader=True), autocommit=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TEMP TABLE evil (id int)")


def test_reader_role_can_select_app_tables(stack):
    table = f"reader_probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.database.dsn(), autocommit=True) as owner:
        owner.execute(f"CREATE TABLE {table} (id int, created_at timestamptz default now())")
        owner.execute(f"INSERT INTO {table} (id) VALUES (1), (2)")
        try:
            with _reader(stack) as conn:
                assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 2
                for statement in (
                    f"INSERT INTO {table} (id) VALUES (3)",
                    f"UPDATE {table} SET id = 9",
                    f"DELETE FROM {table}",
                    f"TRUNCATE {table}",
                ):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        conn.execute(statement)
        finally:
            owner.execute(f"DROP TABLE {table}")


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE evil (id int)",
        "CREATE TEMP TABLE evil (id int)",
        "CREATE SCHEMA evil",
        "CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "SELECT pg_read_file('/etc/passwd')",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "SET ROLE openpipe",
        "SELECT pg_terminate_backend(pg_backend_pid())",
        "SELECT pg_cancel_backend(pg_backend_pid())",
    ],
)
def test_reader_role_cannot_create_or_escape(stack, statement):
    with _reader(stack) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_reader_role_cannot_reach_the_dagster_database(stack):
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(stack.database.dsn(database=stack.database.dagster_name, reader=True))


def test_reader_role_is_not_superuser(stack):
    with _reader(stack) as conn:
        assert conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False, False, False)


def test_flink_has_a_taskmanager_with_free_slots(stack):
    info = flink.overview(stack)
    assert info["taskmanagers"] >= 1
    assert info["slots-total"] == stack.flink.task_slots * info["taskmanagers"]
    assert info["slots-available"] >= 1


def test_dagster_graphql_answers_and_daemon_heartbeat_is_recent(stack):
    data = dagster_stack.graphql(stack, "{ version }")
    assert data["version"] == "1.13.27"
    age = dagster_stack.daemon_heartbeat_age(stack)
    assert age is not None and age < 60


def test_dagster_loads_the_code_location(stack):
    data = dagster_stack.graphql(
        stack,
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        "locationOrLoadError { __typename ... on PythonError { message } } } } } }",
    )
    entries = {e["name"]: e for e in data["workspaceOrError"]["locationEntries"]}
    assert entries["openpipe"]["locationOrLoadError"]["__typename"] == "RepositoryLocation", entries


def test_kafka_topics_asset_materializes(stack):
    result = dg.materialize(
        [kafka_topics],
        resources={
            "kafka": KafkaResource(bootstrap_servers=stack.kafka.bootstrap_servers),
            "settings_resource": SettingsResource(),
        },
    )
    assert result.success
    metadata = result.asset_materializations_for_node("kafka_topics")[0].metadata
    for name in stack.kafka.topics.all():
        assert metadata[f"{name}.partitions"].value == stack.kafka.partitions
