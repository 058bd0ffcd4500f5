"""The rule that turns a clip's anomaly scores into a ghost-probing verdict (every anomaly engine).

Rule ``vad-peak-in-ego-path-v1``:

1. The *ego path* is a trapezoid in the picture: its apex at the focus of expansion (``center_x``,
   ``horizon_y``, fractions of the frame; the motion engine measures them, AI-VAD uses the
   defaults 0.5 / 0.45) and its half-width growing linearly to ``half_width_bottom`` × frame
   width at the bottom row, plus ``margin`` × width on each side.
2. The *in-path score* of a frame is the highest score of that frame's boxes whose bottom-centre
   (where the object stands on the road) lies inside the ego path. An engine that produces no
   boxes at all is scored by its per-frame score (the whole picture).
3. The clip's score is the peak in-path score. ``ghost_probing`` is ``peak >= threshold``;
   ``onset_s`` is the time of the peak (the moment the engine found the most anomalous thing in
   the path, not a measured emergence time); confidence is the normalised score
   ``p = peak / (peak + threshold)`` (0.5 at the threshold, monotone, in 0..1 for scores >= 0),
   stated for the answer given: ``p`` for a "yes", ``1 - p`` for a "no", as every engine does.
4. ``status="error"`` when nothing could be measured (no frame scores), never a "no".

AI-VAD's scores are unbounded sums of min-max-normalised stream scores: its threshold must be
calibrated on held-out normal clips (``ghostprobe vad calibrate``, :mod:`engines.vad.calibrate`,
written to ``ai_vad_config.yaml``); the reason says "threshold calibrated on N normal clips at q=…"
or that it is uncalibrated, and the evidence carries the calibration's provenance.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from engines.base import Box
from engines.types import Verdict

RULE = "vad-peak-in-ego-path-v1"


@dataclass(frozen=True)
class EgoPath:
    center_x: float = 0.5
    horizon_y: float = 0.45
    half_width_bottom: float = 0.35
    margin: float = 0.02

    def contains(self, x: float, y: float) -> bool:
        """Is the point (fractions of the frame) inside the path?"""
        if y < self.horizon_y:
            return False
        depth = (y - self.horizon_y) / max(1e-6, 1.0 - self.horizon_y)
        return abs(x - self.center_x) <= self.half_width_bottom * depth + self.margin

    def contains_box(self, b: Box, width: int, height: int) -> bool:
        return self.contains((b.x1 + b.x2) / 2.0 / max(1, width), b.y2 / max(1, height))


def normalised(score: float, threshold: float) -> float:
    """``score / (score + threshold)`` clipped to 0..1 (0.5 at the threshold)."""
    if not math.isfinite(score) or score <= 0:
        return 0.0
    if threshold <= 0:
        return 1.0
    return float(min(1.0, score / (score + threshold)))


def in_path_scores(frame_scores: list[tuple[float, float]], boxes: list[Box], width: int, height: int,
                   path: EgoPath) -> tuple[list[tuple[float, float]], dict[float, Box]]:
    """Per-frame in-path score ``[(t, s)]`` and, per time, the box that gave it."""
    if not boxes:
        return [(float(t), float(s)) for t, s in frame_scores], {}
    best: dict[float, tuple[float, Box]] = {}
    for b in boxes:
        if not path.contains_box(b, width, height):
            continue
        key = round(float(b.t), 4)
        if key not in best or b.score > best[key][0]:
            best[key] = (float(b.score), b)
    out = [(float(t), best[round(float(t), 4)][0] if round(float(t), 4) in best else 0.0) for t, _ in frame_scores]
    return out, {k: v[1] for k, v in best.items()}


def verdict_from_scores(frame_scores: list[tuple[float, float]], boxes: list[Box], width: int, height: int,
                        threshold: float, path: EgoPath | None = None, engine: str = "",
                        random_weights: bool = False, calibrated: bool = True,
                        note: str = "", calibration: dict[str, Any] | None = None) -> Verdict:
    """The ghost-probing verdict of one clip by :data:`RULE` (see the module docstring)."""
    path = path or EgoPath()
    finite = [(t, s) for t, s in frame_scores if s is not None and math.isfinite(float(s))]
    if not finite:
        why = note or "没有可计算异常得分的帧"
        return Verdict.error(f"异常检测没有得到任何帧得分（{why}），无法判断。")
    scores, winners = in_path_scores(finite, boxes, width, height, path)
    t_peak, peak = max(scores, key=lambda ts: (ts[1], -ts[0]))
    yes = peak >= threshold
    p = normalised(peak, threshold)
    conf = p if yes else 1.0 - p
    box = winners.get(round(float(t_peak), 4))
    evidence: dict[str, Any] = {
        "rule": RULE, "engine": engine, "score": round(float(peak), 5), "threshold": float(threshold),
        "t_peak": round(float(t_peak), 3), "p_anomalous": round(p, 4), "frames": len(finite),
        "boxes": len(boxes), "ego_path": asdict(path), "scored_by": "boxes" if boxes else "frame score",
        "random_weights": bool(random_weights), "calibrated": bool(calibrated or calibration)}
    if calibration:
        evidence["calibration"] = {k: calibration.get(k) for k in ("n_clips", "n_frames", "quantile", "level", "date")}
    if box is not None:
        evidence["box"] = [round(box.x1, 1), round(box.y1, 1), round(box.x2, 1), round(box.y2, 1)]
        evidence["label"] = box.label
    if note:
        evidence["note"] = note
    caveat = ""
    if random_weights:
        caveat += "（随机权重：得分没有意义 / random weights: scores are meaningless）"
    if calibration:
        from engines.vad.calibrate import caveat as _cal

        caveat += f"（阈值已校准 / {_cal(calibration)}）"
    elif not calibrated:
        caveat += "（阈值未在正常片段上校准 / threshold uncalibrated）"
    where = "本车路径内" if boxes else "画面中"
    if yes:
        reason = (f"在 {t_peak:.1f} 秒，{where}的异常得分达到 {peak:.3f} ≥ 阈值 {threshold:.3f}"
                  f"（规则 {RULE}：路径内峰值），判定为疑似鬼探头。{caveat}")
    else:
        reason = (f"{where}的最高异常得分 {peak:.3f}（{t_peak:.1f} 秒）< 阈值 {threshold:.3f}"
                  f"（规则 {RULE}），未发现鬼探头。{caveat}")
    obj = None
    if yes and box is not None and box.label in ("person", "pedestrian"):
        obj = "pedestrian"
    elif yes and box is not None and box.label in ("bicycle", "cyclist"):
        obj = "cyclist"
    elif yes and box is not None and box.label in ("motorcycle",):
        obj = "motorcycle"
    elif yes and box is not None and box.label in ("car", "truck", "bus", "vehicle"):
        obj = "vehicle"
    return Verdict(ghost_probing=yes, confidence=round(conf, 4), danger_level=("high" if yes and p >= 0.75 else
                                                                            "medium" if yes else "low"),
                   object_type=obj, onset_s=round(float(t_peak), 2) if yes else None, reason=reason, status="ok",
                   raw=json.dumps(evidence, ensure_ascii=False, separators=(",", ":")))
