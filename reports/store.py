"""The DuckDB store: one file per deployment, owned by one process.

Threads (Gradio's workers) each get their own cursor; every write goes through one lock and one
transaction, so a failed write leaves nothing half-done.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from reports.migrations import MIGRATIONS


def decode_json_columns(row: dict[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """DuckDB returns JSON columns as text: decode the named ones in place (text that is not JSON stays)."""
    for k in columns:
        v = row.get(k)
        if isinstance(v, str):
            try:
                row[k] = json.loads(v)
            except ValueError:
                pass
    return row


class StoreError(Exception):
    """The database file cannot be opened or used (one sentence for a person)."""


class Store:
    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = duckdb.connect(self.path)
        except duckdb.IOException as e:
            msg = str(e).splitlines()[0]
            if "lock" in msg.lower():
                raise StoreError(
                    f"The database {self.path} is in use by another GhostProbe process; stop it or use --db."
                ) from None
            raise StoreError(f"Cannot open the database {self.path}: {msg}") from None
        except duckdb.Error as e:
            raise StoreError(
                f"{self.path} is not a GhostProbe DuckDB database ({str(e).splitlines()[0]})."
            ) from None
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self.applied = self.migrate()

    # -- connections -------------------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's own cursor on the shared connection."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._conn.cursor()
            self._local.cursor = cur
        return cur

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction under the write lock; rolled back whole on any error."""
        with self._write_lock:
            cur = self.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        cur = self.cursor()
        res = cur.execute(sql, params or [])
        cols = [d[0] for d in res.description]
        return [dict(zip(cols, row)) for row in res.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        row = self.cursor().execute(sql, params or []).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self._conn.close()

    # -- migrations --------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Apply every migration not yet recorded; returns the names applied now."""
        applied_now: list[str] = []
        with self._write_lock:
            cur = self.cursor()
            cur.execute(
                "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)"
            )
            done = {r[0] for r in cur.execute("SELECT name FROM _migrations").fetchall()}
            for name, fn in MIGRATIONS:
                if name in done:
                    continue
                with self.write() as w:
                    fn(w)
                    w.execute("INSERT INTO _migrations (name) VALUES (?)", [name])
                applied_now.append(name)
        return applied_now

    def migrations(self) -> list[dict[str, Any]]:
        return self.query("SELECT name, applied_at FROM _migrations ORDER BY applied_at, name")

    def info(self) -> dict[str, Any]:
        tables = [r["table_name"] for r in self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name")]
        counts = {t: self.scalar(f'SELECT count(*) FROM "{t}"') for t in tables if not t.startswith("_")}
        size = Path(self.path).stat().st_size if self.path != ":memory:" and Path(self.path).exists() else 0
        return {
            "path": self.path,
            "size_bytes": size,
            "duckdb_version": duckdb.__version__,
            "migrations": [m["name"] for m in self.migrations()],
            "tables": counts,
        }
