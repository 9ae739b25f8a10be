"""Redeemed launch codes recorded in a SQLite file, so single use survives a Hub restart.

The Hub's authenticator claims each code's nonce here before logging the browser in: a
second claim of the same nonce fails, also after the Hub restarted. Rows are kept
until their code expires (a code cannot be redeemed after that anyway) and pruned as
new codes are claimed. The file is created with mode 0600 (it names no secret, but
nobody else has a reason to read it).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

_SCHEMA = "CREATE TABLE IF NOT EXISTS used_code (nonce TEXT PRIMARY KEY, expires_at REAL NOT NULL)"
PRUNE_EVERY = 256


class UsedCodesFile:
    """A :class:`~schemas.launch_codes.UsedCodes` ledger in a SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._claims = 0

    def claim(self, nonce: str, expires_at: float, now: float) -> bool:
        """Record ``nonce``; False if it was recorded before and its code has not expired."""
        with self._lock:
            self._claims += 1
            if self._claims % PRUNE_EVERY == 1:
                self._db.execute("DELETE FROM used_code WHERE expires_at <= ?", (now,))
            try:
                self._db.execute(
                    "INSERT INTO used_code (nonce, expires_at) VALUES (?, ?)", (nonce, expires_at)
                )
            except sqlite3.IntegrityError:
                found = self._db.execute(
                    "SELECT expires_at FROM used_code WHERE nonce = ?", (nonce,)
                ).fetchone()
                if found is not None and found[0] > now:
                    return False
                self._db.execute(
                    "UPDATE used_code SET expires_at = ? WHERE nonce = ?", (expires_at, nonce)
                )
            return True

    def close(self) -> None:
        """Close the file."""
        self._db.close()
