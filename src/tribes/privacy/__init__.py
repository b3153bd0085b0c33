"""Privacy by default: pseudonymized identifiers, PII handling and consent."""

from tribes.privacy.audit_log import (
    Anchor,
    AuditEntry,
    acting_as,
    audit,
    current_actor,
    current_anchor,
    last_derived_change,
    read_audit,
    record_many,
    select_records,
    set_actor,
    verify_audit,
)
from tribes.privacy.consent import ANALYTICS, consent_filter, consent_summary, latest_consents
from tribes.privacy.keys import (
    KEYS_FILE,
    ApiKey,
    AuthError,
    authenticate,
    create_key,
    load_keys,
    revoke_key,
)
from tribes.privacy.locking import locked
from tribes.privacy.pseudonyms import PSEUDONYM_LENGTH, pseudonym, pseudonymize
from tribes.privacy.seal import Sealer, is_sealed

__all__ = [
    "ANALYTICS",
    "KEYS_FILE",
    "PSEUDONYM_LENGTH",
    "Anchor",
    "ApiKey",
    "AuditEntry",
    "AuthError",
    "Sealer",
    "acting_as",
    "audit",
    "authenticate",
    "consent_filter",
    "consent_summary",
    "create_key",
    "current_actor",
    "current_anchor",
    "is_sealed",
    "last_derived_change",
    "latest_consents",
    "load_keys",
    "locked",
    "pseudonym",
    "pseudonymize",
    "read_audit",
    "record_many",
    "revoke_key",
    "select_records",
    "set_actor",
    "verify_audit",
]
