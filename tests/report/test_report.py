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
    events = make_events(seed=21).drop(columns=["t"])
    events.to_csv(path, index=False)
    # a tiny shop: the events of three customers
    tiny, tiny_path = root / "tiny", root / "tiny.csv"
    ids = events.customer_id.dropna().unique()[:3]
    events[events.customer_id.isin(ids)].to_csv(tiny_path, index=False)
    for args in (["init", str(shop)], ["-w", str(shop), "ingest", str(path)],
                 ["-w", str(shop), "run"], ["-w", str(shop), "segment", "--k-range", "2-4"],
                 ["-w", str(shop), "cohorts", "define", "buyers", "--rule", "any purchase"],
                 ["-w", str(shop), "clv", "fit"], ["-w", str(shop), "clv", "score"],
                 ["-w", str(shop), "personas"],
                 ["-w", str(shop), "report", "--out", str(root / "full.html")],
                 ["init", str(tiny)], ["-w", str(tiny), "ingest", str(tiny_path)],
                 ["-w", str(tiny), "run"],
                 ["-w", str(tiny), "report", "--out", str(root / "tiny.html")],
                 ["init", str(root / "empty")],
                 ["-w", str(root / "empty"), "report", "--out", str(root / "empty.html")]):
        assert main(["-q", *args]) == 0, args
    return {"full": root / "full.html", "tiny": root / "tiny.html",
            "empty": root / "empty.html"}


def sections(html: str) -> dict[str, str]:
    """The HTML of each section by its anchor."""
    parts = re.split(r"<section id='([a-z0-9-]+)'", html)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_report_is_self_contained(reports: dict[str, Path]) -> None:
    html = reports["full"].read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", html)
    assert not re.search(r"<link[^>]+href=['\"]https?:", html)
    for anchor in ("overview", "features", "k-selection", "segments", "personas", "kpis",
                   "versions"):
        assert f"id='{anchor}'" in html
    assert "Do the segments differ?" in html and "class='card'" in html
    for anchor in ("journeys", "cohorts", "trends", "anomalies", "monitoring"):
        assert f"id='{anchor}'" in html
    assert "Drift against version 1" in html and "Pipeline runs" in html
    # the transition network, segments over time and the 2-D map of unusual customers
    assert "Transition network" in html and "Segments over time" in html
    assert "Behavioral cohorts" in html and "<td>any purchase</td>" in html
    assert re.search(r"Customers in 2-D \((t-SNE|PCA) of the scaled features\)", html)
    assert "This section failed" not in html
    assert re.search(r"Customers in 2-D \((UMAP|first two principal components);", html)
    # charts each section must draw on this data (counted in the HTML, not by the page)
    charts = {k: v.count("class=\"plotly-graph-div\"") for k, v in sections(html).items()}
    want = {"overview": 1, "features": 1, "k-selection": 1, "segments": 2, "journeys": 3,
            "cohorts": 1, "trends": 1, "anomalies": 1, "clv": 4, "monitoring": 2}
    assert {k: charts.get(k, 0) >= n for k, n in want.items()} == dict.fromkeys(want, True), (
        charts)
    assert "Lifetime value and churn risk" in html and "P(alive) of a customer" in html
    for which in ("tiny", "empty"):
        small = reports[which].read_text(encoding="utf-8")
        assert small.count("Not enough data") >= 3 and "This section failed" not in small


def _browser():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Debian chromium is missing ({CHROMIUM}); make test installs it")
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    return sync_playwright()


@pytest.mark.parametrize("which", ["full", "tiny", "empty"])
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
    html = path.read_text(encoding="utf-8")
    assert n_plots == expected == html.count("class=\"plotly-graph-div\"")
    if which == "full":
        assert expected >= 17
    elif which == "empty":
        assert expected <= 1
    for w, h, marks in sizes:
        assert w > 100 and h > 100 and marks > 0


def test_agglomerative_runs_show_the_top_of_the_dendrogram() -> None:
    from tribes.report.context import ReportContext
    from tribes.report.sections.segments import _merges

    ctx = ReportContext(ws=None, engine=None, settings=None)  # type: ignore[arg-type]
    tail = [[0, 1, d, 2] for d in (0.5, 0.7, 1.0, 4.0, 9.0)]
    run = {"k": 2, "model": {"dendrogram": {"linkage_tail": tail, "n_leaves": 300}}}
    html = _merges(ctx, run)
    assert "Top of the dendrogram" in html and ctx.figures == 1
    assert _merges(ctx, {"k": 3, "model": {"centroids": []}}) == ""


def test_a_report_only_reads_the_workspace(reports: dict[str, Path], tmp_path: Path) -> None:
    """A report reads stored results: the workspace's files (database, audit log) are
    byte for byte the same afterwards; personas are not rebuilt."""
    import hashlib

    from tribes.cli import main

    shop = reports["full"].parent / "shop"

    def digests() -> dict[str, str]:
        return {str(p.relative_to(shop)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(shop.rglob("*")) if p.is_file()}

    before = digests()
    assert main(["-q", "-w", str(shop), "report", "--out", str(tmp_path / "r.html")]) == 0
    assert digests() == before
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<div class='card'>" in sections(html)["personas"]
