"""Runs, their predictions, reviewer marks and the response cache.

A *run* is one engine + model + prompt version + options applied to a selection of videos and
scored against one label set. Predictions are written one per transaction as each video finishes,
so a crash loses at most the videos in flight; ``INSERT OR REPLACE`` on (run_id, video_id) makes a
resumed run write every video exactly once.

Video ids. A prediction's ``video_id`` is spelled as in the run's label set whenever the label set
has that video under the key rule of :func:`reports.labels.video_key` (file name without folder or
extension, lower-cased: ``images_1_024`` meets ``images_1_024.avi``); otherwise it keeps the id it
came with. Joins between predictions and labels are then exact, which keeps the Reports queries fast.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from engines.errors import GhostProbeError
from engines.types import Verdict
from reports.store import Store, decode_json_columns


class RunError(GhostProbeError):
    """A run that cannot be found, created or changed as asked (one sentence)."""


RUN_STATUSES = ("running", "done", "cancelled", "failed", "imported")
REVIEW_MARKS = ("agree", "disagree", "unsure", "label-wrong")

_VIDEO_EXT = re.compile(r"\.[A-Za-z0-9]{2,4}$")


try:
    from reports.labels import video_key as _labels_video_key
except ImportError:  # pragma: no cover - a partial checkout without the labels module
    _labels_video_key = None


def video_key(video_id: str) -> str:
    """The matching rule between label ids, library ids and imported ids (the one of reports.labels)."""
    if _labels_video_key is not None:
        return _labels_video_key(str(video_id))
    name = str(video_id).strip().replace("\\", "/").rsplit("/", 1)[-1]
    return _VIDEO_EXT.sub("", name).lower()


# -- runs ------------------------------------------------------------------------------------------
def new_run_id(now: datetime | None = None) -> str:
    """Short, sortable id: r<YYYYMMDD>-<HHMMSS>-<4 hex>."""
    now = now or datetime.now()
    return f"r{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _prompt_parts(prompt: Any) -> tuple[str | None, str | None, str | None]:
    if prompt is None:
        return None, None, None
    if isinstance(prompt, dict):
        return prompt.get("id"), prompt.get("version"), prompt.get("hash")
    if isinstance(prompt, (tuple, list)):
        parts = list(prompt) + [None] * 3
        return parts[0], parts[1], parts[2]
    # a template object with .id / .version / .hash
    return getattr(prompt, "id", None), getattr(prompt, "version", None), getattr(prompt, "hash", None)


def _json(v: Any) -> str | None:
    return None if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)


def create_run(store: Store, *, engine: str, model: str | None = None, revision: str | None = None,
               prompt: Any = None, options: dict[str, Any] | None = None,
               sampling: dict[str, Any] | None = None, label_set: str | None = None,
               selection: Sequence[str] | None = None, location: str | None = None, instances: int = 1,
               name: str | None = None, status: str = "running", notes: str | None = None) -> str:
    """Insert a run row and return its id. ``prompt`` is (id, version, hash), a dict or a template."""
    if status not in RUN_STATUSES:
        raise RunError(f"Run status must be one of {', '.join(RUN_STATUSES)}, not '{status}'.")
    if instances is None or int(instances) < 1:
        raise RunError("A run needs at least one instance.")
    name = (name or "").strip() or None
    pid, pver, phash = _prompt_parts(prompt)
    with store.write() as cur:
        if name is not None:
            clash = cur.execute("SELECT run_id FROM runs WHERE name = ? OR run_id = ?", [name, name]).fetchone()
            if clash:
                raise RunError(f"A run named '{name}' already exists ({clash[0]}); choose another name.")
        run_id = new_run_id()
        while cur.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone():
            run_id = new_run_id()
        cur.execute(
            """INSERT INTO runs (run_id, name, engine, model, revision, prompt_id, prompt_version, prompt_hash,
                                 options, sampling, label_set, selection, location, instances, status, notes)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [run_id, name, engine, model, revision, pid, pver, phash, _json(options or {}), _json(sampling or {}),
             label_set, _json(list(selection or [])), location, int(instances), status, notes])
    return run_id


def finish_run(store: Store, run_id: str, status: str = "done") -> None:
    if status not in RUN_STATUSES:
        raise RunError(f"Run status must be one of {', '.join(RUN_STATUSES)}, not '{status}'.")
    with store.write() as cur:
        cur.execute("UPDATE runs SET status = ?, finished_at = current_timestamp WHERE run_id = ?", [status, run_id])


def set_run_status(store: Store, run_id: str, status: str) -> None:
    """Change the status without touching finished_at (e.g. back to running on resume)."""
    if status not in RUN_STATUSES:
        raise RunError(f"Run status must be one of {', '.join(RUN_STATUSES)}, not '{status}'.")
    with store.write() as cur:
        cur.execute("UPDATE runs SET status = ?, finished_at = NULL WHERE run_id = ?", [status, run_id])


def update_run(store: Store, run_id: str, **fields: Any) -> None:
    allowed = {"location", "revision", "model", "notes", "instances", "name"}
    bad = set(fields) - allowed
    if bad:
        raise RunError(f"Cannot change {', '.join(sorted(bad))} of a run.")
    if not fields:
        return
    cols = ", ".join(f"{k} = ?" for k in fields)
    with store.write() as cur:
        cur.execute(f"UPDATE runs SET {cols} WHERE run_id = ?", [*fields.values(), run_id])


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    return decode_json_columns(row, ("options", "sampling", "selection"))


def get_run(store: Store, id_or_name: str) -> dict[str, Any]:
    """The run with this id, or else with this name. Unknown or ambiguous → RunError (one sentence)."""
    ref = (id_or_name or "").strip()
    if not ref:
        raise RunError("Name a run by its id (such as r20261121-183000-ab12) or its name.")
    rows = store.query("SELECT * FROM runs WHERE run_id = ?", [ref])
    if not rows:
        rows = store.query("SELECT * FROM runs WHERE name = ? ORDER BY created_at", [ref])
    if not rows:
        rows = store.query("SELECT * FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id", [ref]) if len(ref) >= 9 else []
    if not rows:
        raise RunError(f"No run has the id or name '{ref}'; `ghostprobe runs list` shows them.")
    if len(rows) > 1:
        ids = ", ".join(r["run_id"] for r in rows[:5])
        raise RunError(f"'{ref}' matches {len(rows)} runs ({ids}); name one by its run id.")
    return _decode_run(rows[0])


def list_runs(store: Store, *, engine: str | None = None, label_set: str | None = None,
              status: str | None = None, prompt_id: str | None = None, model: str | None = None,
              search: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Runs newest first with their prediction counts (one SQL aggregate)."""
    where, params = [], []
    for col, val in (("engine", engine), ("label_set", label_set), ("status", status),
                     ("prompt_id", prompt_id), ("model", model)):
        if val is not None:
            where.append(f"r.{col} = ?")
            params.append(val)
    if search:
        where.append("(r.run_id ILIKE ? OR r.name ILIKE ? OR r.model ILIKE ?)")
        params += [f"%{search}%"] * 3
    sql = f"""
        WITH c AS (
            SELECT run_id, count(*) AS predictions,
                   count(*) FILTER (WHERE status = 'ok') AS ok,
                   count(*) FILTER (WHERE status = 'unparsed') AS unparsed,
                   count(*) FILTER (WHERE status = 'error') AS errors,
                   count(*) FILTER (WHERE cached) AS cached
            FROM predictions GROUP BY run_id)
        SELECT r.*, coalesce(c.predictions, 0) AS predictions, coalesce(c.ok, 0) AS ok,
               coalesce(c.unparsed, 0) AS unparsed, coalesce(c.errors, 0) AS errors,
               coalesce(c.cached, 0) AS cached, json_array_length(r.selection) AS selected
        FROM runs r LEFT JOIN c USING (run_id)
        {"WHERE " + " AND ".join(where) if where else ""}
        ORDER BY r.created_at DESC, r.run_id DESC
        {"LIMIT " + str(int(limit)) if limit else ""}"""
    return [_decode_run(r) for r in store.query(sql, params)]


# -- predictions -----------------------------------------------------------------------------------
def _g(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _prediction_row(run_id: str, video_id: str, sha256: str | None, verdict: Verdict | dict,
                    call: Any, cached: bool) -> list[Any]:
    status = _g(verdict, "status") or "unparsed"
    gp = _g(verdict, "ghost_probing")
    if status != "ok":
        gp = None  # an unparsed or errored answer is never a "no"
    conf = _g(verdict, "confidence")
    return [run_id, video_id, sha256, gp, None if conf is None else float(conf), _g(verdict, "danger_level"),
            _g(verdict, "object_type"), _g(verdict, "onset_s"), _g(verdict, "reason") or "", status,
            _g(verdict, "raw") or "", _g(call, "latency_s"), _g(call, "decode_s"), _g(call, "preprocess_s"),
            _g(call, "generate_s"), _g(call, "prompt_tokens"), _g(call, "completion_tokens"), bool(cached)]


_PRED_INSERT = """INSERT OR REPLACE INTO predictions
    (run_id, video_id, sha256, ghost_probing, confidence, danger_level, object_type, onset_s, reason, status, raw,
     latency_s, decode_s, preprocess_s, generate_s, prompt_tokens, completion_tokens, cached, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)"""
# created_at is set explicitly: DuckDB's INSERT OR REPLACE keeps unlisted columns of the old row, and
# reports.metrics fingerprints a run's predictions by (count, first, last created_at).


def add_prediction(store: Store, run_id: str, video_id: str, sha256: str | None, verdict: Verdict | dict,
                   call: Any = None, cached: bool = False) -> None:
    """Write one prediction in its own transaction (replacing an earlier one for the same video)."""
    row = _prediction_row(run_id, video_id, sha256, verdict, call, cached)
    with store.write() as cur:
        cur.execute(_PRED_INSERT, row)


def add_predictions(store: Store, run_id: str, items: Iterable[tuple[str, str | None, Any, Any, bool]]) -> int:
    """Write many predictions in one transaction (imports): items of (video_id, sha256, verdict, call, cached)."""
    rows = [_prediction_row(run_id, vid, sha, v, c, cached) for vid, sha, v, c, cached in items]
    if rows:
        with store.write() as cur:
            cur.executemany(_PRED_INSERT, rows)
    return len(rows)


def predictions(store: Store, run_id: str, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """The run's predictions joined with the labels of its label set (label_* columns NULL when unlabelled),
    ordered by video id; ``limit``/``offset`` page through a large run."""
    page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
    return store.query(
        """SELECT p.*, l.ghost_probing AS label_ghost_probing, l.kind AS label_kind, l.onset_s AS label_onset_s,
                  l.note AS label_note,
                  CASE WHEN l.video_id IS NULL THEN NULL
                       WHEN p.status <> 'ok' THEN false
                       ELSE p.ghost_probing = l.ghost_probing END AS correct
           FROM predictions p JOIN runs r USING (run_id)
           LEFT JOIN labels l ON l.label_set = r.label_set AND l.video_id = p.video_id
           WHERE p.run_id = ? ORDER BY p.video_id""" + page, [run_id])


def done_video_ids(store: Store, run_id: str, include_errors: bool = True) -> set[str]:
    """Video ids that already have a prediction in this run (for resume)."""
    sql = "SELECT video_id FROM predictions WHERE run_id = ?" + ("" if include_errors else " AND status <> 'error'")
    return {r["video_id"] for r in store.query(sql, [run_id])}


def label_id_map(store: Store, label_set: str | None) -> dict[str, str]:
    """video_key → the label set's own spelling of the video id."""
    if not label_set:
        return {}
    return {video_key(r["video_id"]): r["video_id"]
            for r in store.query("SELECT video_id FROM labels WHERE label_set = ?", [label_set])}


def label_set_exists(store: Store, label_set: str) -> bool:
    return bool(store.scalar("SELECT count(*) FROM label_sets WHERE name = ?", [label_set])
                or store.scalar("SELECT count(*) FROM labels WHERE label_set = ?", [label_set]))


def require_label_set(store: Store, label_set: str) -> None:
    if not label_set_exists(store, label_set):
        known = [r["name"] for r in store.query(
            "SELECT name FROM label_sets UNION SELECT DISTINCT label_set FROM labels ORDER BY 1")]
        raise RunError(f"Unknown label set '{label_set}'; known label sets: {', '.join(known) or 'none yet'}.")


# -- reviews ---------------------------------------------------------------------------------------
def add_review(store: Store, run_id: str, video_id: str, mark: str, comment: str | None = None,
               reviewer: str | None = None) -> None:
    if mark not in REVIEW_MARKS:
        raise RunError(f"A review mark is one of {', '.join(REVIEW_MARKS)}, not '{mark}'.")
    if not store.scalar("SELECT count(*) FROM predictions WHERE run_id = ? AND video_id = ?", [run_id, video_id]):
        raise RunError(f"Run {run_id} has no prediction for {video_id}.")
    with store.write() as cur:
        cur.execute("INSERT INTO reviews (run_id, video_id, mark, comment, reviewer) VALUES (?, ?, ?, ?, ?)",
                    [run_id, video_id, mark, comment, reviewer])


def reviews(store: Store, run_id: str, video_id: str | None = None) -> list[dict[str, Any]]:
    if video_id is None:
        return store.query("SELECT * FROM reviews WHERE run_id = ? ORDER BY created_at", [run_id])
    return store.query("SELECT * FROM reviews WHERE run_id = ? AND video_id = ? ORDER BY created_at",
                       [run_id, video_id])


# -- response cache --------------------------------------------------------------------------------
def cache_key(*, sha256: str, engine: str, model: str | None, revision: str | None, prompt_hash: str | None,
              options: dict[str, Any] | None, sampling: dict[str, Any] | None) -> str:
    """sha256 over a canonical JSON of everything that changes the answer."""
    payload = {"sha256": sha256, "engine": engine, "model": model, "revision": revision,
               "prompt_hash": prompt_hash, "options": options or {}, "sampling": sampling or {}}
    # timeout_s does not change an answer, only whether one arrives
    if isinstance(payload["options"], dict) and "timeout_s" in payload["options"]:
        payload["options"] = {k: v for k, v in payload["options"].items() if k != "timeout_s"}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def cache_get(store: Store, key: str) -> dict[str, Any] | None:
    """The cached answer: {verdict: dict, answer, latency_s, prompt_tokens, completion_tokens} or None."""
    rows = store.query("SELECT * FROM response_cache WHERE key = ?", [key])
    if not rows:
        return None
    row = rows[0]
    v = row.get("verdict")
    row["verdict"] = json.loads(v) if isinstance(v, str) else (v or {})
    return row


def cache_put(store: Store, key: str, *, engine: str, model: str | None, verdict: Verdict | dict,
              call: Any = None) -> None:
    """Remember a parsed or unparsed answer. Errors are never cached."""
    vd = verdict.to_dict() if hasattr(verdict, "to_dict") else dict(verdict)
    if vd.get("status") == "error":
        return
    with store.write() as cur:
        cur.execute(
            """INSERT OR REPLACE INTO response_cache (key, engine, model, answer, verdict, latency_s,
                                                       prompt_tokens, completion_tokens)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [key, engine, model, vd.get("raw") or "", json.dumps(vd, ensure_ascii=False, default=str),
             _g(call, "latency_s"), _g(call, "prompt_tokens"), _g(call, "completion_tokens")])
