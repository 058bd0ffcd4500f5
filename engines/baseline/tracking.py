"""Step 5 of the baseline: blobs into tracks, and whether a track's first box was there before.

Greedy association by IoU of the flow-predicted box or by centroid distance (in box diagonals);
a track survives ``max_gap_s`` without a match (flow masks flicker).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engines.baseline.config import BaselineConfig


@dataclass
class _Track:
    id: int
    obs: list[list[float]] = field(default_factory=list)  # [t, x1, y1, x2, y2, area, u, v, res]
    last_t: float = 0.0
    box: tuple[float, float, float, float] = (0, 0, 0, 0)
    vel: tuple[float, float] = (0.0, 0.0)


Track = _Track


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


class Tracker:
    """Feed the blobs of each pair with :meth:`step`; :meth:`finish` returns every track by id."""

    def __init__(self, cfg: BaselineConfig):
        self.cfg = cfg
        self.tracks: list[_Track] = []
        self.done: list[_Track] = []
        self.next_id = 0

    def step(self, blobs: list[list[float]], t1: float) -> None:
        cfg = self.cfg
        tracks = self.tracks
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
                tracks.append(_Track(id=self.next_id, obs=[bl], last_t=t1, box=tuple(bl[1:5]), vel=(bl[6], bl[7])))
                self.next_id += 1
        alive = []
        for tr in tracks:
            (alive if t1 - tr.last_t <= cfg.max_gap_s else self.done).append(tr)
        self.tracks = alive

    def finish(self) -> list[_Track]:
        out = self.done + self.tracks
        out.sort(key=lambda tr: tr.id)
        return out


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float32) - float(a.mean())
    b = b.astype(np.float32) - float(b.mean())
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-6 else 0.0


def seen_before(grays: list[np.ndarray], times: np.ndarray, first: list[float], cfg: BaselineConfig) -> float:
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


_seen_before = seen_before
