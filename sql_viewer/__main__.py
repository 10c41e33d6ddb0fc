"""`python -m sql_viewer`: serve the viewer on monitoring.host:monitoring.viewer_port."""

from __future__ import annotations

import logging

import uvicorn

from openpipe.config import load_settings


def main() -> None:
    """Load settings, configure logging, and run uvicorn in the foreground."""
    settings = load_settings()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from sql_viewer.main import app

    uvicorn.run(
        app,
        host=settings.monitoring.host,
        port=settings.monitoring.viewer_port,
        log_level="info",
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
