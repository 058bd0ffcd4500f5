"""Step 1-2 of the baseline: frames on a regular grid, grey at the processing width, and dense
optical flow (OpenCV DIS) between neighbours, forward and backward.

Pixels whose forward-backward round trip does not close are unreliable (the fast near road, where
DIS fails, is the main case). :func:`flow_pass` returns, per pair, the flow (rescaled to pixels per
``flow_ref_dt_s``), its reliability mask, a grid of reliable samples for the ego-motion fit, and the
running temporal-change image used to find camera-attached parts (bonnet).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from engines.baseline.config import BaselineConfig

DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


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


def to_gray(frame: np.ndarray, width: int) -> np.ndarray:
    """A frame (RGB [H,W,3], or grey [H,W] / [H,W,1]) as grey uint8, at most ``width`` wide (INTER_AREA).

    Grey frames at the processing width (the engine's default sampling) pass through untouched."""
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


_to_gray = to_gray  # the old name


@dataclass
class Grid:
    """Pixel and sampling geometry of one clip at the processing size."""

    H: int
    W: int
    k: float  # W / proc_width (<1 when frames are smaller than proc_width)
    F: float  # assumed focal length, px
    cx: float
    cy: float
    xn: np.ndarray  # normalised image coordinates, float32 [H, W]
    yn: np.ndarray
    pix: np.ndarray  # float32 [H, W, 2]: (x, y) of every pixel, for cv2.remap
    b: int  # border ignored, px
    gy: np.ndarray  # sample grid rows / columns (flattened)
    gx: np.ndarray
    gxn: np.ndarray
    gyn: np.ndarray
    valid: np.ndarray  # bool [H, W]: inside the border


def make_grid(H: int, W: int, cfg: BaselineConfig) -> Grid:
    k = W / float(cfg.proc_width)
    F = cfg.focal_frac * W
    cx, cy = W / 2.0, H / 2.0
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    xn, yn = (xx - cx) / F, (yy - cy) / F
    b = max(1, int(round(cfg.border_frac * max(W, H))))
    gs = max(2, int(cfg.grid_step * k))
    gy, gx = np.mgrid[b:H - b:gs, b:W - b:gs]
    gy, gx = gy.ravel(), gx.ravel()
    valid = np.zeros((H, W), bool)
    valid[b:H - b, b:W - b] = True
    return Grid(H, W, k, F, cx, cy, xn, yn, np.dstack([xx, yy]), b, gy, gx, (gx - cx) / F, (gy - cy) / F, valid)


@dataclass
class FlowPass:
    flows: list[np.ndarray] = field(default_factory=list)  # float32 [H, W, 2], px per flow_ref_dt_s
    oks: list[np.ndarray] = field(default_factory=list)  # bool [H, W]: reliable
    infos: list[dict] = field(default_factory=list)  # per pair: t0, t1, bg_mag, stationary, reliable
    samples: list[tuple[np.ndarray, ...]] = field(default_factory=list)  # (x, y, u, v) normalised
    moving_idx: list[int] = field(default_factory=list)  # pairs where the ego car moves
    static_count: np.ndarray | None = None  # summed blurred temporal change over moving pairs
    n_static: int = 0


def make_dis(cfg: BaselineConfig):
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS.get(cfg.dis_preset, cv2.DISOPTICAL_FLOW_PRESET_FAST))
    if cfg.dis_finest_scale is not None:
        dis.setFinestScale(int(cfg.dis_finest_scale))
    return dis


def flow_pass(grays: list[np.ndarray], times: list[float], g: Grid, cfg: BaselineConfig) -> FlowPass:
    """Forward (and backward) DIS flow of every pair, reliability, samples for the ego-motion fit."""
    dis = make_dis(cfg)
    kern5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    out = FlowPass()
    b, H, W, k, F = g.b, g.H, g.W, g.k, g.F
    gy, gx = g.gy, g.gx
    prev_blur = None
    for j in range(1, len(grays)):
        t0, t1 = times[j - 1], times[j]
        dt = max(t1 - t0, 1e-3)
        flow = dis.calc(grays[j - 1], grays[j], None)
        ok = g.valid
        if cfg.photo_check > 0 or cfg.fb_check:
            fmap = g.pix + flow  # where each pixel of the first frame lands in the second
        if cfg.photo_check > 0:
            # photometric check: the second frame warped back by the flow must match the first
            warped = cv2.remap(grays[j], fmap, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            err = cv2.blur(cv2.absdiff(warped, grays[j - 1]), (5, 5))
            ok = ok & (err < cfg.photo_check)
        if cfg.fb_check:
            back = dis.calc(grays[j], grays[j - 1], None)
            bw = cv2.remap(back, fmap, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            bw += flow
            # magnitudes from contiguous planes (cv2 copies strided views itself, twice as slow)
            fb = cv2.magnitude(*cv2.split(bw))
            mag = cv2.magnitude(*cv2.split(flow))
            mag *= cfg.fb_rel
            mag += cfg.fb_abs * k
            ok = ok & (fb < mag)
        if cfg.min_texture > 0:
            tex = cv2.cornerMinEigenVal(grays[j - 1], 5)
            ok = ok & (cv2.dilate(tex, kern5) > cfg.min_texture)
        flow *= cfg.flow_ref_dt_s / dt
        gok = ok[gy, gx]
        if gok.sum() < 12:
            gok = np.ones_like(gok)
        fg = flow[gy, gx]
        su, sv = fg[:, 0][gok] / F, fg[:, 1][gok] / F
        bg_mag = float(np.median(np.hypot(su, sv))) * F
        stationary = bg_mag < cfg.stationary_px * k
        inner = ok[b:H - b, b:W - b]
        out.infos.append({"t0": t0, "t1": t1, "bg_mag": round(bg_mag, 3), "stationary": bool(stationary),
                          "reliable": round(np.count_nonzero(inner) / inner.size, 3)})
        if not stationary:
            # temporal change of the (blurred) picture: the bonnet barely changes while the car moves
            cur_blur = cv2.blur(grays[j], (5, 5))
            if prev_blur is None:
                prev_blur = cv2.blur(grays[j - 1], (5, 5))
            d = cv2.absdiff(cur_blur, prev_blur)  # |a - b| of uint8, exact
            if out.static_count is None:
                out.static_count = d.astype(np.float32)
            else:
                out.static_count += d
            out.n_static += 1
            prev_blur = cur_blur
        else:
            prev_blur = None
        out.flows.append(flow)
        out.oks.append(ok)
        out.samples.append((g.gxn[gok], g.gyn[gok], su, sv))
        if not stationary:
            out.moving_idx.append(len(out.flows) - 1)
    return out
