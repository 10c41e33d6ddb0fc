"""Prometheus metrics of the viewer and the middleware that records request metrics."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "openpipe_viewer_http_requests_total",
    "HTTP requests served by the SQL viewer, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "openpipe_viewer_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["route"],
)
QUERIES = Counter(
    "openpipe_viewer_queries_total",
    "User SQL queries by outcome (ok, row_cap, max_result_bytes, max_cell_bytes, refused, "
    "sql_error, timeout, busy, unavailable)",
    ["outcome"],
)
QUERY_SECONDS = Histogram(
    "openpipe_viewer_query_duration_seconds",
    "Database time of user SQL queries that returned rows",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def install_metrics(app: FastAPI) -> None:
    """Count every request and serve /metrics."""

    @app.middleware("http")
    async def record_request(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(path, request.method, str(response.status_code)).inc()
        HTTP_SECONDS.labels(path).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
