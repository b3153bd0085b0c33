"""``tribes personas``: named segments with their profile and a recommended action."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from tribes.api import Workspace
from tribes.cli.common import JsonOpt, Output, state, writable
from tribes.errors import InputError
from tribes.models import OVERRIDE_FIELDS, set_overrides
from tribes.store import open_engine

app = typer.Typer(no_args_is_help=False, rich_markup_mode="rich")


def _build(ctx: typer.Context) -> list[dict[str, Any]]:
    ws = state(ctx).open()
    personas: list[dict[str, Any]] = Workspace(ws).personas()["personas"]
    return personas


def clv_line(c: dict[str, Any] | None) -> str | None:
    """The persona's value in one line (None before `tribes clv score`)."""
    if not c:
        return None
    return (f"{c['scored']:,} purchasers scored: expected value over {c['horizon']} "
            f"{c['clv_mean']:,.2f} each ({c['clv_share'] or 0:.0%} of all CLV), mean "
            f"P(alive) {c['p_alive']:.2f}")


def churn_line(c: dict[str, Any] | None) -> str | None:
    """The persona's churn risk and the model it comes from (None when nothing scored)."""
    if not c:
        return None
    if c.get("share") is None:
        return f"churn risk {c.get('withheld') or 'not shown'}"
    return f"{c['share']:.0%} of {c['scored']:,} scored at churn risk: {c['model']}"


def _risk(c: dict[str, Any] | None) -> str:
    if not c:
        return "-"
    return "withheld" if c.get("share") is None else f"{c['share']:.0%}"


def show_table(out: Output, personas: list[dict[str, Any]]) -> None:
    with_clv = any(p.get("clv") for p in personas)
    with_churn = any(p.get("churn") for p in personas)
    extra = (["CLV/buyer"] if with_clv else []) + (["churn risk"] if with_churn else [])

    def clv_cells(p: dict[str, Any]) -> list[Any]:
        c = p.get("clv")
        cells = [f"{c['clv_mean']:,.0f}" if c else "-"] if with_clv else []
        return cells + ([_risk(p.get("churn"))] if with_churn else [])

    out.table("Personas (active segment version)",
              ["segment", "persona", "customers", "campaign", *extra],
              [(p["segment_id"], p["name"], f"{p['size']:,} ({p['share']:.0%})",
                p["campaign"], *clv_cells(p)) for p in personas],
              no_wrap=(0, 2, 4, 5))


@app.callback(invoke_without_command=True)
def personas(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """Personas of the active segment version: name, size, campaign type.

    Names come from how each segment differs from everyone (feature lifts scored against
    archetypes such as High-value loyalists or Window shoppers; no two share a name).
    Override names and texts with: tribes personas edit --file personas.toml

    [bold]Examples[/bold]

      tribes -w shop personas

      tribes -w shop personas show 2

      tribes -w shop personas export --format md --out personas/
    """
    if ctx.invoked_subcommand is not None:
        return
    out = Output(ctx, json_out)
    ps = _build(ctx)
    out.result({"personas": ps})
    show_table(out, ps)


@app.command()
def show(ctx: typer.Context,
         segment: Annotated[int, typer.Argument(help="Segment id.")],
         json_out: JsonOpt = False) -> None:
    """One persona card: description, action, distinguishing features, top categories,
    channels, devices, journeys and profile attributes."""
    out = Output(ctx, json_out)
    ps = {p["segment_id"]: p for p in _build(ctx)}
    if segment not in ps:
        raise InputError(f"no segment {segment} in the active version; segments: "
                         f"{', '.join(str(s) for s in sorted(ps))}", code="E_SEGMENT")
    p = ps[segment]
    out.result(p)
    out.print(f"[bold]{p['name']}[/bold] (segment {segment}, {p['size']:,} customers, "
              f"{p['share']:.1%})")
    out.print(p["description"])
    out.print(f"[bold]Recommended action[/bold] ({p['campaign']}): {p['action']}")
    line = clv_line(p.get("clv"))
    if line:
        out.print(f"[bold]Value[/bold]: {line}")
    risk = churn_line(p.get("churn"))
    if risk:
        out.print(f"[bold]Churn[/bold]: {risk}")
    feats = sorted(p["features"].items(), key=lambda kv: -abs(kv[1]["lift"]))[:10]
    out.table("Most distinguishing features", ["feature", "median", "mean", "everyone",
                                               "lift (sd)"],
              [(f, s["median"], s["mean"], s["population_mean"], round(s["lift"], 2))
               for f, s in feats])
    for title, key, field in (("Top categories", "top_categories", "value"),
                              ("Top channels", "top_channels", "value"),
                              ("Top devices", "top_devices", "value"),
                              ("Top journeys", "top_journeys", "path")):
        if p[key]:
            out.table(title, [field, "share"],
                      [(x[field], f"{x['share']:.1%}") for x in p[key]], no_wrap=())
    for attr, vals in p["attributes"].items():
        out.table(attr, ["value", "share"], [(x["value"], f"{x['share']:.1%}") for x in vals])


def markdown(p: dict[str, Any]) -> str:
    lines = [f"# {p['name']}", "",
             f"Segment {p['segment_id']} of version {p['version']}: {p['size']:,} customers "
             f"({p['share']:.1%}).", "", p["description"], "",
             f"**Recommended action** ({p['campaign']}): {p['action']}", "",
             *([f"**Value**: {clv_line(p.get('clv'))}", ""] if p.get("clv") else []),
             *([f"**Churn**: {churn_line(p.get('churn'))}", ""] if p.get("churn") else []),
             "| feature | median | mean | everyone | lift (sd) |", "|---|---|---|---|---|"]
    for f, s in sorted(p["features"].items(), key=lambda kv: -abs(kv[1]["lift"]))[:12]:
        lines.append(f"| {f} | {_fmt(s['median'])} | {_fmt(s['mean'])} | "
                     f"{_fmt(s['population_mean'])} | {s['lift']:+.2f} |")
    for title, key, field in (("Top categories", "top_categories", "value"),
                              ("Top channels", "top_channels", "value"),
                              ("Top devices", "top_devices", "value"),
                              ("Top journeys", "top_journeys", "path")):
        if p[key]:
            lines += ["", f"## {title}", ""]
            lines += [f"- {x[field]} ({x['share']:.1%})" for x in p[key]]
    return "\n".join(lines) + "\n"


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


@app.command("export")
def export_(ctx: typer.Context,
            out_dir: Annotated[Path, typer.Option("--out", "-o", help="Directory to write.")],
            fmt: Annotated[str, typer.Option("--format", "-f", help="md or json.")] = "md",
            json_out: JsonOpt = False) -> None:
    """One document per persona (Markdown or JSON) in a directory."""
    out = Output(ctx, json_out)
    if fmt not in ("md", "json"):
        raise typer.BadParameter("use md or json", param_hint="--format")

    ps = _build(ctx)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for p in ps:
        slug = re.sub(r"[^a-z0-9]+", "-", p["name"].lower()).strip("-")
        path = writable(out_dir / f"segment-{p['segment_id']}-{slug}.{fmt}")
        path.write_text(markdown(p) if fmt == "md" else json.dumps(p, indent=2, default=str),
                        encoding="utf-8")
        files.append(str(path))
    out.result({"files": files})
    out.print(f"wrote {len(files)} persona documents to {out_dir}")


@app.command()
def edit(ctx: typer.Context,
         file: Annotated[Path, typer.Option("--file", help="TOML with \\[segment.<id>] tables "
                                            "of name, description, action, campaign.")],
         json_out: JsonOpt = False) -> None:
    """Override persona names and texts by segment id (kept across versions).

    personas.toml:

      \\[segment.2]
      name = "Weekend bargain fans"
      action = "Friday flash sales"
    """
    out = Output(ctx, json_out)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read {file}: {exc}", code="E_INPUT") from None
    table = data.get("segment")
    if not isinstance(table, dict) or not table:
        raise InputError(f"{file} has no [segment.<id>] tables", code="E_INPUT")
    overrides: dict[int, dict[str, str]] = {}
    for key, vals in table.items():
        if not key.lstrip("-").isdigit() or not isinstance(vals, dict):
            raise InputError(f"[segment.{key}]: use the numeric segment id", code="E_INPUT")
        unknown = set(vals) - set(OVERRIDE_FIELDS)
        if unknown:
            raise InputError(f"[segment.{key}]: unknown keys {sorted(unknown)}; use "
                             f"{', '.join(OVERRIDE_FIELDS)}", code="E_INPUT")
        overrides[int(key)] = {k: str(v) for k, v in vals.items()}
    ws = state(ctx).open()
    with open_engine(ws) as engine:
        set_overrides(engine, overrides)
    ps = _build(ctx)
    out.result({"overridden": sorted(overrides), "personas": ps})
    show_table(out, ps)
