"""A workspace driven from Python: each method does what the CLI command of the same
name does (the CLI calls these), and returns a :class:`~tribes.api.results.Result`."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from tribes.analysis import funnel, retention, retention_by, split_steps
from tribes.api.results import FunnelResult, MigrationResult, Result, RetentionResult, Table
from tribes.config import parse_duration
from tribes.errors import InputError
from tribes.features import (
    FEATURES_TABLE,
    features_on,
    list_snapshots,
    parse_as_of,
    parse_day,
    run_features,
)
from tribes.ingest import IngestOptions
from tribes.models import build_personas
from tribes.ops import ingest_checked
from tribes.prep import run_prep
from tribes.report import build_report
from tribes.settings import RunSettings
from tribes.store import active_segments, init_workspace, open_engine, open_run, workspace_status
from tribes.workspace import RunContext, open_workspace
from tribes.workspace import Workspace as _Workspace

Progress = Callable[[str], None]


def open(path: str | Path) -> Workspace:
    """Open an existing workspace (``tribes init`` made it): ``ws = tribes.open("shop")``."""
    return Workspace(open_workspace(Path(path)))


def init(path: str | Path, *, encrypt: bool = False, force: bool = False) -> Workspace:
    """Create a workspace (its configuration, secret key and database), or open the one
    already there: ``ws = tribes.init("shop")``."""
    return Workspace(init_workspace(Path(path), force=force, encrypt=encrypt))


class Workspace:
    """A tribes workspace: ingest events, build features, segment, name personas, value
    customers, and analyze journeys and retention, as the CLI does.

    >>> ws = tribes.open("shop")                      # doctest: +SKIP
    >>> ws.ingest("data/web/*.csv.gz", source="web")  # doctest: +SKIP
    >>> ws.run()                                      # doctest: +SKIP
    >>> ws.features().to_pandas()                     # doctest: +SKIP
    """

    def __init__(self, ws: _Workspace) -> None:
        self._ws = ws
        self.clv = Clv(self)

    # ------------------------------------------------------------------ basics
    @property
    def path(self) -> Path:
        """The workspace's folder."""
        return self._ws.path

    @property
    def config(self) -> Any:
        """The workspace's configuration (``tribes.toml``), validated."""
        return self._ws.config

    def settings(self, *, session_timeout: str | None = None,
                 as_of: str | datetime | None = None) -> RunSettings:
        """The run settings from the configuration, with these options on top."""
        when = parse_as_of(as_of) if isinstance(as_of, str) else as_of
        return RunSettings.resolve(self._ws.config, session_timeout=session_timeout,
                                   as_of=when)

    def _run(self, settings: RunSettings | None = None, *, read_only: bool = False
             ) -> contextlib.AbstractContextManager[RunContext]:
        """The engine opened for one call, with the run's settings (the configuration's
        unless given): what the stages get."""
        return open_run(self._ws, settings or self.settings(), read_only=read_only)

    def __repr__(self) -> str:
        return f"<tribes Workspace {self.path}>"

    def table(self, name: str) -> Table:
        """A stored table: events, customers, identities, sessions, customer_features,
        personas, clv, churn_scores, quarantine, ... (a segment version's customers:
        :meth:`segments`)."""
        return Table(self._ws, name)

    def segments(self, version: int | None = None) -> Table:
        """The customers of a segment version (default: the active one): key, segment
        id and name, probability (``tribes export segments``)."""
        return Table(self._ws, "segments" if version is None else f"segments v{version}",
                     query=lambda engine: active_segments(engine, version))

    def status(self) -> Result:
        """What the workspace holds (``tribes status``)."""
        with open_engine(self._ws, read_only=True) as engine:
            st = workspace_status(engine)
        return Result(st, title="Workspace status")

    # ------------------------------------------------------------------ stages
    def ingest(self, *inputs: str | Path, kind: str = "events", source: str | None = None,
               map: dict[str, str] | None = None,
               event_type: str | None = None, ts_format: str | None = None,
               tz: str | None = None, format: str | None = None,
               delimiter: str | None = None, encoding: str | None = None,
               header: bool | None = None, decimal: str | None = None,
               progress: Progress | None = None, notify: bool = True) -> Result:
        """Validate, pseudonymize, deduplicate and load files as one batch (``tribes
        ingest``); the summary counts every row: loaded, duplicate or quarantined. The
        batch's data-quality alerts are raised (and sent to subscribed webhooks)."""
        opts = IngestOptions(kind=kind, source=source, mapping=dict(map or {}),
                             event_type=event_type, ts_format=ts_format, tz=tz, fmt=format,
                             delimiter=delimiter, encoding=encoding, header=header,
                             decimal=decimal)
        checked = ingest_checked(self._ws, self.settings(), [str(i) for i in inputs], opts,
                                 progress=progress, notify=notify)
        summary = checked.summary.to_dict() | {"webhooks": checked.webhooks,
                                               "quarantined_total":
                                                   checked.summary.n_quarantined}
        return Result(summary, table=Table(self._ws, "events"), title="Ingest",
                      report=checked.summary)

    def prep(self, *, session_timeout: str | None = None, full: bool = False,
             progress: Progress | None = None) -> Result:
        """Stitch identities and sessionize every stored event (``tribes prep``); after an
        append alone, only what the new events touch (``full``: everything)."""
        with self._run(self.settings(session_timeout=session_timeout)) as run:
            report = run_prep(run, progress=progress, full=full)
        return Result(report.as_dict(), table=Table(self._ws, "identities"), title="Prep",
                      report=report)

    def features(self, *, as_of: str | datetime | None = None,
                 session_timeout: str | None = None,
                 progress: Progress | None = None) -> Result:
        """Compute one row of behavioral features per customer (``tribes features``);
        ``.to_pandas()`` gives the customer feature table."""
        settings = self.settings(session_timeout=session_timeout, as_of=as_of)
        with self._run(settings) as run:
            report = run_features(run, progress=progress)
        return Result(report.as_dict(), table=Table(self._ws, FEATURES_TABLE), title="Features",
                      report=report)

    def snapshots(self) -> Result:
        """The dated feature snapshots kept so far (``tribes features history``):
        ``summary["snapshots"]`` lists them, oldest first."""
        with open_engine(self._ws, read_only=True) as engine:
            snaps = list_snapshots(engine)
        return Result({"snapshots": [{**s, "as_of": s["as_of"].isoformat(),
                                      "created_at": s["created_at"].isoformat()}
                                     for s in snaps]}, title="Feature snapshots")

    def migration(self, start: str | date, end: str | date, *, by: str = "rfm",
                  version: int | None = None,
                  progress: Progress | None = None) -> MigrationResult:
        """How customers moved between two dates (``tribes features migration``): by RFM
        label (``by="rfm"``) or by the segment a stored version gives them on each date
        (``by="segment"``, default version: the active one).

        A date stands for the newest feature snapshot taken that day, or, without one,
        the features computed from the events up to its end. ``.to_pandas()`` gives one
        row per (from, to) with its customers, ``.matrix()`` the table,
        ``.customers("At Risk", "Champions")`` who they are.
        """
        from tribes.models import migration

        say = progress or (lambda step: None)
        cfg = self._ws.config.features
        settings = self.settings()
        days = [parse_day(start), parse_day(end)]
        if days[0] > days[1]:
            raise InputError(f"the first date ({days[0]}) is after the second ({days[1]})",
                             code="E_DATE")
        with open_engine(self._ws, read_only=True) as engine:
            if not engine.has_table(FEATURES_TABLE):
                raise InputError("no customer features yet; build them with: tribes run",
                                 code="E_NO_FEATURES")
            dated = []
            for day in days:
                say(f"features on {day}")
                dated.append(features_on(engine, day, consent_mode=settings.consent_mode,
                                         weights=cfg.engagement_weights,
                                         composite=cfg.composite,
                                         sample_size=cfg.sample_size))
            say("counting the moves")
            m = migration(engine, dated[0], dated[1], by=by, version=version)
            members = engine.execute(m.pairs)
            for prefix in ("_fh_", "_mv_"):  # the dates' features, the pairs
                engine.drop_temps(prefix)
        title = (f"{'RFM' if by == 'rfm' else f'Segment (version {m.version})'} migration "
                 f"from {days[0]} to {days[1]}")
        return MigrationResult(m.as_dict(), title=title, report=m, frame=m.cells,
                               members=members)

    def run(self, *, session_timeout: str | None = None, as_of: str | datetime | None = None,
            resegment: bool | None = None, monitor: bool = True, force: bool = False,
            progress: Progress | None = None, segment: bool | None = None) -> Result:
        """Every stage after ingest, each only when its input changed (``tribes run``),
        then the new alerts to the webhooks subscribed to them.

        The active segment version's memberships are refreshed with its own model (new
        customers get a segment, customers gone leave); a new version is fitted when
        ``resegment=True``, never this run with ``resegment=False``, and by ``[ops]
        resegment`` (default: on critical drift) when None. ``summary["outcome"]`` says
        which: "refreshed version 3: 120 new, 14 moved, 2 left" or "new version 4
        (activated) because ...". ``segment=False`` is the former spelling of
        ``resegment=False`` (deprecated).
        """
        # scikit-learn and SciPy (a second to import), as in Workspace.segment
        from tribes.ops import run_and_notify

        if segment is not None:
            warnings.warn("Workspace.run(segment=...) is deprecated; use resegment=True "
                          "or False", DeprecationWarning, stacklevel=2)
            if resegment is None and not segment:
                resegment = False
        settings = self.settings(session_timeout=session_timeout, as_of=as_of)
        rep, sent = run_and_notify(self._ws, settings, resegment=resegment,
                                   monitor=monitor, force=force, progress=progress)
        return Result(rep.as_dict() | {"webhooks": sent}, title="Run", report=rep)

    def segment(self, *, method: str = "kmeans", k: int | None = None,
                features: list[str] | None = None, k_range: str | None = None,
                progress: Progress | None = None) -> Result:
        """Segment the customers of the feature table into a new active version
        (``tribes segment``); ``.to_pandas()`` gives that version's customers: key,
        segment id and name, probability."""
        # scikit-learn and SciPy (a second to import) for the methods that fit, not
        # in every command that opens the workspace through this module
        from tribes.models import run_segmentation

        with self._run() as run:
            report = run_segmentation(run, method=method, k=k, features=features,
                                      k_range=k_range, progress=progress)
        summary = ({key: v for key, v in report.as_dict().items() if key != "seconds"}
                   | {"seconds": report.seconds})
        version = report.version
        return Result(summary, title=f"Segment version {version}", report=report,
                      table=Table(self._ws, f"segments of version {version}",
                                  query=lambda engine: active_segments(engine, version)))

    def personas(self) -> Result:
        """Name the segments of the active version and store them (``tribes
        personas``); ``summary["personas"]`` lists them, ``.to_pandas()`` one row each."""
        with self._run() as run:
            ps = build_personas(run)
        version = ps[0]["version"] if ps else None

        def of_version(engine: Any) -> Any:
            t = engine.table("personas")
            return t.filter(t.version == version)

        return Result({"personas": ps}, title="Personas",
                      table=Table(self._ws, "personas", query=of_version))

    def report(self, out: str | Path | None = None,
               progress: Progress | None = None) -> Result:
        """Write the self-contained HTML report (``tribes report``); it only reads."""
        path = Path(out) if out is not None else self.path / "reports" / "report.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._run(read_only=True) as run:
            res = build_report(run, path, progress=progress)
        return Result(res, title=f"Report {path}")

    # ------------------------------------------------------------------ analyses
    def funnel(self, steps: list[str] | str, *, window: str = "1d", by: str | None = None,
               attribution: str = "step:1", segment: int | None = None,
               per: str = "customer", ordering: str = "loose", start: str = "first",
               exclude: list[str] | None = None, cohort: str | None = None
               ) -> FunnelResult:
        """Units reaching each step in order within the window (``tribes journeys
        funnel``); ``.to_pandas()`` one row per group and step, ``.figure()`` a chart."""
        settings = self.settings()
        names = split_steps(steps) if isinstance(steps, str) else list(steps)
        with open_engine(self._ws, read_only=True) as engine:
            res = funnel(engine, names, window=parse_duration(window), by=by,
                         segment=segment, unit=per, ordering=ordering, start=start,
                         attribution=attribution, cohort=cohort, exclude=exclude,
                         timeout=settings.session_timeout,
                         consent_mode=settings.consent_mode)
        rows = [{"group": g["group"], **s} for g in res["groups"] for s in g["steps"]]
        return FunnelResult(res, title="Funnel " + " → ".join(names),
                            frame=pd.DataFrame(rows))

    def retention(self, *, by: str = "first_seen", period: str | None = None,
                  returned: str | None = None, cumulative: bool = False,
                  week_start: str = "monday", segment: int | None = None,
                  cohort: str | None = None, recurring: bool = False,
                  breakdown: str | None = None) -> RetentionResult:
        """The retention matrix (``tribes cohorts retention``): ``.to_pandas()`` one row
        per cohort with its size and the share active in each period; ``.figure()`` a
        heat map."""
        settings = self.settings()
        kw: dict[str, Any] = {
            "by": by, "period": period, "cohort": cohort, "returned": returned,
            "cumulative": cumulative, "week_start": week_start, "segment": segment,
            "recurring": recurring, "consent_mode": settings.consent_mode}
        with open_engine(self._ws, read_only=True) as engine:
            res = (retention(engine, **kw) if breakdown is None
                   else retention_by(engine, breakdown, **kw))
        groups = res["groups"] if breakdown else [{"cohorts": res["cohorts"]}]
        rows = []
        for g in groups:
            for c in g["cohorts"]:
                row = ({"group": g["group"]} if breakdown else {}) | {
                    "cohort": c["cohort"], "size": c["size"]}
                row |= {str(k): v for k, v in enumerate(c["retention"])}
                rows.append(row)
        frame = pd.DataFrame(rows)
        if breakdown and not frame.empty:
            frame = frame[["group", *[c for c in frame.columns if c != "group"]]]
        return RetentionResult(res, title=f"Retention by {by}", frame=frame)


class Clv:
    """Customer lifetime value (``ws.clv.fit()``, ``ws.clv.score()``, ``ws.clv.churn()``),
    as ``tribes clv``."""

    def __init__(self, workspace: Workspace) -> None:
        self._w = workspace

    def fit(self, *, model: str | None = None, calibration_end: str | datetime | None = None,
            period: str | None = None, time_unit: str | None = None,
            strict_spend: bool | None = None, progress: Progress | None = None) -> Result:
        """Fit the purchase and spend models (``tribes clv fit``)."""
        # scikit-learn and SciPy (a second to import), as in Workspace.segment
        from tribes.models import fit_clv

        cal = (datetime.fromisoformat(calibration_end) if isinstance(calibration_end, str)
               else calibration_end)
        with self._w._run() as run:
            res = fit_clv(run, model=model, calibration_end=cal, period=period,
                          time_unit=time_unit, strict_spend=strict_spend, progress=progress)
        return Result(res, title="CLV fit")

    def score(self, *, horizon: str | timedelta | None = None,
              discount_rate: float | None = None,
              threshold: float | None = None, progress: Progress | None = None) -> Result:
        """Score every purchaser: expected purchases, P(alive), CLV (``tribes clv
        score``); ``.to_pandas()`` gives the scores."""
        # scikit-learn and SciPy (a second to import), as in Workspace.segment
        from tribes.models import score_clv

        span = parse_duration(horizon) if isinstance(horizon, str) else horizon
        with self._w._run() as run:
            res = score_clv(run, horizon=span, discount_rate=discount_rate,
                            threshold=threshold, progress=progress)
        return Result(res, table=Table(self._w._ws, "clv"), title="CLV scores")

    def churn(self, *, days: int | None = None, model: str | None = None, store: bool = True,
              progress: Progress | None = None) -> Result:
        """Which predicts churn better, P(alive) or gradient boosting on the features;
        the better one scores every customer (``tribes clv churn``); ``.to_pandas()``
        gives the stored churn scores."""
        # scikit-learn and SciPy (a second to import), as in Workspace.segment
        from tribes.models import compare_churn

        with self._w._run() as run:
            res = compare_churn(run, days=days, model=model, store=store,
                                progress=progress)
        return Result(res, table=Table(self._w._ws, "churn_scores") if store else None,
                      title="Churn")
