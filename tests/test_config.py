"""tribes.toml: loading and validation, and the commented file ``tribes init`` writes.

DEFAULT_TOML (the data file src/tribes/default.toml) is written by hand, for people to
read; the tests below keep it in step with the pydantic models: its settings are the
defaults, every setting appears in it (set, or commented out), and nothing else does.
"""

from __future__ import annotations

import re
import tomllib
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tribes.config import DEFAULT_TOML, Config, load_config, parse_duration, parse_k_range
from tribes.errors import ConfigError


@pytest.mark.parametrize(("text", "seconds"), [
    ("30m", 1800), ("1d", 86400), ("2h", 7200), ("45s", 45), ("1w", 604800), (" 1.5 H ", 5400),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "30", "m", "-1d", "3 days"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="use a number and a unit"):
        parse_duration(text)


def test_parse_k_range() -> None:
    assert parse_k_range("2-4") == [2, 3, 4]
    for bad in ("1-4", "5-3", "4"):
        with pytest.raises(ConfigError, match="k range"):
            parse_k_range(bad)


@pytest.mark.parametrize(("written", "value"), [
    ('"on-drift"', "on-drift"), ('"always"', "always"), ('"never"', "never"),
    ("true", "always"), ("false", "never")])  # the booleans of earlier releases
def test_ops_resegment(tmp_path: Path, written: str, value: str) -> None:
    path = tmp_path / "tribes.toml"
    path.write_text(f"[ops]\nresegment = {written}\n", encoding="utf-8")
    assert load_config(path).ops.resegment == value
    assert Config().ops.resegment == "on-drift"
    path.write_text('[ops]\nresegment = "weekly"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"ops\.resegment"):
        load_config(path)


def test_load_config(tmp_path: Path) -> None:
    path = tmp_path / "tribes.toml"
    assert load_config(path) == Config()  # no file: the defaults
    path.write_text('[prep]\nsession_timeout = "1h"\n', encoding="utf-8")
    assert load_config(path).prep.session_timeout == timedelta(hours=1)
    path.write_text("[prep\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tribes\.toml is not valid TOML"):
        load_config(path)
    path.write_text('[prep]\nsession_timeout = "soon"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="'soon' is not a duration"):
        load_config(path)
    path.write_text('[monitor]\npsi_critical = 0.05\n[missing.events]\nchannel = "guess"\n'
                    "[segment]\nscaler = \"log\"\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    for where in ("monitor: ", "missing: ", "segment.scaler: "):
        assert where in str(err.value)


# a commented-out setting, "# key = value" or "# [table]"; prose comments have words
# before any " = "
_SETTING = re.compile(r'^# ?(?=\[[\w."-]+\]|(?:"[^"]+"|[\w-]+) = )')


def _depth(text: str) -> int:
    """How many brackets ``text`` leaves open (strings left out)."""
    bare = re.sub(r'"[^"]*"', "", text.split(" #")[0])
    return bare.count("[") - bare.count("]")


def switched_on(text: str) -> str:
    """``text`` with its commented-out settings (and their continuation lines) switched on."""
    out, depth = [], 0
    for line in text.splitlines():
        m = _SETTING.match(line)
        if depth > 0 and line.startswith("#"):
            line = line[1:]
            depth += _depth(line)
        elif m:
            line = line[m.end():]
            if not line.startswith("["):
                depth = _depth(line.partition(" = ")[2])
        out.append(line)
    return "\n".join(out) + "\n"


def leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every scalar or array of a parsed TOML document by its dotted path."""
    found: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(leaves(value, f"{path}."))
        else:
            found[path] = value
    return found


def _model_of(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(
        annotation, BaseModel) else None


def missing_settings(model: type[BaseModel], data: dict[str, Any], prefix: str = ""
                     ) -> list[str]:
    """Fields of ``model`` (nested sections too) that ``data`` does not set."""
    missing = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        if name not in data:
            missing.append(path)
            continue
        section = _model_of(field.annotation)
        if section is not None:
            missing += missing_settings(section, data[name], f"{path}.")
        elif typing.get_origin(field.annotation) is dict:
            # a table of named sections ([activation.NAME]): the examples show every field
            item = _model_of(typing.get_args(field.annotation)[1])
            if item is not None:
                union = {k: v for example in data[name].values() for k, v in example.items()}
                missing += missing_settings(item, union, f"{path}.<name>.")
    return missing


DEFAULTS = Config().model_dump()


def active() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_TOML)


def shown() -> dict[str, Any]:
    """DEFAULT_TOML with every commented-out setting switched on."""
    return tomllib.loads(switched_on(DEFAULT_TOML))


ABSENT = "<not a setting>"


def _default(path: str) -> Any:
    value: Any = DEFAULTS
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return ABSENT  # e.g. an entry of a free-form table
        value = value[part]
    return value


def _same(value: Any, default: Any) -> bool:
    """Equal settings: durations by their length (``60s`` is the ``1m`` a dump shows)."""
    if isinstance(value, str) and isinstance(default, str):
        try:
            return parse_duration(value) == parse_duration(default)
        except ConfigError:
            pass
    return bool(value == default)


def test_the_settings_it_sets_are_the_defaults() -> None:
    assert Config.model_validate(active()) == Config()
    wrong = {path: (value, _default(path)) for path, value in leaves(active()).items()
             if not _same(value, _default(path))}
    assert wrong == {}


def test_every_setting_appears() -> None:
    assert missing_settings(Config, shown()) == []


def test_commented_settings_are_valid_and_show_the_defaults() -> None:
    Config.model_validate(shown())  # no unknown key, no invalid value
    examples = {path: value for path, value in leaves(shown()).items()
                if path not in leaves(active())}
    # a commented setting that has a default shows it; settings without one (None) and
    # entries of free-form tables show examples
    differ = {path: (value, _default(path)) for path, value in examples.items()
              if _default(path) not in (None, ABSENT) and not _same(value, _default(path))}
    assert differ == {}


def test_switching_on_commented_settings() -> None:
    text = ('[a]\n# x = 1   # one\n# a rule = words, not a setting\n# [a.b]\n'
            '# "k.v" = ["p",\n#          "q[*]"]\ny = 2\n')
    assert tomllib.loads(switched_on(text)) == {
        "a": {"x": 1, "b": {"k.v": ["p", "q[*]"], "y": 2}}}
    assert missing_settings(Config, {}) == list(Config.model_fields)
