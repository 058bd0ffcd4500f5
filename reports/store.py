"""The DuckDB store: one file per deployment, owned by one process.

Threads (Gradio's workers) each get their own cursor; every write goes through one lock and one
transaction, so a failed write leaves nothing half-done.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from engines.errors import GhostProbeError
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


class StoreError(GhostProbeError):
    """The database file cannot be opened or used (one sentence for a person)."""


def _storage_failure(path: str, e: BaseException) -> StoreError | None:
    """A StoreError sentence when ``e`` says the file itself is unusable (damaged, truncated, not DuckDB,
    locked, unreadable); None for anything else (a bug in a query stays a bug). No raw DuckDB text."""
    if not isinstance(e, duckdb.Error):
        return None
    msg = str(e)
    low = msg.lower()
    if "lock" in low and ("conflicting" in low or "could not set lock" in low):
        return StoreError(f"The database {path} is in use by another GhostProbe process; stop it or use --db.")
    if "not a valid duckdb database file" in low:
        return StoreError(f"{path} is not a DuckDB database file; name a GhostProbe database or a new file "
                          "with --db.")
    if "version number" in low or "newer version" in low or "older version" in low:
        return StoreError(f"The database {path} was written by a different DuckDB version than this one "
                          f"({duckdb.__version__}), so it cannot be opened here.")
    if "permission denied" in low:
        return StoreError(f"The database {path} cannot be opened: permission denied.")
    if "read-only file system" in low:
        return StoreError(f"The database {path} is on a read-only file system; use --db to name a writable file.")
    if "no space left" in low:
        return StoreError(f"The database {path} cannot be written: the disk is full.")
    if (isinstance(e, (duckdb.IOException, duckdb.FatalException, duckdb.InternalException))
            or "corrupt" in low or "checksum" in low or "invalidated" in low or "could not read enough bytes" in low):
        return StoreError(f"The database {path} is truncated or damaged, so it cannot be read; restore it from "
                          "a backup or name a new file with --db.")
    return None


def _check_db_path(path: str) -> None:
    """Refuse, with one sentence, a database path that is not (or cannot become) a regular file."""
    if "\x00" in path:
        raise StoreError("The database path contains a NUL byte, which no file name can hold.")
    p = Path(path)
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as e:
        if os.path.islink(p):
            raise StoreError(f"The database path {path} is a symlink loop or a broken link.") from None
        raise StoreError(f"The database {path} cannot be opened ({(e.strerror or str(e)).lower()}).") from None
    if st is None:
        from engines.errors import InputError, format_error, output_path

        if os.path.islink(p):
            raise StoreError(f"The database path {path} is a symbolic link to a file that does not exist.")
        try:  # a folder above that is a file, or that cannot be written, is refused before anything is made
            output_path(p, "database", force=True)
            p.parent.mkdir(parents=True, exist_ok=True)
        except InputError as e:
            raise StoreError(str(e)) from None
        except OSError as e:
            raise StoreError(f"Cannot create the database {path}: {format_error(e)}") from None
        return
    if stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{path} is a folder; the database must be a file (for example {p / 'ghostprobe.duckdb'}).")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path} is not a regular file (a FIFO, socket or device), so it cannot be a database.")
    if st.st_size == 0:
        raise StoreError(f"The database {path} is an empty file; delete it or name a new file with --db.")


class Store:
    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            _check_db_path(self.path)
        try:
            self._conn = duckdb.connect(self.path)
        except duckdb.Error as e:
            failure = _storage_failure(self.path, e)
            if failure is not None:
                raise failure from None
            raise StoreError(f"{self.path} cannot be opened as a GhostProbe DuckDB database.") from None
        self._local = threading.local()
        self._write_lock = threading.RLock()
        try:
            self.applied = self.migrate()
        except StoreError:
            self._close_quietly()
            raise
        except duckdb.Error as e:
            self._close_quietly()
            failure = _storage_failure(self.path, e)
            if failure is not None:
                raise failure from None
            raise

    def _close_quietly(self) -> None:
        try:
            self._conn.close()
        except duckdb.Error:
            pass

    def _failed(self, e: BaseException) -> StoreError | None:
        return _storage_failure(self.path, e)

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
        """One transaction under the write lock; rolled back whole on any error. A damaged file raises
        StoreError (one sentence) instead of DuckDB's own text."""
        with self._write_lock:
            cur = self.cursor()
            try:
                cur.execute("BEGIN TRANSACTION")
            except duckdb.Error as e:
                failure = self._failed(e)
                if failure is not None:
                    raise failure from None
                raise
            try:
                yield cur
            except BaseException as e:
                try:
                    cur.execute("ROLLBACK")
                except duckdb.Error:
                    pass  # an invalidated database cannot roll back; nothing was committed
                failure = self._failed(e)
                if failure is not None:
                    raise failure from None
                raise
            else:
                try:
                    cur.execute("COMMIT")
                except duckdb.Error as e:
                    failure = self._failed(e)
                    if failure is not None:
                        raise failure from None
                    raise

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        cur = self.cursor()
        try:
            res = cur.execute(sql, params or [])
            cols = [d[0] for d in res.description]
            return [dict(zip(cols, row)) for row in res.fetchall()]
        except duckdb.Error as e:
            failure = self._failed(e)
            if failure is not None:
                raise failure from None
            raise

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        try:
            row = self.cursor().execute(sql, params or []).fetchone()
        except duckdb.Error as e:
            failure = self._failed(e)
            if failure is not None:
                raise failure from None
            raise
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
