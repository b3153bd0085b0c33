"""The audit log: append-only, hash-chained records of every change and every data access.

One JSON object per line in ``<workspace>/audit.log``. Each record holds who (``actor``),
what (``action``, ``target``), when (``at``), which rows (``rows``: a count and, for
customer-level work, pseudonymized keys only) and ``prev``, the ``hash`` of the record
before it. ``hash`` is an HMAC-SHA256 of the record under a key derived from the
workspace secret, so an edited, inserted or deleted record breaks the chain, and nobody
without the key can forge a consistent one. ``audit.head`` holds the number and hash of
the last record (also keyed), which catches records cut from the end; the workspace
database keeps an :class:`Anchor` (a recent record's number and hash, keyed) set by
every command that writes there, which catches the log emptied or replaced whole.

The actor is taken from a context variable: the CLI sets ``cli:<user>``, the service
``key:<name>`` per request, so the functions that change data record themselves once,
whoever calls them.
"""

from __future__ import annotations

import contextlib
import contextvars
import getpass
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tribes.errors import TribesError
from tribes.privacy.locking import locked
from tribes.workspace import Workspace

LOG_FILE = "audit.log"
HEAD_FILE = "audit.head"
GENESIS = "0" * 64
READ_PREFIX = "read."  # data-access records; every other action is a change
MAX_ROWS_LISTED = 1000  # beyond this a record keeps the count of rows only

_actor: contextvars.ContextVar[str] = contextvars.ContextVar("tribes_audit_actor",
                                                            default="")


class AuditError(TribesError):
    """The audit log cannot be written or read."""

    code = "E_AUDIT"


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}"


def current_actor() -> str:
    return _actor.get() or default_actor()


def set_actor(actor: str) -> None:
    """Attribute what the current context records from now on to ``actor``."""
    _actor.set(actor)


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Attribute every record written inside the block to ``actor``."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def _audit_key(secret: bytes) -> bytes:
    return hmac.new(secret, b"tribes-audit-log", hashlib.sha256).digest()


def _canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


def _mac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def _head_mac(key: bytes, seq: int, last: str) -> str:
    return _mac(key, f"head:{seq}:{last}".encode())


def _read_head(workspace: Path) -> tuple[int, str]:
    seq, last, _ = _read_head_full(workspace)
    return seq, last


def _read_head_full(workspace: Path) -> tuple[int, str, int]:
    """Number and hash of the last record, and the number of the last change (a record
    that is not a read)."""
    seq, last, change, _ = _read_head_all(workspace)
    return seq, last, change


def _read_head_all(workspace: Path) -> tuple[int, str, int, int]:
    """... and the number of the last change that is not a load of events."""
    head = workspace / HEAD_FILE
    if not head.exists():
        return 0, GENESIS, 0, 0
    data = json.loads(head.read_text(encoding="utf-8"))
    change = int(data.get("change", data["seq"]))
    return int(data["seq"]), str(data["hash"]), change, int(data.get("derived", change))


def _changes_derived(e: AuditEntry) -> bool:
    """Whether a change may alter data derived from events (identities, segments,
    consents, ...): anything but a load of events, which only adds raw events."""
    return not (e.action == "ingest" and e.detail.get("kind") == "events")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w",
              encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def record(workspace: Path, secret: bytes, action: str, *, target: str = "",
           rows: int | None = None, keys: list[str] | None = None,
           detail: dict[str, Any] | None = None, actor: str | None = None) -> dict[str, Any]:
    """Append one record; returns it.

    Parameters
    ----------
    workspace, secret
        The workspace directory and its secret (which keys the chain).
    action
        What happened, dotted (``ingest``, ``segment``, ``versions.activate``, ``forget``,
        ``read.customer``, ...).
    target
        What it happened to (a table, version, batch or file).
    rows
        How many rows were read or changed.
    keys
        The pseudonymized customer keys concerned (kept when at most
        :data:`MAX_ROWS_LISTED`); never a raw identifier.
    detail
        Anything else worth keeping (options, counts).
    """
    entry = AuditEntry(action=action, target=target, rows=rows, keys=keys, detail=detail or {},
                       actor=actor or current_actor())
    return record_many(workspace, secret, [entry])[0]


@dataclass(frozen=True)
class AuditEntry:
    """One record to append (see :func:`record`); ``at`` defaults to when it is written."""

    action: str
    actor: str
    target: str = ""
    rows: int | None = None
    keys: list[str] | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None


def audit(ws: Workspace, action: str, **what: Any) -> dict[str, Any]:
    """Append a record to the workspace's audit log (:func:`record` with its secret)."""
    return record(ws.path, ws.secret(), action, **what)


def record_many(workspace: Path, secret: bytes, entries: list[AuditEntry]) -> list[dict[str, Any]]:
    """Append several records under one lock and one sync to disk (the service batches
    its data-access records this way)."""
    if not entries:
        return []
    key = _audit_key(secret)
    log_path = workspace / LOG_FILE
    out: list[dict[str, Any]] = []
    with locked(log_path.with_suffix(".lock")):
        seq, prev, change, derived = _read_head_all(workspace)
        lines = []
        for e in entries:
            seq += 1
            if not e.action.startswith(READ_PREFIX):
                change = seq
                if _changes_derived(e):
                    derived = seq
            at = e.at or datetime.now(UTC)
            rec: dict[str, Any] = {
                "seq": seq,
                "at": at.isoformat(timespec="microseconds"),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "rows": e.rows,
                "keys": e.keys if e.keys is not None and len(e.keys) <= MAX_ROWS_LISTED
                else None,
                "detail": e.detail,
                "prev": prev,
            }
            rec["hash"] = _mac(key, _canonical(rec))
            prev = rec["hash"]
            lines.append(json.dumps(rec, sort_keys=True, ensure_ascii=False, default=str))
            out.append(rec)
        try:
            with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a",
                      encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            _write_atomic(workspace / HEAD_FILE, json.dumps(
                {"seq": seq, "hash": prev, "mac": _head_mac(key, seq, prev),
                 "change": change, "derived": derived}) + "\n")
        except OSError as exc:
            raise AuditError(f"cannot append to the audit log {LOG_FILE}: {exc}") from None
    return out


def last_change(workspace: Path) -> int:
    """The number of the last record of a change (reads aside): it moves whenever data
    changes, so caches of workspace data can watch it."""
    try:
        return _read_head_full(workspace)[2]
    except (OSError, ValueError, KeyError):
        return -1


def last_derived_change(workspace: Path) -> int:
    """The number of the last change other than a load of events: caches of identities,
    segments, personas, consents or erasures watch this one (new events alone change
    none of them until prep and segment run)."""
    try:
        return _read_head_all(workspace)[3]
    except (OSError, ValueError, KeyError):
        return -1


def read_audit(workspace: Path) -> list[dict[str, Any]]:
    """Every record, oldest first (unchecked; see :func:`verify`)."""
    path = workspace / LOG_FILE
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"seq": None, "_line": n, "_unreadable": line[:200]})
    return out


@dataclass(frozen=True)
class Anchor:
    """The number and hash of a record of the log, kept outside it (in the workspace
    database) and keyed like it: the log must hold that record, so emptying, replacing
    or cutting the log (its head file with it) is seen."""

    seq: int
    hash: str
    mac: str


def _anchor_mac(key: bytes, seq: int, last: str) -> str:
    return _mac(key, f"anchor:{seq}:{last}".encode())


def current_anchor(workspace: Path, secret: bytes) -> Anchor:
    """The anchor of the last record the log holds now (as its head file says)."""
    seq, last = _read_head(workspace)
    return Anchor(seq, last, _anchor_mac(_audit_key(secret), seq, last))


@dataclass(frozen=True)
class Verification:
    ok: bool
    records: int
    problems: list[str]
    anchor: str = "not checked"  # what the check against the database's anchor found

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "problems": self.problems,
                "anchor": self.anchor}


def verify_audit(workspace: Path, secret: bytes, *, anchor: Anchor | None = None,
                 anchored: bool = False) -> Verification:
    """Check the chain: every record's HMAC, its link to the one before, numbering, the
    head, and (``anchored``: the database was read) the database's ``anchor``: the log
    must hold the record it names. Returns every problem found (none: intact)."""
    key = _audit_key(secret)
    records = read_audit(workspace)
    problems: list[str] = []
    prev, expected = GENESIS, 1
    for i, rec in enumerate(records, start=1):
        if "_unreadable" in rec:
            problems.append(f"line {rec['_line']}: not a JSON record")
            continue
        seq = rec.get("seq")
        if seq != expected:
            problems.append(f"line {i}: record {seq} where {expected} was expected "
                            "(records deleted, inserted or reordered)")
        if not hmac.compare_digest(str(rec.get("hash", "")), _mac(key, _canonical(rec))):
            problems.append(f"line {i}: record {seq} was altered (its hash does not match)")
        if rec.get("prev") != prev:
            problems.append(f"line {i}: record {seq} does not follow the record before it")
        prev = str(rec.get("hash", ""))
        expected = (seq if isinstance(seq, int) else expected) + 1
    head_path = workspace / HEAD_FILE
    if head_path.exists():
        try:
            head = json.loads(head_path.read_text(encoding="utf-8"))
            seq, last = int(head["seq"]), str(head["hash"])
            if not hmac.compare_digest(str(head.get("mac", "")), _head_mac(key, seq, last)):
                problems.append(f"{HEAD_FILE} was altered")
            elif seq != len(records) or last != prev:
                problems.append(f"the log ends at record {len(records)} but {HEAD_FILE} "
                                f"says {seq}: records were cut from the end")
        except (ValueError, KeyError):
            problems.append(f"{HEAD_FILE} is unreadable")
    elif records:
        problems.append(f"{HEAD_FILE} is missing")
    checked = "not checked (the database could not be read)"
    if anchored:
        checked = _check_anchor(key, anchor, records, problems)
    return Verification(ok=not problems, records=len(records), problems=problems,
                        anchor=checked)


def _check_anchor(key: bytes, anchor: Anchor | None, records: list[dict[str, Any]],
                  problems: list[str]) -> str:
    if anchor is None:
        problems.append("the database holds no anchor of the log (it was removed)")
        return "missing"
    if not hmac.compare_digest(anchor.mac, _anchor_mac(key, anchor.seq, anchor.hash)):
        problems.append("the database's anchor of the log was altered")
        return "altered"
    if anchor.seq == 0:
        return "record 0 (the log was empty when the database last wrote)"
    if anchor.seq > len(records):
        problems.append(f"the database anchors record {anchor.seq} but the log holds "
                        f"{len(records)}: the log was emptied, replaced or cut")
        return "broken"
    if str(records[anchor.seq - 1].get("hash")) != anchor.hash:
        problems.append(f"record {anchor.seq} is not the one the database anchored: the "
                        "log was replaced")
        return "broken"
    return f"record {anchor.seq} as the database anchored it"


def select_records(records: list[dict[str, Any]], *, since: datetime | None = None,
                   action: str | None = None, actor: str | None = None,
                   key: str | None = None) -> list[dict[str, Any]]:
    """Records at or after ``since`` whose action starts with ``action``, by ``actor``,
    concerning customer ``key``."""
    out = []
    for rec in records:
        if "_unreadable" in rec:
            continue
        if since is not None and datetime.fromisoformat(rec["at"]) < since:
            continue
        if action and not str(rec.get("action", "")).startswith(action):
            continue
        if actor and rec.get("actor") != actor:
            continue
        if key and key not in (rec.get("keys") or []) and rec.get("target") != key:
            continue
        out.append(rec)
    return out
