"""The command line as a user meets it: help, JSON results, errors without tracebacks."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

WEB = """timestamp,event_name,user_id,cookie_id,amount
2026-03-04T10:15:02Z,Page View,u1,c1,
2026-03-04T10:16:02Z,purchase,u1,c1,12.5
not-a-date,page_view,u2,,
2026-03-04T10:18:02Z,page_view,,,
"""


def test_help_teaches(cli) -> None:
    r = cli("--help")
    assert r.code == 0
    for cmd in ("init", "ingest", "status", "quarantine", "synth", "consents"):
        assert cmd in r.out
    r = cli("ingest", "--help")
    assert r.code == 0 and "--map" in r.out and "Examples" in r.out



def test_startup_leaves_the_modelling_libraries_alone() -> None:
    """The command line's root imports no command; scikit-learn, SciPy and statsmodels
    (seconds to import) load only in the commands that use them."""
    code = ("import sys, tribes.cli; "
            "print(sorted(m for m in ('sklearn', 'scipy', 'statsmodels') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True)
    assert r.stdout.strip() == "[]"

def test_init_ingest_status_quarantine_roundtrip(cli, tmp_path: Path, write) -> None:
    ws = tmp_path / "shop"
    r = cli("init", ws, "--json")
    assert r.code == 0 and r.json()["created"] is True
    path = write("web.csv", WEB)
    r = cli("--workspace", ws, "ingest", path, "--source", "web", "--json")
    assert r.code == 0, r.err
    summary = r.json()
    assert set(summary) >= {"batch_id", "rows_read", "loaded", "duplicates", "quarantined"}
    assert (summary["rows_read"], summary["loaded"]) == (4, 2)
    assert summary["quarantined"] == {"E_NO_ID": 1, "E_TS_PARSE": 1}

    r = cli("--workspace", ws, "--json", "status")
    st = r.json()
    assert st["tables"]["events"] == 2 and st["quarantine"] == {"E_NO_ID": 1, "E_TS_PARSE": 1}
    assert st["batches"][0]["batch_id"] == summary["batch_id"]

    r = cli("--workspace", ws, "status")
    assert r.code == 0 and "Quarantine by reason" in r.out and "E_TS_PARSE" in r.out

    r = cli("--workspace", ws, "quarantine", "show", "--reason", "E_TS_PARSE", "--json")
    shown = r.json()
    assert shown["total"] == 1 and "not-a-date" in shown["rows"][0]["message"]

    out = tmp_path / "bad_rows.csv"
    r = cli("--workspace", ws, "quarantine", "export", "--out", out)
    assert r.code == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["_tribes_reason"] for r in rows) == ["E_NO_ID", "E_TS_PARSE"]


def test_errors_have_codes_and_no_traceback(cli, tmp_path: Path, write) -> None:
    r = cli("--workspace", tmp_path / "nope", "status")
    assert r.code != 0 and "E_NO_WORKSPACE" in r.err and "tribes init" in r.err
    assert "Traceback" not in r.err
    ws = tmp_path / "shop"
    cli("init", ws)
    bad = write("bad.csv", "when,user_id\n2026-01-01,u1\n")
    r = cli("--workspace", ws, "ingest", bad, "--json")
    assert r.code == 3 and r.json()["error"] == "E_MISSING_COLUMN"
    assert "map one with --map ts=" in r.err
    r = cli("--workspace", ws, "quarantine", "show", "--reason", "E_NOPE")
    assert r.code != 0 and "E_REASON" in r.err
    r = cli("--workspace", ws, "ingest", bad, "--kind", "orders")
    assert r.code == 2 and "--kind" in r.err


def test_data_in_a_message_cannot_drive_the_terminal(cli, tmp_path: Path, write) -> None:
    ws = tmp_path / "shop"
    cli("init", ws)
    bad = write("esc.csv", "tim\x1b[2Jestmp\x07,user_id\u202e,event\r\n"
                           "2026-01-01,u1,x\r\n")
    r = cli("--workspace", ws, "ingest", bad)
    assert r.code == 3 and "E_MISSING_COLUMN" in r.err
    assert "\x1b" not in r.err and "\x07" not in r.err and "\u202e" not in r.err
    assert "tim\\x1b[2Jestmp\\x07" in r.err  # shown, as escapes


def test_outputs_are_not_written_through_links(cli, tmp_path: Path, write) -> None:
    ws = tmp_path / "shop"
    cli("init", ws)
    assert cli("--workspace", ws, "ingest", write("w.csv", WEB)).code == 0
    victim = tmp_path / "elsewhere" / "precious.txt"
    victim.parent.mkdir()
    victim.write_text("keep me")
    for args in (["quarantine", "export", "--out", tmp_path / "q.csv"],
                 ["report", "--out", tmp_path / "r.html"], ["report"]):
        target = args[-1] if "--out" in args else ws / "reports" / "report.html"
        target.parent.mkdir(exist_ok=True)
        target.symlink_to(victim)
        r = cli("--workspace", ws, *args, "--json")
        assert r.code != 0 and r.json()["error"] == "E_OUT_LINK", (args, r.err)
        assert victim.read_text() == "keep me"
        target.unlink()


def test_env_workspace_and_console_script(tmp_path: Path, write) -> None:
    ws = tmp_path / "shop"
    exe = Path(sys.executable).parent / "tribes"
    env = {"TRIBES_WORKSPACE": str(ws), "PATH": str(exe.parent)}
    subprocess.run([str(exe), "init"], env=env, check=True, capture_output=True)
    p = subprocess.run([str(exe), "ingest", str(write("w.csv", WEB)), "--json"], env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert '"loaded": 2' in p.stdout


def test_consents_command(cli, tmp_path: Path, write) -> None:
    ws = tmp_path / "shop"
    cli("init", ws)
    k = write("k.csv", "customer_id,purpose,granted,ts\nc1,analytics,yes,2026-01-01\n"
                       "c1,analytics,no,2026-02-01\nc2,analytics,1,2026-01-01\n")
    assert cli("--workspace", ws, "ingest", k, "--kind", "consents").code == 0
    r = cli("--workspace", ws, "consents", "show", "--json")
    assert r.json()["purposes"] == [{"purpose": "analytics", "customers": 2, "granted": 1,
                                     "refused": 1}]
    r = cli("--workspace", ws, "consents", "show", "--customer", "c1", "--json")
    assert [x["granted"] for x in r.json()["records"]] == [False, True]


def test_a_table_too_wide_for_the_terminal_becomes_a_list() -> None:
    """Piped or narrow output: no header cut to one letter per line; every header and
    value whole, a block per row."""
    import io

    from rich.console import Console

    from tribes.cli.common import Output

    out = Output.__new__(Output)
    out.json, out.quiet = False, False
    buf = io.StringIO()
    out.console = Console(file=buf, width=40, highlight=False)
    columns = ["version", "status", "created (UTC)", "method", "silhouette", "stability"]
    out.table("Segment versions", columns, [(3, "active", "2026-12-07 08:24", "kmeans",
                                             0.36, 0.98)])
    text = buf.getvalue()
    assert all(c in text for c in columns) and "2026-12-07 08:24" in text
    assert "active" in text and "kmeans" in text
    narrow = buf.getvalue().splitlines()
    assert all(len(line) <= 40 for line in narrow)
    buf.seek(0)
    buf.truncate()
    out.console = Console(file=buf, width=200, highlight=False)
    out.table("Segment versions", columns, [(3, "active", "2026-12-07 08:24", "kmeans",
                                             0.36, 0.98)])
    assert len(buf.getvalue().splitlines()) <= 4  # wide enough: one table row
