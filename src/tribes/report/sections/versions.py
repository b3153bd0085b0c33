"""Segment version history."""

from __future__ import annotations

from tribes.report.context import ReportContext, empty, table
from tribes.report.sections import section
from tribes.store import list_versions


@section(90, "versions", "Version history")
def versions(ctx: ReportContext) -> str:
    rows = list_versions(ctx.engine)
    if not rows:
        return empty("no segment versions yet; run tribes segment")
    return table(["version", "created (UTC)", "method", "k", "customers", "silhouette",
                  "stability ARI", "parent", "status"],
                 [(r["version"], str(r["created_at"])[:16], r["method"], r["k"],
                   r["customers"], r["silhouette"], r["stability_ari"], r["parent_version"],
                   r["status"]) for r in rows])
