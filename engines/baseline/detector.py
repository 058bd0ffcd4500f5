"""Weights-free ghost-probing detector: optical flow, ego-motion compensation, blobs, tracks, score.

Pipeline (all parameters in :class:`~engines.baseline.config.BaselineConfig`):

1. Frames are taken at ~``analysis_fps``, turned grey and resized to ``proc_width``.
2. Dense optical flow between consecutive frames (OpenCV DIS, half-resolution grid), forward and
   backward: pixels whose round trip does not close are unreliable (the fast near road, where
   DIS fails, is the main case). Pairs with too few reliable pixels are skipped (noise).
3. Ego motion: for a camera that rotates and moves forward through a static world, the flow of
   every static point is a rotational part (3 parameters, known form) plus a part pointing
   straight away from the focus of expansion (FOE), whose length depends on the unknown depth.
   One FOE per clip (the camera is fixed to the car) and one rotation per pair are fitted by
   robust alternating least squares on a grid of reliable flow samples. What no depth can
   explain — flow *across* the radial direction, or flow *toward* the FOE — is independent
   motion. Static objects' parallax (parked cars, poles, buildings) is radial and so drops out;
   a person running into the road does not. When the ego car stands still, any (de-rotated)
   motion counts.
4. The residual is thresholded (absolute and relative to the flow), kept only where it persists
   with a compatible direction over consecutive pairs, away from camera-attached parts (bonnet),
   cleaned with morphology and split into connected components (blobs). Blobs must start above
   the near-field row where the road itself moves too fast for DIS.
5. Blobs are tracked (IoU after flow prediction, or centroid distance; short gaps allowed).
6. Each track observation gets a danger in 0..1: close (low in the frame), in or near the ego
   corridor (a trapezoid widening below the FOE), big enough, moving toward the corridor or
   growing. It is multiplied by a *newness* term: high for a track first seen recently, not at the
   very start of the clip, not first seen far away near the horizon, and not already sitting in
   that spot of the picture before. The clip score is the highest two-observation mean.
   "Sudden, close, in my path, not seen before" is the motion signature of ghost probing.

:func:`extract_features` does steps 1-5 (the costly part, cacheable as JSON) and
:func:`score_features` step 6 (cheap: the evaluation re-scores cached features while tuning).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from engines.baseline.config import DEFAULT_CONFIG, BaselineConfig
from engines.types import Verdict

FEATURES_VERSION = 1


# ----------------------------------------------------------------------------------------------
# frames
# ----------------------------------------------------------------------------------------------
def select_frames(timestamps: list[float], fps: float) -> list[int]:
    """Indices of the frames nearest to a regular grid at ``fps`` (all frames if the clip is sparser).

    Uneven spacing (15 fps sampled at 10 fps gives 0, 0.067, 0.2 ...) is kept: flow is normalised
    by each pair's own time step.
    """
    n = len(timestamps)
    if n == 0:
        return []
    if not fps or fps <= 0 or n == 1:
        return list(range(n))
    t = np.asarray(timestamps, dtype=float)
    grid = np.arange(t[0], t[-1] + 0.5 / fps, 1.0 / fps)
    idx = np.clip(np.searchsorted(t, grid), 1, n - 1)
    nearest = np.where(np.abs(t[idx - 1] - grid) <= np.abs(t[idx] - grid), idx - 1, idx)
    keep = sorted(set(int(i) for i in nearest))
    return keep


def _to_gray(frame: np.ndarray, width: int) -> np.ndarray:
    f = np.asarray(frame)
    if f.ndim == 3 and f.shape[2] >= 3:
        g = cv2.cvtColor(np.ascontiguousarray(f[..., :3]).astype(np.uint8, copy=False), cv2.COLOR_RGB2GRAY)
    elif f.ndim == 3:
        g = np.ascontiguousarray(f[..., 0]).astype(np.uint8, copy=False)
    else:
        g = np.ascontiguousarray(f).astype(np.uint8, copy=False)
    h, w = g.shape
    if w > width:
        nh = max(1, int(round(h * width / w)))
        g = cv2.resize(g, (width, nh), interpolation=cv2.INTER_AREA)
    return g


_DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


# ----------------------------------------------------------------------------------------------
# ego motion
# ----------------------------------------------------------------------------------------------
def _rot_basis(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotational flow basis in normalised image coordinates (flow = Au @ w, Av @ w)."""
    au = np.stack([x * y, -(1.0 + x * x), y], axis=-1)
    av = np.stack([1.0 + y * y, -x * y, -x], axis=-1)
    return au, av


# ----------------------------------------------------------------------------------------------
# features (flow → blobs → tracks)
# ----------------------------------------------------------------------------------------------
@dataclass
class _Track:
    id: int
    obs: list[list[float]] = field(default_factory=list)  # [t, x1, y1, x2, y2, area, u, v, res]
    last_t: float = 0.0
    box: tuple[float, float, float, float] = (0, 0, 0, 0)
    vel: tuple[float, float] = (0.0, 0.0)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def fit_rotation(x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray, e: tuple[float, float],
                 iters: int = 3, sigma: float = 0.004) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``w`` given the FOE ``e``: minimise the flow across the radial direction (robust).

    Returns (w, Cauchy weights of the samples)."""
    au, av = _rot_basis(x, y)
    dx, dy = x - e[0], y - e[1]
    r = np.sqrt(dx * dx + dy * dy) + 1e-6
    nx, ny = -dy / r, dx / r
    a0 = nx[:, None] * au + ny[:, None] * av
    b0 = nx * u + ny * v
    lam = 0.05 * math.sqrt(len(x))
    wt = np.ones_like(x)
    w = np.zeros(3)
    for _ in range(max(1, iters)):
        sw = np.sqrt(wt)
        a = np.vstack([a0 * sw[:, None], lam * np.eye(3)])
        b = np.concatenate([b0 * sw, np.zeros(3)])
        w, *_ = np.linalg.lstsq(a, b, rcond=None)
        perp = b0 - a0 @ w
        wt = 1.0 / (1.0 + (perp / sigma) ** 2)
    return w, wt


def fit_foe(samples: list[tuple[np.ndarray, ...]], rots: list[np.ndarray], weights: list[np.ndarray],
            e0: tuple[float, float], lam_frac: float = 0.05) -> tuple[float, float]:
    """One FOE for the whole clip (the camera is fixed to the car, so its heading is too):
    least squares on ``cross(f - A w, p - e) = 0`` over the samples of every moving pair."""
    rows, rhs = [], []
    energy = 0.0
    for (x, y, u, v), w, wt in zip(samples, rots, weights):
        au, av = _rot_basis(x, y)
        ur, vr = u - au @ w, v - av @ w
        sw = np.sqrt(wt)
        rows.append(np.stack([vr * sw, -ur * sw], axis=1))
        rhs.append((vr * x - ur * y) * sw)
        energy += float(np.sum(wt * (ur * ur + vr * vr)))
    if not rows:
        return e0
    m = np.vstack(rows)
    b = np.concatenate(rhs)
    lam = lam_frac * math.sqrt(energy + 1e-12)
    m = np.vstack([m, [[lam, 0.0], [0.0, lam]]])
    b = np.concatenate([b, [lam * e0[0], lam * e0[1]]])
    sol, *_ = np.linalg.lstsq(m, b, rcond=None)
    return float(np.clip(sol[0], -0.6, 0.6)), float(np.clip(sol[1], -0.6, 0.6))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float32) - float(a.mean())
    b = b.astype(np.float32) - float(b.mean())
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-6 else 0.0


def _seen_before(grays: list[np.ndarray], times: np.ndarray, first: list[float], cfg: BaselineConfig) -> float:
    """Was the thing in the track's first box already in that spot of the picture before?

    Normalised cross-correlation between the grey patch of the first box and the same spot
    ``seen_before_lags_s`` earlier (best lag). An object that moved along with the ego car (a car
    in the next lane before cutting in) looks the same there; one that emerged from behind an
    occluder, or background streaming past, does not.
    """
    H, W = grays[0].shape
    t = first[0]
    x1, y1 = int(first[1] * W), int(first[2] * H)
    x2, y2 = max(x1 + 2, int(math.ceil(first[3] * W))), max(y1 + 2, int(math.ceil(first[4] * H)))
    i = int(np.argmin(np.abs(times - t)))
    cur = grays[i][y1:y2, x1:x2]
    if cur.size < 16 or float(cur.std()) < 2.0:
        return 0.0
    best = 0.0
    for lag in cfg.seen_before_lags_s:
        j = int(np.argmin(np.abs(times - (t - lag))))
        if j >= i or abs(times[j] - (t - lag)) > 0.15:
            continue
        best = max(best, _ncc(cur, grays[j][y1:y2, x1:x2]))
    return best


def extract_features(frames: np.ndarray | list[np.ndarray], timestamps: list[float],
                     cfg: BaselineConfig = DEFAULT_CONFIG, keep_masks: bool = False) -> dict[str, Any]:
    """Steps 1-5: per-pair ego motion and blob tracks. Returns a JSON-serialisable dict.

    ``keep_masks`` adds the per-pair independent-motion masks (for debugging and figures; not JSON).
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
    grays = [_to_gray(frames[i], cfg.proc_width) for i in sel]
    times = [ts[i] for i in sel]
    H, W = grays[0].shape
    feat["width"], feat["height"] = W, H
    feat["analysed_frames"] = len(sel)
    if min(H, W) < cfg.min_side:
        feat["note"] = "frames_too_small"
        return feat
    k = W / float(cfg.proc_width)  # <1 when frames are smaller than proc_width
    F = cfg.focal_frac * W
    cx, cy = W / 2.0, H / 2.0
    e0 = (0.0, (cfg.horizon_prior * H - cy) / F)

    dis = cv2.DISOpticalFlow_create(_DIS_PRESETS.get(cfg.dis_preset, cv2.DISOPTICAL_FLOW_PRESET_FAST))
    if cfg.dis_finest_scale is not None:
        dis.setFinestScale(int(cfg.dis_finest_scale))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    xn, yn = (xx - cx) / F, (yy - cy) / F
    # rotational flow basis on the full grid (float32): u = w0*xy - w1*(1+x²) + w2*y, v = w0*(1+y²) - w1*xy - w2*x
    xy_f, x2_f, y2_f = xn * yn, 1.0 + xn * xn, 1.0 + yn * yn
    b = max(1, int(round(cfg.border_frac * max(W, H))))
    gs = max(2, int(cfg.grid_step * k))
    gy, gx = np.mgrid[b:H - b:gs, b:W - b:gs]
    gy, gx = gy.ravel(), gx.ravel()
    gxn, gyn = (gx - cx) / F, (gy - cy) / F
    valid = np.zeros((H, W), bool)
    valid[b:H - b, b:W - b] = True
    kern3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    kern5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    min_area = max(4, int(cfg.min_area_frac * W * H))
    res_abs = cfg.res_abs * k

    # --- pass 1: flow, reliability, per-pair samples -----------------------------------------
    flows, oks, infos, samples, moving_idx = [], [], [], [], []
    tex_prev = None
    static_count = None
    prev_blur = None
    n_static = 0
    for j in range(1, len(grays)):
        t0, t1 = times[j - 1], times[j]
        dt = max(t1 - t0, 1e-3)
        flow = dis.calc(grays[j - 1], grays[j], None)
        ok = valid
        if cfg.photo_check > 0:
            # photometric check: the second frame warped back by the flow must match the first
            warped = cv2.remap(grays[j], xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
            err = cv2.blur(cv2.absdiff(warped, grays[j - 1]), (5, 5))
            ok = ok & (err < cfg.photo_check)
        if cfg.fb_check:
            back = dis.calc(grays[j], grays[j - 1], None)
            bw = cv2.remap(back, xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
            fb = np.hypot(flow[..., 0] + bw[..., 0], flow[..., 1] + bw[..., 1])
            ok = ok & (fb < cfg.fb_abs * k + cfg.fb_rel * np.hypot(flow[..., 0], flow[..., 1]))
        if cfg.min_texture > 0:
            if tex_prev is None:
                tex_prev = cv2.cornerMinEigenVal(grays[j - 1], 5)
            ok = ok & (cv2.dilate(tex_prev, kern5) > cfg.min_texture)
            tex_prev = None
        flow *= cfg.flow_ref_dt_s / dt
        gok = ok[gy, gx]
        if gok.sum() < 12:
            gok = np.ones_like(gok)
        su, sv = flow[..., 0][gy, gx][gok] / F, flow[..., 1][gy, gx][gok] / F
        bg_mag = float(np.median(np.hypot(su, sv))) * F
        stationary = bg_mag < cfg.stationary_px * k
        infos.append({"t0": t0, "t1": t1, "bg_mag": round(bg_mag, 3), "stationary": bool(stationary),
                      "reliable": round(float(ok[b:H - b, b:W - b].mean()), 3)})
        if not stationary:
            # temporal change of the (blurred) picture: the bonnet barely changes while the car moves
            cur_blur = cv2.blur(grays[j], (5, 5)).astype(np.int16)
            if prev_blur is None:
                prev_blur = cv2.blur(grays[j - 1], (5, 5)).astype(np.int16)
            d = np.abs(cur_blur - prev_blur).astype(np.float32)
            static_count = d if static_count is None else static_count + d
            n_static += 1
            prev_blur = cur_blur
        else:
            prev_blur = None
        flows.append(flow)
        oks.append(ok)
        samples.append((gxn[gok], gyn[gok], su, sv))
        if not stationary:
            moving_idx.append(len(flows) - 1)

    # --- ego motion: one FOE for the clip, a rotation per pair ---------------------------------
    rots: list[np.ndarray] = [np.zeros(3) for _ in flows]
    wts: list[np.ndarray] = [np.ones_like(s[0]) for s in samples]
    e = e0
    for _ in range(max(1, cfg.fit_iters)):
        for i in moving_idx:
            rots[i], wts[i] = fit_rotation(*samples[i], e)
        e = fit_foe([samples[i] for i in moving_idx], [rots[i] for i in moving_idx],
                    [wts[i] for i in moving_idx], e0)
    for i in moving_idx:
        rots[i], wts[i] = fit_rotation(*samples[i], e)
    for i, info in enumerate(infos):
        if info["stationary"]:
            x_, y_, u_, v_ = samples[i]
            rots[i] = np.array([float(np.median(v_)) if len(v_) else 0.0,
                                -float(np.median(u_)) if len(u_) else 0.0, 0.0])
    feat["foe"] = [round(float(e[0] * F + cx) / W, 4), round(float(e[1] * F + cy) / H, 4)]
    # camera-attached static parts below the horizon (bonnet, burnt-in text): they pull the flow
    # of the road next to them toward zero, so a margin around them is ignored too
    attached = np.zeros((H, W), bool)
    if static_count is not None and n_static >= 3:
        st = (static_count / n_static < cfg.static_diff).astype(np.uint8)
        nlab, lab, stats, _ = cv2.connectedComponentsWithStats(st, connectivity=4)
        keep = [li for li in range(1, nlab) if stats[li][1] + stats[li][3] >= H - 1 and stats[li][4] >= 0.01 * W * H]
        if keep:
            st = np.isin(lab, keep).astype(np.uint8)
            m = max(3, int(round(cfg.static_margin * H)) | 1)
            attached = cv2.dilate(st, cv2.getStructuringElement(cv2.MORPH_RECT, (m, m))) > 0
        feat["attached_frac"] = round(float(attached.mean()), 4)
        # the lowest visible road row: top of the camera-attached parts in the central third
        if keep:
            central = st[:, W // 3: 2 * W // 3].any(axis=1)
            rows = np.nonzero(central)[0]
            if len(rows):
                feat["road_bottom"] = round(float(rows.min()) / H, 4)
    dx, dy = xn - e[0], yn - e[1]
    rr = np.sqrt(dx * dx + dy * dy) + 1e-6
    near = np.clip(rr / 0.08, 0.0, 1.0)  # close to the FOE the radial direction is meaningless

    # --- pass 2: residual → mask → blobs → tracks ------------------------------------------------
    history: list[list[np.ndarray]] = []
    tracks: list[_Track] = []
    done: list[_Track] = []
    next_id = 0
    masks = []
    for i, (flow, ok, pair) in enumerate(zip(flows, oks, infos)):
        t1 = pair["t1"]
        w = rots[i]
        fu, fv = flow[..., 0], flow[..., 1]
        w0, w1, w2 = (float(F * w[0]), float(F * w[1]), float(F * w[2]))
        ur = fu - (w0 * xy_f - w1 * x2_f + w2 * yn)
        vr = fv - (w0 * y2_f - w1 * xy_f - w2 * xn)
        mag = np.hypot(ur, vr)
        if pair["stationary"]:
            res = mag
        else:
            rad = (ur * dx + vr * dy) / rr
            perp = np.abs(ur * dy - vr * dx) / rr
            floor = 0.0
            if cfg.ground_bound > 0:
                # Below the horizon a static point is never farther than the road at the same
                # pixel, so it expands at least as fast as the road would there:
                # radial flow >= kappa * r * (y - horizon), kappa from the road in this pair.
                # A pedestrian walking toward the ego path cancels its own expansion; this bound
                # (scaled by ground_bound for safety) is what reveals it.
                hy_px = e[1] * F + cy
                dyg = gy - hy_px
                rg = rr[gy, gx] * F
                # rows near the horizon only: DIS underestimates the fast near road
                sel_g = ok[gy, gx] & (dyg > 0.04 * H) & (dyg < 0.18 * H) & \
                    (np.abs(gx - (e[0] * F + cx)) < 0.35 * W)
                if sel_g.sum() >= 8:
                    kap = float(np.quantile(rad[gy, gx][sel_g] / (rg[sel_g] * dyg[sel_g]), cfg.ground_quantile))
                    if kap > 0:
                        floor = cfg.ground_bound * np.minimum(kap * np.maximum(0.0, yy - hy_px) * (rr * F),
                                                              cfg.ground_floor_max * k)
                        pair["kappa"] = round(kap * 1e4, 4)
            res = near * (perp + np.maximum(0.0, floor - rad)) + (1 - near) * mag
        mask = (res > res_abs + cfg.res_rel * mag) & ok & ~attached
        cut_row = H
        if cfg.max_ground_disp > 0 and not pair["stationary"]:
            # near-field cut: rows where the road itself would move more than DIS can follow in
            # this pair (ground flow grows with the square of the depth below the horizon)
            hy_px = e[1] * F + cy
            dyg = gy - hy_px
            sel_g = ok[gy, gx] & (dyg > 0.08 * H) & (dyg < 0.35 * H) & (np.abs(gx - (e[0] * F + cx)) < 0.3 * W)
            if sel_g.sum() >= 8:
                c = float(np.median(np.hypot(ur[gy, gx], vr[gy, gx])[sel_g] / dyg[sel_g] ** 2))
                disp_scale = (pair["t1"] - pair["t0"]) / cfg.flow_ref_dt_s
                if c > 0:
                    y_cut = hy_px + math.sqrt(cfg.max_ground_disp * k / (c * disp_scale))
                    pair["near_cut"] = round(float(y_cut) / H, 3)
                    if y_cut < H:
                        cut_row = int(max(0, y_cut))
        moving_frac = float(mask.mean())
        pair.update(rot=[round(float(v_), 6) for v_ in w], moving_frac=round(moving_frac, 4))
        skipped = moving_frac > cfg.max_moving_frac or pair["reliable"] < cfg.min_reliable
        pair["skipped"] = bool(skipped)
        # direction of the de-rotated flow in 8 bins: a moving object keeps its direction from one
        # pair to the next (±45°); DIS failures (e.g. the fast road just above the bonnet) flip
        nb = 8
        bins = (np.floor((np.arctan2(vr, ur) + np.pi) * (nb / (2 * np.pi))).astype(np.int32)) % nb
        cur = [(mask & (bins == q)).astype(np.uint8) for q in range(nb)]
        if cfg.temporal_and:
            # persistence: flagged now and, with a compatible direction, in one of the two
            # previous pairs (one miss is tolerated: masks flicker, e.g. with uneven sampling)
            m8 = np.zeros((H, W), np.uint8)
            if history and not skipped:
                dil = [cv2.dilate(np.bitwise_or.reduce([hm[q] for hm in history]), kern5) for q in range(nb)]
                for q in range(nb):
                    if cur[q].any():
                        m8 |= cur[q] & (dil[(q - 1) % nb] | dil[q] | dil[(q + 1) % nb])
        else:
            m8 = mask.astype(np.uint8)
        history = [] if skipped else (history + [cur])[-2:]
        m8 = cv2.morphologyEx(m8, cv2.MORPH_OPEN, kern3)
        m8 = cv2.morphologyEx(m8, cv2.MORPH_CLOSE, kern5)
        if keep_masks:
            masks.append((m8.copy(), mask.copy(), ok.copy()))
        feat["pairs"].append(pair)
        blobs = []
        if not skipped and m8.any():
            nlab, lab, stats, cents = cv2.connectedComponentsWithStats(m8, connectivity=8)
            # below the near-field cut the flow is not trusted: a blob must have most of its
            # minimum area above it, but once it has, it keeps its full extent (its ground contact)
            above = np.bincount(lab[:cut_row].ravel(), minlength=nlab) if cut_row < H else stats[:, 4]
            for li in range(1, nlab):
                x, y, bw_, bh_, area = stats[li]
                if area < min_area or above[li] < 0.6 * min_area:
                    continue
                sel_px = lab[y:y + bh_, x:x + bw_] == li
                u_m = float(ur[y:y + bh_, x:x + bw_][sel_px].mean())
                v_m = float(vr[y:y + bh_, x:x + bw_][sel_px].mean())
                r_m = float(res[y:y + bh_, x:x + bw_][sel_px].mean())
                blobs.append([t1, x / W, y / H, (x + bw_) / W, (y + bh_) / H, area / (W * H),
                              u_m / W, v_m / H, r_m / W])
        # --- tracking: greedy association by IoU of the flow-predicted box or centroid distance
        cand = []
        for ti, tr in enumerate(tracks):
            px = tr.vel[0] * (t1 - tr.last_t) / cfg.flow_ref_dt_s
            py = tr.vel[1] * (t1 - tr.last_t) / cfg.flow_ref_dt_s
            pb = (tr.box[0] + px, tr.box[1] + py, tr.box[2] + px, tr.box[3] + py)
            diag = math.hypot(pb[2] - pb[0], pb[3] - pb[1]) + 1e-6
            pcx, pcy = (pb[0] + pb[2]) / 2, (pb[1] + pb[3]) / 2
            for bi, bl in enumerate(blobs):
                iou = _iou(pb, bl[1:5])
                bcx, bcy = (bl[1] + bl[3]) / 2, (bl[2] + bl[4]) / 2
                d = math.hypot(bcx - pcx, bcy - pcy) / diag
                if iou >= cfg.match_iou or d <= cfg.match_dist:
                    cand.append((-(iou) + 0.5 * d, ti, bi))
        cand.sort()
        used_t, used_b = set(), set()
        for _, ti, bi in cand:
            if ti in used_t or bi in used_b:
                continue
            used_t.add(ti)
            used_b.add(bi)
            tr, bl = tracks[ti], blobs[bi]
            tr.obs.append(bl)
            tr.last_t = t1
            tr.box = tuple(bl[1:5])
            tr.vel = (bl[6], bl[7])
        for bi, bl in enumerate(blobs):
            if bi not in used_b:
                tracks.append(_Track(id=next_id, obs=[bl], last_t=t1, box=tuple(bl[1:5]), vel=(bl[6], bl[7])))
                next_id += 1
        alive = []
        for tr in tracks:
            (alive if t1 - tr.last_t <= cfg.max_gap_s else done).append(tr)
        tracks = alive
    done.extend(tracks)
    done.sort(key=lambda tr: tr.id)
    tlist = np.asarray(times)
    out_tracks = []
    for tr in done:
        d = {"id": tr.id, "obs": [[round(float(v_), 5) for v_ in o] for o in tr.obs]}
        if len(tr.obs) >= cfg.min_obs:
            d["seen_before"] = round(_seen_before(grays, tlist, tr.obs[0], cfg), 3)
        out_tracks.append(d)
    feat["tracks"] = out_tracks
    rel = [p["reliable"] for p in feat["pairs"]]
    if rel and float(np.median(rel)) < cfg.min_reliable_clip:
        feat["note"] = "unreliable_flow"
    if keep_masks:
        feat["masks"] = masks
    return feat


# ----------------------------------------------------------------------------------------------
# scoring
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# verdict
# ----------------------------------------------------------------------------------------------
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
}


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
    if sr.note in _NOTES_ZH:
        reason = f"{_NOTES_ZH[sr.note]}，判定为未发现鬼探头。"
    elif w is None:
        reason = "未检测到独立于本车运动的目标，未发现鬼探头。"
        if skipped and skipped == len(feat.get("pairs", [])):
            reason = "画面噪声过大或画面剧烈变化，无法可靠估计运动，未发现鬼探头。"
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


def detect_frames(frames: np.ndarray | list[np.ndarray], timestamps: list[float],
                  cfg: BaselineConfig = DEFAULT_CONFIG) -> tuple[Verdict, list[tuple[float, float]], dict[str, Any]]:
    """Run the whole detector: (Verdict, per-frame (t, score) track, features)."""
    feat = extract_features(frames, timestamps, cfg)
    sr = score_features(feat, cfg)
    verdict = make_verdict(feat, sr, cfg)
    track = [(round(float(t), 3), round(float(s), 4)) for t, s in sr.track]
    return verdict, track, feat
