"""Step 4 of the baseline: residual → independent-motion mask → blobs.

The residual is thresholded (absolute and relative to the flow), kept only where it persists with
a compatible direction over consecutive pairs (:class:`Persistence`), away from camera-attached
parts, cleaned with morphology and split into connected components. Blobs must have most of their
minimum area above the near-field row (:func:`near_cut_row`) where the road itself moves too fast
for DIS; once they have, they keep their full extent below it (their ground contact).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from engines.baseline.config import BaselineConfig
from engines.baseline.flow import Grid

N_BINS = 8  # direction bins of the de-rotated flow (±45° compatibility between pairs)
KERN3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
KERN5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def near_cut_row(ur: np.ndarray, vr: np.ndarray, ok: np.ndarray, e: tuple[float, float], g: Grid,
                 pair: dict, cfg: BaselineConfig) -> int:
    """The first row of the near field, where the road surface would move more than
    ``max_ground_disp`` px in this pair (ground flow grows with the square of the depth below the
    horizon; its scale is measured on mid-distance central rows). ``H`` when there is none."""
    H, W, F, cx, cy, k = g.H, g.W, g.F, g.cx, g.cy, g.k
    if not (cfg.max_ground_disp > 0 and not pair["stationary"]):
        return H
    gy, gx = g.gy, g.gx
    hy_px = e[1] * F + cy
    dyg = gy - hy_px
    sel_g = ok[gy, gx] & (dyg > 0.08 * H) & (dyg < 0.35 * H) & (np.abs(gx - (e[0] * F + cx)) < 0.3 * W)
    if sel_g.sum() < 8:
        return H
    c = float(np.median(np.hypot(ur[gy, gx], vr[gy, gx])[sel_g] / dyg[sel_g] ** 2))
    disp_scale = (pair["t1"] - pair["t0"]) / cfg.flow_ref_dt_s
    if c <= 0:
        return H
    y_cut = hy_px + math.sqrt(cfg.max_ground_disp * k / (c * disp_scale))
    pair["near_cut"] = round(float(y_cut) / H, 3)
    return int(max(0, y_cut)) if y_cut < H else H


def direction_planes(mask: np.ndarray, ur: np.ndarray, vr: np.ndarray) -> list[np.ndarray]:
    """The mask split by the direction of the de-rotated flow into ``N_BINS`` uint8 planes.

    The angle is computed only where the mask is set (the same bins as over the whole picture)."""
    H, W = mask.shape
    idx = np.flatnonzero(mask)
    planes = [np.zeros((H, W), np.uint8) for _ in range(N_BINS)]
    if len(idx):
        ang = np.arctan2(vr.ravel()[idx], ur.ravel()[idx])
        bins = (np.floor((ang + np.pi) * (N_BINS / (2 * np.pi))).astype(np.int32)) % N_BINS
        for q in range(N_BINS):
            sel = idx[bins == q]
            if len(sel):
                planes[q].ravel()[sel] = 1
    return planes


class Persistence:
    """Keep a pixel only if it (dilated 5x5) was also flagged, with a direction within ±45°, in one
    of the two previous pairs: DIS failures flip direction; moving objects do not."""

    def __init__(self) -> None:
        self.history: list[list[np.ndarray]] = []

    def step(self, cur: list[np.ndarray], skipped: bool, shape: tuple[int, int]) -> np.ndarray:
        m8 = np.zeros(shape, np.uint8)
        if self.history and not skipped:
            active = [q for q in range(N_BINS) if cur[q].any()]
            need = sorted({(q + d) % N_BINS for q in active for d in (-1, 0, 1)})
            dil: dict[int, np.ndarray] = {}
            for q in need:
                hist = [hm[q] for hm in self.history]
                dil[q] = cv2.dilate(np.bitwise_or.reduce(hist) if len(hist) > 1 else hist[0], KERN5)
            for q in active:
                m8 |= cur[q] & (dil[(q - 1) % N_BINS] | dil[q] | dil[(q + 1) % N_BINS])
        self.history = [] if skipped else (self.history + [cur])[-2:]
        return m8


def clean(m8: np.ndarray) -> np.ndarray:
    m8 = cv2.morphologyEx(m8, cv2.MORPH_OPEN, KERN3)
    return cv2.morphologyEx(m8, cv2.MORPH_CLOSE, KERN5)


def find_blobs(m8: np.ndarray, ur: np.ndarray, vr: np.ndarray, res: np.ndarray, cut_row: int, t1: float,
               min_area: int) -> list[list[float]]:
    """Connected components of the cleaned mask as ``[t, x1, y1, x2, y2, area, u, v, res]``
    (box and area as fractions of the picture, flow per picture width/height)."""
    H, W = m8.shape
    blobs: list[list[float]] = []
    if not m8.any():
        return blobs
    nlab, lab, stats, _cents = cv2.connectedComponentsWithStats(m8, connectivity=8)
    # below the near-field cut the flow is not trusted: a blob must have most of its minimum area
    # above it, but once it has, it keeps its full extent (its ground contact)
    above = np.bincount(lab[:cut_row].ravel(), minlength=nlab) if cut_row < H else stats[:, 4]
    for li in range(1, nlab):
        x, y, bw_, bh_, area = stats[li]
        if area < min_area or above[li] < 0.6 * min_area:
            continue
        sel_px = lab[y:y + bh_, x:x + bw_] == li
        u_m = float(ur[y:y + bh_, x:x + bw_][sel_px].mean())
        v_m = float(vr[y:y + bh_, x:x + bw_][sel_px].mean())
        r_m = float(res[y:y + bh_, x:x + bw_][sel_px].mean())
        blobs.append([t1, x / W, y / H, (x + bw_) / W, (y + bh_) / H, area / (W * H), u_m / W, v_m / H, r_m / W])
    return blobs
