"""The SQL viewer (FastAPI, :8081), started as `python -m sql_viewer`."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from openpipe.config import REPO_ROOT, Settings
from openpipe.stack.process import ManagedProcess

PROCESS = ManagedProcess("sql-viewer")
#: What the viewer imports or reads at start (its pages are read from disk per request).
SOURCES = ("openpipe", "sql_viewer", "config")


def available() -> bool:
    return (REPO_ROOT / "sql_viewer" / "__main__.py").exists()


def start(settings: Settings) -> None:
    PROCESS.start([sys.executable, "-m", "sql_viewer"])


def code_changed_since_start(root: Path = REPO_ROOT) -> Path | None:
    """A source file newer than the running viewer, which still serves the old code."""
    return PROCESS.source_changed_since_start(SOURCES, root)


def url(settings: Settings) -> str:
    return f"http://{settings.monitoring.host}:{settings.monitoring.viewer_port}"


def ready(settings: Settings) -> tuple[bool, str]:
    try:
        response = httpx.get(f"{url(settings)}/health/ready", timeout=3)
    except httpx.HTTPError as exc:
        return False, f"not answering ({type(exc).__name__})"
    if response.status_code != 200:
        return False, f"/health/ready says {response.status_code}: {response.text[:120]}"
    return True, "ready"
