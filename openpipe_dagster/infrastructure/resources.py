"""Shared Dagster resources: settings, Kafka and PostgreSQL. No connection is made at import."""

from __future__ import annotations

from functools import cached_property

import dagster as dg
import psycopg
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from psycopg_pool import ConnectionPool
from pydantic import PrivateAttr

from openpipe import kafka
from openpipe.config import Settings, load_settings


class SettingsResource(dg.ConfigurableResource):
    """The effective OpenPipe settings (config file plus OPENPIPE__* overrides)."""

    config_path: str | None = None

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path)


class KafkaResource(dg.ConfigurableResource):
    """Kafka clients built from the one shared client config."""

    bootstrap_servers: str

    def admin(self) -> AdminClient:
        return kafka.admin_client(self.bootstrap_servers)

    def producer(self, **overrides: object) -> Producer:
        return kafka.make_producer(self.bootstrap_servers, **overrides)

    def consumer(self, group_id: str, **overrides: object) -> Consumer:
        return kafka.make_consumer(self.bootstrap_servers, group_id, **overrides)

    def high_watermarks(self, topic: str) -> dict[int, int]:
        """Partition -> high watermark for one topic."""
        consumer = self.consumer("openpipe-watermarks")
        try:
            return kafka.high_watermarks(consumer, topic)
        finally:
            consumer.close()


class PostgresResource(dg.ConfigurableResource):
    """Connections to the app database as the `openpipe` role."""

    host: str
    port: int
    dbname: str
    user: str
    password: str

    _pool: ConnectionPool | None = PrivateAttr(default=None)

    @property
    def dsn(self) -> str:
        return (
            f"host={self.host} port={self.port} dbname={self.dbname} "
            f"user={self.user} password={self.password}"
        )

    def connect(self, **kwargs: object) -> psycopg.Connection:
        """A new connection; use it as a context manager (commits on clean exit)."""
        return psycopg.connect(self.dsn, connect_timeout=10, **kwargs)

    def pool(self) -> ConnectionPool:
        """A lazily opened per-process pool."""
        if self._pool is None:
            self._pool = ConnectionPool(self.dsn, min_size=1, max_size=4, open=True)
        return self._pool

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._pool is not None:
            self._pool.close()


def shared_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources every domain uses, bound from settings; secrets come from the environment."""
    db = settings.database
    return {
        "settings_resource": SettingsResource(),
        "kafka": KafkaResource(bootstrap_servers=settings.kafka.bootstrap_servers),
        "postgres": PostgresResource(
            host=db.host,
            port=db.port,
            dbname=db.name,
            user=db.user,
            password=dg.EnvVar("OPENPIPE__DATABASE__PASSWORD"),
        ),
    }
