"""The chat log: every model turn (chat or detect) written to the ``chats`` table, simonw/llm style.

One row per turn, keyed by ``(chat_id, turn)``, stored in the response log (``responses``; ``chats`` is
a view over it). A failed call is logged too, with ``error`` set and no answer, so the log shows what
was tried and not only what worked.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

from reports.store import Store, decode_json_columns

JSON_COLUMNS = ("verdict", "options", "sampling")
KINDS = ("chat", "detect")
_CALL_FIELDS = ("latency_s", "decode_s", "preprocess_s", "generate_s", "prompt_tokens", "completion_tokens")


def _as_dict(obj: Any) -> dict[str, Any] | None:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    raise TypeError(f"cannot store {type(obj).__name__} as JSON")


def log_turn(store: Store, *, chat_id: str, video_id: str | None, sha256: str | None, engine: str,
             model: str | None, revision: str | None, prompt_hash: str | None, kind: str, question: str | None,
             answer: str | None, verdict: dict | None, options: Any, sampling: dict | None, call: Any,
             error: str | None, **fields: Any) -> int:
    """Append one turn to ``chat_id`` as a response (reports.responses) and return its turn number.

    The next number is read and the row written in one transaction, so concurrent writers of the same
    chat cannot collide. ``fields`` are further response columns (identity, endpoint, cached …)."""
    from reports.responses import insert, row_values

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if not chat_id:
        raise ValueError("chat_id is required")
    row = row_values(kind=kind, engine=engine, verdict=verdict, call=call, chat_id=chat_id, video_id=video_id,
                     sha256=sha256, model=model, revision=revision, prompt_hash=prompt_hash, question=question,
                     response=answer, options=_as_dict(options), sampling=sampling, error=error, **fields)
    with store.write() as cur:
        rid = insert(cur, row)
        return int(cur.execute("SELECT turn FROM responses WHERE id = ?", [rid]).fetchone()[0])


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return decode_json_columns(row, JSON_COLUMNS)


def turns(store: Store, chat_id: str) -> list[dict[str, Any]]:
    """Every turn of one chat, in order, with JSON columns decoded."""
    rows = store.query("SELECT * FROM chats WHERE chat_id = ? ORDER BY turn", [chat_id])
    return [_decode(r) for r in rows]


def history(store: Store, video_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The most recently active chats (optionally of one video), newest first, each with its turns.

    Each item: chat_id, video_id, engine, model, kind (of the first turn), started_at, updated_at,
    n_turns, turns (list of rows as :func:`turns` gives them).
    """
    where, params = ("WHERE video_id = ?", [video_id]) if video_id is not None else ("", [])
    heads = store.query(
        f"""
        SELECT chat_id, min(created_at) AS started_at, max(created_at) AS updated_at, count(*) AS n_turns,
               max(turn) AS last_turn
        FROM chats {where}
        GROUP BY chat_id
        ORDER BY updated_at DESC, last_turn DESC, chat_id
        LIMIT ?
        """,
        [*params, int(limit)],
    )
    if not heads:
        return []
    ids = [h["chat_id"] for h in heads]
    marks = ", ".join("?" for _ in ids)
    rows = store.query(f"SELECT * FROM chats WHERE chat_id IN ({marks}) ORDER BY chat_id, turn", ids)
    by_chat: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_chat.setdefault(r["chat_id"], []).append(_decode(r))
    out = []
    for h in heads:
        ts = by_chat.get(h["chat_id"], [])
        first = ts[0] if ts else {}
        out.append({"chat_id": h["chat_id"], "video_id": first.get("video_id"), "engine": first.get("engine"),
                    "model": first.get("model"), "kind": first.get("kind"), "started_at": h["started_at"],
                    "updated_at": h["updated_at"], "n_turns": int(h["n_turns"]), "turns": ts})
    return out
