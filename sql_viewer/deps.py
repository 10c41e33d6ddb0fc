"""FastAPI dependencies as `Annotated` aliases: settings, the query runner, Kafka, the token."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, status

from openpipe.config import Settings
from sql_viewer.kafka_view import KafkaView
from sql_viewer.runner import QueryRunner

TOKEN_ENV = "OPENPIPE_VIEWER_TOKEN"


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


def get_runner(request: Request) -> QueryRunner:
    """The read-only query runner (one pool per app)."""
    return request.app.state.runner


def get_kafka(request: Request) -> KafkaView:
    """The read-only Kafka adapter."""
    return request.app.state.kafka


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """When OPENPIPE_VIEWER_TOKEN is set, demand `Authorization: Bearer <token>`."""
    expected: bytes | None = request.app.state.token
    if expected is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"this viewer requires a bearer token ({TOKEN_ENV}): "
            "send `Authorization: Bearer <token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )


SettingsDep = Annotated[Settings, Depends(get_settings)]
RunnerDep = Annotated[QueryRunner, Depends(get_runner)]
KafkaDep = Annotated[KafkaView, Depends(get_kafka)]
TokenDep = Depends(require_token)
