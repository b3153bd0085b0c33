"""``tribes stream``: consume events from Redis Streams, fire triggers (DESIGN §7)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from tribes.cli.common import JsonOpt, Output, run_settings, state
from tribes.errors import InputError
from tribes.realtime import Consumer


def stream(
    ctx: typer.Context,
    redis: Annotated[str | None, typer.Option(
        "--redis", help="Redis URL, e.g. redis://127.0.0.1:6379/0 (default: env "
        "TRIBES_REDIS_URL, else \\[realtime] redis).", show_default=False)] = None,
    input_stream: Annotated[str | None, typer.Option(
        "--input-stream", help="Stream of events (default: \\[realtime] input_stream, "
        "'events').", show_default=False)] = None,
    output_stream: Annotated[str | None, typer.Option(
        "--output-stream", help="Stream the triggers go to (default: 'triggers').",
        show_default=False)] = None,
    group: Annotated[str | None, typer.Option(
        "--group", help="Consumer group; consumers of one group share the messages "
        "(default: 'tribes').", show_default=False)] = None,
    consumer: Annotated[str | None, typer.Option(
        "--consumer", help="This consumer's name in the group; restart with the same name "
        "to resume its unacknowledged messages at once (default: the host name).",
        show_default=False)] = None,
    start: Annotated[str, typer.Option(
        "--start", help="Where a new group starts: earliest (every message in the "
        "stream) or latest (only new ones).")] = "earliest",
    no_sink: Annotated[bool, typer.Option(
        "--no-sink", help="Do not write the streamed events to the events table.")] = False,
    land_only: Annotated[bool, typer.Option(
        "--land-only", help="Only land the events in the events table, in a group of its "
        "own (default: '<group>-land') that receives every event: run it where the "
        "workspace's database is, and the consumers that run the rules with --no-sink "
        "(on any machine).")] = False,
    no_webhooks: Annotated[bool, typer.Option(
        "--no-webhooks", help="Do not deliver triggers to webhooks from this process.")
    ] = False,
    max_messages: Annotated[int | None, typer.Option(
        "--max-messages", min=1, help="Stop after this many messages.",
        show_default=False)] = None,
    idle_exit: Annotated[float | None, typer.Option(
        "--idle-exit", min=0.1, help="Stop after this many seconds without a message "
        "(to drain a stream and exit).", show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Consume events from a Redis stream: online state and segments, rules, triggers.

    Each message is one event: a field [bold]data[/bold] holding a JSON object, or the
    event's fields themselves (same column spellings as files: user_id, timestamp,
    event_name, ...). Events are checked as ingest checks files (bad ones end in the
    quarantine), land in the events table within half a minute, update the customer's state
    in Redis, and fire the rules of \\[realtime.rules] in tribes.toml (see tribes triggers
    list). Triggers go to the output stream and to webhooks (tribes webhooks add).
    At-least-once with idempotency: kill it any time and start it again; nothing is lost
    and no trigger fires twice. Stop with Ctrl-C (it finishes the batch and the landing).

    [bold]Examples[/bold]

      tribes -w shop stream --redis redis://127.0.0.1:6379/0 --input-stream events

      redis-cli XADD events '*' data '{"user_id":"C1","event":"add_to_cart",
      "ts":"2026-12-01T10:00:00Z"}'

      tribes -w shop stream --idle-exit 5 --json      # drain what is there, then exit
    """
    out = Output(ctx, json_out)
    if start not in ("earliest", "latest"):
        raise InputError("--start is earliest or latest", code="E_OPTION")
    if land_only and no_sink:
        raise InputError("--land-only lands the events: not with --no-sink", code="E_OPTION")
    ws = state(ctx).open()
    c = Consumer(ws, run_settings(ws), redis_url=redis, input_stream=input_stream,
                 output_stream=output_stream, group=group, consumer=consumer, start=start,
                 sink=not no_sink, webhooks=not no_webhooks, land_only=land_only)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    if land_only:
        out.print(f"Landing [bold]{c.input}[/bold] in the events table as "
                  f"{c.group}/{c.name}. Ctrl-C stops.")
    else:
        out.print(f"Consuming [bold]{c.input}[/bold] as {c.group}/{c.name}; triggers to "
                  f"[bold]{c.output}[/bold]. Ctrl-C stops.")
    try:
        stats = c.run(stop, max_messages=max_messages, idle_exit=idle_exit)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    result = stats.to_dict()
    if c.sink is not None:
        result["landed"] = {"loaded": c.sink.loaded, "duplicates": c.sink.duplicates,
                            "quarantined": c.sink.quarantined,
                            "pending_files": c.sink.pending(),
                            "adopted_files": c.sink.adopted}
    out.result(result)
    out.print(f"{stats.messages:,} messages: {stats.events:,} events, "
              f"{sum(stats.rejected.values()):,} rejected, {stats.duplicates:,} repeats; "
              f"{sum(stats.triggers.values()):,} triggers.")
    if stats.triggers:
        out.table("Triggers", ["type", "fired"], sorted(stats.triggers.items()))


def register(app: typer.Typer) -> None:
    app.command()(stream)
