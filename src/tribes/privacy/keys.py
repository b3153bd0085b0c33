"""API keys of the service: roles, expiry, revocation; stored hashed, shown once.

A key reads ``trb_<id>_<secret>``. ``keys.json`` in the workspace (mode 0600) keeps, per
key, its id, name, role, dates and the SHA-256 of the secret: never the secret itself.
The secret is 256 random bits, so a plain hash cannot be reversed by guessing.

Roles (DESIGN §6), each including the ones before it:

* ``viewer``: aggregates only (segment sizes, personas, KPIs, versions);
* ``analyst``: customer-level reads and runs (profiles, segment lookups, segmentation);
* ``admin``: ingest, erasure, activation and rollback, exports, keys.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tribes.errors import InputError, TribesError
from tribes.privacy.locking import locked

KEYS_FILE = "keys.json"
ROLES = ("viewer", "analyst", "admin")
PREFIX = "trb"
_KEY_RE = re.compile(rf"^{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")


class AuthError(TribesError):
    """A request's API key is missing, unknown, revoked, expired or lacks the role."""

    code = "E_AUTH"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    role: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    secret_sha256: str

    def allows(self, role: str) -> bool:
        """Whether this key's role includes ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def status(self, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        if self.revoked_at:
            return "revoked"
        if self.expires_at and datetime.fromisoformat(self.expires_at) <= now:
            return "expired"
        return "active"

    def public(self) -> dict[str, Any]:
        """Everything but the hash."""
        d = asdict(self)
        d.pop("secret_sha256")
        d["status"] = self.status()
        return d


def _path(workspace: Path) -> Path:
    return workspace / KEYS_FILE


def load_keys(workspace: Path) -> list[ApiKey]:
    path = _path(workspace)
    if not path.exists():
        return []
    return [ApiKey(**k) for k in json.loads(path.read_text(encoding="utf-8"))["keys"]]


def _save(workspace: Path, keys: list[ApiKey]) -> None:
    path = _path(workspace)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"keys": [asdict(k) for k in keys]}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    os.chmod(path, 0o600)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _to_second_up(when: datetime) -> str:
    """The expiry stored to the second, never earlier than the time asked for."""
    if when.microsecond:
        when = when.replace(microsecond=0) + timedelta(seconds=1)
    return when.isoformat(timespec="seconds")


def create_key(workspace: Path, *, name: str, role: str,
               expires_at: datetime | None = None) -> tuple[str, ApiKey]:
    """A new key; returns the full key text (shown once, never stored) and its record."""
    if role not in ROLES:
        raise InputError(f"unknown role '{role}'; use one of {', '.join(ROLES)}",
                         code="E_ROLE")
    name = name.strip()
    if not name or len(name) > 64:
        raise InputError("a key needs a name of 1 to 64 characters (who uses it: "
                         "--name crm-sync)", code="E_KEY_NAME")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InputError("the expiry date is in the past", code="E_DATE")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    rec = ApiKey(key_id=key_id, name=name, role=role,
                 created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                 expires_at=_to_second_up(expires_at) if expires_at else None,
                 revoked_at=None, secret_sha256=_digest(secret))
    with locked(workspace / (KEYS_FILE + ".lock")):
        keys = load_keys(workspace)
        if any(k.name == name and k.status() == "active" for k in keys):
            raise InputError(f"an active key named '{name}' exists; revoke it first or "
                             "choose another name", code="E_KEY_NAME")
        _save(workspace, [*keys, rec])
    return f"{PREFIX}_{key_id}_{secret}", rec


def revoke_key(workspace: Path, ident: str) -> ApiKey:
    """Revoke the key with id (or name) ``ident``; a revoked key never works again."""
    with locked(workspace / (KEYS_FILE + ".lock")):
        keys = load_keys(workspace)
        hits = [k for k in keys if (k.key_id == ident or k.name == ident) and not k.revoked_at]
        if not hits:
            raise InputError(f"no active key with id or name '{ident}' (see: tribes keys "
                             "list)", code="E_KEY")
        if len(hits) > 1:
            raise InputError(f"several keys match '{ident}'; give the key id",
                             code="E_KEY")
        done = ApiKey(**{**asdict(hits[0]),
                         "revoked_at": datetime.now(UTC).isoformat(timespec="seconds")})
        _save(workspace, [done if k.key_id == done.key_id else k for k in keys])
    return done


def authenticate(keys: list[ApiKey], presented: str | None,
                 now: datetime | None = None) -> ApiKey:
    """The active key matching the presented text, else :class:`AuthError`."""
    m = _KEY_RE.match((presented or "").strip())
    if not m:
        raise AuthError("missing or malformed API key; send 'Authorization: Bearer trb_…' "
                        "(create one with: tribes keys create)", code="E_AUTH")
    key_id, secret = m.groups()
    digest = _digest(secret)
    for k in keys:
        if k.key_id == key_id and hmac.compare_digest(k.secret_sha256, digest):
            status = k.status(now)
            if status != "active":
                raise AuthError(f"this API key is {status}", code="E_AUTH")
            return k
    raise AuthError("unknown API key", code="E_AUTH")
