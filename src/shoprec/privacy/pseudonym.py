"""Keyed pseudonyms for user ids: applied at ingest, so no raw user id reaches a saved artifact."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_ENV = "SHOPREC_PSEUDONYM_KEY"
KEY_FILE_ENV = "SHOPREC_PSEUDONYM_KEY_FILE"
DEFAULT_KEY_FILE = Path.home() / ".config" / "shoprec" / "pseudonym.key"


class Pseudonymizer:
    """HMAC-SHA256 of a user id under a secret key, truncated to 128 bits of hex.

    The same key always gives the same pseudonym, so events arriving later join the right history; without the
    key a pseudonym cannot be linked back. ``remember=True`` keeps pseudonym -> raw id in memory (never on disk)
    for commands that must answer in the caller's ids.
    """

    def __init__(self, key: bytes, remember: bool = False) -> None:
        if len(key) < 16:
            raise ValueError("a pseudonym key needs at least 16 bytes")
        self._key = key
        self._raw: dict[str, str] | None = {} if remember else None

    @classmethod
    def from_environment(cls, remember: bool = False) -> Pseudonymizer:
        return cls(load_or_create_key(), remember=remember)

    def __call__(self, user_id: str) -> str:
        pseudonym = hmac.new(self._key, str(user_id).encode(), hashlib.sha256).hexdigest()[:32]
        if self._raw is not None:
            self._raw[pseudonym] = str(user_id)
        return pseudonym

    def reveal(self, pseudonym: str) -> str:
        """The raw id behind a pseudonym this instance produced (only with ``remember=True``)."""
        if self._raw is None:
            raise RuntimeError("this Pseudonymizer does not remember raw ids")
        return self._raw[pseudonym]


def load_or_create_key() -> bytes:
    """The key from $SHOPREC_PSEUDONYM_KEY (hex), else from the key file, created 0600 on first use."""
    if hex_key := os.environ.get(KEY_ENV):
        return bytes.fromhex(hex_key)
    path = Path(os.environ.get(KEY_FILE_ENV, DEFAULT_KEY_FILE))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())
