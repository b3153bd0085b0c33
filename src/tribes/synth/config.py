"""Configuration of the synthetic data generator."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["SynthConfig"]

WebFormat = Literal["csv", "parquet"]


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of one synthetic data set.

    Parameters
    ----------
    out : Path
        Output directory (created if missing).
    customers : int
        Number of customers to simulate.
    days : int
        Length of the simulated period in days, starting at ``start``.
    seed : int
        Seed of every random draw; same seed and config give identical bytes.
    start : str
        First day of the period, ISO date (``YYYY-MM-DD``), midnight UTC.
    web_format : {"csv", "parquet"}
        Format of the web clickstream files.
    chunk_customers : int
        Customers generated and written per chunk (bounds memory).
    web_rows_per_file : int
        Soft cap on data rows per web/app file before a new file is started.
    defect_rate : float
        Approximate share of rows receiving each kind of planted defect.
    compresslevel : int
        gzip level of the ``.gz`` outputs (1 = fastest).
    """

    out: Path
    customers: int = 20000
    days: int = 180
    seed: int = 7
    start: str = "2026-01-01"
    web_format: WebFormat = "csv"
    chunk_customers: int = 20000
    web_rows_per_file: int = 2_000_000
    defect_rate: float = 0.002
    compresslevel: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.customers < 1:
            raise ValueError("customers must be >= 1")
        if self.days < 7:
            raise ValueError("days must be >= 7")
        if self.chunk_customers < 1:
            raise ValueError("chunk_customers must be >= 1")
        if self.web_format not in ("csv", "parquet"):
            raise ValueError("web_format must be 'csv' or 'parquet'")
        if not 0.0 <= self.defect_rate <= 0.05:
            raise ValueError("defect_rate must be within [0, 0.05]")
        if not 0 <= self.compresslevel <= 9:
            raise ValueError("compresslevel must be within [0, 9]")
        if self.web_rows_per_file < 1:
            raise ValueError("web_rows_per_file must be >= 1")
        if self.customers > 9_999_999:
            raise ValueError("customers must be <= 9,999,999 (ids have 7 digits)")
        try:
            self.start_date  # noqa: B018 - validates the date
        except ValueError as exc:
            raise ValueError(f"start must be an ISO date (YYYY-MM-DD), got {self.start!r}") from exc

    @property
    def start_date(self) -> dt.date:
        """First simulated day."""
        return dt.date.fromisoformat(self.start)

    @property
    def start_epoch(self) -> int:
        """Unix seconds of ``start`` at 00:00 UTC."""
        return (self.start_date - dt.date(1970, 1, 1)).days * 86400

    @property
    def period_seconds(self) -> int:
        """Length of the period in seconds."""
        return self.days * 86400

    @property
    def n_chunks(self) -> int:
        """Number of customer chunks."""
        return -(-self.customers // self.chunk_customers)

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as JSON-friendly values (without ``out``).

        Returns
        -------
        dict
            Every field except the output directory, so that manifests of
            identical runs in different directories are byte-identical.
        """
        return {
            "customers": self.customers,
            "days": self.days,
            "seed": self.seed,
            "start": self.start,
            "web_format": self.web_format,
            "chunk_customers": self.chunk_customers,
            "web_rows_per_file": self.web_rows_per_file,
            "defect_rate": self.defect_rate,
            "compresslevel": self.compresslevel,
        }
