"""The Dagster instance storage keeps its connections (openpipe_dagster/instance_storage.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

from openpipe.config import REPO_ROOT, Settings
from openpipe_dagster.instance_storage import PooledPostgresStorage

pytestmark = pytest.mark.integration


@pytest.fixture
def storage(stack: Settings) -> Iterator[PooledPostgresStorage]:
    d = stack.database
    url = f"postgresql+psycopg2://{d.user}:{d.password}@{d.host}:{d.port}/{d.dagster_name}"
    storage = PooledPostgresStorage(url, should_autocreate_tables=False, pool_size=2)
    yield storage
    for part in (storage.run_storage, storage.event_log_storage, storage.schedule_storage):
        part.dispose()


def count_connects(storage: PooledPostgresStorage) -> list[int]:
    connects = [0]
    for part in (storage.run_storage, storage.event_log_storage, storage.schedule_storage):
        event.listen(part._engine, "connect", lambda *_: connects.__setitem__(0, connects[0] + 1))
    return connects


def test_fifty_statements_reuse_a_few_connections(storage: PooledPostgresStorage) -> None:
    connects = count_connects(storage)
    for _ in range(50):
        storage.run_storage.get_runs(limit=1)
        storage.schedule_storage.all_instigator_state()
        storage.event_log_storage.get_event_records(
            dg.EventRecordsFilter(dg.DagsterEventType.RUN_SUCCESS), limit=1
        )
    # dagster-postgres alone (NullPool) opens one connection per statement: 150 here.
    assert 1 <= connects[0] <= 3


def test_a_connection_postgres_dropped_is_replaced_not_failed(
    storage: PooledPostgresStorage, stack: Settings
) -> None:
    storage.run_storage.get_runs(limit=1)
    with storage.run_storage._engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    d = stack.database
    with psycopg.connect(
        host=d.host, port=d.port, dbname=d.dagster_name, user=d.user, password=d.password
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # The pooled connection is dead now; the ping on checkout replaces it.
    assert isinstance(storage.run_storage.get_runs(limit=1), list)


def test_the_stack_instance_uses_the_pooled_storage(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = stack.database
    for key, value in {
        "HOST": d.host,
        "PORT": str(d.port),
        "DAGSTER_NAME": d.dagster_name,
        "USER": d.user,
        "PASSWORD": d.password,
    }.items():
        monkeypatch.setenv(f"OPENPIPE__DATABASE__{key}", value)
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"storage": config["storage"]}))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage._engine.pool, QueuePool)
        assert isinstance(instance.get_runs(limit=1), list)


def test_a_pool_size_below_one_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text(
        yaml.safe_dump(
            {
                "storage": {
                    "custom": {
                        "module": "openpipe_dagster.instance_storage",
                        "class": "PooledPostgresStorage",
                        "config": {"postgres_url": "postgresql://x@127.0.0.1/x", "pool_size": 0},
                    }
                }
            }
        )
    )
    with pytest.raises(dg.DagsterInvalidConfigError, match="pool_size is 0"):
        dg.DagsterInstance.from_config(str(tmp_path))
