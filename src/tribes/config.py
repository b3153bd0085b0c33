"""Workspace configuration: the ``tribes.toml`` file, validated with pydantic at the edge.

Inside the package the validated :class:`Config` is passed around read-only.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from tribes.errors import ConfigError

CONFIG_FILE = "tribes.toml"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """Parse ``30m``, ``1d``, ``2h``, ``45s`` or ``1w`` into a timedelta."""
    m = _DURATION.match(text)
    if not m:
        raise ConfigError(
            f"duration '{text}' is not valid; use a number and a unit, e.g. 30m, 2h, 1d",
            code="E_DURATION",
        )
    return timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])


_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60))


def format_duration(value: timedelta) -> str:
    """The canonical text of a duration: the largest unit that divides it exactly
    (``timedelta(seconds=1800)`` -> ``30m``; 90 s -> ``90s``)."""
    seconds = value.total_seconds()
    if seconds > 0 and seconds == int(seconds):
        for unit, size in _UNITS:
            if int(seconds) % size == 0:
                return f"{int(seconds) // size}{unit}"
        return f"{int(seconds)}s"
    return f"{seconds:g}s"


def _to_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and _DURATION.match(value):
        return parse_duration(value)
    raise ValueError(f"{value!r} is not a duration; use a number and a unit, e.g. 30m, "
                     "2h, 1d")


def _positive_duration(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


# a duration setting: written as text (30m, 2h, 1d), validated into a timedelta once, when
# the configuration is read; it is dumped as its canonical text again
Duration = Annotated[timedelta, BeforeValidator(_to_duration),
                     PlainSerializer(format_duration, return_type=str)]
# ... that must be longer than zero
PositiveDuration = Annotated[Duration, AfterValidator(_positive_duration)]


def _dur(text: str) -> timedelta:
    """A default duration, written as in tribes.toml."""
    return parse_duration(text)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineConfig(_Section):
    backend: Literal["duckdb", "pyspark"] = "duckdb"
    memory_limit: str = Field("2GB", description="DuckDB memory limit; beyond it work spills "
                              "to disk; empty = DuckDB's default (80% of RAM)")
    threads: int = Field(0, ge=0, description="worker threads; 0 = all cores")
    lock_wait: Duration = Field(_dur("2m"), description="while another process writes the "
                           "workspace, wait this long for it, then fail with E_LOCKED")
    encrypted: bool = Field(False, description="the DuckDB file is encrypted (tribes init "
                            "--encrypt); its key comes from TRIBES_DB_KEY or db.key")
    # further DuckDB settings by name, e.g. {temp_directory = "/fast/disk"}
    duckdb: dict[str, str | int | bool] = Field(default_factory=dict)
    spark_master: str = Field("local[*]", description="Spark master URL (env "
                              "TRIBES_SPARK_MASTER overrides): local[*], spark://host:7077, "
                              "yarn, k8s://...")
    spark_warehouse: str = Field("", description="directory of the tables (Parquet); "
                                 "empty = <workspace>/warehouse; on a cluster, a path "
                                 "the driver and every executor see (a shared mount)")
    # further Spark settings by name, e.g. {"spark.driver.memory" = "4g"}
    spark: dict[str, str | int | bool] = Field(default_factory=dict)


class IngestConfig(_Section):
    future_tolerance: Duration = Field(_dur("1d"), description="timestamps later than now + "
                                       "this are quarantined (E_TS_FUTURE)")
    min_ts: str = "1980-01-01"
    default_tz: str = "UTC"
    event_types: list[str] = Field(default_factory=list, description="whitelist; empty = any")
    event_type_aliases: dict[str, str] = Field(default_factory=dict)
    max_quarantined_share: float = Field(
        0.5, ge=0.0, le=1.0, description="a batch quarantining more of its rows than this "
        "exits non-zero (E_QUARANTINED), after storing what it loaded")


PiiAction = Literal["drop", "hash"]


def _default_pii() -> dict[str, PiiAction]:
    return {
        "email": "hash",
        "phone": "hash",
        "name": "drop",
        "first_name": "drop",
        "last_name": "drop",
        "full_name": "drop",
        "ip": "drop",
        "ip_address": "drop",
        "address": "drop",
        "street": "drop",
    }


class PrivacyConfig(_Section):
    consent_mode: Literal["opt-out", "opt-in"] = "opt-out"
    pii_columns: dict[str, PiiAction] = Field(default_factory=_default_pii)


class PrepConfig(_Section):
    session_timeout: PositiveDuration = Field(_dur("30m"), description="a gap strictly longer "
                                              "starts a new session")
    max_ids_per_component: int = Field(
        50, ge=1, description="anonymous/device ids linked to more ids are shared devices"
    )
    part_events: int = Field(
        10_000_000, ge=1, description="order at most about this many events at once; "
        "larger data is processed in parts of customers (bounded memory)")


class FeaturesConfig(_Section):
    # None: the standard inputs and weights (tribes.features.definitions)
    engagement_weights: dict[str, float] | None = None
    composite: list[str] | None = None
    sample_size: int = Field(200_000, ge=100, description="customers the PCA is fitted on")
    mix_values: int = Field(8, ge=1, description="channel/device values with a share column")
    snapshots: bool = Field(True, description="keep a dated snapshot at every run that "
                            "reaches the newest event (only the customers that changed)")

    @field_validator("engagement_weights")
    @classmethod
    def _check_weights(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        if any(w < 0 for w in v.values()) or sum(v.values()) <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
        return v

    @field_validator("composite")
    @classmethod
    def _check_composite(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(v) < 2:
            raise ValueError("the composite index needs at least two features")
        return v


class SegmentConfig(_Section):
    # None: the standard feature set (tribes.features.definitions)
    features: list[str] | None = None
    scaler: Literal["standard", "minmax", "robust"] = "standard"
    impute: Literal["median", "mean", "zero"] = "median"
    # None = the built-in list of skewed money/count features
    log1p: list[str] | None = None
    pca: float | None = Field(None, description="keep components explaining this share")
    k_range: str = "2-10"
    sample_size: int = Field(200_000, ge=100, description="customers the model is fitted on")
    selection_sample: int = Field(5_000, ge=100, description="customers k selection and "
                                  "stability use")
    resamples: int = Field(20, ge=0, description="bootstrap resamples for stability")
    random_state: int = 0
    minibatch_above: int = Field(50_000, ge=1, description="MiniBatchKMeans above this many")
    covariance: Literal["full", "diag"] = "full"  # Gaussian mixtures
    min_samples: int = Field(10, ge=2, description="density methods: neighbours of a core")
    min_cluster_share: float = Field(0.02, gt=0, lt=1, description="hdbscan: smallest "
                                     "cluster as a share of the customers")

    @field_validator("k_range")
    @classmethod
    def _check_range(cls, v: str) -> str:
        parse_k_range(v)
        return v


class ClvConfig(_Section):
    model: Literal["bgnbd", "pareto_nbd", "mbgnbd"] = "bgnbd"
    period: Literal["day", "week"] = Field("day", description="purchases in one period "
                                           "count as one transaction")
    time_unit: Literal["day", "week", "month"] = "week"
    horizon: PositiveDuration = Field(_dur("52w"), description="expected purchases and CLV "
                                      "over this long")
    discount_rate: float = Field(0.01, ge=0, lt=1, description="per month")
    churn_threshold: float = Field(0.5, gt=0, lt=1, description="P(alive) below this = "
                                   "churn risk")
    holdout_share: float = Field(1 / 3, gt=0, lt=1, description="share of the history held "
                                 "out when no --calibration-end is given")
    churn_days: int = Field(60, ge=1, description="churned = no activity in this many days "
                            "(validate KPIs, clv churn)")
    strict_spend: bool = Field(False, description="refuse the Gamma-Gamma fit when a repeat "
                               "buyer's average value is <= 0 (default: leave them out, "
                               "expected value 0)")


class ServiceConfig(_Section):
    host: str = Field("127.0.0.1", description="address tribes serve listens on")
    port: int = Field(8000, ge=1, le=65535)
    max_body_kb: int = Field(1024, ge=1, description="larger request bodies get 413")
    max_batch_events: int = Field(10_000, ge=1, description="events per POST /v1/events")
    rate_limit: float = Field(100.0, gt=0, description="requests per second per API key")
    rate_burst: int = Field(200, ge=1, description="requests a key may send at once")
    max_jobs: int = Field(8, ge=1, description="segmentation jobs queued or running at "
                          "once; more get 429")
    max_jobs_per_key: int = Field(2, ge=1, description="... of which one API key may have")
    release_after: PositiveDuration = Field(
        _dur("1s"), description="the service hands the database to other commands (tribes "
        "status, ingest...) after this long without a request, and takes it back at the "
        "next")


class CartRule(_Section):
    enabled: bool = True
    after: PositiveDuration = Field(
        _dur("30m"), description="fire when no checkout or purchase follows an add to cart "
        "within this long (event time)")
    add_types: list[str] = Field(default_factory=lambda: ["add_to_cart"])
    cancel_types: list[str] = Field(default_factory=lambda: [
        "begin_checkout", "checkout", "purchase", "remove_from_cart"])


class ViewsRule(_Section):
    enabled: bool = True
    min_views: int = Field(3, ge=1, description="views of high-value products in one "
                           "session that fire the trigger (once per session)")
    min_price: float = Field(100.0, ge=0, description="a product at this price or above is "
                             "high-value")
    view_types: list[str] = Field(default_factory=lambda: ["product_view", "view_item"])
    price_field: str = Field("price", description="event field with the product's price "
                             "(the event's amount when absent)")


class OfferRule(_Section):
    enabled: bool = True
    # segment id or name -> offer (any text, e.g. a campaign code); fired at session start
    offers: dict[str, str] = Field(default_factory=dict)


class ChurnRule(_Section):
    enabled: bool = True
    threshold: float | None = Field(None, gt=0, lt=1, description="P(alive) below this "
                                    "fires a re-engagement trigger; default "
                                    "clv.churn_threshold")


class SegmentChangeRule(_Section):
    enabled: bool = True


class RulesConfig(_Section):
    abandoned_cart: CartRule = CartRule()
    high_value_views: ViewsRule = ViewsRule()
    session_offer: OfferRule = OfferRule()
    churn_risk: ChurnRule = ChurnRule()
    segment_change: SegmentChangeRule = SegmentChangeRule()


class WebhookDelivery(_Section):
    timeout: PositiveDuration = Field(_dur("5s"), description="a receiver slower than this "
                                      "counts as failed")
    max_attempts: int = Field(6, ge=1, description="attempts before the dead-letter table")
    backoff: PositiveDuration = Field(_dur("1s"), description="wait before the first retry; "
                                      "doubles each time")
    max_backoff: PositiveDuration = Field(_dur("10m"))


class RealtimeConfig(_Section):
    redis: str = Field("redis://127.0.0.1:6379/0", description="Redis URL (env "
                       "TRIBES_REDIS_URL and --redis override)")
    input_stream: str = "events"
    output_stream: str = "triggers"
    group: str = "tribes"
    prefix: str = Field("tribes", description="prefix of every key tribes writes")
    source: str = Field("stream", description="the events' source column")
    batch: int = Field(1000, ge=1, le=10_000, description="messages read at once")
    block_ms: int = Field(100, ge=1, description="wait for new messages this long")
    claim_idle: PositiveDuration = Field(_dur("60s"), description="messages pending this long "
                                         "with another consumer (a dead one) are claimed")
    state_ttl: PositiveDuration = Field(_dur("30d"), description="per-customer state expires "
                                        "after this long without events")
    seen_ttl: PositiveDuration = Field(_dur("7d"), description="event ids are remembered "
                                       "(redelivery and resends are ignored) this long")
    # one ingest costs about two seconds whatever its size (the dedupe against the events
    # table dominates): land in large micro-batches
    flush_every: PositiveDuration = Field(_dur("30s"), description="streamed events land in the "
                                          "events table at least this often")
    flush_events: int = Field(500_000, ge=1, description="... or every this many events")
    output_maxlen: int = Field(1_000_000, ge=1000, description="approximate length cap of "
                               "the output stream")
    recent_triggers: int = Field(20, ge=0, description="triggers kept per customer for "
                                 "the API")
    rules: RulesConfig = RulesConfig()
    webhooks: WebhookDelivery = WebhookDelivery()



class ActivationTarget(_Section):
    """One place segment memberships go: an HTTP endpoint (the sync contract) or files."""

    kind: Literal["http", "file"] = "http"
    url: str = Field("", description="http: the endpoint that receives the batches")
    secret_env: str = Field("TRIBES_ACTIVATION_SECRET", description="http: environment "
                            "variable holding the signing secret")
    batch_size: int = Field(500, ge=1, le=100_000, description="changes per request")
    timeout: PositiveDuration = Field(_dur("10s"))
    max_attempts: int = Field(5, ge=1, description="tries per batch in one run")
    backoff: PositiveDuration = Field(_dur("1s"), description="wait before the first retry; "
                                      "doubles after each failure")
    path: str = Field("", description="file: directory of the exports (relative paths: "
                      "to the workspace)")
    format: Literal["csv", "parquet"] = "csv"
    purposes: list[str] = Field(default_factory=lambda: ["analytics", "marketing"],
                                description="consent purposes a customer must not have "
                                "refused (opt-in mode: must have granted)")

    @model_validator(mode="after")
    def _complete(self) -> ActivationTarget:
        if self.kind == "http" and not self.url.startswith(("http://", "https://")):
            raise ValueError("an http activation target needs url = \"https://...\"")
        if self.kind == "file" and not self.path:
            raise ValueError("a file activation target needs path = \"exports/crm\"")
        return self

class OpsConfig(_Section):
    """``tribes run`` (and its schedule): what a new segment version does."""

    activate: Literal["auto", "if-stable", "review"] = Field(
        "if-stable", description="a re-segmentation's new version: auto = always active; "
        "if-stable = active when it agrees with the active one (ARI >= min_ari), else held "
        "for review; review = always held (tribes versions activate N)")
    min_ari: float = Field(0.7, ge=-1, le=1, description="agreement (adjusted Rand index) "
                           "with the active version that if-stable requires")
    resegment: Literal["on-drift", "always", "never"] = Field(
        "on-drift", description="when tribes run fits a new segment version (otherwise it "
        "refreshes the active version's memberships with its own model): on-drift = when "
        "this run's drift check raises a critical PSI alert on a feature of the active "
        "version; always = whenever the features changed; never = only when asked "
        "(tribes run --resegment). The booleans of earlier releases still work: true = "
        "always, false = never")

    @field_validator("resegment", mode="before")
    @classmethod
    def _old_resegment(cls, v: Any) -> Any:
        # deprecated: true|false before the refresh of memberships existed
        if isinstance(v, bool):
            return "always" if v else "never"
        return v

class MonitorConfig(_Section):
    """Thresholds of ``tribes monitor``: each breach is an alert."""

    psi_warning: float = Field(0.1, gt=0, description="population stability index of a "
                               "feature at or above this: a warning")
    psi_critical: float = Field(0.25, gt=0, description="... at or above this: critical")
    ks_statistic: float = Field(0.1, gt=0, le=1, description="Kolmogorov-Smirnov distance "
                                "at or above this (and significant) is drift")
    p_value: float = Field(0.01, gt=0, lt=1, description="significance of the KS and "
                           "chi-square tests (with many customers tiny shifts are "
                           "significant, so the size thresholds decide too)")
    share_shift: float = Field(0.05, gt=0, lt=1, description="a segment's share moving by "
                               "this much (absolute) and significantly is a shift")
    sample_size: int = Field(200_000, ge=100, description="customers compared with the "
                             "version's reference")
    bins: int = Field(10, ge=2, le=100, description="quantile bins of the PSI")
    spc_recent_weeks: int = Field(4, ge=1, description="weekly KPI points watched for "
                                  "signals; the weeks before are the charts' baseline")
    spc_baseline_weeks: int = Field(8, ge=3, description="baseline weeks a chart needs")
    spc_false_alarm: float = Field(0.0027, gt=0, lt=0.5, description="chance that a watched "
                                   "week of a stable KPI falls outside its control limits "
                                   "(0.0027: the 3-sigma rate)")
    # data quality, checked on every ingest against the source's recent batches
    min_history: int = Field(3, ge=1, description="earlier batches of a source needed "
                             "before its volume is judged")
    volume_ratio: float = Field(3.0, gt=1, description="a batch this many times larger or "
                                "smaller than the source's median batch")
    max_quarantine_rate: float = Field(0.05, gt=0, le=1, description="share of a batch "
                                       "quarantined (critical from four times it)")
    null_rate_jump: float = Field(0.2, gt=0, le=1, description="rise of a column's null "
                                  "share against the source's recent batches")

    @model_validator(mode="after")
    def _ordered(self) -> MonitorConfig:
        if self.psi_critical < self.psi_warning:
            raise ValueError(f"monitor.psi_critical ({self.psi_critical}) is below "
                             f"monitor.psi_warning ({self.psi_warning})")
        return self


def parse_k_range(text: str) -> list[int]:
    """``2-10`` -> [2, ..., 10]."""
    m = re.match(r"^\s*(\d+)\s*-\s*(\d+)\s*$", text)
    if not m or not 2 <= int(m.group(1)) <= int(m.group(2)):
        raise ConfigError(f"k range '{text}' is not valid; use e.g. 2-10 (lowest 2)",
                          code="E_K_RANGE")
    return list(range(int(m.group(1)), int(m.group(2)) + 1))


_POLICY = re.compile(r"^(drop|flag|median|mode|constant:.*)$")


class Config(_Section):
    engine: EngineConfig = EngineConfig()
    ingest: IngestConfig = IngestConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    prep: PrepConfig = PrepConfig()
    features: FeaturesConfig = FeaturesConfig()
    segment: SegmentConfig = SegmentConfig()
    clv: ClvConfig = ClvConfig()
    service: ServiceConfig = ServiceConfig()
    realtime: RealtimeConfig = RealtimeConfig()
    monitor: MonitorConfig = MonitorConfig()
    ops: OpsConfig = OpsConfig()
    # tribes activate --target NAME: [activation.NAME]
    activation: dict[str, ActivationTarget] = Field(default_factory=dict)
    # user mapping tables per categorical column: raw spelling -> canonical value
    standardize: dict[str, dict[str, str]] = Field(default_factory=dict)
    # missing-value policy per table and column: drop | flag | median | mode | constant:<v>
    missing: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("missing")
    @classmethod
    def _check_missing(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for table, cols in v.items():
            for col, policy in cols.items():
                if not _POLICY.match(policy):
                    raise ValueError(
                        f"missing.{table}.{col} = '{policy}': use drop, flag, median, mode "
                        "or constant:<value>"
                    )
        return v


def load_config(path: Path) -> Config:
    """Read and validate a ``tribes.toml``; a missing file gives the defaults."""
    if not path.exists():
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML: {exc}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path.name} is invalid: {problems}") from None


# the configuration a new workspace starts with, written by hand for people to read
# (tests/test_config.py keeps it in step with the models above)
DEFAULT_TOML = (resources.files("tribes") / "default.toml").read_text(encoding="utf-8")
