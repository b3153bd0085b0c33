"""Every route with every role through FastAPI's TestClient, on a real workspace."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tribes.features.definitions import segment_features
from tribes.privacy import audit_log
from tribes.privacy.keys import create_key, revoke_key
from tribes.privacy.pseudonyms import pseudonym
from tribes.service import create_app
from tribes.store.db import open_engine
from tribes.workspace import open_workspace

from .conftest import Built

PERSON = "C0000003"

VIEWER_ROUTES = [("get", "/v1/segments"), ("get", "/v1/personas"), ("get", "/v1/versions"),
                 ("get", "/v1/versions/diff?a=1&b=2"), ("get", "/metrics"),
                 ("get", "/v1/triggers/summary"), ("get", "/v1/alerts"),
                 ("get", "/v1/monitor"),
                 ("get", "/v1/kpis"), ("get", "/v1/segments/history"), ("get", "/v1/me")]
ANALYST_ROUTES = [("get", f"/v1/customers/{PERSON}"), ("get", f"/v1/customers/{PERSON}/segment"),
                  ("get", f"/v1/customers/{PERSON}/next-best-content"), ("get", "/v1/triggers")]
ADMIN_ROUTES = [("post", "/v1/versions/rollback"), ("post", "/v1/versions/1/activate"),
                ("post", "/v1/erasures"), ("post", "/v1/exports"), ("post", "/v1/events")]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(service_ws: Built) -> Iterator[TestClient]:
    app = create_app(open_workspace(service_ws.path))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _error(r, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "message"} and body["code"] == code, body
    assert "Traceback" not in r.text


def test_health_needs_no_key(client: TestClient) -> None:
    r = client.get("/v1/health")
    assert r.status_code == 200 and r.json()["active_version"] == 2


@pytest.mark.parametrize("method, url", VIEWER_ROUTES + ANALYST_ROUTES + ADMIN_ROUTES)
def test_every_route_needs_a_key(client: TestClient, method: str, url: str) -> None:
    _error(getattr(client, method)(url), 401, "E_AUTH")
    _error(getattr(client, method)(url, headers=auth("trb_000000000000_" + "x" * 43)), 401,
           "E_AUTH")
    _error(getattr(client, method)(url, headers={"Authorization": "Basic abc"}), 401, "E_AUTH")


@pytest.mark.parametrize("method, url", ANALYST_ROUTES + ADMIN_ROUTES)
def test_viewer_sees_aggregates_only(client: TestClient, service_ws: Built, method: str,
                                     url: str) -> None:
    _error(getattr(client, method)(url, headers=auth(service_ws.keys["viewer"])), 403,
           "E_FORBIDDEN")


@pytest.mark.parametrize("method, url", ADMIN_ROUTES)
def test_analyst_cannot_change_data(client: TestClient, service_ws: Built, method: str,
                                    url: str) -> None:
    _error(getattr(client, method)(url, headers=auth(service_ws.keys["analyst"])), 403,
           "E_FORBIDDEN")


def test_viewer_routes(client: TestClient, service_ws: Built) -> None:
    h = auth(service_ws.keys["viewer"])
    seg = client.get("/v1/segments", headers=h).json()
    assert seg["version"] == 2 and len(seg["segments"]) == 4
    assert abs(sum(s["share"] for s in seg["segments"]) - 1) < 1e-9
    assert all(s["name"] for s in seg["segments"])
    personas = client.get("/v1/personas", headers=h).json()
    assert personas["version"] == 2
    versions = client.get("/v1/versions", headers=h).json()["versions"]
    assert [v["version"] for v in versions] == [1, 2] and versions[1]["active"]
    diff = client.get("/v1/versions/diff", params={"a": 1, "b": 2}, headers=h).json()
    assert diff["customers_in_both"] == sum(s["size"] for s in seg["segments"])
    # the sizes are those of the version's members now (as last refreshed)
    with open_engine(open_workspace(service_ws.path), read_only=True) as engine:
        t = engine.table("segment_assignments")
        v2 = t.filter(t.version == 2)
        n = engine.execute(v2.group_by("segment_id").aggregate(n=v2.count()))
    assert {s["segment_id"]: s["size"] for s in seg["segments"]} == dict(
        zip(n.segment_id.astype(int), n.n.astype(int), strict=True))
    _error(client.get("/v1/versions/diff", params={"a": 1, "b": 9}, headers=h), 404,
           "E_VERSION_NOT_FOUND")
    _error(client.get("/v1/versions/diff", params={"a": 1}, headers=h), 422, "E_REQUEST")
    kpis = client.get("/v1/kpis", headers=h).json()
    assert kpis["version"] == 2 and len(kpis["segments"]) == 4 and kpis["tests"]
    hist = client.get("/v1/segments/history", headers=h).json()["versions"]
    assert [len(v["segments"]) for v in hist] == [3, 4]
    assert client.get("/v1/me", headers=h).json()["role"] == "viewer"
    page = client.get("/")
    assert page.status_code == 200 and "<title>tribes dashboard</title>" in page.text
    assert client.get("/assets/plotly.min.js").status_code == 200
    _error(client.get("/assets/../../secret.key"), 404, "E_NOT_FOUND")
    text = client.get("/metrics", headers=h).text
    assert 'tribes_http_requests_total{method="GET",route="/v1/segments",status="200"} 1' in text
    assert 'tribes_http_request_seconds_bucket{route="/v1/segments",le="+Inf"} 1' in text


def test_segment_lookup_by_any_id(client: TestClient, service_ws: Built) -> None:
    h = auth(service_ws.keys["analyst"])
    by_raw = client.get(f"/v1/customers/{PERSON}/segment", headers=h)
    assert by_raw.status_code == 200, by_raw.text
    key = by_raw.json()["customer_key"]
    assert key == pseudonym(PERSON, open_workspace(service_ws.path).secret())
    assert client.get(f"/v1/customers/{key}/segment", headers=h).json() == by_raw.json()
    with open_engine(open_workspace(service_ws.path), read_only=True) as engine:
        ids = engine.table("identities")
        cookie = engine.execute(ids.filter((ids.customer_key == key)
                                           & (ids.id_type == "anonymous_id")).limit(1)).id[0]
        a = engine.table("segment_assignments")
        truth = engine.execute(a.filter((a.version == 2) & (a.customer_key == key)))
    assert client.get(f"/v1/customers/{cookie}/segment", headers=h).json()["customer_key"] == key
    assert by_raw.json()["segment_id"] == int(truth.segment_id[0])
    _error(client.get("/v1/customers/nobody-here/segment", headers=h), 404, "E_NOT_FOUND")


def test_profile(client: TestClient, service_ws: Built) -> None:
    r = client.get(f"/v1/customers/{PERSON}", headers=auth(service_ws.keys["analyst"]))
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["segment"]["version"] == 2 and p["persona"]["name"]
    assert {"recency_days", "frequency", "monetary", "engagement_score"} <= set(p["features"])
    assert p["n_events"] > 0 and p["ids"] >= 1
    if p["clv"] is not None:
        assert 0 <= p["clv"]["p_alive"] <= 1


def test_next_best_content_from_the_batch_segment(client: TestClient,
                                                  service_ws: Built) -> None:
    h = auth(service_ws.keys["analyst"])
    r = client.get(f"/v1/customers/{PERSON}/next-best-content", headers=h)
    assert r.status_code == 200, r.text
    c = r.json()
    seg = client.get(f"/v1/customers/{PERSON}/segment", headers=h).json()
    persona = client.get(f"/v1/customers/{PERSON}", headers=h).json()["persona"]
    assert c["source"] == "batch" and c["segment_id"] == seg["segment_id"]
    assert c["content"] == persona["action"] and c["segment_name"] == persona["name"]
    _error(client.get("/v1/customers/NOBODY/next-best-content", headers=h), 404,
           "E_NOT_FOUND")


def test_refused_requests_are_audited(client: TestClient, service_ws: Built) -> None:
    client.get("/v1/segments")  # no key
    client.get("/v1/segments", headers=auth("trb_nope_nope"))
    client.get(f"/v1/customers/{PERSON}", headers=auth(service_ws.keys["viewer"]))  # role
    client.get("/v1/customers/NOBODY-4711/segment", headers=auth(service_ws.keys["analyst"]))
    client.get("/v1/no/such/route/C0000003", headers=auth(service_ws.keys["viewer"]))
    client.app.state.service.access.flush()
    refused = [(r["action"], r["actor"], r["target"], r["detail"]["status"])
               for r in audit_log.read_audit(service_ws.path) if r["action"] in ("read.denied",
                                                                                 "read.not_found")]
    assert refused == [
        ("read.denied", "unauthenticated", "/v1/segments", 401),
        ("read.denied", "unauthenticated", "/v1/segments", 401),
        ("read.denied", "key:test-viewer", "/v1/customers/{ident}", 403),
        ("read.not_found", "key:test-analyst", "/v1/customers/{ident}/segment", 404),
        ("read.not_found", "unauthenticated", "(no such route)", 404)]
    text = (service_ws.path / audit_log.LOG_FILE).read_text(encoding="utf-8")
    assert "NOBODY-4711" not in text and PERSON not in text  # no id from a path


def test_reads_are_audited_with_the_key_name(client: TestClient, service_ws: Built) -> None:
    client.get(f"/v1/customers/{PERSON}/segment", headers=auth(service_ws.keys["analyst"]))
    client.get("/v1/segments", headers=auth(service_ws.keys["viewer"]))
    client.app.state.service.access.flush()
    recs = audit_log.read_audit(service_ws.path)
    read = [r for r in recs if r["action"] == "read.segment"][-1]
    key = pseudonym(PERSON, open_workspace(service_ws.path).secret())
    assert read["actor"] == "key:test-analyst" and read["keys"] == [key]
    assert any(r["action"] == "read.segments" and r["actor"] == "key:test-viewer"
               for r in recs)
    assert PERSON not in (service_ws.path / audit_log.LOG_FILE).read_text(encoding="utf-8")
    assert audit_log.verify_audit(service_ws.path, open_workspace(service_ws.path).secret()).ok


def test_ingest_events_with_the_file_contract(client: TestClient, service_ws: Built) -> None:
    h = auth(service_ws.keys["admin"])
    events = [
        {"event_id": "api-1", "ts": "2026-02-20T10:00:00Z", "event_type": "page_view",
         "customer_id": PERSON},
        {"event_id": "api-2", "ts": "not a time", "event_type": "page_view",
         "customer_id": PERSON},
        {"event_id": "api-3", "ts": "2026-02-20T10:05:00Z", "event_type": "purchase",
         "customer_id": PERSON, "amount": -3},
        {"event_id": "api-4", "ts": "2026-02-20T10:06:00Z", "event_type": "page_view"},
    ]
    r = client.post("/v1/events", json={"source": "api", "events": events}, headers=h)
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["rows_read"] == 4 and s["loaded"] == 1
    assert s["quarantined"] == {"E_AMOUNT": 1, "E_NO_ID": 1, "E_TS_PARSE": 1}
    again = client.post("/v1/events", json={"source": "api", "events": events}, headers=h)
    # the three bad events sit in the quarantine already: duplicates, not quarantined again
    assert again.json()["loaded"] == 0 and again.json()["duplicates"] == 4
    assert again.json()["quarantined"] == {} and again.json()["already_quarantined"] == 3
    text = client.get("/metrics", headers=h).text
    assert 'tribes_ingest_rows_total{outcome="loaded"} 1' in text
    assert 'tribes_quarantine_rows_total{reason="E_TS_PARSE"} 1' in text
    _error(client.post("/v1/events", json={"events": []}, headers=h), 422, "E_REQUEST")
    _error(client.post("/v1/events", content=b"{not json", headers={
        **h, "content-type": "application/json"}), 422, "E_REQUEST")
    # an empty record is quarantined, not the batch refused
    empty = client.post("/v1/events", json={"events": [{}]}, headers=h)
    assert empty.status_code == 200, empty.text
    assert empty.json()["quarantined"] == {"E_NO_ID": 1}
    # a first record longer than the sniffed head loads, with what follows it
    long = [{"ts": "2026-02-21T10:00:00Z", "event_type": "page_view", "customer_id": PERSON,
             "note": "n" * 300_000},
            {"ts": "2026-02-21T10:01:00Z", "event_type": "page_view", "customer_id": PERSON}]
    r = client.post("/v1/events", json={"events": long}, headers=h)
    assert r.status_code == 200 and r.json()["loaded"] == 2, r.text


def test_oversized_batches_and_bodies_get_413(service_ws: Built) -> None:
    ws_path = service_ws.path
    (ws_path / "tribes.toml").write_text(
        (ws_path / "tribes.toml").read_text(encoding="utf-8").replace(
            "max_batch_events = 10000", "max_batch_events = 3").replace(
            "max_body_kb = 1024", "max_body_kb = 2"), encoding="utf-8")
    app = create_app(open_workspace(ws_path))
    h = auth(service_ws.keys["admin"])
    with TestClient(app) as c:
        four = [{"ts": "2026-02-01T00:00:00Z", "event_type": "login", "customer_id": "x"}] * 4
        _error(c.post("/v1/events", json={"events": four}, headers=h), 413, "E_TOO_LARGE")
        big = [{"ts": "2026-02-01T00:00:00Z", "event_type": "x" * 3000, "customer_id": "x"}]
        _error(c.post("/v1/events", json={"events": big}, headers=h), 413, "E_TOO_LARGE")
        # sent in chunks, with no length declared: 413 all the same, not a parse error
        chunked = (b" " * 1024 for _ in range(4))
        _error(c.post("/v1/events", content=chunked, headers={
            **h, "content-type": "application/json"}), 413, "E_TOO_LARGE")
        small = (part for part in [b'{"events": [{"ts": "2026-02-01T00:00:00Z", ',
                                   b'"event_type": "login", "customer_id": "x"}]}'])
        r = c.post("/v1/events", content=small, headers={
            **h, "content-type": "application/json"})
        assert r.status_code == 200 and r.json()["loaded"] == 1, r.text


def test_activate_rollback_export_and_download(client: TestClient, service_ws: Built) -> None:
    h = auth(service_ws.keys["admin"])
    assert client.post("/v1/versions/1/activate", headers=h).json() == {"active": 1,
                                                                        "previous": 2}
    seg = client.get(f"/v1/customers/{PERSON}/segment", headers=h).json()
    assert seg["version"] == 1  # the lookup index follows the active version
    assert client.post("/v1/versions/rollback", headers=h).json() == {"rolled_back": 1,
                                                                      "active": 2}
    _error(client.post("/v1/versions/7/activate", headers=h), 404, "E_VERSION_NOT_FOUND")
    x = client.post("/v1/exports", json={"what": "segments", "format": "csv"}, headers=h)
    assert x.status_code == 200, x.text
    meta = x.json()
    assert meta["rows"] > 100 and meta["export_id"]
    f = client.get(f"/v1/exports/{meta['export_id']}/file", headers=h)
    assert f.status_code == 200 and f.text.startswith("customer_key")
    assert len(f.text.strip().splitlines()) == meta["rows"] + 1
    _error(client.get("/v1/exports/nope/file", headers=h), 404, "E_EXPORT")
    _error(client.post("/v1/exports", json={"what": "everything"}, headers=h), 422,
           "E_REQUEST")


def test_an_erasure_reaches_the_exports_the_service_made(client: TestClient,
                                                         service_ws: Built) -> None:
    import io

    import pandas as pd

    h = auth(service_ws.keys["admin"])
    key = pseudonym(PERSON, open_workspace(service_ws.path).secret())
    made = {fmt: client.post("/v1/exports", json={"what": what, "format": fmt},
                             headers=h).json()
            for what, fmt in (("segments", "csv"), ("features", "parquet"))}

    def download(fmt: str) -> pd.DataFrame:
        r = client.get(f"/v1/exports/{made[fmt]['export_id']}/file", headers=h)
        assert r.status_code == 200, r.text
        assert made[fmt]["file"] in r.headers["content-disposition"]
        body = io.BytesIO(r.content)
        return pd.read_csv(body, dtype=str) if fmt == "csv" else pd.read_parquet(body)

    before = {fmt: download(fmt) for fmt in made}
    assert all((df.customer_key == key).sum() == 1 for df in before.values())
    r = client.post("/v1/erasures", json={"id": PERSON}, headers=h)
    assert r.status_code == 200, r.text
    assert sorted(e["what"] for e in r.json()["exports"]) == ["features", "segments"]
    for fmt, df in before.items():
        after = download(fmt)
        pd.testing.assert_frame_equal(
            after, df[df.customer_key != key].reset_index(drop=True))
    assert not (service_ws.path / "exports").exists()  # nothing written out to disk


def test_erasure_through_the_api(client: TestClient, service_ws: Built) -> None:
    h = auth(service_ws.keys["admin"])
    r = client.post("/v1/erasures", json={"id": PERSON, "reason": "ticket 9"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["deleted"]["segment_assignments"] == 2
    _error(client.get(f"/v1/customers/{PERSON}/segment", headers=h), 404, "E_NOT_FOUND")
    rec = [x for x in audit_log.read_audit(service_ws.path) if x["action"] == "forget"][-1]
    assert rec["actor"] == "key:test-admin"


def test_segmentation_job(client: TestClient, service_ws: Built) -> None:
    h = auth(service_ws.keys["analyst"])
    r = client.post("/v1/segmentations", json={"method": "kmeans", "k": 3}, headers=h)
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    deadline = time.time() + 120
    while time.time() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=h).json()
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.2)
    assert job["status"] == "done", job
    assert job["result"]["version"] == 3 and job["result"]["k"] == 3
    assert job["result"]["active"] is False  # an analyst's version waits for an admin
    assert client.get(f"/v1/customers/{PERSON}/segment", headers=h).json()["version"] == 2
    assert [v["status"] for v in client.get("/v1/versions", headers=h).json()["versions"]
            if v["version"] == 3] == ["held"]
    _error(client.post("/v1/segmentations", json={"k": 3, "activate": True}, headers=h), 403,
           "E_FORBIDDEN")
    _error(client.post("/v1/versions/3/activate", headers=h), 403, "E_FORBIDDEN")
    admin = auth(service_ws.keys["admin"])
    assert client.post("/v1/versions/3/activate", headers=admin).status_code == 200
    assert client.get(f"/v1/customers/{PERSON}/segment", headers=h).json()["version"] == 3
    _error(client.get("/v1/jobs/j000", headers=h), 404, "E_JOB")
    _error(client.post("/v1/segmentations", json={"method": "magic"}, headers=h), 422,
           "E_REQUEST")


def test_jobs_are_limited_per_key_and_in_all(service_ws: Built) -> None:
    cfg = service_ws.path / "tribes.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(
        "max_jobs_per_key = 2", "max_jobs_per_key = 1").replace("max_jobs = 8",
                                                                "max_jobs = 2"))
    ws = open_workspace(service_ws.path)
    analyst, admin = auth(service_ws.keys["analyst"]), auth(service_ws.keys["admin"])
    with TestClient(create_app(ws), raise_server_exceptions=False) as c:
        with open_engine(ws):  # the jobs wait for the database meanwhile
            first = c.post("/v1/segmentations", json={"k": 3}, headers=analyst)
            assert first.status_code == 202
            again = c.post("/v1/segmentations", json={"k": 3}, headers=analyst)
            _error(again, 429, "E_BUSY")
            assert "this key" in again.json()["message"]
            assert c.post("/v1/segmentations", json={"k": 3},
                          headers=admin).status_code == 202
            full = c.post("/v1/segmentations", json={"k": 4}, headers=admin)
            _error(full, 429, "E_BUSY")
        deadline = time.time() + 120
        job_id = first.json()["job_id"]
        while c.get(f"/v1/jobs/{job_id}", headers=analyst).json()["status"] != "done":
            assert time.time() < deadline
            time.sleep(0.2)
        while c.post("/v1/segmentations", json={"k": 3},
                     headers=analyst).status_code != 202:  # room again once one is done
            assert time.time() < deadline
            time.sleep(0.2)


def test_revoked_and_expired_keys_stop_working(client: TestClient, service_ws: Built) -> None:
    text, _ = create_key(service_ws.path, name="temp", role="viewer")
    assert client.get("/v1/segments", headers=auth(text)).status_code == 200
    revoke_key(service_ws.path, "temp")
    _error(client.get("/v1/segments", headers=auth(text)), 401, "E_AUTH")
    soon = datetime.now(UTC) + timedelta(seconds=5)
    text2, rec = create_key(service_ws.path, name="brief", role="viewer", expires_at=soon)
    # stored to the second, rounded up: the key never expires before the time asked for
    assert datetime.fromisoformat(rec.expires_at) >= soon
    assert datetime.fromisoformat(rec.expires_at) - soon < timedelta(seconds=1)
    assert client.get("/v1/segments", headers=auth(text2)).status_code == 200
    time.sleep(max(0.0, (datetime.fromisoformat(rec.expires_at) - datetime.now(UTC))
                   .total_seconds()) + 0.2)
    _error(client.get("/v1/segments", headers=auth(text2)), 401, "E_AUTH")


def test_rate_limit_per_key(service_ws: Built) -> None:
    path = service_ws.path
    (path / "tribes.toml").write_text((path / "tribes.toml").read_text(encoding="utf-8")
                                      .replace("rate_burst = 200", "rate_burst = 3")
                                      .replace("rate_limit = 100.0", "rate_limit = 0.5"),
                                      encoding="utf-8")
    with TestClient(create_app(open_workspace(path))) as c:
        h = auth(service_ws.keys["viewer"])
        codes = [c.get("/v1/versions", headers=h).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        r = c.get("/v1/versions", headers=h)
        _error(r, 429, "E_RATE_LIMIT")
        assert int(r.headers["retry-after"]) >= 1
        # another key has its own bucket
        assert c.get("/v1/versions", headers=auth(service_ws.keys["admin"])).status_code == 200


def test_unexpected_errors_leak_nothing(client: TestClient, service_ws: Built,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise RuntimeError("secret internals at /srv/db")

    monkeypatch.setattr(client.app.state.service, "versions", boom)
    r = client.get("/v1/versions", headers=auth(service_ws.keys["viewer"]))
    _error(r, 500, "E_INTERNAL")
    assert "secret internals" not in r.text


def test_openapi_document(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = set(doc["paths"])
    assert {"/v1/health", "/v1/segments", "/v1/customers/{ident}/segment", "/v1/events",
            "/v1/erasures", "/v1/versions/{version}/activate", "/metrics"} <= paths
    assert client.get("/docs").status_code == 200


def test_hostile_text_is_refused_or_quarantined_never_a_500(client: TestClient,
                                                            service_ws: Built) -> None:
    h = auth(service_ws.keys["admin"])
    _error(client.get("/v1/customers/a%00b/segment", headers=h), 400, "E_ID")
    _error(client.post("/v1/erasures", json={"id": "\u0000"}, headers=h), 400, "E_ID")
    events = [{"event_id": "nul-1", "ts": "2026-02-20T10:00:00Z", "event_type": "page\u0000view",
               "customer_id": "C\u0000001", "page": "'; DROP TABLE events; --"}]
    r = client.post("/v1/events", json={"events": events}, headers=h)
    assert r.status_code < 500, r.text
    assert client.get("/v1/segments", headers=h).status_code == 200


def test_alerts_for_viewers(client: TestClient, service_ws: Built) -> None:
    from tribes.monitor.alerts import Alert, record

    ws = open_workspace(service_ws.path)
    with open_engine(ws) as engine, engine.transaction():
        record(engine, [Alert(kind="drift.psi", severity="critical", subject="monetary",
                              metric="psi", value=0.4, threshold=0.25,
                              message="monetary drifted", version=2)])
    h = auth(service_ws.keys["viewer"])
    got = client.get("/v1/alerts", headers=h).json()
    assert [(a["alert_id"], a["kind"], a["status"]) for a in got["alerts"]] == [
        (1, "drift.psi", "open")]
    assert client.get("/v1/alerts", params={"status": "acked"}, headers=h).json()[
        "alerts"] == []
    _error(client.get("/v1/alerts", params={"status": "nope"}, headers=h), 422, "E_REQUEST")


def test_last_drift_check_for_viewers(client: TestClient, service_ws: Built) -> None:
    h = auth(service_ws.keys["viewer"])
    ws = open_workspace(service_ws.path)
    got = client.get("/v1/monitor", headers=h).json()  # the workspace's tribes monitor
    assert got["available"] and got["version"] == 2
    wanted = segment_features(ws.config.segment.features)
    assert {f["feature"] for f in got["features"]} == set(wanted)
    assert all(f["psi"] == pytest.approx(0.0, abs=1e-9) for f in got["features"])
