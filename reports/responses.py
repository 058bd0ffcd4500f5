"""The response log: every model call is one row of ``responses`` (simonw/llm's log is the model).

A detect, a chat turn, an evaluation prediction, an imported answer and a cache hit are each one
row, with the engine identity that answered, the prompt by hash (its text in ``prompts``, written
here the first time it is used), the model's text, the parsed verdict, the latency split, tokens,
device and whether it was cached. Runs and chats point into it (``run_id`` / ``chat_id`` + ``turn``);
``predictions`` and ``chats`` are views over it with their old columns.

- :func:`log_response` writes one row (credentials redacted from every text field) and returns its id.
- :func:`cache_lookup` / :func:`cache_put`: the response cache maps ``EngineIdentity.cache_key(sha256)``
  to the response that answered. Errors are never cached.
- :func:`save_prompt` / :func:`prompt_text`: prompts by hash.
- :func:`logs`: the newest rows for ``ghostprobe logs``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

from engines.redact import endpoint as _endpoint
from engines.redact import redact
from reports.store import Store, decode_json_columns

KINDS = ("detect", "chat", "eval", "import", "cache-legacy")
JSON_COLUMNS = ("identity", "options", "sampling", "extra", "artifacts")
VERDICT_FIELDS = ("ghost_probing", "confidence", "danger_level", "object_type", "onset_s", "reason", "status")
_CALL_FIELDS = ("decode_s", "preprocess_s", "generate_s", "prompt_tokens", "completion_tokens", "device")
_TEXT_FIELDS = ("question", "response", "reason", "error")

COLUMNS = ("kind", "run_id", "chat_id", "turn", "current", "video_id", "sha256", "engine", "engine_kind", "model",
           "model_reported", "revision", "endpoint", "identity", "identity_hash", "cache_key", "prompt_hash",
           "question", "response", "ghost_probing", "confidence", "danger_level", "object_type", "onset_s", "reason",
           "status", "options", "sampling", "latency_s", "decode_s", "preprocess_s", "generate_s", "model_s",
           "prompt_tokens", "completion_tokens", "device", "cached", "cached_from", "error", "extra", "artifacts")


def as_dict(obj: Any) -> dict[str, Any] | None:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    raise TypeError(f"cannot store {type(obj).__name__} as JSON")


def _json(obj: Any) -> str | None:
    d = obj if isinstance(obj, (list, str)) else as_dict(obj)
    if d is None:
        return None
    return redact(json.dumps(d, ensure_ascii=False, default=str, sort_keys=True))


def row_values(*, kind: str, engine: str, verdict: Any = None, call: Any = None, **f: Any) -> dict[str, Any]:
    """The column values of one response from a verdict (or dict), a CallRecord (or dict) and fields."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    row: dict[str, Any] = {k: None for k in COLUMNS}
    row.update(kind=kind, engine=engine, current=True, cached=False)
    v = as_dict(verdict)
    if v is not None:
        for k in VERDICT_FIELDS:
            row[k] = v.get(k)
        row["status"] = row["status"] or "unparsed"
        if row["status"] != "ok":
            row["ghost_probing"] = None  # an unparsed or errored answer is never a "no"
        if f.get("response") is None:
            row["response"] = v.get("raw")
    c = as_dict(call) or {}
    for k in _CALL_FIELDS:
        row[k] = c.get(k)
    if c.get("model"):
        row["model_reported"] = c.get("model")
    if c.get("extra"):
        row["extra"] = dict(c["extra"])
    # latency: the call's latency_s is the engine's own time unless the caller says otherwise
    model_s = c.get("latency_s")
    row["model_s"] = model_s
    if model_s is not None or row["decode_s"] is not None:
        row["latency_s"] = (model_s or 0.0) + (row["decode_s"] or 0.0)
    for k, val in f.items():
        if k not in row:
            raise TypeError(f"log_response() got an unknown field {k!r}")
        if val is not None or k in ("current", "cached"):
            row[k] = val
    if row["confidence"] is not None:
        row["confidence"] = float(row["confidence"])
    if row["response"] == "":
        row["response"] = None  # nothing was said (an error before any text)
    return row


def _sql_values(row: dict[str, Any]) -> list[Any]:
    out = []
    for k in COLUMNS:
        val = row[k]
        if k in JSON_COLUMNS:
            val = _json(val)
        elif k in _TEXT_FIELDS and val is not None:
            val = redact(val)
        elif k == "endpoint" and val is not None:
            val = _endpoint(val)
        out.append(val)
    return out


_INSERT = (f"INSERT INTO responses ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
           "RETURNING id")


def insert(cur: Any, row: dict[str, Any]) -> int:
    """Insert one prepared row on an open write cursor (inside ``store.write()``); returns its id.

    A row for a run's video makes any earlier answer to the same video of that run not current."""
    if row.get("run_id") is not None and row.get("video_id") is not None and row.get("current", True):
        cur.execute("UPDATE responses SET current = false WHERE run_id = ? AND video_id = ? AND current",
                    [row["run_id"], row["video_id"]])
    if row.get("chat_id") is not None and row.get("turn") is None:
        n = cur.execute("SELECT coalesce(max(turn), 0) + 1 FROM responses WHERE chat_id = ?",
                        [row["chat_id"]]).fetchone()
        row["turn"] = int(n[0])
    return int(cur.execute(_INSERT, _sql_values(row)).fetchone()[0])


def log_response(store: Store, *, kind: str, engine: str, verdict: Any = None, call: Any = None,
                 **fields: Any) -> int:
    """Write one response in its own transaction and return its id (see :func:`row_values`)."""
    row = row_values(kind=kind, engine=engine, verdict=verdict, call=call, **fields)
    with store.write() as cur:
        return insert(cur, row)


def log_many(store: Store, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Write prepared rows (:func:`row_values`) in one transaction (imports)."""
    ids = []
    with store.write() as cur:
        for row in rows:
            ids.append(insert(cur, row))
    return ids


def get(store: Store, response_id: int) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM responses WHERE id = ?", [int(response_id)])
    return decode_json_columns(rows[0], JSON_COLUMNS) if rows else None


def turn_of(store: Store, response_id: int) -> int | None:
    return store.scalar("SELECT turn FROM responses WHERE id = ?", [int(response_id)])


# -- cache ---------------------------------------------------------------------------------------------
def cache_lookup(store: Store, key: str) -> dict[str, Any] | None:
    """The response a cache key points at (a non-error answer), or None."""
    rows = store.query(
        """SELECT r.* FROM response_cache c JOIN responses r ON r.id = c.response_id
           WHERE c.key = ? AND coalesce(r.status, '') <> 'error'""", [key])
    return decode_json_columns(rows[0], JSON_COLUMNS) if rows else None


def cache_put(store: Store, key: str, response_id: int) -> None:
    with store.write() as cur:
        cur.execute("INSERT OR REPLACE INTO response_cache (key, response_id) VALUES (?, ?)", [key, int(response_id)])


# -- prompts -------------------------------------------------------------------------------------------
def save_prompt(store: Store, template: Any, origin: str = "file") -> str | None:
    """Store a prompt version's text by its hash (once). ``template`` has id, version, hash, body/text."""
    h = getattr(template, "hash", None)
    if not h:
        return None
    if store.scalar("SELECT count(*) FROM prompts WHERE hash = ?", [h]):
        return h
    to_yaml = getattr(template, "to_yaml", None)
    body = to_yaml() if callable(to_yaml) else getattr(template, "body", None)
    if not body:
        return None
    with store.write() as cur:
        if not cur.execute("SELECT count(*) FROM prompts WHERE hash = ?", [h]).fetchone()[0]:
            cur.execute(
                "INSERT INTO prompts (hash, id, version, parent, language, body, origin) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [h, str(getattr(template, "id", "") or ""), str(getattr(template, "version", "") or ""),
                 getattr(template, "parent", None), getattr(template, "language", None), str(body), origin])
    return h


def prompt_text(store: Store, prompt_hash: str) -> dict[str, Any] | None:
    rows = store.query("SELECT * FROM prompts WHERE hash = ?", [prompt_hash])
    return rows[0] if rows else None


# -- logs ----------------------------------------------------------------------------------------------
def logs(store: Store, *, limit: int = 20, engine: str | None = None, kind: str | None = None,
         run_id: str | None = None, chat_id: str | None = None) -> list[dict[str, Any]]:
    """The newest responses first, each with its prompt text when it had one."""
    where, params = [], []
    for col, val in (("r.engine", engine), ("r.kind", kind), ("r.run_id", run_id), ("r.chat_id", chat_id)):
        if val is not None:
            where.append(f"{col} = ?")
            params.append(val)
    sql = f"""SELECT r.*, p.id AS prompt_id, p.version AS prompt_version, p.body AS prompt_text
              FROM responses r LEFT JOIN prompts p ON p.hash = r.prompt_hash
              {"WHERE " + " AND ".join(where) if where else ""}
              ORDER BY r.id DESC LIMIT ?"""
    return [decode_json_columns(r, JSON_COLUMNS) for r in store.query(sql, [*params, int(limit)])]
