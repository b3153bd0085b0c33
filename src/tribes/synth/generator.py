"""Chunked orchestration of the synthetic data set and its manifest."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tribes.synth import model
from tribes.synth.activity import draw_consents, draw_lines, draw_tickets
from tribes.synth.config import SynthConfig
from tribes.synth.context import build_context
from tribes.synth.population import assign_segments, build_catalog, draw_customers
from tribes.synth.sessions import draw_events, draw_sessions
from tribes.synth.tables import (
    PURCHASE_SCHEMA,
    WEB_COLUMNS,
    app_jsonl,
    consents_table,
    customers_table,
    ground_truth_table,
    purchases_table,
    support_table,
    web_table,
)
from tribes.synth.writers import CsvSink, JsonlGzSink, ParquetSink, RollingSink, TableSink

__all__ = ["MANIFEST_VERSION", "Progress", "generate"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
MANIFEST_VERSION = 1
_STALE_PATTERNS = (("web", "web-*.csv.gz"), ("web", "web-*.parquet"), ("app", "app-*.jsonl.gz"))


def _string_schema(names: tuple[str, ...]) -> pa.Schema:
    return pa.schema([(n, pa.string()) for n in names])


SUPPORT_SCHEMA = _string_schema(("ticket_id", "created", "customer_id", "contact_channel", "topic"))
CUSTOMER_SCHEMA = pa.schema(
    [(n, pa.string()) for n in ("customer_id", "email", "first_name", "last_name", "phone",
                                "signup_date", "country", "state", "city")]
    + [("age", pa.int64()), ("gender", pa.string())]
)
CONSENT_SCHEMA = _string_schema(("customer_id", "purpose", "granted", "ts"))
TRUTH_SCHEMA = _string_schema(("customer_id", "segment"))


def _clear_stale(out: Path) -> None:
    """Remove numbered web/app files of an earlier run so file sets stay exact."""
    for sub, pattern in _STALE_PATTERNS:
        for path in sorted((out / sub).glob(pattern)):
            log.info("removing stale %s", path)
            path.unlink()


def _chunk_rng(seed: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, 1, chunk]))


def generate(cfg: SynthConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Generate the synthetic multi-source data set described in :mod:`tribes.synth`.

    Customers are simulated and written in chunks of ``cfg.chunk_customers``;
    every output file is appended to chunk by chunk, so memory stays bounded.

    Parameters
    ----------
    cfg : SynthConfig
        What to generate and where.
    progress : callable, optional
        Called as ``progress(done_customers, total_customers)`` after each chunk.

    Returns
    -------
    dict
        The manifest, also written to ``cfg.out / "manifest.json"``.
    """
    out = cfg.out
    (out / "web").mkdir(parents=True, exist_ok=True)
    (out / "app").mkdir(parents=True, exist_ok=True)
    _clear_stale(out)

    total = cfg.customers
    n_chunks = cfg.n_chunks
    per_file = -(-n_chunks // 2)
    seg_all = assign_segments(total, cfg.seed)
    catalog = build_catalog(cfg.seed)
    ctx = build_context(cfg.seed, cfg.start_epoch, cfg.period_seconds, catalog)
    level = cfg.compresslevel
    web_schema = _string_schema(WEB_COLUMNS)

    def open_web(path: Path) -> TableSink:
        if cfg.web_format == "parquet":
            return ParquetSink(path, web_schema)
        return CsvSink(path, web_schema, level)

    def open_app(path: Path) -> TableSink:
        return JsonlGzSink(path, level)

    web_suffix = ".parquet" if cfg.web_format == "parquet" else ".csv.gz"
    web = RollingSink(out / "web", "web", web_suffix, open_web, cfg.web_rows_per_file, per_file)
    app = RollingSink(out / "app", "app", ".jsonl.gz", open_app, cfg.web_rows_per_file, per_file)
    purchases = ParquetSink(out / "purchases.parquet", PURCHASE_SCHEMA)
    flat: dict[str, TableSink] = {
        "support": CsvSink(out / "support.csv", SUPPORT_SCHEMA),
        "customers": CsvSink(out / "customers.csv", CUSTOMER_SCHEMA),
        "consents": CsvSink(out / "consents.csv", CONSENT_SCHEMA),
        "ground_truth": CsvSink(out / "ground_truth.csv", TRUTH_SCHEMA),
    }
    rows = dict.fromkeys(("web", "app", "purchases", "support", "customers", "consents",
                          "ground_truth"), 0)
    defects = {
        "web": {"E_TS_PARSE": 0, "E_NO_ID": 0, "E_TS_FUTURE": 0},
        "app": {"duplicates": 0},
        "purchases": {"E_AMOUNT": 0},
    }
    orders = 0
    opt_outs = 0
    rate = cfg.defect_rate
    try:
        for chunk in range(n_chunks):
            lo = chunk * cfg.chunk_customers
            hi = min(total, lo + cfg.chunk_customers)
            rng = _chunk_rng(cfg.seed, chunk)
            gidx = np.arange(lo, hi, dtype=np.int64)
            cust = draw_customers(gidx, seg_all[lo:hi], float(cfg.period_seconds), rng)
            sess = draw_sessions(cust, catalog, rng)
            ev = draw_events(cust, sess, catalog, rng)
            lines = draw_lines(cust, sess, ev, catalog, rng)
            tickets = draw_tickets(cust, rng)
            cons, n_opt = draw_consents(cust, float(cfg.period_seconds), rng)

            web_tbl, web_def = web_table(ctx, cust, sess, ev, rate, rng)
            web.write(web_tbl, web_tbl.num_rows)
            rows["web"] += web_tbl.num_rows
            for key, val in web_def.items():
                defects["web"][key] += val
            del web_tbl

            app_lines, n_app, n_dup = app_jsonl(ctx, cust, sess, ev, rate * 1.5, rng)
            app.write(app_lines, n_app)
            rows["app"] += n_app
            defects["app"]["duplicates"] += n_dup
            del app_lines, ev

            pur_tbl, n_neg = purchases_table(ctx, cust, lines, rate, rng)
            purchases.write(pur_tbl)
            rows["purchases"] += pur_tbl.num_rows
            defects["purchases"]["E_AMOUNT"] += n_neg
            orders += int(np.unique(lines.order_no).size)
            del pur_tbl, lines

            for name, tbl in (
                ("support", support_table(ctx, cust, tickets)),
                ("customers", customers_table(ctx, cust, rng)),
                ("consents", consents_table(ctx, cust, cons, rng)),
                ("ground_truth", ground_truth_table(cust)),
            ):
                flat[name].write(tbl)
                rows[name] += tbl.num_rows
            opt_outs += n_opt
            log.debug("chunk %d/%d: customers %d..%d done", chunk + 1, n_chunks, lo, hi)
            if progress is not None:
                progress(hi, total)
    finally:
        web.close()
        app.close()
        purchases.close()
        for sink in flat.values():
            sink.close()

    counts = np.bincount(seg_all, minlength=len(model.SEGMENTS))
    end_epoch = cfg.start_epoch + cfg.period_seconds
    manifest: dict[str, Any] = {
        "generator": "tribes.synth",
        "version": MANIFEST_VERSION,
        "config": cfg.to_dict(),
        "period": {
            "start": _iso(cfg.start_epoch),
            "end": _iso(end_epoch),
        },
        "files": {
            "web": [p.relative_to(out).as_posix() for p in web.files],
            "app": [p.relative_to(out).as_posix() for p in app.files],
            "purchases": ["purchases.parquet"],
            "support": ["support.csv"],
            "customers": ["customers.csv"],
            "consents": ["consents.csv"],
            "ground_truth": ["ground_truth.csv"],
        },
        "rows": rows,
        "events": rows["web"] + rows["app"] + rows["purchases"] + rows["support"],
        "orders": orders,
        "analytics_opt_outs": opt_outs,
        "segments": {s.name: int(n) for s, n in zip(model.SEGMENTS, counts, strict=True)},
        "defects": defects,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log.info("synthetic data set written to %s: %d events", out, manifest["events"])
    return manifest


def _iso(epoch_s: int) -> str:
    return str(np.datetime64(epoch_s, "s")) + "Z"
