"""The HTML report: built from a real workspace and from an empty one, then opened in
headless Chromium (Debian's, through Playwright): every chart renders, no console errors,
no network requests. Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.features.conftest import make_events

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tribes.cli import main

    root = tmp_path_factory.mktemp("report")
    shop = root / "shop"
    path = root / "events.csv"
    make_events(seed=21).drop(columns=["t"]).to_csv(path, index=False)
    for args in (["init", str(shop)], ["-w", str(shop), "ingest", str(path)],
                 ["-w", str(shop), "run"], ["-w", str(shop), "segment", "--k-range", "2-4"],
                 ["-w", str(shop), "cohorts", "define", "buyers", "--rule", "any purchase"],
                 ["-w", str(shop), "report", "--out", str(root / "full.html")],
                 ["init", str(root / "empty")],
                 ["-w", str(root / "empty"), "report", "--out", str(root / "empty.html")]):
        assert main(["-q", *args]) == 0, args
    return {"full": root / "full.html", "empty": root / "empty.html"}


def test_report_is_self_contained(reports: dict[str, Path]) -> None:
    html = reports["full"].read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=['\"]https?:", html)
    for anchor in ("overview", "features", "k-selection", "segments", "personas", "kpis",
                   "versions"):
        assert f"id='{anchor}'" in html
    assert "Do the segments differ?" in html and "class='card'" in html
    for anchor in ("journeys", "cohorts", "trends", "anomalies"):
        assert f"id='{anchor}'" in html
    # the transition network, segments over time and the 2-D map of unusual customers
    assert "Transition network" in html and "Segments over time" in html
    assert "Behavioral cohorts" in html and "<td>any purchase</td>" in html
    assert re.search(r"Customers in 2-D \((t-SNE|PCA) of the scaled features\)", html)
    empty = reports["empty"].read_text(encoding="utf-8")
    assert empty.count("Not enough data") >= 5 and "This section failed" not in empty


def _browser():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Debian chromium is missing ({CHROMIUM}); make test installs it")
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    return sync_playwright()


@pytest.mark.parametrize("which", ["full", "empty"])
def test_report_renders_in_chromium(reports: dict[str, Path], which: str) -> None:
    path = reports[which]
    with _browser() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        expected = int(page.get_attribute("body", "data-figures") or "0")
        page.wait_for_function(
            f"document.querySelectorAll('.plotly .main-svg').length >= {expected}",
            timeout=20_000)
        n_plots = page.locator(".plotly").count()
        sizes = page.evaluate(
            "[...document.querySelectorAll('.js-plotly-plot')].map(d => {"
            "const s = d.querySelector('svg.main-svg'); const r = s.getBoundingClientRect();"
            "return [r.width, r.height,"
            " d.querySelectorAll('g.trace, image, .sankey-link').length]; })")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"report-{which}.png"), full_page=True)
        browser.close()
    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
    if which == "full":
        assert expected >= 5
    else:
        assert expected <= 1
    assert n_plots == expected
    for w, h, marks in sizes:
        assert w > 100 and h > 100 and marks > 0
