"""Weights-free ghost-probing detector: the orchestration of flow, ego motion, blobs, tracks, score.

Pipeline (all parameters in :class:`~engines.baseline.config.BaselineConfig`; one module per step,
in the manner of anomalib's ``ai_vad/`` folder):

1. :mod:`~engines.baseline.flow`: frames at ~``analysis_fps``, grey at ``proc_width`` (the engine
   samples them so: PyAV luma, no RGB intermediate); DIS optical flow forward and backward,
   reliability, samples for the fit.
2. :mod:`~engines.baseline.egomotion`: one FOE per clip and one rotation per pair; the residual no
   depth can explain; camera-attached parts.
3. :mod:`~engines.baseline.blobs`: residual → mask (thresholds, persistence, near-field cut,
   morphology) → connected components.
4. :mod:`~engines.baseline.tracking`: blobs into tracks; "was it there before?".
5. :mod:`~engines.baseline.scoring`: danger × newness per observation, the clip score, the verdict
   (status ``"error"`` when nothing could be measured).

:func:`extract_features` does steps 1-4 (the costly part, cacheable as JSON) and
:func:`score_features` step 5 (cheap: the evaluation re-scores cached features while tuning).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engines.baseline.blobs import Persistence, clean, direction_planes, find_blobs, near_cut_row
from engines.baseline.config import DEFAULT_CONFIG, BaselineConfig
from engines.baseline.egomotion import _rot_basis, attached_parts, fit_ego, fit_foe, fit_rotation, geometry, residual
from engines.baseline.flow import _to_gray, flow_pass, make_grid, select_frames, to_gray
from engines.baseline.scoring import (
    ScoreResult,
    confidence_of,
    make_verdict,
    nothing_measured,
    score_features,
)
from engines.baseline.tracking import Tracker, _iou, _ncc, _seen_before, _Track, seen_before
from engines.types import Verdict

FEATURES_VERSION = 1

__all__ = [
    "FEATURES_VERSION", "extract_features", "score_features", "make_verdict", "detect_frames", "select_frames",
    "to_gray", "fit_rotation", "fit_foe", "confidence_of", "nothing_measured", "ScoreResult",
    # older private names, kept for callers that imported them from here
    "_to_gray", "_rot_basis", "_iou", "_ncc", "_seen_before", "_Track",
]


def extract_features(frames: np.ndarray | list[np.ndarray], timestamps: list[float],
                     cfg: BaselineConfig = DEFAULT_CONFIG, keep_masks: bool = False) -> dict[str, Any]:
    """Steps 1-4: per-pair ego motion and blob tracks. Returns a JSON-serialisable dict.

    ``frames``: RGB [T,H,W,3] or grey [T,H,W] uint8. ``keep_masks`` adds the per-pair
    independent-motion masks ``(m8, raw mask, reliable)`` (for debugging and figures; not JSON).
    """
    n = len(frames)
    ts = [float(t) for t in timestamps][:n]
    if len(ts) < n:  # no timestamps: assume analysis rate
        ts = ts + [i / cfg.analysis_fps for i in range(len(ts), n)]
    feat: dict[str, Any] = {"version": FEATURES_VERSION, "n_frames": n,
                            "duration_s": (ts[-1] - ts[0]) if n else 0.0, "pairs": [], "tracks": [],
                            "width": 0, "height": 0, "note": ""}
    if n < 2:
        feat["note"] = "too_few_frames"
        return feat
    sel = select_frames(ts, cfg.analysis_fps)
    if len(sel) < 2:
        feat["note"] = "too_few_frames"
        return feat
    grays = [to_gray(frames[i], cfg.proc_width) for i in sel]
    times = [ts[i] for i in sel]
    H, W = grays[0].shape
    feat["width"], feat["height"] = W, H
    feat["analysed_frames"] = len(sel)
    if min(H, W) < cfg.min_side:
        feat["note"] = "frames_too_small"
        return feat
    g = make_grid(H, W, cfg)
    e0 = (0.0, (cfg.horizon_prior * H - g.cy) / g.F)
    min_area = max(4, int(cfg.min_area_frac * W * H))
    res_abs = cfg.res_abs * g.k

    # --- flow, reliability, per-pair samples ----------------------------------------------------
    fp = flow_pass(grays, times, g, cfg)
    # --- ego motion: one FOE for the clip, a rotation per pair -----------------------------------
    rots, e = fit_ego(fp.samples, fp.infos, fp.moving_idx, e0, cfg)
    feat["foe"] = [round(float(e[0] * g.F + g.cx) / W, 4), round(float(e[1] * g.F + g.cy) / H, 4)]
    att = attached_parts(fp.static_count, fp.n_static, H, W, cfg)
    if att.frac is not None:
        feat["attached_frac"] = att.frac
    if att.road_bottom is not None:
        feat["road_bottom"] = att.road_bottom
    not_attached = ~att.mask
    geo = geometry(g, e)

    # --- residual → mask → blobs → tracks --------------------------------------------------------
    persist = Persistence()
    tracker = Tracker(cfg)
    masks = []
    for i, (flow, ok, pair) in enumerate(zip(fp.flows, fp.oks, fp.infos)):
        t1 = pair["t1"]
        w = rots[i]
        ur, vr, mag, res = residual(flow, w, pair["stationary"], g, geo, e, ok, cfg, pair)
        mask = (res > res_abs + cfg.res_rel * mag) & ok & not_attached
        cut_row = near_cut_row(ur, vr, ok, e, g, pair, cfg)
        moving_frac = float(mask.mean())
        pair.update(rot=[round(float(v_), 6) for v_ in w], moving_frac=round(moving_frac, 4))
        skipped = moving_frac > cfg.max_moving_frac or pair["reliable"] < cfg.min_reliable
        pair["skipped"] = bool(skipped)
        if cfg.temporal_and:
            m8 = persist.step(direction_planes(mask, ur, vr), skipped, (H, W))
        else:
            m8 = mask.astype(np.uint8)
        m8 = clean(m8)
        if keep_masks:
            masks.append((m8.copy(), mask.copy(), ok.copy()))
        feat["pairs"].append(pair)
        blobs = find_blobs(m8, ur, vr, res, cut_row, t1, min_area) if not skipped else []
        tracker.step(blobs, t1)
    tlist = np.asarray(times)
    out_tracks = []
    for tr in tracker.finish():
        d = {"id": tr.id, "obs": [[round(float(v_), 5) for v_ in o] for o in tr.obs]}
        if len(tr.obs) >= cfg.min_obs:
            d["seen_before"] = round(seen_before(grays, tlist, tr.obs[0], cfg), 3)
        out_tracks.append(d)
    feat["tracks"] = out_tracks
    rel = [p["reliable"] for p in feat["pairs"]]
    if rel and float(np.median(rel)) < cfg.min_reliable_clip:
        feat["note"] = "unreliable_flow"
    if keep_masks:
        feat["masks"] = masks
    return feat


def detect_frames(frames: np.ndarray | list[np.ndarray], timestamps: list[float],
                  cfg: BaselineConfig = DEFAULT_CONFIG) -> tuple[Verdict, list[tuple[float, float]], dict[str, Any]]:
    """Run the whole detector: (Verdict, per-frame (t, score) track, features).

    The track is empty when nothing could be measured (the verdict is then status "error")."""
    feat = extract_features(frames, timestamps, cfg)
    sr = score_features(feat, cfg)
    verdict = make_verdict(feat, sr, cfg)
    track = [] if verdict.status == "error" else [(round(float(t), 3), round(float(s), 4)) for t, s in sr.track]
    return verdict, track, feat
