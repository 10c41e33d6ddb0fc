"""The simulator's dashboard and control API (FastAPI): stats, chart, health, /metrics."""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from openpipe.events import FAMILIES
from simulator.engine import MAX_DEVICES_PER_FAMILY, MAX_RATE_MULTIPLIER, Simulation
from simulator.stats import SimulatorStats

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("static") / "dashboard.html"


class FamilyUpdate(BaseModel):
    """A change to one family: an absolute device count and/or a rate multiplier."""

    count: Annotated[int, Field(ge=0, le=MAX_DEVICES_PER_FAMILY)] | None = None
    rate_multiplier: Annotated[float, Field(gt=0, le=MAX_RATE_MULTIPLIER)] | None = None


def _family_json(sim: Simulation, family: str) -> dict:
    state = sim.state(family)
    return {
        "family": state.family,
        "topic": state.topic,
        "devices": state.devices,
        "rate_multiplier": state.rate_multiplier,
        "held_back_late": state.held_back_late,
    }


def control_router(sim: Simulation, stats: SimulatorStats) -> APIRouter:
    """Routes that read and change device counts and rates while running."""
    router = APIRouter(prefix="/api", tags=["control"])

    @router.get("/stats")
    def read_stats() -> dict:
        return stats.snapshot()

    @router.get("/history")
    def read_history() -> list[dict]:
        return stats.history()

    @router.get("/families")
    def read_families() -> dict:
        return {f: _family_json(sim, f) for f in FAMILIES}

    @router.put("/families/{family}")
    def update_family(family: str, update: FamilyUpdate) -> dict:
        if family not in FAMILIES:
            raise HTTPException(404, f"unknown family {family!r}; expected one of {FAMILIES}")
        if update.count is not None:
            sim.set_devices(family, update.count)
            stats.devices[family] = update.count
        if update.rate_multiplier is not None:
            sim.set_rate(family, update.rate_multiplier)
            stats.rate_multipliers[family] = update.rate_multiplier
        log.info("control: %s -> %s", family, update.model_dump(exclude_none=True))
        return _family_json(sim, family)

    return router


def health_router(stats: SimulatorStats, *, needs_kafka: bool) -> APIRouter:
    """Liveness, readiness (Kafka reachable) and Prometheus metrics."""
    router = APIRouter(tags=["health"])
    registry = stats.registry()

    def readiness() -> tuple[bool, dict]:
        ready = stats.kafka_ready or not needs_kafka
        return ready, {"status": "ready" if ready else "not ready", "kafka": stats.kafka_error}

    @router.get("/health")
    def health() -> JSONResponse:
        ready, body = readiness()
        return JSONResponse({"live": True, **body}, status_code=200 if ready else 503)

    @router.get("/health/live")
    def live() -> dict:
        return {"status": "live"}

    @router.get("/health/ready")
    def ready() -> JSONResponse:
        ok, body = readiness()
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def create_app(sim: Simulation, stats: SimulatorStats, *, needs_kafka: bool = True) -> FastAPI:
    """The dashboard app; samples rates once a second while it runs."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async def sample() -> None:
            while True:
                stats.sample()
                await asyncio.sleep(1.0)

        task = asyncio.create_task(sample())
        yield
        task.cancel()

    app = FastAPI(title="OpenPipe simulator", lifespan=lifespan)
    app.include_router(control_router(sim, stats))
    app.include_router(health_router(stats, needs_kafka=needs_kafka))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    return app


class DashboardServer:
    """Runs the app with uvicorn in a background thread (the main thread simulates)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="dashboard", daemon=True)
        self.url = f"http://{host}:{port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; raise if the port cannot be bound."""
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.05)):
            if self._server.started:
                log.info("dashboard on %s", self.url)
                return
            if not self._thread.is_alive():
                break
            deadline.wait(0.05)
        raise RuntimeError(
            f"dashboard could not start on {self.url}; is the port in use? "
            "Set monitoring.simulator_port or pass --port"
        )

    def stop(self) -> None:
        """Ask uvicorn to exit and wait briefly."""
        self._server.should_exit = True
        self._thread.join(timeout=5)
