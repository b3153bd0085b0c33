"""``tribes consents``: what customers agreed to."""

from __future__ import annotations

from typing import Annotated

import ibis
import typer

from tribes.cli.common import JsonOpt, Output, run_settings, state
from tribes.privacy import consent_summary, pseudonym
from tribes.store import open_engine

app = typer.Typer(help="Consent records: summary per purpose, or one customer's history.",
                  no_args_is_help=True)


@app.command()
def show(
    ctx: typer.Context,
    customer: Annotated[str | None, typer.Option(
        "--customer", "-c", help="A raw customer id: list this person's consent history.",
        show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Customers per purpose by their latest choice, or one customer's records.

    [bold]Examples[/bold]: tribes -w shop consents show;  tribes -w shop consents show -c C0000042
    """
    out = Output(ctx, json_out)
    ws = state(ctx).open()
    with open_engine(ws) as engine:
        c = engine.table("consents")
        mode = run_settings(ws).consent_mode
        if customer is None:
            rows = engine.execute(consent_summary(c)).to_dict("records")
            out.result({"consent_mode": mode, "purposes": rows})
            out.print(f"consent_mode = {mode}")
            out.table("Latest choice per customer", ["purpose", "customers", "granted", "refused"],
                      [(r["purpose"], r["customers"], r["granted"], r["refused"]) for r in rows])
            return
        pid = pseudonym(customer, ws.secret())
        hist = c.filter(c.customer_id == pid).order_by([ibis.desc("ts"), "purpose"])
        rows = engine.execute(hist.select("purpose", "granted", "ts", "batch_id")).to_dict(
            "records")
    out.result({"customer_id": pid, "records": rows})
    if not rows:
        out.print(f"No consent records for {customer}.")
        return
    out.table(f"Consents of {customer} (pseudonym {pid})", ["purpose", "granted", "ts", "batch"],
              [(r["purpose"], "yes" if r["granted"] else "no", str(r["ts"]), r["batch_id"])
               for r in rows])
