"""Funnels against a brute force written from the rules (docs/funnels.md), not from the
implementation: every increasing tuple of a unit's events is tried, and the longest
valid one (the smallest, position by position) is the unit's."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta
from itertools import combinations, pairwise, permutations
from typing import Any, NamedTuple

import pytest

from tests.conftest import NOW
from tests.stages import context, ingest
from tribes.analysis.funnels import NONE, NOT_REACHED, funnel, human_seconds
from tribes.ingest import IngestOptions
from tribes.store.db import init_workspace, open_engine
from tribes.workspace import Workspace

T0 = datetime(2026, 3, 1, tzinfo=UTC)
GAPS = [0, 0, 30, 600, 600, 7200, 2 * 86400]  # seconds between a customer's events


class Ev(NamedTuple):
    ts: datetime
    event_id: str
    type: str
    device: str | None
    amount: float | None = None


def _data(n: int = 400, seed: int = 3) -> dict[str, list[Ev]]:
    rnd = random.Random(seed)
    out: dict[str, list[Ev]] = {}
    for c in range(n):
        t, evs = T0 + timedelta(seconds=rnd.randrange(86400)), []
        for i in range(rnd.randrange(1, 9)):
            t += timedelta(seconds=rnd.choice(GAPS))
            # event ids in the order of the events: a tie on ts keeps this order
            evs.append(Ev(t, f"e{c:04d}-{i:02d}", rnd.choice("aabbc"),
                          rnd.choice(["d1", "d2", None]), rnd.choice([None, 5.0, 50.0, 500.0])))
        out[f"u{c}"] = evs
    return out


DATA = _data()


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("funnels")
    ws = init_workspace(root / "ws")
    lines = ["event_id,ts,user_id,event,device,amount"]
    for user, evs in DATA.items():
        lines += [f"{e.event_id},{e.ts.isoformat()},{user},{e.type},{e.device or ''},"
                  f"{'' if e.amount is None else e.amount}" for e in evs]
    path = root / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    s = ingest(ws, [str(path)], IngestOptions(source="web", now=NOW))
    assert s.loaded == sum(map(len, DATA.values()))
    from tribes.prep.prep_stage import run_prep

    with open_engine(ws) as engine:
        run_prep(context(ws, engine))
    return ws


def _units(per: str) -> list[list[Ev]]:
    """Each unit's events in the event order; sessions split at gaps over 30 minutes."""
    units = []
    for evs in DATA.values():
        evs = sorted(evs, key=lambda e: (e.ts, e.event_id))
        if per == "customer":
            units.append(evs)
            continue
        current = [evs[0]]
        for a, b in pairwise(evs):
            if (b.ts - a.ts) > timedelta(minutes=30):
                units.append(current)
                current = []
            current.append(b)
        units.append(current)
    return units


def matches(e: Ev, step: str) -> bool:
    """A step as written: ``TYPE`` or ``TYPE where FIELD OP VALUE`` (device =/!=, amount
    >); a missing value is not equal to anything, and is not greater."""
    kind, _, cond = step.partition(" where ")
    if e.type != kind:
        return False
    if not cond:
        return True
    field, op, value = cond.split()
    if field == "device":
        return (e.device == value) if op == "=" else (e.device != value)
    return e.amount is not None and e.amount > float(value)


def _attempt(evs: list[Ev], i: int, steps: list[str], window: timedelta,
             ordering: str) -> tuple[int, ...]:
    """The longest valid tuple of positions starting at ``i`` (the smallest of those)."""
    end = evs[i].ts + window
    later = range(i + 1, len(evs))
    for depth in range(len(steps), 1, -1):
        options = ([tuple(range(i + 1, i + depth))] if ordering == "strict"
                   else combinations(later, depth - 1))
        for rest in sorted(options):
            if len(rest) != depth - 1 or (rest and rest[-1] >= len(evs)):
                continue
            if all(matches(evs[p], steps[k + 1]) and evs[p].ts <= end
                   for k, p in enumerate(rest)):
                return (i, *rest)
    return (i,)


def _leave(evs: list[Ev], t: tuple[int, ...], exclude: list[tuple[str, int, int]]
           ) -> tuple[int, ...]:
    """The tuple cut at the first step m (i <= m < j) with an excluded event after the
    event of step m and before that of step m + 1."""
    for m in range(1, len(t)):
        for x, i, j in exclude:
            if i <= m < j and any(matches(evs[p], x) for p in range(t[m - 1] + 1, t[m])):
                return t[:m]
    return t


def _unordered(evs: list[Ev], i: int, steps: list[str], window: timedelta
               ) -> list[datetime]:
    """For the attempt starting at event ``i``: per step k reached, the earliest time by
    which steps 1..k have each had their own event (every assignment tried)."""
    pool = [p for p in range(i, len(evs)) if evs[p].ts <= evs[i].ts + window]
    times: list[datetime] = []
    for k in range(1, len(steps) + 1):
        best = None
        for chosen in permutations(pool, k):
            if all(matches(evs[p], steps[m]) for m, p in enumerate(chosen)):
                when = max(evs[p].ts for p in chosen)
                best = when if best is None or when < best else best
        if best is None:
            break
        times.append(best)
    return times


def reference(steps: list[str], window: timedelta, per: str, ordering: str, start: str,
              attribution: str | None, exclude: list[tuple[str, int, int]] | None = None
              ) -> dict[str, tuple[list[int], list[float | None]]]:
    """Per group: units reaching each step, and the median seconds from the step before."""
    counts: dict[str, list[int]] = {}
    gaps: dict[str, list[list[float]]] = {}
    for evs in _units(per):
        if ordering == "unordered":
            starts = [i for i, e in enumerate(evs) if any(matches(e, s) for s in steps)]
            if not starts:
                continue
            attempts = [(_unordered(evs, i, steps, window), i)
                        for i in (starts[:1] if start == "first" else starts)]
            times, _ = min(attempts, key=lambda a: (
                -len(a[0]), (a[0][-1] - evs[a[1]].ts) if a[0] else timedelta(0), a[1]))
            c = counts.setdefault("all", [0] * len(steps))
            gs = gaps.setdefault("all", [[] for _ in steps])
            for k in range(len(times)):
                c[k] += 1
                if k:
                    gs[k].append((times[k] - times[k - 1]).total_seconds())
            continue
        starts = [i for i, e in enumerate(evs) if matches(e, steps[0])]
        if not starts:
            continue
        if start == "first":
            starts = starts[:1]
        tuples = [_leave(evs, _attempt(evs, i, steps, window, ordering), exclude or [])
                  for i in starts]
        best = min(tuples, key=lambda t: (-len(t), evs[t[-1]].ts - evs[t[0]].ts, t[0]))
        if attribution is None:
            groups = {"all"}
        elif attribution.startswith("step:"):
            k = int(attribution[5:]) - 1
            groups = {NOT_REACHED if k >= len(best) else evs[best[k]].device or NONE}
        elif attribution == "last-touch":
            groups = {next((evs[p].device for p in reversed(best) if evs[p].device), NONE)}
        elif attribution == "first-touch":
            groups = {next((e.device for e in evs if e.device), None) or NONE}
        else:  # all
            groups = {evs[p].device for p in best if evs[p].device} or {NONE}
        for g in groups:
            c = counts.setdefault(g, [0] * len(steps))
            gs = gaps.setdefault(g, [[] for _ in steps])
            for k in range(len(best)):
                c[k] += 1
                if k:
                    gs[k].append((evs[best[k]].ts - evs[best[k - 1]].ts).total_seconds())
    return {g: (counts[g], [statistics.median(x) if x else None for x in gaps[g]])
            for g in counts}


def _run(ws: Workspace, steps: list[str], **kw: Any) -> dict[str, Any]:
    with open_engine(ws, read_only=True) as engine:
        return funnel(engine, steps, **kw)


def _got(res: dict[str, Any]) -> dict[str, tuple[list[int], list[float | None]]]:
    return {g["group"]: ([s["count"] for s in g["steps"]],
                         [s["median_seconds_from_previous"] for s in g["steps"]])
            for g in res["groups"]}


STEP_LISTS = [["a", "a"], ["a", "a", "a"], ["a", "b"], ["a", "b", "a"], ["b", "a", "b", "c"],
              ["c", "c"], ["a where device = d1", "b"],
              ["a", "b where amount > 40", "a where device != d1"]]


@pytest.mark.parametrize("steps", STEP_LISTS, ids=lambda s: ",".join(s))
@pytest.mark.parametrize("per", ["customer", "session"])
def test_funnels_match_the_brute_force(ws: Workspace, steps: list[str], per: str) -> None:
    for window in (timedelta(hours=1), timedelta(days=3)):
        counts = {}
        for ordering in ("loose", "strict"):
            for start in ("first", "any"):
                res = _run(ws, steps, window=window, unit=per, ordering=ordering,
                           start=start)
                want = reference(steps, window, per, ordering, start, None)
                got = _got(res)
                assert got["all"][0] == want["all"][0], (ordering, start, window)
                for a, b in zip(got["all"][1], want["all"][1], strict=True):
                    assert a == pytest.approx(b) if b is not None else a is None
                counts[ordering, start] = got["all"][0]
        for start in ("first", "any"):  # strict never counts more than loose
            assert all(s <= lo for s, lo in zip(counts["strict", start],
                                                counts["loose", start], strict=True))
        # every attempt is tried: never fewer conversions than from the first alone
        assert all(a >= f for a, f in zip(counts["loose", "any"], counts["loose", "first"],
                                          strict=True))


def test_a_repeated_step_needs_another_event(ws: Workspace) -> None:
    res = _got(_run(ws, ["a", "a"], window=timedelta(days=30)))["all"]
    two = sum(1 for evs in DATA.values() if sum(e.type == "a" for e in evs) >= 2)
    one = sum(1 for evs in DATA.values() if any(e.type == "a" for e in evs))
    assert res[0] == [one, two] and two < one
    assert res[1][1] is not None and res[1][1] >= 0


@pytest.mark.parametrize("attribution", ["step:1", "step:2", "first-touch", "last-touch",
                                         "all"])
def test_breakdown_attribution(ws: Workspace, attribution: str) -> None:
    steps, window = ["a", "b"], timedelta(days=3)
    res = _run(ws, steps, window=window, by="device", attribution=attribution)
    assert res["attribution"] == attribution
    want = reference(steps, window, "customer", "loose", "first", attribution)
    got = _got(res)
    assert {g: c for g, (c, _) in got.items()} == {g: c for g, (c, _) in want.items()}


def test_bad_options_are_refused(ws: Workspace) -> None:
    from tribes.errors import InputError

    for kw, code in (({"start": "every"}, "E_START"), ({"ordering": "any"}, "E_ORDERING"),
                     ({"by": "device", "attribution": "step:3"}, "E_ATTRIBUTION"),
                     ({"by": "colour"}, "E_BY"), ({"unit": "visit"}, "E_UNIT")):
        with pytest.raises(InputError) as err:
            _run(ws, ["a", "b"], window=timedelta(days=1), **kw)
        assert err.value.code == code
    # a step that is not an event type of the data is refused with the closest one
    with pytest.raises(InputError, match="did you mean 'b'"):
        _run(ws, ["a", "bb"], window=timedelta(days=1))


@pytest.mark.parametrize(("seconds", "text"), [
    (0.4, "0.4 s"), (5, "5 s"), (12.4, "12 s"), (245, "4 min 5 s"), (3600, "1 h"),
    (11520, "3 h 12 min"), (1_987_200 + 4 * 3600, "23 d 4 h"), (86400 * 2 + 59, "2 d")])
def test_durations_read_as_a_person_would_say_them(seconds: float, text: str) -> None:
    assert human_seconds(seconds) == text


def test_the_worked_example_of_the_docs(tmp_path) -> None:
    """docs/funnels.md: one customer's seven events, and what each rule makes of them."""
    rows = [("10:00", "product_view", "mobile"), ("10:05", "add_to_cart", "mobile"),
            ("10:06", "page_view", "mobile"), ("10:20", "purchase", ""),
            ("11:00", "product_view", "desktop"), ("11:01", "add_to_cart", "desktop"),
            ("11:02", "purchase", "desktop")]
    ws = init_workspace(tmp_path / "ws")
    path = tmp_path / "a.csv"
    path.write_text("event_id,ts,user_id,event,device,amount\n" + "".join(
        f"x{i},2026-03-02T{t}:00Z,A,{e},{d},{'9.5' if e == 'purchase' else ''}\n"
        for i, (t, e, d) in enumerate(rows)))
    ingest(ws, [str(path)], IngestOptions(source="web", now=NOW))
    from tribes.prep.prep_stage import run_prep

    with open_engine(ws) as engine:
        run_prep(context(ws, engine))
    three = ["product_view", "add_to_cart", "purchase"]

    def counts(steps: list[str], window: str = "1h", **kw: Any) -> Any:
        from tribes.config import parse_duration

        res = _run(ws, steps, window=parse_duration(window), **kw)
        return {g["group"]: [s["count"] for s in g["steps"]] for g in res["groups"]}

    loose = _run(ws, three, window=timedelta(hours=1))["groups"][0]["steps"]
    assert [s["count"] for s in loose] == [1, 1, 1]
    assert [s["median_from_previous"] for s in loose] == [None, "5 min", "15 min"]
    assert counts(three, ordering="strict") == {"all": [1, 1, 0]}
    assert counts(three, ordering="strict", start="any") == {"all": [1, 1, 1]}
    assert counts(["purchase", "purchase"]) == {"all": [1, 1]}
    assert counts(["purchase", "purchase"], "30m") == {"all": [1, 0]}
    for attribution, group in (("step:1", "mobile"), ("step:3", NONE),
                               ("first-touch", "mobile"), ("last-touch", "mobile"),
                               ("all", "mobile")):
        assert counts(three, by="device", attribution=attribution) == {group: [1, 1, 1]}
    desktop = _run(ws, ["product_view where device = desktop", "purchase"],
                   window=timedelta(hours=1))["groups"][0]["steps"]
    assert [s["count"] for s in desktop] == [1, 1]
    assert desktop[1]["median_from_previous"] == "2 min"
    out = ["page_view between 2 and 3"]
    assert counts(three, exclude=out) == {"all": [1, 1, 0]}
    assert counts(three, exclude=out, start="any") == {"all": [1, 1, 1]}
    any_order = _run(ws, ["purchase", "add_to_cart"], window=timedelta(minutes=30),
                     ordering="unordered")["groups"][0]["steps"]
    assert [s["count"] for s in any_order] == [1, 1]
    assert any_order[1]["median_from_previous"] == "0 s"
    assert counts(["purchase", "add_to_cart"], "30m") == {"all": [1, 0]}


EXCLUSIONS = [(["a", "b"], ["c"]), (["a", "b", "a"], ["c between 2 and 3"]),
              (["a", "a", "b"], ["b between 1 and 2", "c where amount > 40"]),
              (["a where device = d1", "b", "c"], ["a between 1 and 3"])]


@pytest.mark.parametrize(("steps", "exclude"), EXCLUSIONS,
                         ids=lambda v: ",".join(v))
def test_exclusion_steps_match_the_brute_force(ws: Workspace, steps: list[str],
                                               exclude: list[str]) -> None:
    written = []
    for x in exclude:
        body, _, between = x.partition(" between ")
        i, _, j = between.partition(" and ")
        written.append((body, int(i or 1), int(j or len(steps))))
    for start, window in (("first", timedelta(days=3)), ("any", timedelta(hours=1))):
        res = _run(ws, steps, window=window, start=start, exclude=exclude)
        want = reference(steps, window, "customer", "loose", start, None, written)
        got = _got(res)
        assert got["all"][0] == want["all"][0], (start, window)
        for a, b in zip(got["all"][1], want["all"][1], strict=True):
            assert a == pytest.approx(b) if b is not None else a is None
        plain = _got(_run(ws, steps, window=window, start=start))["all"][0]
        assert all(x <= p for x, p in zip(got["all"][0], plain, strict=True))
    assert want != reference(steps, window, "customer", "loose", start, None)


UNORDERED = [["a", "b"], ["a", "b", "a"], ["b", "c", "a"], ["c", "a", "a"],
             ["a where device = d1", "b where amount > 40"]]


@pytest.mark.parametrize("steps", UNORDERED, ids=lambda s: ",".join(s))
def test_unordered_funnels_match_the_brute_force(ws: Workspace, steps: list[str]) -> None:
    for start, window in (("first", timedelta(days=3)), ("any", timedelta(hours=1))):
        res = _run(ws, steps, window=window, ordering="unordered", start=start)
        want = reference(steps, window, "customer", "unordered", start, None)
        got = _got(res)
        assert got["all"][0] == want["all"][0], (start, window)
        for a, b in zip(got["all"][1], want["all"][1], strict=True):
            assert a == pytest.approx(b) if b is not None else a is None
        if start == "any":  # in any order, never fewer than in the given order
            ordered = _got(_run(ws, steps, window=window, start="any"))["all"][0]
            assert all(u >= o for u, o in zip(got["all"][0], ordered, strict=True))


def test_step_filters_and_unordered_refusals(ws: Workspace, cli) -> None:
    from tribes.errors import InputError

    for steps, kw, code in (
            (["a where colour = red", "b"], {}, "E_STEPS"),
            (["a where device = d1", "a"], {"ordering": "unordered"}, "E_STEPS"),
            (["a", "b"], {"ordering": "unordered", "exclude": ["c"]}, "E_EXCLUDE"),
            (["a", "b"], {"exclude": ["c between 2 and 2"]}, "E_EXCLUDE")):
        with pytest.raises(InputError) as err:
            _run(ws, steps, window=timedelta(days=1), **kw)
        assert err.value.code == code, steps
    r = cli("--workspace", ws.path, "journeys", "funnel", "--steps",
            "a where device = 'd1',b where amount > 40", "--exclude", "c between 1 and 2",
            "--window", "3d", "--json")
    assert r.code == 0, r.err
    res = r.json()
    assert res["steps"] == ["a where device = 'd1'", "b where amount > 40"]
    assert res["exclusions"] == ["c where amount > 40 between 1 and 2"] or res[
        "exclusions"] == ["c between 1 and 2"]
    want = reference(["a where device = d1", "b where amount > 40"], timedelta(days=3),
                     "customer", "loose", "first", None, [("c", 1, 2)])
    assert [s["count"] for s in res["groups"][0]["steps"]] == want["all"][0]
