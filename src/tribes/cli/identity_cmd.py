"""``tribes identity``: repair identity stitching with merge, split and block rules."""

from __future__ import annotations

from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, state
from tribes.ops import (
    RuleChange,
    block_identifier,
    merge_identities,
    rules_table,
    show_identity,
    split_identity,
    undo_rule,
)
from tribes.store import open_engine

app = typer.Typer(
    help="Repair identity stitching: merge two customers, split an id out of one, block a "
    "shared device. Rules are kept, listed and undoable; every later prep applies them.",
    no_args_is_help=True)

PERSON_HELP = ("A customer_key (as tribes customer and exports show it), or any id of the "
               "customer as in the source files (pseudonymized with the workspace key to "
               "look it up), or a stored pseudonym.")
NoteOpt = Annotated[str, typer.Option(
    "--note", help="Why (a ticket, who asked); kept with the rule and in the audit log.")]


def _done(out: Output, change: RuleChange, verb: str) -> None:
    out.result(change.to_dict())
    out.print(f"{verb} identity rule [bold]{change.rule.rule_id}[/bold] "
              f"({change.rule.action}).")
    out.print(change.effect[:1].upper() + change.effect[1:] + ".")
    out.print("Features, segments and CLV follow at the next tribes run; undo with: "
              f"tribes identity undo {change.rule.rule_id}")


@app.command()
def merge(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(metavar="KEY_A", help=PERSON_HELP)],
    b: Annotated[str, typer.Argument(metavar="KEY_B", help=PERSON_HELP)],
    note: NoteOpt = "",
    json_out: JsonOpt = False,
) -> None:
    """Make two customers one (from the next prep on).

    Every id of both maps to one customer_key: the smaller known customer_id when either
    has one (so merging two known customers keys them by the smaller id), else anon: +
    the smallest anonymous/device id. Stitching alone never merges two known ids; this
    rule does, until undone.

    [bold]Example[/bold]

      tribes -w shop identity merge C0000042 C0000977 --note "same person, ticket 311"
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws) as engine:
        change = merge_identities(ws, engine, a, b, note=note)
    _done(out, change, "Made")


@app.command()
def split(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(metavar="KEY", help=PERSON_HELP)],
    ident: Annotated[str, typer.Option(
        "--id", help="The anonymous or device id to take out of that customer (as in the "
        "source files, or its pseudonym; see: tribes identity show KEY).")],
    note: NoteOpt = "",
    json_out: JsonOpt = False,
) -> None:
    """Take one anonymous/device id out of a customer (from the next prep on).

    The id links nothing any more and becomes a customer of its own (status split);
    ids linked to the customer only through it leave with it, each on its own.

    [bold]Example[/bold]

      tribes -w shop identity split C0000042 --id cookie-7f3a --note "sister's laptop"
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws) as engine:
        change = split_identity(ws, engine, person, ident, note=note)
    _done(out, change, "Made")


@app.command()
def block(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(
        metavar="ID", help="An anonymous or device id as in the source files, or its "
        "pseudonym. Known customer ids cannot be blocked.")],
    note: NoteOpt = "",
    json_out: JsonOpt = False,
) -> None:
    """Never link this anonymous/device id (a shop kiosk, a shared tablet).

    From the next prep on it is treated as a shared device: it links nobody, it is a
    customer of its own (status blocked), and each event still belongs to its customer
    id, else its anonymous id, else its device id.

    [bold]Example[/bold]

      tribes -w shop identity block kiosk-store-12 --note "in-store kiosk"
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws) as engine:
        change = block_identifier(ws, engine, ident, note=note)
    _done(out, change, "Made")


@app.command()
def undo(
    ctx: typer.Context,
    rule_id: Annotated[int, typer.Argument(metavar="RULE_ID",
                                           help="The rule's number (tribes identity rules).")],
    json_out: JsonOpt = False,
) -> None:
    """Undo a rule: the next prep stitches as if it had never been made. The rule stays
    listed (tribes identity rules --all) with when and by whom it was undone.

    [bold]Example[/bold]: tribes -w shop identity undo 3
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws) as engine:
        change = undo_rule(engine, rule_id)
    out.result(change.to_dict())
    out.print(f"Undid identity rule [bold]{rule_id}[/bold] ({change.rule.action}).")
    out.print(change.effect[:1].upper() + change.effect[1:] + ".")


@app.command()
def rules(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Undone rules too.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """The identity rules in the order they apply, with the customer each id has now.

    [bold]Example[/bold]: tribes -w shop identity rules --all
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        rows = rules_table(engine, include_undone=all_)
    out.result({"rules": rows})
    if not rows:
        out.print("No identity rules" + ("." if all_ else " in force (--all: undone ones "
                                               "too)."))
        return
    out.table("Identity rules", ["rule", "action", "ids", "customers now", "made", "by",
                                 "note", "undone"],
              [(r["rule_id"], r["action"], _pair(r["a"], r["b"]),
                _pair(r["a_key"] or "-", (r["b_key"] or "-") if r["b"] else None),
                str(r["created_at"])[:19], r["created_by"], r["note"],
                str(r["undone_at"])[:19] if r["undone_at"] else "")
               for r in rows], no_wrap=(0, 1))


def _pair(a: str, b: str | None) -> str:
    return a if b is None else f"{a} / {b}"


@app.command()
def show(
    ctx: typer.Context,
    ident: Annotated[str, typer.Argument(metavar="KEY_OR_ID", help=PERSON_HELP)],
    json_out: JsonOpt = False,
) -> None:
    """A customer's ids with their stitching status, and the rules in force that name them.

    [bold]Example[/bold]: tribes -w shop identity show C0000042
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws, read_only=True) as engine:
        view = show_identity(ws, engine, ident)
    out.result(view)
    out.print(f"customer_key [bold]{view['customer_key']}[/bold]: {len(view['ids'])} id(s)")
    out.table("Ids", ["type", "id", "status"],
              [(i["id_type"], i["id"], i["status"]) for i in view["ids"]], no_wrap=(0, 1))
    if view["rules"]:
        out.table("Rules in force naming them", ["rule", "action", "what", "note"],
                  [(r["rule_id"], r["action"], r["describe"], r["note"])
                   for r in view["rules"]], no_wrap=(0,))
