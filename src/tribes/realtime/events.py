"""Streamed events: one message to one checked event, by the batch ingest's contract.

A message is a JSON object (field ``data`` of a stream entry, or the entry's own fields).
Its keys are matched to the event columns by the same spellings as file ingest
(:func:`tribes.ingest.mapping.resolve_mapping`), and it is checked in the same order
with the same reason codes (``E_NO_ID``, ``E_TS_PARSE``, ``E_AMOUNT``, ...): an event
that ingest would quarantine never reaches the rules. The authoritative check is still
the ingest of the micro-batches (``sink.py``), which writes the quarantine; a test holds
the two to the same verdicts.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tribes.config import Config
from tribes.ingest import EVENTS, NULL_MARKERS, canonical_event_type, resolve_mapping
from tribes.privacy import pseudonym

_EPOCH_MS_MIN = 1e11  # as in ingest/parse.py: above this a number is milliseconds
_EPOCH_US_MIN = 1e14
_MONEY = re.compile(r"[\s$€£¥,]")
ID_FIELDS = EVENTS.id_fields


@dataclass(slots=True)
class StreamEvent:
    """A valid event, its ids already pseudonymized."""

    event_id: str
    ts: float  # epoch seconds, UTC
    event_type: str
    ids: tuple[tuple[str, str], ...]  # (column, pseudonym) of customer/anonymous/device id
    product_id: str | None
    category: str | None
    order_id: str | None
    amount: float | None
    price: float | None
    source: str | None
    msg_id: str = ""

    @property
    def customer_id(self) -> str | None:
        return dict(self.ids).get("customer_id")


@dataclass(slots=True)
class Rejected:
    """A message ingest will quarantine (reason code as in the quarantine table)."""

    event_id: str
    reason: str
    msg_id: str = ""


@dataclass(slots=True)
class Checked:
    record: dict[str, Any] | str  # the message with event column names, as it is spooled
    result: StreamEvent | Rejected


_MARKER_MAX = max(len(m) for m in NULL_MARKERS)


def _text(v: Any) -> str | None:
    """Trimmed text; empty and null markers ("null", "n/a", ...) are None (as_text)."""
    if v is None:
        return None
    if type(v) is not str:
        v = json.dumps(v) if isinstance(v, (dict, list)) else str(v)
    s = v.strip()
    if not s or (len(s) <= _MARKER_MAX and s.lower() in NULL_MARKERS):
        return None
    return s


def _opt_text(r: dict[str, Any], name: str) -> str | None:
    v = r.get(name)
    return None if v is None else _text(v)


def _number(v: Any) -> tuple[float | None, bool]:
    """(value, bad): a finite number, or bad when present but not one."""
    if v is None or isinstance(v, bool):
        return (None, v is not None)
    if isinstance(v, (int, float)):
        f = float(v)
        return (f, False) if math.isfinite(f) else (None, True)
    s = _text(v)
    if s is None:
        return None, False
    for candidate in (s, _MONEY.sub("", s)):
        try:
            f = float(candidate)
        except ValueError:
            continue
        return (f, False) if math.isfinite(f) else (None, True)
    return None, True


# the ISO-8601 forms DuckDB reads as a timestamp (ingest's parser), no more: a date,
# optionally a time to the minute or second, an offset only after seconds, or " UTC"
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})"
                  r"(?:\.(\d+))?(Z|[+-]\d{2}(?::?\d{2})?| UTC)?)?)?$")


def _iso(s: str, tz: Any) -> float | None:
    m = _ISO.match(s)
    if m is None:
        return None
    y, mo, d, hh, mi, ss, frac, off = m.groups()
    try:
        hour = int(hh or 0)
        day = datetime(int(y), int(mo), int(d))
        if hour == 24 and int(mi or 0) == 0 and int(ss or 0) == 0 and not frac:
            hour, day = 0, day + timedelta(days=1)  # 24:00:00 is the next midnight
        micro = int((frac or "0")[:6].ljust(6, "0"))
        naive = day.replace(hour=hour, minute=int(mi or 0), second=int(ss or 0),
                            microsecond=micro)
    except ValueError:
        return None
    if off in ("Z", " UTC"):
        return naive.replace(tzinfo=UTC).timestamp()
    if off:
        sign = -1 if off[0] == "-" else 1
        digits = off[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        return (naive.replace(tzinfo=UTC) - sign * delta).timestamp()
    return naive.replace(tzinfo=tz).timestamp()


def parse_ts(v: Any, tz: Any = UTC) -> tuple[float | None, bool]:
    """(epoch seconds, bad): ISO-8601 as ingest reads it (no offset: wall-clock time in
    ``tz``, ``ingest.default_tz``) or epoch s/ms/us."""
    if v is None:
        return None, False
    number: float | None = None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        number = float(v)
    else:
        s = _text(v)
        if s is None:
            return None, False
        ts = _iso(s, tz)
        if ts is not None:
            return ts, False
        try:
            number = float(s)
        except ValueError:
            return None, True
    if not math.isfinite(number) or abs(number) >= 1e17:
        return None, True
    if abs(number) >= _EPOCH_US_MIN:
        return round(number / 1000) / 1000, False
    if abs(number) >= _EPOCH_MS_MIN:
        return round(number) / 1000, False
    return round(number * 1000) / 1000, False


class EventChecker:
    """Checks messages against the workspace's ingest settings."""

    def __init__(self, config: Config, secret: bytes, *, erased: frozenset[str] = frozenset()
                 ) -> None:
        ing = config.ingest
        self.aliases = dict(ing.event_type_aliases)
        self.whitelist = set(ing.event_types)
        self.tolerance = ing.future_tolerance.total_seconds()
        self.min_ts = datetime.fromisoformat(ing.min_ts).replace(tzinfo=UTC).timestamp()
        self.tz = UTC if ing.default_tz == "UTC" else ZoneInfo(ing.default_tz)
        # [missing.events] columns whose policy is "drop": an empty one quarantines
        self.drop_if_missing = [c for c, pol in config.missing.get("events", {}).items()
                                if pol == "drop"]
        self.pii = dict(config.privacy.pii_columns)
        self.price_field = config.realtime.rules.high_value_views.price_field
        self.secret = secret
        self.erased = erased
        self._salt = hashlib.sha256(b"stream-event-id" + secret).hexdigest()[:16]
        self._mappings: dict[frozenset[str], dict[str, str]] = {}
        self._names: dict[tuple[Any, ...], tuple[str, ...]] = {}
        self._types: dict[str, str | None] = {}
        self._pids: dict[str, str] = {}

    def _mapping(self, keys: list[str]) -> dict[str, str]:
        """source key -> event column for this set of keys (cached: few distinct sets)."""
        fk = frozenset(keys)
        m = self._mappings.get(fk)
        if m is None:
            targets = resolve_mapping(sorted(keys), EVENTS, {}, self.pii, strict=False).targets
            m = {src: tgt for tgt, src in targets.items()}
            if len(self._mappings) < 256:
                self._mappings[fk] = m
        return m

    def _pid(self, raw: str) -> str:
        p = self._pids.get(raw)
        if p is None:
            p = pseudonym(raw, self.secret)
            if len(self._pids) < 200_000:
                self._pids[raw] = p
        return p

    def event_id(self, record: dict[str, Any]) -> str:
        """The message's event_id, else a salted digest of its content (a resent message
        gets the same id)."""
        given = _text(record.get("event_id"))
        if given is not None:
            return given
        body = json.dumps(record, sort_keys=True, default=str, separators=(",", ":"))
        return "s" + hashlib.sha256((self._salt + body).encode()).hexdigest()[:31]

    def check(self, message: Any, *, now: float, msg_id: str = "") -> Checked:
        """Map and check one message."""
        if not isinstance(message, dict):
            text = message if isinstance(message, str) else json.dumps(message, default=str)
            eid = self.event_id({"_raw": text})
            return Checked(text, Rejected(eid, "E_MALFORMED", msg_id))
        record = self.record_for(message)
        eid = record["event_id"]
        return Checked(record, self._verdict(record, eid, now, msg_id))

    def record_for(self, message: dict[str, Any]) -> dict[str, Any]:
        """The message with event column names and its event_id (as it is ingested)."""
        keys = tuple(message)
        names = self._names.get(keys)  # producers send few key orders: one lookup
        if names is None:
            mapping = self._mapping(list(keys))
            names = tuple(mapping.get(str(k), str(k)) for k in keys)
            if len(self._names) < 256:
                self._names[keys] = names
        record: dict[str, Any] = dict(zip(names, message.values(), strict=True))
        record["event_id"] = self.event_id(record)
        return record

    def _verdict(self, r: dict[str, Any], eid: str, now: float, msg_id: str
                 ) -> StreamEvent | Rejected:
        found = []
        for c in ID_FIELDS:
            v = r.get(c)
            if v is not None and (v := _text(v)) is not None:
                found.append((c, self._pid(v)))
        ids = tuple(found)
        if not ids:
            return Rejected(eid, "E_NO_ID", msg_id)
        if self.erased and any(p in self.erased for _, p in ids):
            return Rejected(eid, "E_ERASED", msg_id)
        ts, bad = parse_ts(r.get("ts"), self.tz)
        if ts is None:
            return Rejected(eid, "E_TS_PARSE" if bad else "E_TS_MISSING", msg_id)
        if ts > now + self.tolerance:
            return Rejected(eid, "E_TS_FUTURE", msg_id)
        if ts < self.min_ts:
            return Rejected(eid, "E_TS_RANGE", msg_id)
        v = r.get("amount")
        amount, bad_amount = (None, False) if v is None else _number(v)
        if bad_amount:
            return Rejected(eid, "E_AMOUNT", msg_id)
        v = r.get("quantity")
        quantity, bad_q = (None, False) if v is None else _number(v)
        if bad_q or (quantity is not None and quantity != math.floor(quantity)):
            return Rejected(eid, "E_QUANTITY", msg_id)
        v = r.get("event_type")
        raw_type = None if v is None else _text(v)
        etype = None
        if raw_type is not None:
            if raw_type not in self._types:
                self._types[raw_type] = canonical_event_type(raw_type, self.aliases)
            etype = self._types[raw_type]
        if etype is None:
            return Rejected(eid, "E_NO_EVENT_TYPE", msg_id)
        if self.whitelist and etype not in self.whitelist:
            return Rejected(eid, "E_EVENT_TYPE", msg_id)
        if etype == "purchase" and (amount is None or amount < 0):
            return Rejected(eid, "E_AMOUNT", msg_id)
        for col in self.drop_if_missing:
            if _text(r.get(col)) is None:
                return Rejected(eid, "E_MISSING_VALUE", msg_id)
        v = r.get(self.price_field)
        price = None if v is None else _number(v)[0]
        return StreamEvent(
            event_id=eid, ts=ts, event_type=etype, ids=ids,
            product_id=_opt_text(r, "product_id"), category=_opt_text(r, "category"),
            order_id=_opt_text(r, "order_id"), amount=amount,
            price=price if price is not None else amount, source=_opt_text(r, "source"),
            msg_id=msg_id)
