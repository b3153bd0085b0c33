"""Helpers to read a generated synthetic data set back (used by the synth tests)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from tribes.synth import SynthConfig


@dataclass(frozen=True)
class SynthData:
    """A generated data set read back with pandas."""

    cfg: SynthConfig
    manifest: dict[str, Any]
    web: pd.DataFrame  # raw strings plus parsed ``t`` (NaT when unparseable)
    app: pd.DataFrame
    purchases: pd.DataFrame
    support: pd.DataFrame
    customers: pd.DataFrame
    consents: pd.DataFrame
    truth: pd.DataFrame

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.cfg.start, tz="UTC")

    @property
    def end(self) -> pd.Timestamp:
        return self.start + pd.Timedelta(days=self.cfg.days)


def parse_web_ts(raw: pd.Series) -> pd.Series:
    """Parse the three legal web timestamp formats; anything else becomes NaT."""
    raw = raw.astype(str)
    is_ms = raw.str.fullmatch(r"\d{13}")
    iso_re = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})"
    is_iso = raw.str.fullmatch(iso_re)
    out = pd.to_datetime(raw.where(is_iso & ~is_ms), format="ISO8601", utc=True, errors="coerce")
    ms = pd.to_datetime(raw[is_ms].astype("int64"), unit="ms", utc=True)
    out.loc[is_ms] = ms
    return out.astype("datetime64[us, UTC]")


def read_web(out: Path, manifest: dict[str, Any]) -> pd.DataFrame:
    """Read every web file listed in the manifest (CSV or Parquet) as strings."""
    frames = []
    for rel in manifest["files"]["web"]:
        path = out / rel
        if path.suffix == ".parquet":
            df = pq.read_table(path).to_pandas().fillna("")
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        frames.append(df)
    web = pd.concat(frames, ignore_index=True)
    web["t"] = parse_web_ts(web["timestamp"])
    return web


def read_app(out: Path, manifest: dict[str, Any]) -> pd.DataFrame:
    """Read every app file listed in the manifest."""
    frames = [
        pd.read_json(out / rel, lines=True, dtype={"userId": "str", "eventId": "str"})
        for rel in manifest["files"]["app"]
    ]
    return pd.concat(frames, ignore_index=True)


def load(out: Path, cfg: SynthConfig) -> SynthData:
    """Read a generated data set back."""
    manifest = json.loads((out / "manifest.json").read_text())
    return SynthData(
        cfg=cfg,
        manifest=manifest,
        web=read_web(out, manifest),
        app=read_app(out, manifest),
        purchases=pd.read_parquet(out / "purchases.parquet"),
        support=pd.read_csv(out / "support.csv", dtype=str, keep_default_na=False),
        customers=pd.read_csv(out / "customers.csv", dtype=str, keep_default_na=False),
        consents=pd.read_csv(out / "consents.csv", dtype=str, keep_default_na=False),
        truth=pd.read_csv(out / "ground_truth.csv", dtype=str),
    )
