"""tribes triggers list / test."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.realtime.conftest import tribes
from tribes.cli import main

T = float(int(time.time()) - 3 * 3600)


def test_triggers_list(rt_ws: Path) -> None:
    out = json.loads(tribes("-w", rt_ws, "triggers", "list", "--json"))
    assert [r["rule"] for r in out["rules"]] == ["abandoned_cart", "high_value_views",
                                                "session_offer", "churn_risk",
                                                "segment_change"]
    assert out["config"]["abandoned_cart"]["after"] == "30m"


def test_triggers_test_on_a_file(rt_ws: Path, tmp_path: Path) -> None:
    sample = tmp_path / "sample.jsonl"
    lines = [{"user_id": "A", "event_name": "Add To Cart", "timestamp": T},
             {"user_id": "B", "event_name": "add_to_cart", "timestamp": T},
             {"user_id": "B", "event_name": "purchase", "timestamp": T + 60, "revenue": 12},
             {"user_id": "C", "event_name": "purchase", "timestamp": T + 60}]  # no amount
    sample.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n",
                      encoding="utf-8")
    out = json.loads(tribes("-w", rt_ws, "triggers", "test", "abandoned_cart", "--events",
                            sample, "--json"))
    assert out["triggers"] == [] and out["pending_timers"] == 1  # A's cart: not yet due
    assert out["rejected"] == {"E_AMOUNT": 1, "E_MALFORMED": 1}
    out = json.loads(tribes("-w", rt_ws, "triggers", "test", "abandoned_cart", "--events",
                            sample, "--advance", "45m", "--json"))
    assert [t["type"] for t in out["triggers"]] == ["trigger.abandoned_cart"]
    assert out["triggers"][0]["at"] == T + 1800
    text = tribes("-w", rt_ws, "triggers", "test", "all", "--events", sample, "--advance",
                  "45m")
    assert "3 triggers" in text and "abandoned" in text
    assert main(["-w", str(rt_ws), "triggers", "test", "nope", "--events", str(sample)]) == 3
    assert main(["-w", str(rt_ws), "triggers", "test", "all", "--events",
                 str(tmp_path / "missing.jsonl")]) == 3
