"""The SQL viewer app: table browser, SQL console and Kafka view on monitoring.viewer_port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from openpipe.config import Settings, load_settings
from sql_viewer.deps import TOKEN_ENV, TokenDep
from sql_viewer.errors import install_error_handlers
from sql_viewer.kafka_view import KafkaView
from sql_viewer.metrics import install_metrics
from sql_viewer.routers import health, kafka, pages, query, tables
from sql_viewer.runner import QueryRunner


def create_app(settings: Settings | None = None, token: str | None = None) -> FastAPI:
    """Build the app; connections open in the lifespan, never at import."""
    settings = settings or load_settings()
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runner.open()
        yield
        app.state.runner.close()

    app = FastAPI(title="OpenPipe SQL viewer", lifespan=lifespan, docs_url="/api/docs")
    app.state.settings = settings
    app.state.token = token.encode() if token else None
    app.state.runner = QueryRunner(settings.database, settings.viewer)
    app.state.kafka = KafkaView(settings.kafka, settings.viewer)
    for router in (tables.router, query.router, kafka.router):
        app.include_router(router, dependencies=[TokenDep])
    app.include_router(health.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    install_error_handlers(app)
    install_metrics(app)
    return app


app = create_app()
