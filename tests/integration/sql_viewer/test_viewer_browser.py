"""A real browser (Debian's chromium, headless, via Playwright) uses the console.

It starts the viewer the way the stack does (`python -m sql_viewer`) on a free port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed (apt-get install -y chromium); "
        "the browser test needs /usr/bin/chromium",
        allow_module_level=True,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def viewer_url(fixture_tables, tmp_path_factory):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "OPENPIPE_VIEWER_TOKEN"}
    env["OPENPIPE__MONITORING__VIEWER_PORT"] = str(port)
    log = tmp_path_factory.mktemp("viewer") / "sql_viewer.log"
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


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, viewer_url):
    context = browser.new_context(base_url=viewer_url, accept_downloads=True)
    page = context.new_page()
    outside = []
    page.on(
        "request",
        lambda r: (
            None if r.url.startswith((viewer_url, "blob:", "data:")) else outside.append(r.url)
        ),
    )
    yield page
    context.close()
    assert outside == [], "the viewer must not load anything from outside (the machine is offline)"


def test_console_runs_a_query_charts_it_and_downloads_csv(page, fixture_tables, tmp_path):
    page.goto("/console")
    page.fill(
        "#sql",
        f"SELECT event_time, heart_rate_bpm, value FROM {fixture_tables.readings} ORDER BY event_time",
    )
    page.press("#sql", "Control+Enter")

    page.wait_for_selector("#results tbody tr")
    assert page.locator("#results tbody tr").count() == 100  # first page of 500
    assert page.locator("#results thead th").all_inner_texts() == [
        "event_time",
        "heart_rate_bpm",
        "value",
    ]
    assert "500 rows in" in page.inner_text("#status")
    assert page.is_visible("#chart-box")
    assert page.locator("#chart polyline.series").count() == 2
    page.click("#next")
    assert page.inner_text("#page-info") == "page 2 of 5"
    assert "ORDER BY event_time" in page.inner_text("#history")

    with page.expect_download() as download_info:
        page.click("#download-csv")
    target = tmp_path / "query.csv"
    download_info.value.save_as(target)
    lines = target.read_text().splitlines()
    assert lines[0] == "event_time,heart_rate_bpm,value"
    assert len(lines) == 501


def test_console_shows_sql_errors_without_a_chart(page):
    page.goto("/console")
    page.fill("#sql", "SELECT no_such_column")
    page.press("#sql", "Control+Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert 'column "no_such_column" does not exist' in page.inner_text("#error")
    assert "position 8" in page.inner_text("#error")
    assert not page.is_visible("#chart-box")


def test_table_browser_shows_latest_rows(page, fixture_tables, settings):
    page.goto("/")
    page.wait_for_function(
        "!document.getElementById('tables-status').textContent.includes('loading')"
    )
    # The list's error, if any, is what a failure here should show.
    assert page.get_attribute("#tables-status", "class") != "error", page.inner_text(
        "#tables-status"
    )
    page.click(f'li[data-table="{fixture_tables.readings}"]')
    page.wait_for_selector("#latest-rows tbody tr")
    assert page.locator("#latest-rows tbody tr").count() == settings.viewer.latest_rows
    assert "by event_time" in page.inner_text("#table-detail")


def test_kafka_page_lists_topics(page):
    page.goto("/kafka")
    page.wait_for_function(
        "!document.getElementById('kafka-status').textContent.includes('loading')"
    )
    assert page.get_attribute("#kafka-status", "class") != "error"


def test_table_browser_lists_tables_while_one_is_locked(page, fixture_tables, settings):
    with psycopg.connect(settings.database.dsn(), connect_timeout=5) as holder:
        holder.execute(f"LOCK TABLE {fixture_tables.devices} IN ACCESS EXCLUSIVE MODE")
        page.goto("/")
        page.click(f'li[data-table="{fixture_tables.readings}"]')
        page.wait_for_selector("#latest-rows tbody tr")
        assert "bytes (estimate: a relation was locked)" in page.inner_text("#table-detail")
