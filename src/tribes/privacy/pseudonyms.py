"""Keyed pseudonyms: HMAC-SHA256 of an identifier under the workspace secret.

The same raw id always gives the same pseudonym in one workspace (so sources join), and
nobody without the key can link a pseudonym back to the raw id or compute it from one.
Pseudonyms are the first 32 hex characters (128 bits) of the HMAC.
"""

from __future__ import annotations

import ibis.expr.types as ir

from tribes.engine import hmac_sha256_hex, hmac_sha256_py

PSEUDONYM_LENGTH = 32


def pseudonymize(value: ir.StringValue, key: bytes) -> ir.StringValue:
    """Engine expression: pseudonym of every non-null value of ``value``."""
    return hmac_sha256_hex(value, key, PSEUDONYM_LENGTH)


def pseudonym(value: str, key: bytes) -> str:
    """The pseudonym of one raw identifier (to look a person up from the CLI)."""
    return hmac_sha256_py(value.strip(), key, PSEUDONYM_LENGTH)
