"""PostgresResource: connections to the app database as the `openpipe` role."""

from __future__ import annotations

import dagster as dg
import psycopg
from psycopg_pool import ConnectionPool
from pydantic import PrivateAttr

from openpipe.config import DatabaseSettings


class PostgresResource(dg.ConfigurableResource):
    """Connections to the app database; the password comes from the environment."""

    host: str
    port: int
    dbname: str
    user: str
    password: str

    _pool: ConnectionPool | None = PrivateAttr(default=None)

    @property
    def dsn(self) -> str:
        database = DatabaseSettings(
            host=self.host, port=self.port, name=self.dbname, user=self.user, password=self.password
        )
        return database.dsn()

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
