"""The dashboard in Debian's chromium: log in with a key, see the charts, search a
customer; a viewer key cannot open customer pages. Nothing loads from the network."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from tribes.service import create_app
from tribes.workspace import open_workspace

from .conftest import Built

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PERSON = "C0000003"


@pytest.fixture
def server(service_ws: Built) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(open_workspace(service_ws.path)), host="127.0.0.1",
                            port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    srv.should_exit = True
    thread.join(timeout=10)


def _chromium():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Debian chromium is missing ({CHROMIUM}); make test installs it")
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    return sync_playwright()


def _login(page, url: str, key: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url + "/")
    page.fill("#key", key)
    page.click("#login-form button")


def test_dashboard_login_charts_and_roles(server: str, service_ws: Built) -> None:
    with _chromium() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        outside: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith(server) else outside.append(r.url))

        # a wrong key is refused with the API's message
        _login(page, server, "trb_000000000000_" + "x" * 43)
        page.wait_for_selector("#login-error:has-text('unknown API key')")

        # viewer: overview with both charts, personas, KPIs and versions
        _login(page, server, service_ws.keys["viewer"])
        page.wait_for_selector("#sizes-chart .main-svg")
        page.wait_for_selector("#trend-chart .main-svg")
        page.wait_for_selector("#kpis tbody tr")
        assert page.locator("#sizes-chart .bars .point").count() == 4
        assert page.locator("#personas .persona").count() == 4
        assert page.locator("#versions tbody tr").count() == 2
        assert "test-viewer (viewer)" in page.inner_text("#who")
        # no stream here: the triggers card says so
        page.wait_for_selector("#triggers-note:has-text('no real-time state')")
        page.wait_for_selector("#alerts-note:has-text('No open alert')")
        page.wait_for_selector("#drift-chart .main-svg")  # PSI per feature
        page.wait_for_selector("#drift-note:has-text('Population stability index')")
        assert not page.is_visible("#nav-customers")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)
        # a viewer cannot open customer pages, even by URL
        page.goto(server + f"/#customers/{PERSON}")
        page.wait_for_selector("#customer-error:has-text('analyst role')")
        assert page.inner_text("#profile") == ""
        page.click("#logout")
        page.wait_for_selector("#login:not([hidden])")

        # analyst: customer search
        _login(page, server, service_ws.keys["analyst"])
        page.wait_for_selector("#sizes-chart .main-svg")
        page.click("#nav-customers")
        page.fill("#ident", PERSON)
        page.click("#search-form button")
        page.wait_for_selector("#profile dl")
        text = page.inner_text("#profile")
        assert "customer key" in text and "segment" in text and "recency days" in text
        page.screenshot(path=str(ARTIFACTS / "dashboard-customer.png"), full_page=True)
        browser.close()
    assert not errors, errors
    assert not outside, outside  # no CDN, no network beyond the service
