"""Exception handlers: specific messages, never a stack trace, DSN or password."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from sql_viewer.catalogue import TableNotFound
from sql_viewer.kafka_view import KafkaUnavailable, TopicNotFound
from sql_viewer.runner import QueryFailed

logger = logging.getLogger(__name__)


def json_response(body: object, status: int = 200) -> Response:
    """A JSON response serialised with orjson (fast for 10,000-row results)."""
    return Response(
        orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map the viewer's exceptions to JSON error bodies of the form {"error": ...}."""

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        response = json_response({"error": exc.detail, "kind": "http"}, exc.status_code)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return json_response({"error": f"invalid request: {problems}", "kind": "invalid"}, 422)

    @app.exception_handler(QueryFailed)
    async def query_failed(_: Request, exc: QueryFailed) -> Response:
        response = json_response(exc.to_json(), exc.status)
        if exc.status == 429:  # too many queries in flight: they finish within seconds
            response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(TableNotFound)
    @app.exception_handler(TopicNotFound)
    async def not_found(_: Request, exc: LookupError) -> Response:
        return json_response({"error": str(exc), "kind": "not_found"}, 404)

    @app.exception_handler(KafkaUnavailable)
    async def kafka_unavailable(_: Request, exc: KafkaUnavailable) -> Response:
        return json_response({"error": str(exc), "kind": "unavailable"}, 503)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return json_response(
            {"error": "internal error in the SQL viewer; see its log", "kind": "internal"}, 500
        )
