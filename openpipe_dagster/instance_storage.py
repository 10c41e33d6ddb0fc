"""Dagster's PostgreSQL storage with a small pool of connections in each process.

dagster-postgres opens a new connection for every statement (SQLAlchemy's NullPool), so
that processes which come and go hold none. The daemon's threads and the code server's
sensor evaluations then opened about 25 connections a second at rest, and each one costs
PostgreSQL a backend process and a SCRAM handshake: 0.19 of the machine's two cores
(docs/architecture.md §7). This storage is dagster-postgres's with one difference: each
of its three engines keeps up to `pool_size` connections open and checks one with a
ping before use, so a restarted PostgreSQL costs a reconnect, not a failed statement.

dagster.yaml names it under `storage: custom:`; its config is dagster-postgres's plus
`pool_size` and `pool_recycle_s`.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)

#: Connections a process may open beyond its pool when more threads query at once (the
#: daemon's); they are closed when returned.
MAX_OVERFLOW = 10
#: Connections kept open per storage engine, and how long one is reused (the defaults of
#: the `pool_size` and `pool_recycle_s` config keys).
POOL_SIZE, POOL_RECYCLE_S = 2, 3600


class PooledPostgresStorage(DagsterPostgresStorage):
    """DagsterPostgresStorage whose run, event log and schedule storages pool connections."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
        *,
        pool_size: int = POOL_SIZE,
        pool_recycle_s: int = POOL_RECYCLE_S,
    ) -> None:
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)
        for storage in (self.run_storage, self.event_log_storage, self.schedule_storage):
            # The engines are private to dagster-postgres; the unit test
            # tests/unit/openpipe_dagster/test_instance_storage.py fails if that changes.
            storage._engine = create_pg_engine(
                postgres_url,
                token_provider,
                isolation_level="AUTOCOMMIT",
                pool_size=pool_size,
                max_overflow=MAX_OVERFLOW,
                pool_recycle=pool_recycle_s,
                pool_pre_ping=True,
            )

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {
            **DagsterPostgresStorage.config_type(),
            "pool_size": dg.Field(dg.IntSource, is_required=False, default_value=POOL_SIZE),
            "pool_recycle_s": dg.Field(
                dg.IntSource, is_required=False, default_value=POOL_RECYCLE_S
            ),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> PooledPostgresStorage:
        pool_size = config_value.get("pool_size", POOL_SIZE)
        if pool_size < 1:
            raise dg.DagsterInvalidConfigError(
                f"storage.custom.config.pool_size is {pool_size}; it must be 1 or more", [], None
            )
        return cls(
            pg_url_from_config(config_value),
            config_value.get("should_autocreate_tables", True),
            inst_data,
            get_token_provider_from_config(config_value),
            pool_size=pool_size,
            pool_recycle_s=config_value.get("pool_recycle_s", POOL_RECYCLE_S),
        )
