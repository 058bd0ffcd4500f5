"""Threshold calibration on held-out normal clips (``ghostprobe vad calibrate``).

AI-VAD's scores are unbounded sums of min-max-normalised stream scores, so a fixed threshold means
nothing; the motion map's 0.5 is an a-priori choice. Calibration runs the engine over *held-out*
normal clips (never the clips AI-VAD's banks were fitted on: refused by SHA-256) and sets the
threshold at a quantile of the scores the verdict rule (:mod:`engines.vad.verdict`) compares with
it — the **in-path** score of each frame (the best box whose ground contact lies in the ego path;
the frame score when the engine gives no boxes):

- ``level="frame"`` (default): the ``q`` quantile of every normal frame's in-path score (numpy's
  ``linear`` method), so about ``1 - q`` of normal *frames* reach the threshold. A clip's verdict is
  its peak over frames, so more than ``1 - q`` of normal *clips* can still be flagged;
- ``level="peak"``: the ``q`` quantile of each normal clip's peak in-path score: about ``1 - q`` of
  normal *clips* are flagged (needs many clips to mean anything at q = 0.99).

The threshold and its provenance (clips with their SHA-256, frames, quantile, level, the engine
identity that scored them, sampling, date) go into ``ai_vad_config.yaml`` (``threshold``,
``calibrated: true``, ``calibration: {...}``) for AI-VAD or ``motion_calibration.json`` for the motion
map. Both are part of the engine identity, so results cached under another threshold are not reused.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import EngineError

MOTION_FILE = "motion_calibration.json"
LEVELS = ("frame", "peak")
METHOD = "quantile of held-out normal clips' in-path scores (numpy linear), rule vad-peak-in-ego-path-v1"


def quantile_threshold(scores: Iterable[float], q: float) -> float:
    """The ``q`` quantile (numpy's default ``linear`` method) of the finite scores."""
    arr = np.asarray([float(s) for s in scores if s is not None and math.isfinite(float(s))], np.float64)
    if arr.size == 0:
        raise EngineError("No finite anomaly scores came out of the normal clips; nothing to calibrate on.")
    return float(np.quantile(arr, float(q), method="linear"))


def in_path_frame_scores(det: Any) -> list[float]:
    """The per-frame scores the verdict rule thresholds (in-path box scores, or frame scores without boxes)."""
    from engines.vad.verdict import EgoPath, in_path_scores

    a = det.artifacts
    track = [(float(t), float(s)) for t, s in (a.tracks or {}).get("anomaly", [])
             if s is not None and math.isfinite(float(s))]
    fw, fh = (a.extra or {}).get("frame_size") or (1, 1)
    ep = (a.extra or {}).get("ego_path")
    path = EgoPath(center_x=float(ep["center_x"]), horizon_y=float(ep["horizon_y"])) if ep else EgoPath()
    scores, _ = in_path_scores(track, list(a.boxes or []), int(fw), int(fh), path)
    return [s for _t, s in scores]


def check_quantile(q: float) -> float:
    q = float(q)
    if not (0.0 < q < 1.0) or not math.isfinite(q):
        raise EngineError(f"--quantile must be between 0 and 1 (exclusive), not {q:g}.")
    return q


def overlap(normal: list[dict[str, Any]], fitted_sha256: list[str] | None, fitted_names: list[str] | None
            ) -> tuple[list[str], list[str]]:
    """(clips whose SHA-256 the banks were fitted on, warnings)."""
    warnings: list[str] = []
    if fitted_sha256:
        fitted = set(fitted_sha256)
        return [c["name"] for c in normal if c["sha256"] in fitted], warnings
    if fitted_names is not None:
        warnings.append("the artifact records no SHA-256 of its fitting clips (fitted before calibration "
                        "existed): overlap was checked by file name only")
        same = sorted({c["name"] for c in normal} & {str(n) for n in fitted_names})
        if same:
            warnings.append(f"normal clip(s) {', '.join(same)} have the names of fitting clips")
        return [], warnings
    warnings.append("the artifact records no fitting clips: overlap with them could not be checked")
    return [], warnings


def calibrate(detect: Callable[[Any], Any], clips: list[dict[str, Any]], load: Callable[[dict[str, Any]], Any],
              quantile: float = 0.99, level: str = "frame", on_clip: Callable[[int, int, str], None] | None = None
              ) -> dict[str, Any]:
    """Run ``detect`` on every normal clip (``load(c)`` gives its frames) and compute the threshold.

    ``clips``: ``[{"name", "sha256", "path"}]``. Returns the provenance (``threshold``, ``scores``
    — the values the quantile was taken of — and per-clip rows)."""
    q = check_quantile(quantile)
    if level not in LEVELS:
        raise EngineError(f"--level must be one of {', '.join(LEVELS)}, not {level!r}.")
    if not clips:
        raise EngineError("No normal clips to calibrate on.")
    rows, all_frames = [], []
    for i, c in enumerate(clips):
        if on_clip is not None:
            on_clip(i, len(clips), c["name"])
        det = detect(load(c))
        if det.verdict.status != "ok":
            raise EngineError(f"The engine could not score the normal clip {c['name']}: {det.verdict.reason}")
        s = in_path_frame_scores(det)
        if not s:
            raise EngineError(f"The normal clip {c['name']} gave no frame scores.")
        all_frames.extend(s)
        rows.append({"name": c["name"], "sha256": c["sha256"], "frames": len(s), "peak": round(max(s), 6)})
    values = all_frames if level == "frame" else [r["peak"] for r in rows]
    thr = quantile_threshold(values, q)
    if not thr > 0:
        zeros = sum(1 for v in values if v <= 0)
        raise EngineError(f"The {level} scores of the normal clips are 0 at q={q:g} ({zeros} of {len(values)} "
                          f"are 0): a threshold of 0 would flag every clip; use more or busier normal clips, "
                          f"a higher quantile or --level peak.")
    return {"threshold": round(thr, 6), "quantile": q, "level": level, "method": METHOD,
            "n_clips": len(rows), "n_frames": len(all_frames), "n_values": len(values),
            "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "clips": rows, "scores": [round(float(v), 6) for v in values]}


def public(prov: dict[str, Any]) -> dict[str, Any]:
    """The provenance as stored (without the raw score list)."""
    return {k: v for k, v in prov.items() if k != "scores"}


def caveat(cal: dict[str, Any] | None) -> str:
    if not cal:
        return ""
    return (f"threshold calibrated on {int(cal.get('n_clips', 0))} normal clips at q={float(cal.get('quantile', 0)):g}"
            + (" (per-clip peaks)" if cal.get("level") == "peak" else ""))


# -- where a calibration is written ----------------------------------------------------------------
def write_aivad(artifact: str | Path, prov: dict[str, Any]) -> Path:
    """Threshold and provenance into the artifact's ai_vad_config.yaml (other keys untouched)."""
    import yaml

    from engines.vad.aivad import CONFIG_FILE

    p = Path(artifact) / CONFIG_FILE
    cfg = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    prev = cfg.get("threshold")
    cfg["threshold"] = float(prov["threshold"])
    cfg["calibrated"] = True
    cfg["calibration"] = {**public(prov), "previous_threshold": prev}
    tmp = p.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(cfg, sort_keys=True, allow_unicode=True), encoding="utf-8")
    tmp.replace(p)
    return p


def motion_path(where: str | Path | None = None) -> Path:
    """The motion map's calibration file: ``where`` (a file, or a folder holding motion_calibration.json),
    else ``$GHOSTPROBE_MOTION_CALIBRATION``, else ``<data dir>/vad/motion_calibration.json``."""
    from engines import settings

    if where is None:
        where = settings.env("GHOSTPROBE_MOTION_CALIBRATION")
    if where is None:
        return settings.current().data_dir / "vad" / MOTION_FILE
    p = Path(where).expanduser()
    return p if p.suffix.lower() == ".json" else p / MOTION_FILE


def write_motion(path: str | Path, prov: dict[str, Any]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"format": "ghostprobe-motion-calibration-1", **public(prov)}, ensure_ascii=False,
                              indent=2), encoding="utf-8")
    tmp.replace(p)
    return p


def read_motion(path: str | Path) -> dict[str, Any] | None:
    """The stored calibration, or None when there is no file. A damaged file is one sentence."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        thr = float(doc["threshold"])
    except (ValueError, KeyError, TypeError):
        raise EngineError(f"The motion-map calibration {p} is damaged; run `ghostprobe vad calibrate` again.") from None
    if not (math.isfinite(thr) and thr > 0):
        raise EngineError(f"The motion-map calibration {p} has no usable threshold.")
    return doc
