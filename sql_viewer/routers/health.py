"""/health, /health/live and /health/ready."""

from __future__ import annotations

from fastapi import APIRouter, Response

from sql_viewer.deps import KafkaDep, RunnerDep
from sql_viewer.errors import json_response
from sql_viewer.kafka_view import KafkaUnavailable
from sql_viewer.runner import QueryFailed

router = APIRouter(prefix="/health", tags=["health"])


def readiness(runner: RunnerDep, kafka: KafkaDep) -> Response:
    """200 when `SELECT 1` as the reader and a Kafka metadata request both succeed, else 503."""
    checks: dict[str, str] = {}
    try:
        runner.ping()
        checks["database"] = "ok"
    except QueryFailed as exc:
        checks["database"] = exc.message
    try:
        kafka.ping()
        checks["kafka"] = "ok"
    except KafkaUnavailable as exc:
        checks["kafka"] = str(exc)
    ready = all(value == "ok" for value in checks.values())
    return json_response(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )


router.add_api_route("", readiness, methods=["GET"], summary="Overall health (same as ready)")
router.add_api_route("/ready", readiness, methods=["GET"], summary="Dependencies reachable")


@router.get("/live")
def liveness() -> Response:
    """The process is up; no dependency checks."""
    return json_response({"status": "alive"})
