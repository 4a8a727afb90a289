"""The on-disk answer store: map answers and the Batch API jobs submitted from here.

Rules it keeps: an answer is committed the moment it arrives, so a kernel that dies keeps
it; answers are kept per server (a store is opened for one), so the same question asked
of another server with a model of the same name is asked again; a row's key
(:func:`answer_key`, also its batch ``custom_id``) is the digest of the request body
alone, so a recording made against one server replays against another. One lock guards
the one SQLite connection, which threads share.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._config import MAP_STORE_FILE
from ..types import Usage

__all__ = ["TERMINAL_FAILED", "AnswerStore", "answer_key"]

TERMINAL_FAILED = frozenset({"failed", "expired", "cancelled"})


def answer_key(body: Mapping[str, Any]) -> str:
    """A row's key (and batch ``custom_id``): 32 hex digits of the digest of its request
    body (model, messages, parameters). The server is not part of it, so a recording made
    against one server replays against another; the store adds the server itself."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class AnswerStore:
    """Answers kept on disk (SQLite) for one ``server`` (its API root), and the Batch API
    jobs submitted from here.

    One row is committed as soon as it is answered, so a kernel that dies keeps them. The
    file is shared: each server sees only its own answers in it.
    """

    def __init__(self, path: str | Path | None = None, *, server: str) -> None:
        self.server = server
        if path is None:
            from ..catalog import default_cache_dir

            path = default_cache_dir() / MAP_STORE_FILE
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            # Not the older ``answers`` table: its answers say nothing of their server.
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS server_answers (server TEXT, key TEXT, model TEXT, "
                "text TEXT, usage TEXT, created REAL, PRIMARY KEY (server, key))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, model TEXT, "
                "keys TEXT, created REAL, status TEXT, merged INTEGER DEFAULT 0)"
            )

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, Usage | None]]:
        """This server's stored answers (text, usage) for those of ``keys`` that have one."""
        found: dict[str, tuple[str, Usage | None]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                query = (
                    "SELECT key, text, usage FROM server_answers "
                    f"WHERE server = ? AND key IN ({marks})"
                )
                for key, text, usage in self._db.execute(query, [self.server, *chunk]):
                    found[key] = (text, Usage.from_json(json.loads(usage)) if usage else None)
        return found

    def put(self, key: str, model: str, text: str, usage: Usage | None) -> None:
        """Keep one answer of this server (a later answer for the same key replaces it)."""
        payload = json.dumps(usage.as_dict()) if usage else None
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO server_answers VALUES (?, ?, ?, ?, ?, ?)",
                (self.server, key, model, text, payload, time.time()),
            )

    def add_batch(self, batch_id: str, model: str, keys: Sequence[str], status: str) -> None:
        """Remember a submitted Batch API job and which rows it answers."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO batches (id, model, keys, created, status) "
                "VALUES (?, ?, ?, ?, ?)",
                (batch_id, model, json.dumps(list(keys)), time.time(), status),
            )

    def set_batch_status(self, batch_id: str, status: str, merged: bool = False) -> None:
        """Note a job's latest status (and that its results are in the store)."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE batches SET status = ?, merged = ? WHERE id = ?",
                (status, int(merged), batch_id),
            )

    def batches(self) -> list[dict[str, Any]]:
        """The jobs submitted from this machine, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, model, keys, created, status, merged FROM batches ORDER BY created DESC"
            ).fetchall()
        return [
            {
                "id": batch_id,
                "model": model,
                "keys": json.loads(keys),
                "created": created,
                "status": status,
                "merged": bool(merged),
            }
            for batch_id, model, keys, created, status, merged in rows
        ]

    def pending_batch_for(self, keys: Iterable[str]) -> str | None:
        """The newest unmerged job that answers any of ``keys`` (to pick it up again)."""
        wanted = set(keys)
        for job in self.batches():
            if (
                not job["merged"]
                and job["status"] not in TERMINAL_FAILED
                and wanted & set(job["keys"])
            ):
                return str(job["id"])
        return None

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
