"""Run settings resolved once and passed down (tribes.settings)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import ibis
import pytest

from tests.conftest import CliResult
from tests.features.conftest import FeatureData
from tribes.config import Config, load_config, parse_duration
from tribes.errors import ConfigError
from tribes.prep.prep_stage import last_prep
from tribes.prep.sessions import sessionize
from tribes.settings import RunSettings, format_duration
from tribes.store.db import open_engine
from tribes.store.tables import STAGE_RUNS
from tribes.workspace import open_workspace


@pytest.mark.parametrize(("text", "canonical"), [
    ("30m", "30m"), ("1800s", "30m"), ("0.5h", "30m"), ("90s", "90s"), ("60m", "1h"),
    ("24h", "1d"), ("7d", "1w"), ("1.5s", "1.5s"), ("45 min", "45m")])
def test_one_normalized_form_per_duration(text: str, canonical: str) -> None:
    assert RunSettings.resolve(Config(), session_timeout=text).timeout_text == canonical
    assert format_duration(timedelta(seconds=1800)) == "30m"


def test_options_win_over_the_configuration() -> None:
    cfg = Config()
    assert RunSettings.resolve(cfg).session_timeout == timedelta(minutes=30)
    s = RunSettings.resolve(cfg, session_timeout=timedelta(hours=2))
    assert s.session_timeout == timedelta(hours=2) and s.consent_mode == "opt-out"
    with pytest.raises(ConfigError):
        RunSettings.resolve(cfg, session_timeout="soon")


def _copy(feature_data: FeatureData, tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    shutil.copytree(feature_data.ws.path, path)
    return path


def test_features_after_new_events_sessionizes_with_its_own_timeout(
        feature_data: FeatureData, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    """``tribes features --session-timeout 1h`` after new events reruns prep with 1h, not
    with the configured 30m, so the stored sessions agree with the features."""
    path = _copy(feature_data, tmp_path)
    assert cli("-q", "--workspace", path, "prep").code == 0
    late = tmp_path / "late.csv"
    late.write_text("ts,event_type,customer_id\n2026-05-30T10:00:00Z,page_view,C777\n")
    assert cli("-q", "--workspace", path, "ingest", late, "--source", "web").code == 0
    res = cli("--workspace", path, "features", "--session-timeout", "1h", "--json")
    assert res.code == 0, res.err
    assert res.json()["prep_rerun"] and res.json()["session_timeout"] == "1h"
    with open_engine(open_workspace(path)) as engine:
        assert last_prep(engine)["params"]["session_timeout"] == "1h"
        stored = int(engine.scalar(engine.table("sessions").count()))
        events, ids = engine.table("events"), engine.table("identities")
        hour = int(engine.scalar(sessionize(events, ids, timedelta(hours=1)).count()))
        half = int(engine.scalar(sessionize(events, ids, timedelta(minutes=30)).count()))
    assert stored == hour != half


def test_run_takes_1800s_for_the_30m_it_was_built_with(
        feature_data: FeatureData, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    path = _copy(feature_data, tmp_path)
    assert cli("-q", "--workspace", path, "run").code == 0
    again = cli("--workspace", path, "run", "--session-timeout", "1800s", "--json")
    assert again.code == 0, again.err
    steps = again.json()["steps"]
    assert steps["prep"].startswith("skipped") and steps["features"].startswith("skipped")
    other = cli("--workspace", path, "run", "--session-timeout", "45m", "--json").json()
    assert other["steps"]["prep"] == "done" and other["steps"]["features"] == "done"


def test_a_prep_stored_with_the_timeout_in_seconds_is_still_current(
        feature_data: FeatureData, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    """Preps stored before the timeout had one stored form kept it in seconds
    (``session_timeout_s``); they compare equal to the same timeout now, so a workspace
    made then is not prepped again for nothing."""
    path = _copy(feature_data, tmp_path)
    assert cli("-q", "--workspace", path, "run").code == 0
    with open_engine(open_workspace(path)) as engine:
        runs = engine.execute(engine.table("stage_runs"))
        prep = runs.stage == "prep"
        old = []
        for text in runs.loc[prep, "params"]:
            params = json.loads(text)
            params["session_timeout_s"] = parse_duration(params.pop("session_timeout")
                                                         ).total_seconds()
            old.append(json.dumps(params, sort_keys=True))
        runs.loc[prep, "params"] = old
        engine.replace_table("stage_runs", ibis.memtable(runs).cast(STAGE_RUNS))
        assert last_prep(engine)["params"]["session_timeout"] == "30m"
    again = cli("--workspace", path, "run", "--json")
    assert again.json()["steps"]["prep"].startswith("skipped"), again.json()["steps"]


@pytest.mark.parametrize(("text", "value"), [
    ("45 min", timedelta(minutes=45)), ("1.5h", timedelta(minutes=90)),
    ("90s", timedelta(seconds=90))])
def test_configured_durations_are_timedeltas(tmp_path: Path, text: str,
                                             value: timedelta) -> None:
    """Durations in tribes.toml are parsed once, when it is read; dumped, they are their
    canonical text again."""
    (tmp_path / "tribes.toml").write_text(f'[prep]\nsession_timeout = "{text}"\n'
                                          '[realtime]\nclaim_idle = "2m"\n')
    cfg = load_config(tmp_path / "tribes.toml")
    assert cfg.prep.session_timeout == value
    assert cfg.realtime.claim_idle == timedelta(minutes=2)
    assert cfg.model_dump()["prep"]["session_timeout"] == format_duration(value)
    assert Config.model_validate(cfg.model_dump()) == cfg


@pytest.mark.parametrize(("toml", "message"), [
    ('[prep]\nsession_timeout = "soon"', "prep.session_timeout"),
    ('[prep]\nsession_timeout = "0m"', "longer than zero"),
    ('[prep]\nsession_timeout = 1800', "use a number and a unit"),
    ('[engine]\nlock_wait = "2 fortnights"', "engine.lock_wait")])
def test_a_bad_duration_is_refused_when_the_configuration_is_read(
        tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "tribes.toml").write_text(toml + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "tribes.toml")
