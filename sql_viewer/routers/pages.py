"""The HTML pages: table browser, SQL console, Kafka view (data comes from /api via JS)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from sql_viewer.deps import SettingsDep

router = APIRouter(tags=["pages"], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")


def _page(request: Request, template: str, settings: SettingsDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request, template, {"viewer": settings.viewer, "page": template.removesuffix(".html")}
    )


@router.get("/", response_class=HTMLResponse)
def tables_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    """Table browser."""
    return _page(request, "tables.html", settings)


@router.get("/console", response_class=HTMLResponse)
def console_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    """SQL console."""
    return _page(request, "console.html", settings)


@router.get("/kafka", response_class=HTMLResponse)
def kafka_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    """Kafka topics, sink lag and latest messages."""
    return _page(request, "kafka.html", settings)
