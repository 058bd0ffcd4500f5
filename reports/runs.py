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


RUN_STATUSES = ("running", "done", "partial", "cancelled", "failed", "imported")
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
               name: str | None = None, status: str = "running", notes: str | None = None,
               engine_kind: str | None = None, identity: Any = None, endpoint: str | None = None,
               planned: int | None = None, missing: Sequence[str] | None = None, job_id: str | None = None,
               output_dir: str | None = None) -> str:
    """Insert a run row and return its id. ``prompt`` is (id, version, hash), a dict or a template, or None
    for a detector (it takes no prompt). ``planned`` counts every video the run set out to answer;
    ``missing`` names those of them that are not in the library (they can get no prediction)."""
    from engines.redact import endpoint as _endpoint

    if status not in RUN_STATUSES:
        raise RunError(f"Run status must be one of {', '.join(RUN_STATUSES)}, not '{status}'.")
    if instances is None or int(instances) < 1:
        raise RunError("A run needs at least one instance.")
    name = (name or "").strip() or None
    pid, pver, phash = _prompt_parts(prompt)
    sel = list(selection or [])
    miss = list(missing or [])
    ident = identity.to_dict() if hasattr(identity, "to_dict") else identity
    ident_hash = identity.digest() if hasattr(identity, "digest") else None
    with store.write() as cur:
        if name is not None:
            clash = cur.execute("SELECT run_id FROM runs WHERE name = ? OR run_id = ?", [name, name]).fetchone()
            if clash:
                raise RunError(f"A run named '{name}' already exists ({clash[0]}); choose another name.")
        run_id = new_run_id()
        while cur.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone():
            run_id = new_run_id()
        cur.execute(
            """INSERT INTO runs (run_id, name, engine, engine_kind, model, revision, endpoint, identity, identity_hash,
                                 prompt_id, prompt_version, prompt_hash, options, sampling, label_set, selection,
                                 planned, missing, location, instances, status, notes, job_id, output_dir)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [run_id, name, engine, engine_kind, model, revision, _endpoint(endpoint), _json(ident), ident_hash,
             pid, None if pver is None else str(pver), phash, _json(options or {}), _json(sampling or {}),
             label_set, _json(sel), int(planned) if planned is not None else len(sel) + len(miss), _json(miss),
             location, int(instances), status, notes, job_id, output_dir])
    return run_id


def finish_run(store: Store, run_id: str, status: str = "done") -> str:
    """Close a run. "done" becomes "partial" when a planned video has no prediction. Returns the status."""
    if status not in RUN_STATUSES:
        raise RunError(f"Run status must be one of {', '.join(RUN_STATUSES)}, not '{status}'.")
    if status == "done":
        cov = coverage(store, run_id)
        if cov["predicted"] < cov["planned"]:
            status = "partial"
    with store.write() as cur:
        cur.execute("UPDATE runs SET status = ?, finished_at = current_timestamp WHERE run_id = ?", [status, run_id])
    return status


def set_run_status(store: Store, run_id: str, status: str) -> None:
    """Change the status without touching finished_at (e.g. back to running on resume)."""
    if status not in RUN_STATUSES:
        raise RunError(f"Run status must be one of {', '.join(RUN_STATUSES)}, not '{status}'.")
    with store.write() as cur:
        cur.execute("UPDATE runs SET status = ?, finished_at = NULL WHERE run_id = ?", [status, run_id])


def update_run(store: Store, run_id: str, **fields: Any) -> None:
    allowed = {"location", "revision", "model", "notes", "instances", "name", "identity", "identity_hash",
               "job_id", "output_dir", "endpoint"}
    if "identity" in fields and not isinstance(fields["identity"], (str, type(None))):
        ident = fields["identity"]
        fields["identity_hash"] = ident.digest() if hasattr(ident, "digest") else None
        fields["identity"] = _json(ident.to_dict() if hasattr(ident, "to_dict") else ident)
    bad = set(fields) - allowed
    if bad:
        raise RunError(f"Cannot change {', '.join(sorted(bad))} of a run.")
    if not fields:
        return
    cols = ", ".join(f"{k} = ?" for k in fields)
    with store.write() as cur:
        cur.execute(f"UPDATE runs SET {cols} WHERE run_id = ?", [*fields.values(), run_id])


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    row = decode_json_columns(row, ("options", "sampling", "selection", "missing", "identity"))
    if "predictions" in row:  # list_runs / get_run rows: coverage, spelled out
        sel = row.get("selection") or []
        miss = row.get("missing") or []
        planned = row.get("planned")
        planned = int(planned) if planned is not None else len(sel) + len(miss)
        row["planned"] = planned
        row["missing_ids"] = list(miss)
        row["missing"] = len(miss)
        row["scored"] = int(row.get("ok") or 0) + int(row.get("unparsed") or 0)
        row["errored"] = int(row.get("errors") or 0)
        row["not_predicted"] = max(0, planned - int(row.get("predictions") or 0))
        row["coverage"] = f"{row['scored']}/{planned}"
    return row


_COUNTS_CTE = """
        WITH c AS (
            SELECT run_id, count(*) AS predictions,
                   count(*) FILTER (WHERE status = 'ok') AS ok,
                   count(*) FILTER (WHERE status = 'unparsed') AS unparsed,
                   count(*) FILTER (WHERE status = 'error') AS errors,
                   count(*) FILTER (WHERE cached) AS cached
            FROM predictions {where} GROUP BY run_id)"""


def coverage(store: Store, run_id: str) -> dict[str, Any]:
    """planned / predicted / scored (ok or unparsed) / errored / missing (not in the library) of one run."""
    row = store.query(
        """SELECT r.planned, r.selection, r.missing,
                  (SELECT count(*) FROM predictions p WHERE p.run_id = r.run_id) AS predicted,
                  (SELECT count(*) FROM predictions p WHERE p.run_id = r.run_id AND p.status = 'error') AS errored
           FROM runs r WHERE r.run_id = ?""", [run_id])
    if not row:
        raise RunError(f"No run has the id '{run_id}'.")
    r = decode_json_columns(row[0], ("selection", "missing"))
    miss = r.get("missing") or []
    planned = int(r["planned"]) if r.get("planned") is not None else len(r.get("selection") or []) + len(miss)
    predicted, errored = int(r["predicted"]), int(r["errored"])
    return {"planned": planned, "predicted": predicted, "scored": predicted - errored, "errored": errored,
            "missing": len(miss), "missing_ids": list(miss), "not_predicted": max(0, planned - predicted)}


def get_run(store: Store, id_or_name: str) -> dict[str, Any]:
    """The run with this id, or else with this name. Unknown or ambiguous → RunError (one sentence)."""
    ref = (id_or_name or "").strip()
    if not ref:
        raise RunError("Name a run by its id (such as r20261121-183000-ab12) or its name.")
    rows = store.query("SELECT run_id FROM runs WHERE run_id = ?", [ref])
    if not rows:
        rows = store.query("SELECT run_id FROM runs WHERE name = ? ORDER BY created_at", [ref])
    if not rows:
        rows = store.query("SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id", [ref]) if len(ref) >= 9 else []
    if not rows:
        raise RunError(f"No run has the id or name '{ref}'; `ghostprobe runs list` shows them.")
    if len(rows) > 1:
        ids = ", ".join(r["run_id"] for r in rows[:5])
        raise RunError(f"'{ref}' matches {len(rows)} runs ({ids}); name one by its run id.")
    return _run_rows(store, "WHERE r.run_id = ?", [rows[0]["run_id"]], "WHERE run_id = ?", [rows[0]["run_id"]])[0]


def _run_rows(store: Store, where: str, params: list[Any], inner_where: str = "", inner_params: list[Any] | None = None,
              limit: int | None = None) -> list[dict[str, Any]]:
    sql = _COUNTS_CTE.format(where=inner_where) + f"""
        SELECT r.*, coalesce(c.predictions, 0) AS predictions, coalesce(c.ok, 0) AS ok,
               coalesce(c.unparsed, 0) AS unparsed, coalesce(c.errors, 0) AS errors,
               coalesce(c.cached, 0) AS cached, json_array_length(r.selection) AS selected
        FROM runs r LEFT JOIN c USING (run_id)
        {where}
        ORDER BY r.created_at DESC, r.run_id DESC
        {"LIMIT " + str(int(limit)) if limit else ""}"""
    return [_decode_run(r) for r in store.query(sql, [*(inner_params or []), *params])]


def list_runs(store: Store, *, engine: str | None = None, label_set: str | None = None,
              status: str | None = None, prompt_id: str | None = None, model: str | None = None,
              search: str | None = None, limit: int | None = None, include_hidden: bool = False) -> list[dict[str, Any]]:
    """Runs newest first with their prediction counts and coverage (one SQL aggregate). Hidden runs are
    left out unless ``include_hidden``."""
    where, params = [], []
    for col, val in (("engine", engine), ("label_set", label_set), ("status", status),
                     ("prompt_id", prompt_id), ("model", model)):
        if val is not None:
            where.append(f"r.{col} = ?")
            params.append(val)
    if search:
        where.append("(r.run_id ILIKE ? OR r.name ILIKE ? OR r.model ILIKE ?)")
        params += [f"%{search}%"] * 3
    if not include_hidden:
        where.append("NOT coalesce(r.hidden, false)")
    return _run_rows(store, ("WHERE " + " AND ".join(where)) if where else "", params, limit=limit)


def rename_run(store: Store, run_id: str, name: str | None) -> None:
    """Give a run a (unique) name, or clear it with None/""."""
    run = get_run(store, run_id)
    name = (name or "").strip() or None
    with store.write() as cur:
        if name is not None:
            clash = cur.execute("SELECT run_id FROM runs WHERE (name = ? OR run_id = ?) AND run_id <> ?",
                                [name, name, run["run_id"]]).fetchone()
            if clash:
                raise RunError(f"A run named '{name}' already exists ({clash[0]}); choose another name.")
        cur.execute("UPDATE runs SET name = ? WHERE run_id = ?", [name, run["run_id"]])


def set_run_hidden(store: Store, run_id: str, hidden: bool = True) -> None:
    """Hide a run from the tables and charts (its data stays; unhide brings it back)."""
    run = get_run(store, run_id)
    with store.write() as cur:
        cur.execute("UPDATE runs SET hidden = ? WHERE run_id = ?", [bool(hidden), run["run_id"]])


def delete_run(store: Store, run_id: str) -> dict[str, Any]:
    """Delete a run and its reviews. Its answers stay in the response log (detached from the run), so
    nothing a model said is lost; a running run cannot be deleted."""
    run = get_run(store, run_id)
    if run["status"] == "running":
        raise RunError(f"Run {run['run_id']} is still running; cancel it before deleting it.")
    with store.write() as cur:
        n = cur.execute("SELECT count(*) FROM responses WHERE run_id = ?", [run["run_id"]]).fetchone()[0]
        cur.execute("""UPDATE responses SET extra = json_merge_patch(coalesce(extra, '{}'),
                                                                json_object('deleted_run', run_id)),
                              run_id = NULL, current = false
                       WHERE run_id = ?""", [run["run_id"]])
        cur.execute("DELETE FROM reviews WHERE run_id = ?", [run["run_id"]])
        cur.execute("DELETE FROM runs WHERE run_id = ?", [run["run_id"]])
    return {"run_id": run["run_id"], "name": run.get("name"), "responses_detached": int(n)}


# -- predictions -----------------------------------------------------------------------------------
def _g(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def add_prediction(store: Store, run_id: str, video_id: str, sha256: str | None, verdict: Verdict | dict,
                   call: Any = None, cached: bool = False, **fields: Any) -> int:
    """Log one answer of a run's video as a response (replacing an earlier current one for that video);
    returns the response id. ``fields`` are further response columns (identity, engine, prompt_hash …)."""
    from reports.responses import log_response

    run = store.query("SELECT engine, model, revision, prompt_hash, options, sampling, status FROM runs "
                      "WHERE run_id = ?", [run_id])
    r = run[0] if run else {}
    fields.setdefault("model", r.get("model"))
    fields.setdefault("revision", r.get("revision"))
    fields.setdefault("prompt_hash", r.get("prompt_hash"))
    fields.setdefault("options", json.loads(r["options"]) if isinstance(r.get("options"), str) else r.get("options"))
    fields.setdefault("sampling", json.loads(r["sampling"]) if isinstance(r.get("sampling"), str) else r.get("sampling"))
    kind = fields.pop("kind", None) or ("import" if r.get("status") == "imported" else "eval")
    engine = fields.pop("engine", None) or r.get("engine") or _g(call, "engine") or "unknown"
    return log_response(store, kind=kind, engine=engine, verdict=verdict, call=call, run_id=run_id,
                        video_id=video_id, sha256=sha256, cached=bool(cached), **fields)


def add_predictions(store: Store, run_id: str, items: Iterable[tuple[str, str | None, Any, Any, bool]]) -> int:
    """Log many answers in one transaction (imports): items of (video_id, sha256, verdict, call, cached)."""
    from reports.responses import log_many, row_values

    run = store.query("SELECT engine, model, status FROM runs WHERE run_id = ?", [run_id])
    r = run[0] if run else {}
    kind = "import" if r.get("status") == "imported" else "eval"
    rows = [row_values(kind=kind, engine=r.get("engine") or "unknown", verdict=v, call=c, run_id=run_id,
                       video_id=vid, sha256=sha, cached=bool(cached), model=r.get("model"))
            for vid, sha, v, c, cached in items]
    return len(log_many(store, rows)) if rows else 0


def delete_predictions(store: Store, run_id: str) -> None:
    """Remove every answer of a run from the log (only for a failed import: nothing was shown yet)."""
    with store.write() as cur:
        cur.execute("DELETE FROM responses WHERE run_id = ?", [run_id])


def predictions(store: Store, run_id: str, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """The run's predictions joined with the labels of its label set (label_* columns NULL when unlabelled),
    ordered by video id; ``limit``/``offset`` page through a large run."""
    from reports.correctness import correct_sql

    page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
    return store.query(
        f"""SELECT p.*, l.ghost_probing AS label_ghost_probing, l.kind AS label_kind, l.onset_s AS label_onset_s,
                  l.note AS label_note, {correct_sql()} AS correct
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


def label_set_coverage(store: Store, label_set: str) -> dict[str, Any]:
    """How many of a label set's videos are in the library (matched by :func:`video_key`), and which are not."""
    labelled = [r["video_id"] for r in store.query(
        "SELECT video_id FROM labels WHERE label_set = ? ORDER BY video_id", [label_set])]
    keys = {video_key(r["video_id"]) for r in store.query("SELECT video_id FROM videos")}
    missing = [v for v in labelled if video_key(v) not in keys]
    return {"label_set": label_set, "labelled": len(labelled), "in_library": len(labelled) - len(missing),
            "missing": missing}
