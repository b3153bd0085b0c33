"""Sealed text: what an encrypted workspace must keep on disk outside its database.

Streamed messages are spooled to files before they are acknowledged (they must survive
a crash), so they cannot stay in memory; in an encrypted workspace each spooled chunk
is sealed with AES-256-GCM under a key derived from the database key, and opened again
when it lands. A sealed chunk is one line: ``E1:`` and the base64 of nonce + ciphertext.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from tribes.errors import TribesError

PREFIX = "E1:"


class Sealer:
    """Seals and opens text chunks under one key (AES-256-GCM, a random 96-bit nonce per
    chunk, the ciphertext authenticated: a chunk that was changed does not open)."""

    def __init__(self, key: bytes, purpose: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        derived = hmac.new(key, f"tribes seal: {purpose}".encode(), hashlib.sha256).digest()
        self._aead = AESGCM(derived)

    def seal(self, text: str) -> str:
        """``text`` as one sealed line (ending in a newline)."""
        nonce = os.urandom(12)
        body = self._aead.encrypt(nonce, text.encode("utf-8"), None)
        return PREFIX + base64.b64encode(nonce + body).decode("ascii") + "\n"

    def open(self, line: str) -> str:
        """The text of a line :meth:`seal` made."""
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.b64decode(line.removeprefix(PREFIX).strip(), validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], None).decode("utf-8")
        except (InvalidTag, ValueError):
            raise TribesError("a sealed spool chunk does not open: it was changed, or sealed "
                              "under another database key", code="E_SEALED") from None


def is_sealed(line: str) -> bool:
    return line.startswith(PREFIX)
