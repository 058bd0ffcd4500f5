"""Step 3 of the baseline: the ego motion, and what it cannot explain.

For a camera that rotates and moves forward through a static world, the flow of every static point
is a rotational part (3 parameters, known form) plus a part pointing straight away from the focus
of expansion (FOE), whose length depends on the unknown depth. One FOE per clip (the camera is
fixed to the car) and one rotation per pair are fitted by robust alternating least squares on a
grid of reliable flow samples (:func:`fit_ego`). What no depth can explain — flow *across* the
radial direction, or flow *toward* the FOE — is independent motion (:func:`residual`). Static
objects' parallax (parked cars, poles, buildings) is radial and so drops out; a person running
into the road does not. When the ego car stands still, any (de-rotated) motion counts.

Camera-attached parts (bonnet, dashboard, burnt-in text) are found from the temporal change of
the picture (:func:`attached_parts`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from engines.baseline.config import BaselineConfig
from engines.baseline.flow import Grid


def _rot_basis(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotational flow basis in normalised image coordinates (flow = Au @ w, Av @ w)."""
    au = np.stack([x * y, -(1.0 + x * x), y], axis=-1)
    av = np.stack([1.0 + y * y, -x * y, -x], axis=-1)
    return au, av


def fit_rotation(x: np.ndarray, y: np.ndarray, u: np.ndarray, v: np.ndarray, e: tuple[float, float],
                 iters: int = 3, sigma: float = 0.004) -> tuple[np.ndarray, np.ndarray]:
    """Rotation ``w`` given the FOE ``e``: minimise the flow across the radial direction (robust).

    Returns (w, Cauchy weights of the samples)."""
    dx, dy = x - e[0], y - e[1]
    r = np.sqrt(dx * dx + dy * dy) + 1e-6
    nx, ny = -dy / r, dx / r
    # nx·Au + ny·Av column by column (the rotational basis of _rot_basis, without stacking it)
    xy = x * y
    a0 = np.empty((len(x), 3))
    a0[:, 0] = nx * xy + ny * (1.0 + y * y)
    a0[:, 1] = nx * -(1.0 + x * x) + ny * -xy
    a0[:, 2] = nx * y + ny * -x
    b0 = nx * u + ny * v
    lam = 0.05 * math.sqrt(len(x))
    wt = np.ones_like(x)
    w = np.zeros(3)
    reg = (lam * lam) * np.eye(3)
    for _ in range(max(1, iters)):
        # weighted ridge least squares via its 3x3 normal equations (the same minimiser as
        # lstsq on [a0·√wt; λI] w = [b0·√wt; 0], ~10x cheaper for ~1000 samples)
        aw = a0 * wt[:, None]
        w = np.linalg.solve(aw.T @ a0 + reg, aw.T @ b0)
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


def fit_ego(samples: list[tuple[np.ndarray, ...]], infos: list[dict], moving_idx: list[int],
            e0: tuple[float, float], cfg: BaselineConfig) -> tuple[list[np.ndarray], tuple[float, float]]:
    """Per-pair rotations and the clip's FOE (normalised coordinates), alternating ``fit_iters``
    times; pairs where the ego car stands still get a pure-pan rotation from the median flow."""
    rots: list[np.ndarray] = [np.zeros(3) for _ in samples]
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
    return rots, e


@dataclass
class Attached:
    mask: np.ndarray  # bool [H, W]: camera-attached parts plus a margin
    frac: float | None  # share of the picture (None when not measured)
    road_bottom: float | None  # the lowest visible road row (fraction of height), when found


def attached_parts(static_count: np.ndarray | None, n_static: int, H: int, W: int,
                   cfg: BaselineConfig) -> Attached:
    """Camera-attached static parts below the horizon (bonnet, burnt-in text): they pull the flow
    of the road next to them toward zero, so a margin around them is ignored too."""
    attached = np.zeros((H, W), bool)
    frac = road_bottom = None
    if static_count is not None and n_static >= 3:
        st = (static_count / n_static < cfg.static_diff).astype(np.uint8)
        nlab, lab, stats, _ = cv2.connectedComponentsWithStats(st, connectivity=4)
        keep = [li for li in range(1, nlab) if stats[li][1] + stats[li][3] >= H - 1 and stats[li][4] >= 0.01 * W * H]
        if keep:
            st = np.isin(lab, keep).astype(np.uint8)
            m = max(3, int(round(cfg.static_margin * H)) | 1)
            attached = cv2.dilate(st, cv2.getStructuringElement(cv2.MORPH_RECT, (m, m))) > 0
        frac = round(float(attached.mean()), 4)
        # the lowest visible road row: top of the camera-attached parts in the central third
        if keep:
            central = st[:, W // 3: 2 * W // 3].any(axis=1)
            rows = np.nonzero(central)[0]
            if len(rows):
                road_bottom = round(float(rows.min()) / H, 4)
    return Attached(attached, frac, road_bottom)


@dataclass
class Geometry:
    """The rotational basis on the full grid and the radial geometry around the clip's FOE."""

    xy: np.ndarray
    x2: np.ndarray
    y2: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    rr: np.ndarray
    near: np.ndarray  # 0 at the FOE, 1 beyond 0.08 (normalised): the radial direction is meaningless near it
    near_box: tuple[slice, slice] | None = None  # the rows and columns where near < 1 (None: nowhere)
    far: np.ndarray | None = None  # 1 - near on near_box


def geometry(g: Grid, e: tuple[float, float]) -> Geometry:
    xn, yn = g.xn, g.yn
    dx, dy = xn - e[0], yn - e[1]
    rr = np.sqrt(dx * dx + dy * dy) + 1e-6
    near = np.clip(rr / 0.08, 0.0, 1.0)
    rows, cols = np.nonzero((near < 1.0).any(axis=1))[0], np.nonzero((near < 1.0).any(axis=0))[0]
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)) if len(rows) else None
    far = (1 - near[box]) if box is not None else None
    return Geometry(xn * yn, 1.0 + xn * xn, 1.0 + yn * yn, dx, dy, rr, near, box, far)


def residual(flow: np.ndarray, w: np.ndarray, stationary: bool, g: Grid, geo: Geometry, e: tuple[float, float],
             ok: np.ndarray, cfg: BaselineConfig, pair: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ur, vr, mag, res): the de-rotated flow, its magnitude, and the independent-motion residual:
    flow across the radial direction plus flow toward the FOE (any motion when the ego car stands
    still); with ``ground_bound`` > 0 also a radial deficit against the road's expansion."""
    fu, fv = cv2.split(flow)
    F = g.F
    w0, w1, w2 = (float(F * w[0]), float(F * w[1]), float(F * w[2]))
    # rotational flow: u = w0*xy - w1*(1+x²) + w2*y, v = w0*(1+y²) - w1*xy - w2*x. The same
    # operations in the same order as the plain expressions (so the same float32 results), with
    # fewer temporary arrays.
    t = np.empty_like(fu)
    rot = np.multiply(geo.xy, w0)
    rot -= np.multiply(geo.x2, w1, out=t)
    rot += np.multiply(g.yn, w2, out=t)
    ur = np.subtract(fu, rot, out=fu)
    rot = np.multiply(geo.y2, w0, out=rot)
    rot -= np.multiply(geo.xy, w1, out=t)
    rot -= np.multiply(g.xn, w2, out=t)
    vr = np.subtract(fv, rot, out=fv)
    mag = cv2.magnitude(ur, vr)
    if stationary:
        return ur, vr, mag, mag
    dx, dy, rr = geo.dx, geo.dy, geo.rr
    rad = np.multiply(ur, dx, out=rot)  # (ur·dx + vr·dy) / rr
    rad += np.multiply(vr, dy, out=t)
    rad /= rr
    perp = np.multiply(ur, dy)  # |ur·dy - vr·dx| / rr
    perp -= np.multiply(vr, dx, out=t)
    np.abs(perp, out=perp)
    perp /= rr
    floor = 0.0
    if cfg.ground_bound > 0:
        # Below the horizon a static point is never farther than the road at the same pixel, so it
        # expands at least as fast as the road would there: radial flow >= kappa * r * (y - horizon),
        # kappa from the road in this pair. A pedestrian walking toward the ego path cancels its own
        # expansion; this bound (scaled by ground_bound for safety) is what reveals it.
        gy, gx, H, W, cy, cx, k = g.gy, g.gx, g.H, g.W, g.cy, g.cx, g.k
        hy_px = e[1] * F + cy
        dyg = gy - hy_px
        rg = rr[gy, gx] * F
        # rows near the horizon only: DIS underestimates the fast near road
        sel_g = ok[gy, gx] & (dyg > 0.04 * H) & (dyg < 0.18 * H) & (np.abs(gx - (e[0] * F + cx)) < 0.35 * W)
        if sel_g.sum() >= 8:
            kap = float(np.quantile(rad[gy, gx][sel_g] / (rg[sel_g] * dyg[sel_g]), cfg.ground_quantile))
            if kap > 0:
                yy = g.pix[..., 1]
                floor = cfg.ground_bound * np.minimum(kap * np.maximum(0.0, yy - hy_px) * (rr * F),
                                                      cfg.ground_floor_max * k)
                pair["kappa"] = round(kap * 1e4, 4)
    # res = near·(perp + max(0, floor - rad)) + (1 - near)·mag; where near is 1 (all but a box
    # around the FOE) that is exactly perp + max(0, floor - rad) (both terms are >= 0)
    inner = perp + np.maximum(0.0, floor - rad)
    if geo.near_box is None:
        return ur, vr, mag, inner
    bx = geo.near_box
    res = inner.copy()
    res[bx] = geo.near[bx] * inner[bx] + geo.far * mag[bx]
    return ur, vr, mag, res
