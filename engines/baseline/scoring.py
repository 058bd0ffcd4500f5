"""Step 6 of the baseline: a danger per track observation, the clip score, and the verdict.

Each observation gets a danger in 0..1: close (low in the frame), in or near the ego corridor (a
trapezoid widening below the FOE), big enough, moving toward the corridor or growing. It is
multiplied by a *newness* term: high for a track first seen recently, not at the very start of the
clip, not first seen far away near the horizon, and not already sitting in that spot of the
picture before. The clip score is the highest two-observation mean. "Sudden, close, in my path,
not seen before" is the motion signature of ghost probing.

When nothing could be measured (fewer than two frames, frames too small, no pair analysed, flow
too unreliable, every pair skipped) the verdict is status ``"error"`` with that reason: never a
"no" from a measurement that did not happen.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engines.baseline.config import DEFAULT_CONFIG, BaselineConfig
from engines.types import Verdict


@dataclass
class ScoreResult:
    raw: float
    track: list[tuple[float, float]]
    winner: dict[str, Any] | None
    horizon: float
    note: str = ""


def _clip01(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else float(x)


def _scene_geometry(feat: dict[str, Any], cfg: BaselineConfig) -> tuple[float, float]:
    """Horizon and ego-path column: the clip's focus of expansion (prior when the car stood still)."""
    foe = feat.get("foe")
    moving = [p for p in feat.get("pairs", []) if not p.get("skipped") and not p.get("stationary")]
    if not foe or not moving:
        return cfg.horizon_prior, 0.5
    return float(np.clip(foe[1], cfg.horizon_range[0], cfg.horizon_range[1])), float(np.clip(foe[0], 0.3, 0.7))


def _obs_terms(o: list[float], hy: float, ex: float, W: int, H: int, cfg: BaselineConfig,
               bottom: float = 1.0) -> dict[str, float]:
    t, x1, y1, x2, y2, area, u, v, res = o
    prox = _clip01((y2 - hy) / max(1e-3, bottom - hy))
    depth_px = max((y2 - hy) * H, cfg.min_depth * H)
    dist_px = max(0.0, x1 - ex, ex - x2) * W
    lat = dist_px / depth_px
    corr = _clip01(1.0 - (lat - cfg.corridor_half) / cfg.corridor_soft)
    size = _clip01(math.sqrt(max(0.0, (x2 - x1) * (y2 - y1))) / cfg.size_ref)
    pg = _clip01((prox - cfg.prox_min) / max(1e-6, cfg.prox_full - cfg.prox_min))
    cxb = (x1 + x2) / 2
    if x1 <= ex <= x2:
        toward = 1.0
    else:
        toward = _clip01(-math.copysign(1.0, cxb - ex) * u * W / (abs(u * W) + 0.5))
    return {"prox": prox, "lat": lat, "corr": corr, "size": size, "pg": pg, "toward": toward}


def score_features(feat: dict[str, Any], cfg: BaselineConfig = DEFAULT_CONFIG) -> ScoreResult:
    """Step 6: per-observation danger × newness; clip score = best two-observation mean."""
    W, H = feat.get("width", 0), feat.get("height", 0)
    pairs = feat.get("pairs", [])
    track_curve: dict[float, float] = {round(p["t1"], 5): 0.0 for p in pairs}
    if feat.get("note") or not pairs:
        return ScoreResult(0.0, sorted(track_curve.items()), None, cfg.horizon_prior, feat.get("note") or "no_pairs")
    hy, ex = _scene_geometry(feat, cfg)
    bottom = float(np.clip(feat.get("road_bottom", 1.0), hy + 0.15, 1.0))
    t_start = pairs[0]["t1"]
    best = (0.0, None)
    for tr in feat.get("tracks", []):
        obs = tr["obs"]
        if not obs:
            continue
        t_first = obs[0][0]
        first = _obs_terms(obs[0], hy, ex, W, H, cfg, bottom)
        far = _clip01(first["prox"] / max(1e-6, cfg.first_prox_far))
        if t_first - t_start < cfg.preexisting_s:
            far = 0.0  # moving from the first frames on: already visible, not sudden
        seen = _clip01((tr.get("seen_before", 0.0) - cfg.seen_before_min) /
                       max(1e-6, cfg.seen_before_max - cfg.seen_before_min))
        far *= 1.0 - seen
        scores = []
        for i, o in enumerate(obs):
            t = o[0]
            terms = _obs_terms(o, hy, ex, W, H, cfg, bottom)
            # growth: area now vs ~0.3 s earlier in this track
            growth = 0.0
            for op in reversed(obs[:i]):
                if t - op[0] >= 0.25:
                    a0 = max(1e-6, (op[3] - op[1]) * (op[4] - op[2]))
                    a1 = max(1e-6, (o[3] - o[1]) * (o[4] - o[2]))
                    growth = _clip01(math.log(a1 / a0) / math.log(2.0))
                    break
            motion = 1.0 - cfg.w_toward - cfg.w_growth + cfg.w_toward * terms["toward"] + cfg.w_growth * growth
            danger = terms["pg"] * terms["corr"] * math.sqrt(terms["size"]) * motion
            age = t - t_first
            fresh = _clip01(1.0 - (age - cfg.new_age_s) / max(1e-6, cfg.new_age_s))
            s = danger * fresh * far if i + 1 >= cfg.min_obs else 0.0
            scores.append(s)
            key = round(t, 5)
            if key in track_curve:
                track_curve[key] = max(track_curve[key], s)
        for i in range(len(scores)):
            pair_mean = scores[i] if len(scores) == 1 else (scores[i] + scores[i - 1]) / 2 if i else scores[0] / 2
            if pair_mean > best[0]:
                o = obs[i]
                terms = _obs_terms(o, hy, ex, W, H, cfg, bottom)
                a_first = max(1e-6, (obs[0][3] - obs[0][1]) * (obs[0][4] - obs[0][2]))
                a_peak = max(1e-6, (o[3] - o[1]) * (o[4] - o[2]))
                best = (pair_mean, {
                    "track_id": tr["id"], "t_first": t_first, "t_peak": o[0], "n_obs": len(obs),
                    "first_box": obs[0][1:5], "peak_box": o[1:5], "first_prox": round(first["prox"], 3),
                    "peak_prox": round(terms["prox"], 3), "lateral": round(terms["lat"], 3),
                    "toward": round(terms["toward"], 3), "growth_x": round(a_peak / a_first, 2),
                    "frames_to_peak": i, "foe_x": round(ex, 3), "seen_before": tr.get("seen_before"),
                    "side": "right" if (obs[0][1] + obs[0][3]) / 2 > ex else "left",
                    "u_peak": o[6], "v_peak": o[7],
                })
    curve = sorted(track_curve.items())
    if pairs:
        curve.insert(0, (round(pairs[0]["t0"], 5), 0.0))  # the first frame has no motion yet
    return ScoreResult(float(best[0]), curve, best[1], hy)


def confidence_of(raw: float, cfg: BaselineConfig = DEFAULT_CONFIG) -> float:
    """Calibrated probability of ghost probing from the raw score (logistic fitted on generated clips)."""
    z = cfg.calib_a * (raw - cfg.score_threshold)
    return float(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z)))))


def _object_type(box: list[float], W: int, H: int) -> str | None:
    bw, bh = (box[2] - box[0]) * W, (box[3] - box[1]) * H
    if bw <= 0 or bh <= 0:
        return None
    ratio = bh / bw
    if ratio >= 1.4:
        return "pedestrian"
    if ratio <= 0.55 and (box[2] - box[0]) >= 0.2:
        return "vehicle"
    return None  # a motion blob's shape does not tell cyclist from car reliably


def _where(box: list[float]) -> str:
    cxb = (box[0] + box[2]) / 2
    cyb = (box[1] + box[3]) / 2
    v = "下方" if cyb > 0.6 else ("中部" if cyb > 0.4 else "上方")
    h = "左侧" if cxb < 0.38 else ("右侧" if cxb > 0.62 else "中部")
    return f"画面{v}{h}" if h != "中部" or v != "中部" else "画面中部"


_NOTES_ZH = {
    "too_few_frames": "片段不足两帧，无法估计运动",
    "frames_too_small": "画面太小，无法估计运动",
    "no_pairs": "没有可分析的帧对",
    "unreliable_flow": "画面噪声过大或变化剧烈，光流不可靠",
    "all_pairs_skipped": "画面噪声过大或画面剧烈变化，每一对帧都无法可靠估计运动",
}
UNMEASURED_NOTES = frozenset(_NOTES_ZH)


def nothing_measured(feat: dict[str, Any], sr: "ScoreResult") -> str | None:
    """The note saying why nothing could be measured, or None when the motion was measured."""
    if sr.note in UNMEASURED_NOTES:
        return sr.note
    pairs = feat.get("pairs", [])
    if not pairs:
        return "no_pairs"
    if all(p.get("skipped") for p in pairs):
        return "all_pairs_skipped"
    return None


def make_verdict(feat: dict[str, Any], sr: ScoreResult, cfg: BaselineConfig = DEFAULT_CONFIG) -> Verdict:
    """Verdict from a score. ``confidence`` is in the stated answer (as for every engine):
    P(ghost probing) for a "yes", 1 - P(ghost probing) for a "no"."""
    p_ghost = confidence_of(sr.raw, cfg)
    yes = sr.raw >= cfg.score_threshold
    conf = p_ghost if yes else 1.0 - p_ghost
    W, H = feat.get("width", 0) or 1, feat.get("height", 0) or 1
    skipped = sum(1 for p in feat.get("pairs", []) if p.get("skipped"))
    evidence: dict[str, Any] = {"engine": "baseline-flow-v1", "score": round(sr.raw, 4),
                                "threshold": cfg.score_threshold, "p_ghost": round(p_ghost, 4),
                                "horizon": round(sr.horizon, 3), "frames": feat.get("n_frames", 0),
                                "analysed_frames": feat.get("analysed_frames", 0),
                                "pairs": len(feat.get("pairs", [])), "skipped_pairs": skipped,
                                "tracks": len(feat.get("tracks", []))}
    if sr.note:
        evidence["note"] = sr.note
    w = sr.winner
    onset = None
    obj = None
    if w is not None:
        dt = (feat["pairs"][0]["t1"] - feat["pairs"][0]["t0"]) if feat.get("pairs") else 0.1
        # the first blob needs motion in two pairs (temporal AND): the object was visible one
        # pair earlier than the observation's end time, and the pair before started one step earlier
        onset = max(0.0, w["t_first"] - (2 if cfg.temporal_and else 1) * dt)
        obj = _object_type(w["peak_box"], W, H)
        evidence["winner"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in w.items()
                              if k not in ("u_peak", "v_peak")}
        evidence["winner"]["onset_s"] = round(onset, 2)
    if yes and w is not None:
        side = "右侧" if w["side"] == "right" else "左侧"
        n = max(1, int(w["frames_to_peak"]))
        move = "并向车道中心移动" if w["toward"] >= 0.5 else "并持续靠近"
        reason = (f"在 {onset:.1f} 秒，{_where(w['first_box'])}出现一个此前未见的独立运动目标（从{side}进入），"
                  f"{n} 帧内面积增长 {w['growth_x']:.1f} 倍{move}，最近时位于本车路径内、画面下方"
                  f"（接近度 {w['peak_prox']:.2f}）。运动得分 {sr.raw:.2f} ≥ 阈值 {cfg.score_threshold:.2f}。")
        danger = "high" if p_ghost >= cfg.danger_high and w["peak_prox"] >= 0.6 else "medium"
        return Verdict(ghost_probing=True, confidence=round(conf, 4), danger_level=danger, object_type=obj,
                       onset_s=round(onset, 2), reason=reason, status="ok",
                       raw=json.dumps(evidence, ensure_ascii=False, separators=(",", ":")))
    unmeasured = nothing_measured(feat, sr)
    if unmeasured:
        return Verdict(ghost_probing=None, confidence=None, danger_level=None, object_type=None, onset_s=None,
                       reason=f"基线无法给出判断：{_NOTES_ZH[unmeasured]}，没有可测量的运动（不是“否”）。",
                       status="error", raw=json.dumps(evidence, ensure_ascii=False, separators=(",", ":")))
    if w is None:
        reason = "未检测到独立于本车运动的目标，未发现鬼探头。"
    else:
        why = []
        if w["first_prox"] < cfg.first_prox_far:
            why.append("它最早出现在远处")
        if w["peak_prox"] < cfg.prox_full:
            why.append("没有足够靠近本车")
        if w["lateral"] > cfg.corridor_half:
            why.append("没有进入本车路径")
        if not why:
            why.append("出现不够突然或目标太小")
        reason = (f"未发现鬼探头：最可疑的独立运动目标在 {w['t_first']:.1f} 秒出现于{_where(w['first_box'])}，"
                  f"但{'、'.join(why)}（运动得分 {sr.raw:.2f} < 阈值 {cfg.score_threshold:.2f}）。")
    return Verdict(ghost_probing=False, confidence=round(conf, 4), danger_level="low", object_type=None,
                   onset_s=None, reason=reason, status="ok",
                   raw=json.dumps(evidence, ensure_ascii=False, separators=(",", ":")))
