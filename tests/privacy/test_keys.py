"""API keys from the CLI: shown once, stored hashed, revocable, with expiry and roles."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from tribes.privacy import audit_log
from tribes.privacy.keys import KEYS_FILE, AuthError, authenticate, load_keys
from tribes.workspace import Workspace


def test_keys_cli_create_list_revoke(ws: Workspace, cli) -> None:
    w = ("--workspace", ws.path)
    made = cli(*w, "keys", "create", "--role", "analyst", "--name", "crm-sync", "--expires",
               "90d", "--json")
    assert made.code == 0, made.err
    body = made.json()
    key = body["key"]
    assert key.startswith("trb_") and body["role"] == "analyst" and body["status"] == "active"
    expires = datetime.fromisoformat(body["expires_at"])
    # stored to the second, rounded up (never before the time asked for)
    assert timedelta(days=89) < expires - datetime.now(UTC) <= timedelta(days=90, seconds=1)
    stored = (ws.path / KEYS_FILE).read_text(encoding="utf-8")
    secret = key[len("trb_") + 12 + 1:]  # trb_<12-hex id>_<secret>; the secret may hold "_"
    assert secret not in stored and key not in stored  # only a hash is kept
    assert stat.S_IMODE(os.stat(ws.path / KEYS_FILE).st_mode) == 0o600
    listed = cli(*w, "keys", "list", "--json").json()["keys"]
    assert [k["name"] for k in listed] == ["crm-sync"] and "secret_sha256" not in listed[0]
    assert authenticate(load_keys(ws.path), key).role == "analyst"

    assert cli(*w, "keys", "create", "--role", "analyst", "--name", "crm-sync").code != 0
    assert cli(*w, "keys", "create", "--role", "root", "--name", "x").code != 0
    assert cli(*w, "keys", "revoke", "crm-sync").code == 0
    with pytest.raises(AuthError):
        authenticate(load_keys(ws.path), key)
    assert cli(*w, "keys", "list", "--json").json()["keys"][0]["status"] == "revoked"
    assert cli(*w, "keys", "revoke", "crm-sync").code != 0  # nothing active by that name
    actions = [r["action"] for r in audit_log.read_audit(ws.path)]
    assert actions[-2:] == ["keys.create", "keys.revoke"]
    assert key not in (ws.path / audit_log.LOG_FILE).read_text(encoding="utf-8")


def test_roles_include_the_ones_below(ws: Workspace) -> None:
    from tribes.privacy.keys import create_key

    _, admin = create_key(ws.path, name="a", role="admin")
    _, viewer = create_key(ws.path, name="v", role="viewer")
    assert admin.allows("viewer") and admin.allows("analyst") and admin.allows("admin")
    assert viewer.allows("viewer") and not viewer.allows("analyst")
