"""Service metrics in the Prometheus text format (requests, latency, ingest, quarantine)."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters and a latency histogram, kept in memory for the process's lifetime."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.ingested: dict[str, int] = defaultdict(int)  # loaded, duplicates, quarantined
        self.quarantined: dict[str, int] = defaultdict(int)  # by reason

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            counts = self.latency.setdefault(route, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.latency_sum[route] += seconds
            self.latency_count[route] += 1

    def ingest(self, loaded: int, duplicates: int, quarantined: dict[str, int]) -> None:
        with self._lock:
            self.ingested["loaded"] += loaded
            self.ingested["duplicates"] += duplicates
            self.ingested["quarantined"] += sum(quarantined.values())
            for reason, n in quarantined.items():
                self.quarantined[reason] += n

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            out += ["# HELP tribes_http_requests_total Requests by method, route and status.",
                    "# TYPE tribes_http_requests_total counter"]
            for (m, r, s), n in sorted(self.requests.items()):
                out.append(f'tribes_http_requests_total{{method="{m}",route="{_esc(r)}",'
                           f'status="{s}"}} {n}')
            out += ["# HELP tribes_http_request_seconds Request latency by route.",
                    "# TYPE tribes_http_request_seconds histogram"]
            for route, counts in sorted(self.latency.items()):
                r = _esc(route)
                total = 0
                for le, c in zip((*BUCKETS, float("inf")), counts, strict=True):
                    total += c
                    bound = "+Inf" if le == float("inf") else repr(le)
                    out.append(f'tribes_http_request_seconds_bucket{{route="{r}",le="{bound}"}} '
                               f"{total}")
                out.append(f'tribes_http_request_seconds_sum{{route="{r}"}} '
                           f"{self.latency_sum[route]:.6f}")
                out.append(f'tribes_http_request_seconds_count{{route="{r}"}} '
                           f"{self.latency_count[route]}")
            out += ["# HELP tribes_ingest_rows_total Rows ingested through the API by outcome.",
                    "# TYPE tribes_ingest_rows_total counter"]
            for outcome in ("loaded", "duplicates", "quarantined"):
                out.append(f'tribes_ingest_rows_total{{outcome="{outcome}"}} '
                           f"{self.ingested[outcome]}")
            out += ["# HELP tribes_quarantine_rows_total Rows quarantined through the API by "
                    "reason.", "# TYPE tribes_quarantine_rows_total counter"]
            for reason, n in sorted(self.quarantined.items()):
                out.append(f'tribes_quarantine_rows_total{{reason="{reason}"}} {n}')
        return "\n".join(out) + "\n"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
