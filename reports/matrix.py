"""The videos × runs matrix of the Prompt Lab, as data: labels and predictions in, rows of cells out.

Pure: no store, no Gradio. The Prompt Lab lays the rows out as HTML and serves them through its
``lab_matrix`` API; tests feed it plain dicts.

A cell's class is one of ``right``, ``wrong``, ``unparsed``, ``error``, ``unlabelled`` and
``missing`` (no prediction yet). An unparsed answer is its own class, never "no". A run scored
against another label set is compared with *this* set's label, by the same rule of correctness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

CLASSES = ("right", "wrong", "unparsed", "error", "unlabelled", "missing")

try:  # one definition of "correct" for metrics, SQL, matrix and comparisons (issue 8)
    from reports.correctness import is_correct as _shared_is_correct  # type: ignore[attr-defined]
except ImportError:  # not landed yet: today's rule, the one of reports.runs.predictions' SQL
    _shared_is_correct = None


def is_correct(status: str | None, answer: bool | None, label: bool | None) -> bool | None:
    """None without a label; False for an answer that is not ``ok`` (unparsed, error); else answer == label."""
    if _shared_is_correct is not None:
        return _shared_is_correct(status, answer, label)
    if label is None:
        return None
    if status != "ok" or answer is None:
        return False
    return bool(answer) == bool(label)


def classify(p: dict[str, Any] | None, label: bool | None) -> str:
    """The class of one cell: the prediction row ``p`` (status, ghost_probing) against ``label``."""
    if p is None:
        return "missing"
    if p.get("status") == "error":
        return "error"
    if p.get("status") != "ok" or p.get("ghost_probing") is None:
        return "unparsed"
    c = is_correct(p.get("status"), p.get("ghost_probing"), label)
    if c is None:
        return "unlabelled"
    return "right" if c else "wrong"


def _default_key(video_id: str) -> str:
    from reports.labels import video_key

    return video_key(video_id)


def build(labels: Sequence[dict[str, Any]], runs: Sequence[dict[str, Any]],
          predictions: dict[str, Iterable[dict[str, Any]]],
          key: Callable[[str], str] | None = None) -> list[dict[str, Any]]:
    """Rows of the matrix, one per labelled video in label order.

    labels: rows with ``video_id``, ``ghost_probing`` (and whatever else the caller shows).
    runs: run rows with ``run_id`` (order = column order).
    predictions: run_id → that run's prediction rows (``video_id``, ``status``, ``ghost_probing`` …).
    key: the video-id matching rule (default reports.labels.video_key).

    Each row: ``{"video_id", "label": <label row>, "cells": [{"run_id", "class", "prediction"}]}``.
    """
    key = key or _default_key
    by_run = {r["run_id"]: {key(p["video_id"]): p for p in predictions.get(r["run_id"], ())} for r in runs}
    out = []
    for lrow in labels:
        k = key(lrow["video_id"])
        truth = lrow.get("ghost_probing")
        cells = []
        for r in runs:
            p = by_run[r["run_id"]].get(k)
            cells.append({"run_id": r["run_id"], "class": classify(p, truth), "prediction": p})
        out.append({"video_id": lrow["video_id"], "label": lrow, "cells": cells})
    return out


def column_counts(rows: Sequence[dict[str, Any]], run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per run: how many cells of each class, plus ``planned`` (rows) and ``scored`` (ok or unparsed answers)."""
    out = {rid: {c: 0 for c in CLASSES} for rid in run_ids}
    for row in rows:
        for cell in row["cells"]:
            out[cell["run_id"]][cell["class"]] += 1
    for rid, c in out.items():
        c["planned"] = len(rows)
        c["scored"] = c["right"] + c["wrong"] + c["unparsed"] + c["unlabelled"]
    return out


def as_records(rows: Sequence[dict[str, Any]], badge: Callable[[dict[str, Any]], str]) -> list[dict[str, Any]]:
    """The API form: ``{video_id, label, <run_id>: class, …}`` per row."""
    return [{"video_id": r["video_id"], "label": badge(r["label"]), **{c["run_id"]: c["class"] for c in r["cells"]}}
            for r in rows]
