"""Anomaly-engine results in DuckDB: per-frame scores and per-box scores of one response, reused.

Tables (migration ``m010_vad``):

- ``vad_runs``: one row per anomaly response (``response_id``, the response log's id): the
  identity cache key (engine identity + clip SHA-256), the verdict, the artifacts' summary, the
  low-resolution maps (uint8-quantised, compressed ``.npz`` bytes) and their times;
- ``vad_frames(response_id, frame, t, score)``: the per-frame anomaly score;
- ``vad_boxes(response_id, frame, t, x1, y1, x2, y2, score, label)``: boxes in pixels of the
  frame as sampled.

Reuse: :func:`find` looks a result up by cache key, so the same clip, engine identity and settings
never run twice. :func:`record` writes the response-log row and its vad rows in one transaction;
:func:`save` adds the vad rows to a response the core already logged (an evaluation run).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engines.base import Artifacts, Box, CallRecord, Detection
from engines.types import Verdict


@dataclass
class VadResult:
    response_id: int
    cache_key: str
    verdict: Verdict
    artifacts: Artifacts
    engine: str = ""
    video_id: str | None = None
    sha256: str | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    call: dict[str, Any] = field(default_factory=dict)

    @property
    def track(self) -> list[tuple[float, float]]:
        return next(iter(self.artifacts.tracks.values()), [])

    @property
    def threshold(self) -> float | None:
        name = next(iter(self.artifacts.tracks), None)
        return None if name is None else self.artifacts.thresholds.get(name)

    @property
    def random_weights(self) -> bool:
        return bool(self.artifacts.extra.get("random_weights"))


def _pack_maps(maps: Any) -> bytes | None:
    if maps is None:
        return None
    q = np.clip(np.nan_to_num(np.asarray(maps, dtype=np.float32)), 0.0, 1.0)
    buf = io.BytesIO()
    np.savez_compressed(buf, maps=(q * 255).round().astype(np.uint8))
    return buf.getvalue()


def _unpack_maps(blob: Any) -> np.ndarray | None:
    if blob is None:
        return None
    with np.load(io.BytesIO(bytes(blob))) as z:
        return z["maps"].astype(np.float32) / 255.0


def save(store, response_id: int, detection: Detection, *, cache_key: str, sha256: str | None = None,
         video_id: str | None = None, identity: dict[str, Any] | None = None,
         timestamps: list[float] | None = None) -> int:
    """Write ``detection``'s scores, boxes and maps under an existing ``response_id`` (one transaction).

    ``timestamps`` (the clip's sampled frame times) turn a score's time into its frame index; without
    them the index is the score's position in the track. Saving again under the same id replaces."""
    with store.write() as w:
        write_rows(w, int(response_id), detection, cache_key=cache_key, sha256=sha256, video_id=video_id,
                   identity=identity, timestamps=timestamps)
    return int(response_id)


def save_artifacts(store, response_id: int, artifacts: Artifacts) -> int | None:
    """The prediction core's sink (webapp/predict.py ``_artifact_sinks``): the vad rows of a response
    it has just logged, with the cache key, clip SHA-256, video, identity and verdict read back from
    that ``responses`` row. Returns the id, or None when the row does not exist."""
    from reports import responses

    row = responses.get(store, int(response_id))
    if row is None:
        return None
    verdict = Verdict(**{k: row.get(k) for k in ("ghost_probing", "confidence", "danger_level", "object_type",
                                                 "onset_s", "status")}, reason=row.get("reason") or "",
                      raw=row.get("response") or "")
    call = CallRecord(engine=row.get("engine") or "", model=row.get("model_reported") or row.get("model"),
                      revision=row.get("revision"), latency_s=row.get("model_s"), decode_s=row.get("decode_s"),
                      generate_s=row.get("generate_s"), device=row.get("device"))
    det = Detection(verdict=verdict, call=call, artifacts=artifacts)
    ident = row.get("identity") if isinstance(row.get("identity"), dict) else {}
    return save(store, int(response_id), det, cache_key=row.get("cache_key") or f"response:{response_id}",
                sha256=row.get("sha256"), video_id=row.get("video_id"), identity=ident)


def record(store, detection: Detection, *, identity: Any, sha256: str, video_id: str | None = None,
           sampling: dict[str, Any] | None = None, decode_s: float | None = None,
           timestamps: list[float] | None = None, kind: str = "detect", run_id: str | None = None) -> int:
    """Log the response (``reports.responses``) and its vad rows in ONE transaction; returns the id.

    ``identity`` is the engine's :class:`~engines.base.EngineIdentity`; the cache key is
    ``identity.cache_key(sha256)``."""
    from reports import responses

    key = identity.cache_key(sha256)
    ident = identity.to_dict()
    call = detection.call.to_dict()
    if decode_s is not None:
        call["decode_s"] = decode_s
    row = responses.row_values(
        kind=kind, engine=detection.call.engine or identity.engine, verdict=detection.verdict, call=call,
        run_id=run_id, video_id=video_id, sha256=sha256, engine_kind=identity.kind, model=identity.model,
        revision=identity.revision, endpoint=identity.endpoint, identity=ident, identity_hash=identity.digest(),
        cache_key=key, sampling=dict(sampling or {}), artifacts=detection.artifacts.summary(),
        error=detection.verdict.reason if detection.verdict.status == "error" else None)
    with store.write() as w:
        rid = responses.insert(w, row)
        write_rows(w, rid, detection, cache_key=key, sha256=sha256, video_id=video_id, identity=ident,
                   timestamps=timestamps)
    return rid


def write_rows(w, response_id: int, detection: Detection, *, cache_key: str, sha256: str | None = None,
               video_id: str | None = None, identity: dict[str, Any] | None = None,
               timestamps: list[float] | None = None) -> None:
    """The vad rows of one response on an open write cursor (inside ``store.write()``)."""
    arts = detection.artifacts
    name = next(iter(arts.tracks), None)
    track = arts.tracks.get(name, []) if name else []
    ts = np.asarray(timestamps, dtype=float) if timestamps else None
    fidx = arts.extra.get("frame_indices") if ts is None else None  # the engine's own frame index per score
    if not (isinstance(fidx, list) and len(fidx) == len(track)):
        fidx = None
    frame_rows = []
    seen: set[int] = set()
    for pos, (t, s) in enumerate(track):
        i = int(np.argmin(np.abs(ts - float(t)))) if ts is not None and len(ts) else (
            int(fidx[pos]) if fidx is not None else pos)
        if i in seen:
            i = max(seen) + 1
        seen.add(i)
        frame_rows.append([response_id, i, float(t), None if s is None else float(s)])
    box_rows = [[response_id, int(b.frame), float(b.t), float(b.x1), float(b.y1), float(b.x2), float(b.y2),
                 float(b.score), b.label or ""] for b in arts.boxes]
    summary = arts.summary()
    w.execute("DELETE FROM vad_frames WHERE response_id = ?", [response_id])
    w.execute("DELETE FROM vad_boxes WHERE response_id = ?", [response_id])
    w.execute("DELETE FROM vad_runs WHERE response_id = ?", [response_id])
    w.execute(
        "INSERT INTO vad_runs (response_id, cache_key, sha256, video_id, engine, identity, verdict, call,"
        " summary, maps, map_times, random_weights) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [response_id, cache_key, sha256, video_id, detection.call.engine,
         json.dumps(identity or {}, ensure_ascii=False, default=str),
         json.dumps(detection.verdict.to_dict(), ensure_ascii=False),
         json.dumps(detection.call.to_dict(), ensure_ascii=False, default=str),
         json.dumps(summary, ensure_ascii=False, default=str), _pack_maps(arts.maps),
         json.dumps([float(t) for t in arts.map_times]), bool(arts.extra.get("random_weights"))])
    if frame_rows:
        w.executemany("INSERT INTO vad_frames (response_id, frame, t, score) VALUES (?, ?, ?, ?)", frame_rows)
    if box_rows:
        w.executemany("INSERT INTO vad_boxes (response_id, frame, t, x1, y1, x2, y2, score, label)"
                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", box_rows)


def find(store, cache_key: str) -> int | None:
    """The latest stored non-error response for this cache key (identity + clip SHA-256), or None.

    An error is never reused: the next run tries again."""
    return store.scalar("SELECT response_id FROM vad_runs WHERE cache_key = ?"
                        " AND coalesce(json_extract_string(verdict, '$.status'), '') <> 'error'"
                        " ORDER BY created_at DESC LIMIT 1", [cache_key])


def load(store, response_id: int) -> VadResult | None:
    rows = store.query("SELECT * FROM vad_runs WHERE response_id = ?", [int(response_id)])
    if not rows:
        return None
    r = rows[0]
    summary = json.loads(r["summary"] or "{}")
    vd = json.loads(r["verdict"] or "{}")
    verdict = Verdict(**{k: vd.get(k) for k in Verdict.__dataclass_fields__ if k in vd})
    frames = store.query("SELECT frame, t, score FROM vad_frames WHERE response_id = ? ORDER BY frame", [int(response_id)])
    boxes = [Box(frame=int(b["frame"]), t=float(b["t"]), x1=b["x1"], y1=b["y1"], x2=b["x2"], y2=b["y2"],
                 score=b["score"], label=b["label"] or "")
             for b in store.query("SELECT * FROM vad_boxes WHERE response_id = ? ORDER BY frame, score DESC",
                                  [int(response_id)])]
    name = next(iter(summary.get("tracks", {})), "anomaly")
    arts = Artifacts(tracks={name: [(float(f["t"]), float(f["score"])) for f in frames if f["score"] is not None]},
                     thresholds={k: float(v) for k, v in summary.get("thresholds", {}).items()}, boxes=boxes,
                     maps=_unpack_maps(r["maps"]), map_times=json.loads(r["map_times"] or "[]"),
                     extra=summary.get("extra", {}))
    return VadResult(response_id=int(response_id), cache_key=r["cache_key"], verdict=verdict, artifacts=arts,
                     engine=r["engine"] or "", video_id=r["video_id"], sha256=r["sha256"],
                     identity=json.loads(r["identity"] or "{}"), call=json.loads(r["call"] or "{}"))


def latest_for_video(store, video_id: str, engine: str | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT response_id, engine, created_at, random_weights FROM vad_runs WHERE video_id = ?"
           + (" AND engine = ?" if engine else "") + " ORDER BY created_at DESC")
    return store.query(sql, [video_id, engine] if engine else [video_id])
