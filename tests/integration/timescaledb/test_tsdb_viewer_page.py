"""The viewer's table page in a real browser says TimescaleDB and shows chunks and compression."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def viewer_url(migrated, connect_to, tmp_path):
    """`python -m sql_viewer` (as the stack starts it) on the TimescaleDB scratch database."""
    with connect_to(migrated) as conn:
        # Fifty minutes from yesterday noon (UTC): one 24-hour chunk whatever the time now
        # (now() - n minutes made two chunks just after midnight).
        conn.execute(
            "INSERT INTO wearable_readings (event_id, event_time, device_id, patient_id, metric, "
            "heart_rate_bpm, kafka_topic, kafka_partition, kafka_offset) "
            "SELECT gen_random_uuid(), "
            "date_trunc('day', now(), 'UTC') - interval '12 hours' + n * interval '1 minute', "
            "'wear-1', 'p-1', 'heart_rate', 70.5, 'itest', 0, n FROM generate_series(1, 50) n"
        )
        conn.execute("ANALYZE wearable_readings")  # approximate_row_count() reads statistics
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "OPENPIPE_VIEWER_TOKEN"}
    env["OPENPIPE__MONITORING__VIEWER_PORT"] = str(port)
    env["OPENPIPE__DATABASE__NAME"] = migrated.database.name
    log = tmp_path / "sql_viewer.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sql_viewer"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"python -m sql_viewer did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_table_page_shows_the_store_chunks_and_compression(viewer_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(base_url=viewer_url)
            page.goto("/")
            page.wait_for_selector('li[data-table="wearable_readings"]')
            assert "storage: TimescaleDB" in page.inner_text("#tables-status")
            page.click('li[data-table="wearable_readings"]')
            page.wait_for_selector("#latest-rows tbody tr")
            detail = page.inner_text("#table-detail")
        finally:
            browser.close()
    assert "hypertable · ~50 rows" in detail
    assert re.search(r"TimescaleDB hypertable on event_time, 1 chunk\b", detail)
    assert "compression: on, no chunk compressed yet (of 1)" in detail
    assert "approximate_row_count()" in page_note(detail)


def page_note(detail: str) -> str:
    return next(line for line in detail.splitlines() if line.startswith("storage: TimescaleDB"))
