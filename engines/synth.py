"""Synthetic dashcam-style clips for demos and tests (no downloads, no weights, deterministic).

A pinhole camera 1.3 m above a flat road drives forward; the road surface is rendered by inverse
perspective mapping so that its texture, lane dashes and kerbs really flow outward from the focus
of expansion (ego motion). Buildings, poles, parked vehicles, people and cars are 3-D boxes and
shapes drawn far-to-near with OpenCV primitives, so occlusion is real: a pedestrian behind a parked
van is hidden until it walks out from behind it. A static bonnet, a ticking timestamp, slow
illumination drift, camera sway and sensor noise keep the picture from being trivially clean.

Scenarios (``SCENARIOS``):

- positives (ghost probing): ``emerge_pedestrian`` (from behind a van parked on the right),
  ``emerge_cyclist`` (from behind a van parked on the left), ``emerge_child`` (a short figure from
  behind a parked car on the right). The label onset is measured while rendering: the first frame
  where at least a fifth of the figure is visible.
- negatives: ``empty_road`` (ego motion only), ``far_crossing`` (a pedestrian crossing far ahead,
  visible from the start, never close), ``parked_only`` (a parked van that the ego car passes; nobody
  emerges), ``cut_in`` (a car in the adjacent lane, visible from the start, cuts into the ego lane —
  a cut-in is not ghost probing).

``render_clip`` writes one clip and returns its label info; ``render_demo_clips`` writes the demo
set plus ``labels.csv`` (``video_id,ghost_probing,onset_s,note``); ``render_edge_cases`` writes
degenerate clips for robustness tests.
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

POSITIVE_SCENARIOS = ("emerge_pedestrian", "emerge_cyclist", "emerge_child")
NEGATIVE_SCENARIOS = ("empty_road", "far_crossing", "parked_only", "cut_in")
SCENARIOS = POSITIVE_SCENARIOS + NEGATIVE_SCENARIOS
EDGE_CASES = ("static_scene", "short_clip", "single_frame", "black_frames", "heavy_noise", "tiny_frames")

_CAM_H = 1.3  # camera height above the road, metres


# --------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------
class _Writer:
    """Writes RGB frames with PyAV: H.264 (yuv420p, MP4 faststart: plays in browsers) or MPEG-4."""

    def __init__(self, path: Path, fps: int, size: tuple[int, int], codec: str = "h264"):
        import av

        w, h = size
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        opts = {"movflags": "+faststart"} if self.path.suffix.lower() in (".mp4", ".m4v", ".mov") else {}
        self.container = av.open(str(self.path), mode="w", options=opts)
        if codec == "h264":
            self.stream = self.container.add_stream("libx264", rate=fps)
            self.stream.options = {"crf": "23", "preset": "veryfast"}
        elif codec == "mpeg4":
            self.stream = self.container.add_stream("mpeg4", rate=fps)
            self.stream.bit_rate = 2_000_000
        else:
            raise ValueError(f"codec must be 'h264' or 'mpeg4', not {codec!r}")
        self.stream.width, self.stream.height = w, h
        self.stream.pix_fmt = "yuv420p"

    def write(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def _suffix_for(codec: str) -> str:
    return ".mp4" if codec == "h264" else ".avi"


# --------------------------------------------------------------------------------------------
# scene description
# --------------------------------------------------------------------------------------------
@dataclass
class _Box:
    """A vehicle-like box standing on the road: lateral extent [x0, x1], depth [z0, z1] (world)."""

    x0: float
    x1: float
    z0: float  # world Z of the rear (near) face at t=0
    length: float
    height: float
    color: tuple[int, int, int]
    vz: float = 0.0  # own forward speed, m/s (0 = parked)
    lane_change: tuple[float, float, float] | None = None  # (t_start, duration, target centre X)

    def at(self, t: float) -> tuple[float, float, float]:
        """Lateral left edge, right edge and world Z of the rear face at time t."""
        x0, x1 = self.x0, self.x1
        if self.lane_change is not None:
            ts, dur, target = self.lane_change
            a = float(np.clip((t - ts) / dur, 0.0, 1.0))
            a = a * a * (3 - 2 * a)
            shift = (target - (self.x0 + self.x1) / 2) * a
            x0, x1 = x0 + shift, x1 + shift
        return x0, x1, self.z0 + self.vz * t


@dataclass
class _Figure:
    kind: str  # pedestrian | cyclist
    x0: float  # lateral position at t=0 (centre)
    zw: float  # world Z (fixed)
    vx: float  # lateral speed, m/s (negative = to the left)
    t_start: float  # starts walking
    x_stop: float  # stops at this X
    height: float = 1.7
    color: tuple[int, int, int] = (200, 60, 50)

    def x_at(self, t: float) -> float:
        dt = max(0.0, t - self.t_start)
        x = self.x0 + self.vx * dt
        return max(x, self.x_stop) if self.vx < 0 else min(x, self.x_stop)

    def moving(self, t: float) -> bool:
        return t >= self.t_start and self.x_at(t) != self.x_stop


@dataclass
class _Scene:
    scenario: str
    w: int
    h: int
    rng: np.random.Generator
    f: float
    horizon: float
    v0: float
    brake_at: float | None = None
    decel: float = 6.0
    boxes: list[_Box] = field(default_factory=list)
    figures: list[_Figure] = field(default_factory=list)
    buildings: list[tuple[float, float, float, float, tuple[int, int, int]]] = field(default_factory=list)
    poles: list[tuple[float, float]] = field(default_factory=list)
    phase: float = 0.0
    static: bool = False

    def ego_pos(self, t: float) -> float:
        """Distance travelled by the ego car up to time t (metres)."""
        if self.brake_at is None or t <= self.brake_at:
            return self.v0 * t
        d0 = self.v0 * self.brake_at
        dt = t - self.brake_at
        t_stop = self.v0 / self.decel
        dt = min(dt, t_stop)
        return d0 + self.v0 * dt - 0.5 * self.decel * dt * dt


def _stable_seed(scenario: str, seed: int) -> int:
    return (zlib.crc32(scenario.encode()) * 1000003 + int(seed)) % (2**32)


def _make_scene(scenario: str, seed: int, size: tuple[int, int], duration_s: float,
                onset_s: float | None) -> _Scene:
    w, h = size
    rng = np.random.default_rng(_stable_seed(scenario, seed))
    f = 0.55 * w
    sc = _Scene(scenario=scenario, w=w, h=h, rng=rng, f=f, horizon=0.42 * h,
                v0=float(rng.uniform(7.0, 10.0)), phase=float(rng.uniform(0, 6.28)))
    travel = sc.v0 * duration_s + 150.0
    # roadside buildings (facades parallel to the road) and poles
    for side in (-1, 1):
        z = float(rng.uniform(5, 20))
        while z < travel:
            length = float(rng.uniform(8, 25))
            height = float(rng.uniform(5, 16))
            x = side * float(rng.uniform(9.0, 12.0))
            col = tuple(int(c) for c in rng.integers(90, 200, 3))
            sc.buildings.append((x, z, z + length, height, col))
            z += length + float(rng.uniform(2, 12))
        z = float(rng.uniform(0, 15))
        while z < travel:
            sc.poles.append((side * 6.3, z))
            z += float(rng.uniform(14, 22))

    if onset_s is None:
        onset_s = float(rng.uniform(0.35, 0.6)) * duration_s
    onset_s = float(np.clip(onset_s, 0.3, max(0.3, duration_s - 0.8)))

    if scenario in POSITIVE_SCENARIOS:
        side = -1.0 if scenario == "emerge_cyclist" else 1.0
        kind = "cyclist" if scenario == "emerge_cyclist" else "pedestrian"
        child = scenario == "emerge_child"
        height_fig = 1.15 if child else 1.72
        veh_h = 1.5 if child else 2.2
        veh_len = 4.4 if child else 5.5
        inner = 2.6  # lateral distance of the parked vehicle's inner side from the ego axis
        d_on = float(rng.uniform(3.5, 6.0))  # distance to its rear face at onset
        sc.v0 = float(rng.uniform(6.0, 8.5))
        z_rear_world = sc.v0 * onset_s + d_on
        x_in, x_out = (inner, inner + 1.9) if side > 0 else (-inner - 1.9, -inner)
        col = tuple(int(c) for c in rng.integers(40, 230, 3))
        sc.boxes.append(_Box(x_in, x_out, z_rear_world, veh_len, veh_h, col))
        zf = z_rear_world + veh_len + 0.6
        # ghost probing is a dash, not a stroll: running pedestrian, child, or a cyclist
        speed = float(rng.uniform(4.0, 5.0)) if kind == "cyclist" else float(rng.uniform(2.4, 3.2))
        if child:
            speed = float(rng.uniform(2.0, 2.8))
        half = 0.65 if kind == "cyclist" else 0.25
        # emerges when its inner edge passes the far corner of the vehicle, as seen from the camera
        z_far = d_on + veh_len
        z_fig = z_far + 0.6
        x_emerge = inner * z_fig / z_far + 0.2 * half  # |X| of the figure centre at emergence
        x_start = x_emerge + 2 * half + 0.4
        t_start = onset_s - (x_start - x_emerge) / speed
        # the driver reacts after 0.3-0.6 s and brakes, stopping 2.5-4 m short of the figure: it
        # ends up close, in the ego path (DADA's ghost probing clips are near-accidents)
        sc.brake_at = onset_s + float(rng.uniform(0.3, 0.6))
        z_left = zf - sc.v0 * sc.brake_at - float(rng.uniform(2.5, 4.0))
        sc.decel = float(np.clip(sc.v0 ** 2 / (2 * max(z_left, 0.5)), 2.0, 10.0))
        fig_col = tuple(int(c) for c in rng.integers(30, 240, 3))
        sc.figures.append(_Figure(kind, side * x_start, zf, -side * speed, t_start,
                                  x_stop=-side * float(rng.uniform(2.5, 4.0)), height=height_fig,
                                  color=fig_col))
    elif scenario == "parked_only":
        d0 = float(rng.uniform(18, 26))
        col = tuple(int(c) for c in rng.integers(40, 230, 3))
        side = 1.0 if rng.random() < 0.5 else -1.0
        x_in, x_out = (2.6, 4.5) if side > 0 else (-4.5, -2.6)
        sc.boxes.append(_Box(x_in, x_out, d0, 5.5, 2.2, col))
        sc.boxes.append(_Box(x_in, x_out, d0 + float(rng.uniform(14, 22)), 4.4, 1.5,
                             tuple(int(c) for c in rng.integers(40, 230, 3))))
    elif scenario == "far_crossing":
        sc.v0 = float(rng.uniform(2.0, 3.0))
        z = float(rng.uniform(30, 38))
        speed = float(rng.uniform(1.2, 1.8))
        x0 = -6.5 if rng.random() < 0.5 else 6.5
        sc.figures.append(_Figure("pedestrian", x0, z, speed if x0 < 0 else -speed, -1.0,
                                  x_stop=-x0, color=tuple(int(c) for c in rng.integers(30, 240, 3))))
    elif scenario == "cut_in":
        side = -1.0 if rng.random() < 0.5 else 1.0
        x_c = side * 3.5
        z0 = float(rng.uniform(7, 10))
        col = tuple(int(c) for c in rng.integers(40, 230, 3))
        sc.boxes.append(_Box(x_c - 0.9, x_c + 0.9, z0, 4.3, 1.45, col, vz=sc.v0 + float(rng.uniform(0.2, 0.8)),
                             lane_change=(onset_s, float(rng.uniform(1.2, 1.8)), 0.0)))
    elif scenario == "empty_road":
        pass
    else:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    return sc


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------
class _Renderer:
    def __init__(self, sc: _Scene):
        self.sc = sc
        w, h = sc.w, sc.h
        rng = sc.rng
        self.tex = rng.normal(0.0, 1.0, (256, 256)).astype(np.float32)
        self.tex = cv2.GaussianBlur(np.tile(self.tex, (3, 3)), (0, 0), 0.8)[256:512, 256:512] * 2.2
        self.xs = np.arange(w, dtype=np.float32)[None, :]
        # sky: vertical gradient with a few soft static clouds
        sky = np.zeros((h, w, 3), np.float32)
        top = np.array([110, 150, 205], np.float32) + rng.uniform(-20, 20, 3).astype(np.float32)
        bot = np.array([200, 210, 220], np.float32)
        a = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        sky[:] = top * (1 - a) + bot * a
        for _ in range(4):
            c = (int(rng.uniform(0, w)), int(rng.uniform(0, 0.3 * h)))
            cv2.ellipse(sky, c, (int(rng.uniform(30, 90)), int(rng.uniform(6, 15))), 0, 0, 360,
                        (235, 238, 242), -1)
        self.sky = cv2.GaussianBlur(sky, (0, 0), 5)
        self.bonnet = np.zeros((h, w), np.uint8)
        cv2.ellipse(self.bonnet, (w // 2, int(h * 1.13)), (int(w * 0.75), int(h * 0.2)), 0, 180, 360, 255, -1)
        self.bonnet_col = np.array(rng.integers(20, 120, 3), np.float32)

    def noise(self, sigma: float) -> np.ndarray:
        """Sensor noise: one of a small bank of noise fields, shifted at random (cheap, seeded)."""
        sc = self.sc
        if getattr(self, "_bank", None) is None or self._bank_sigma != sigma:
            self._bank = sc.rng.normal(0.0, sigma, (4, sc.h + 16, sc.w + 16, 1)).astype(np.float32)
            self._bank_sigma = sigma
        k, dy, dx = int(sc.rng.integers(0, 4)), int(sc.rng.integers(0, 16)), int(sc.rng.integers(0, 16))
        return self._bank[k, dy:dy + sc.h, dx:dx + sc.w]

    def cam(self, t: float) -> tuple[float, float]:
        sc = self.sc
        if sc.static:
            return sc.w / 2, sc.horizon
        cx = sc.w / 2 + 0.006 * sc.w * np.sin(0.7 * t + sc.phase)
        hy = sc.horizon + 0.004 * sc.h * np.sin(1.3 * t + 2 * sc.phase)
        return float(cx), float(hy)

    def ground(self, img: np.ndarray, t: float, cx: float, hy: float) -> None:
        sc = self.sc
        h = sc.h
        y_start = int(np.floor(hy)) + 1
        ys = np.arange(y_start, h, dtype=np.float32)[:, None] + 0.5
        Z = sc.f * _CAM_H / np.maximum(ys - hy, 0.5)
        X = (self.xs - cx) * Z / sc.f
        Zw = Z + sc.ego_pos(t)
        # bilinear lookup in a tiling noise texture (8 texels per metre): smooth like asphalt
        mx = np.mod(X * 8.0, 256.0).astype(np.float32)
        mz = np.ascontiguousarray(np.broadcast_to(np.mod(Zw * 8.0, 256.0), mx.shape), dtype=np.float32)
        tex = cv2.remap(self.tex, mx, mz, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        ax = np.abs(X)
        road = ax < 5.5
        g = tex * (np.minimum(12.0 / Z, 1.0) * np.where(road, 14.0, 22.0))
        g += np.where(road, 95.0, np.where(ax < 7.5, 150.0, 105.0))
        dash = (np.abs(ax - 1.75) < 0.07) & ((Zw % 10.0) < 3.5)
        g[dash | (np.abs(ax - 5.3) < 0.08)] = 225.0
        g[(ax > 5.5) & (ax < 5.7)] = 175.0
        # fade to haze near the horizon (per row)
        haze = np.clip((Z[:, :1] - 40.0) / 120.0, 0.0, 0.7)
        g *= 1 - haze
        out = img[y_start:h]
        out[:] = g[..., None]
        out += (haze * np.array([185, 190, 195], np.float32))[:, None, :]
        grass = ax >= 7.5
        out[grass] *= np.array([0.75, 1.0, 0.6], np.float32)

    def proj(self, X: float, Y: float, Z: float, cx: float, hy: float) -> tuple[float, float]:
        f = self.sc.f
        return cx + f * X / Z, hy + f * (_CAM_H - Y) / Z

    def quad(self, img, ids, obj_id, pts, color) -> None:
        p = np.round(np.array(pts, np.float64) * 4).astype(np.int32)
        cv2.fillPoly(img, [p], color, cv2.LINE_AA, shift=2)
        if ids is not None:
            cv2.fillPoly(ids, [p], obj_id, cv2.LINE_8, shift=2)

    def draw_box(self, img, ids, obj_id, x0, x1, zr, length, height, color, cx, hy, win=True) -> None:
        zn = max(zr, 1.0)
        zf = zr + length
        if zf <= 1.0:
            return
        P = lambda X, Y, Z: self.proj(X, Y, Z, cx, hy)  # noqa: E731
        col = np.array(color, np.float64)
        side = col * 0.7
        # the side facing the camera axis
        if x0 > 0:
            xs = x0
        elif x1 < 0:
            xs = x1
        else:
            xs = None
        if xs is not None:
            self.quad(img, ids, obj_id, [P(xs, 0, zn), P(xs, height, zn), P(xs, height, zf), P(xs, 0, zf)],
                      tuple(side.tolist()))
            if win:
                self.quad(img, ids, obj_id, [P(xs, height * 0.55, zn + length * 0.15),
                                             P(xs, height * 0.85, zn + length * 0.15),
                                             P(xs, height * 0.85, zf - length * 0.15),
                                             P(xs, height * 0.55, zf - length * 0.15)], (40, 45, 55))
        if height > _CAM_H:
            pass  # roof not visible from below
        else:
            self.quad(img, ids, obj_id, [P(x0, height, zn), P(x1, height, zn), P(x1, height, zf),
                                         P(x0, height, zf)], tuple((col * 0.85).tolist()))
        if zr >= 1.0:
            self.quad(img, ids, obj_id, [P(x0, 0.25, zr), P(x1, 0.25, zr), P(x1, height, zr),
                                         P(x0, height, zr)], tuple(col.tolist()))
            if win:
                self.quad(img, ids, obj_id, [P(x0 + 0.2, height * 0.6, zr), P(x1 - 0.2, height * 0.6, zr),
                                             P(x1 - 0.2, height * 0.88, zr), P(x0 + 0.2, height * 0.88, zr)],
                          (35, 40, 50))
            for xw in (x0 + 0.35, x1 - 0.35):  # wheels
                c = P(xw, 0.3, zr)
                r = max(1, int(round(self.sc.f * 0.3 / zr)))
                cv2.circle(img, (int(c[0]), int(c[1])), r, (20, 20, 20), -1, cv2.LINE_AA)
                if ids is not None:
                    cv2.circle(ids, (int(c[0]), int(c[1])), r, obj_id, -1)
            # tail lights
            for xl in (x0 + 0.15, x1 - 0.15):
                c = P(xl, height * 0.45, zr)
                r = max(1, int(round(self.sc.f * 0.09 / zr)))
                cv2.circle(img, (int(c[0]), int(c[1])), r, (200, 30, 30), -1)

    def draw_figure(self, img, ids, obj_id, fig: _Figure, t: float, zc: float, cx, hy) -> None:
        if zc <= 1.0:
            return
        f = self.sc.f
        X = fig.x_at(t)
        s = f / zc
        hgt = fig.height
        u, v = self.proj(X, 0, zc, cx, hy)  # feet
        col = fig.color
        dark = (40, 40, 50)
        walk = fig.moving(t)
        phase = np.sin(2 * np.pi * 1.8 * t) if walk else 0.0

        def pt(dx, y):
            return (int(round(u + dx * s)), int(round(v - y * s)))

        def line(a, b, width, c):
            th = max(1, int(round(width * s)))
            cv2.line(img, a, b, c, th, cv2.LINE_AA)
            if ids is not None:
                cv2.line(ids, a, b, obj_id, th)

        def circ(c, r, colr, fill=-1):
            rr = max(1, int(round(r * s)))
            cv2.circle(img, c, rr, colr, fill, cv2.LINE_AA)
            if ids is not None:
                cv2.circle(ids, c, rr, obj_id, fill)

        k = hgt / 1.72
        d = 1.0 if fig.vx >= 0 else -1.0  # faces its direction of travel

        def pt(dx, y):  # noqa: F811
            return (int(round(u + d * dx * s)), int(round(v - y * s)))

        if fig.kind == "cyclist":
            for dx in (-0.55, 0.55):
                circ(pt(dx, 0.33), 0.33, (25, 25, 25), max(1, int(round(0.06 * s))))
            line(pt(-0.55, 0.33), pt(0.0, 0.75), 0.05, (150, 150, 160))
            line(pt(0.55, 0.33), pt(0.0, 0.75), 0.05, (150, 150, 160))
            line(pt(0.0, 0.75), pt(0.05, 0.95), 0.05, (150, 150, 160))
            line(pt(0.0, 0.95), pt(0.15, 1.45), 0.32, col)  # torso
            line(pt(0.15, 1.35), pt(0.5, 1.05), 0.08, col)  # arm to handlebar
            line(pt(0.0, 0.95), pt(0.25 + 0.1 * phase, 0.45), 0.12, dark)  # leg
            circ(pt(0.18, 1.62), 0.12, (230, 190, 160))
        else:
            hip = 0.9 * k
            line(pt(0.0, hip), pt(0.18 * phase, 0.02), 0.14, dark)
            line(pt(0.0, hip), pt(-0.18 * phase, 0.02), 0.14, dark)
            line(pt(0.0, hip + 0.05), pt(0.0, 1.42 * k), 0.38, col)
            line(pt(0.0, 1.38 * k), pt(0.16 * phase, 0.95 * k), 0.08, col)
            circ(pt(0.0, 1.58 * k), 0.12, (230, 190, 160))

    def frame(self, t: float, noise_sigma: float, frame_idx: int) -> tuple[np.ndarray, dict[int, int]]:
        sc = self.sc
        cx, hy = self.cam(t)
        img = self.sky.copy()
        self.ground(img, t, cx, hy)
        ids = np.zeros((sc.h, sc.w), np.uint8)
        ego = sc.ego_pos(t)
        items: list[tuple[float, Any]] = []
        for b in sc.buildings:
            x, z0, z1, height, col = b
            if z1 - ego > 1.0 and z0 - ego < 160:
                items.append((z0 - ego, ("building", b)))
        for x, z in sc.poles:
            if 1.0 < z - ego < 140:
                items.append((z - ego, ("pole", (x, z))))
        for i, bx in enumerate(sc.boxes):
            x0, x1, zw = bx.at(t)
            zr = zw - ego
            if zr + bx.length > 1.0 and zr < 200:
                items.append((zr, ("box", (i, bx, x0, x1, zr))))
        for i, fg in enumerate(sc.figures):
            zc = fg.zw - ego
            if zc > 1.0:
                items.append((zc, ("figure", (i, fg, zc))))
        items.sort(key=lambda it: -it[0])
        P = lambda X, Y, Z: self.proj(X, Y, Z, cx, hy)  # noqa: E731
        fig_ids: dict[int, int] = {}
        for _, (kind, data) in items:
            if kind == "building":
                x, z0, z1, height, col = data
                zn, zf = max(z0 - ego, 1.0), z1 - ego
                self.quad(img, ids, 0, [P(x, 0, zn), P(x, height, zn), P(x, height, zf), P(x, 0, zf)],
                          col)
                # windows: a few rows of dark quads
                nwin = int((z1 - z0) // 3)
                for r in range(1, int(height // 3)):
                    y0, y1 = r * 3.0 - 1.6, r * 3.0 - 0.4
                    for k in range(nwin):
                        a, b = z0 + 0.8 + 3 * k - ego, z0 + 2.2 + 3 * k - ego
                        if a < 1.0:
                            continue
                        self.quad(img, None, 0, [P(x, y0, a), P(x, y1, a), P(x, y1, b), P(x, y0, b)],
                                  tuple(int(c * 0.45) for c in col))
            elif kind == "pole":
                x, z = data
                zr = z - ego
                a, b = P(x, 0, zr), P(x, 5.5, zr)
                th = max(1, int(round(sc.f * 0.12 / zr)))
                cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), (120, 120, 125), th, cv2.LINE_AA)
            elif kind == "box":
                i, bx, x0, x1, zr = data
                self.draw_box(img, ids, 0, x0, x1, zr, bx.length, bx.height, bx.color, cx, hy)
            elif kind == "figure":
                i, fg, zc = data
                oid = 10 + i
                fig_ids[i] = oid
                self.draw_figure(img, ids, oid, fg, t, zc, cx, hy)
        # visibility of each figure: visible pixels vs the figure drawn alone
        vis: dict[int, tuple[int, int]] = {}
        for _, (kind, data) in items:
            if kind == "figure":
                i, fg, zc = data
                alone = np.zeros((sc.h, sc.w), np.uint8)
                self.draw_figure(np.zeros((sc.h, sc.w, 3), np.float32), alone, 1, fg, t, zc, cx, hy)
                vis[i] = (int(np.count_nonzero(ids == fig_ids[i])), int(np.count_nonzero(alone)))
        # bonnet (static, attached to the camera), illumination drift, timestamp, noise
        m = self.bonnet > 0
        img[m] = self.bonnet_col
        gain = 1.0 + 0.06 * np.sin(0.9 * t + sc.phase) + 0.02 * np.sin(5.1 * t)
        img *= gain
        img += self.noise(noise_sigma)
        out = np.clip(img, 0, 255).astype(np.uint8)
        stamp = f"2024/05/01 08:{int(t // 60):02d}:{int(t % 60):02d}"
        scale = max(0.25, sc.h / 900)
        cv2.putText(out, stamp, (int(0.02 * sc.w), int(0.96 * sc.h)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (235, 235, 235), 1, cv2.LINE_AA)
        return out, {i: v for i, v in vis.items()}


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def render_clip(path: str | Path, scenario: str, seed: int = 0, fps: int = 15,
                size: tuple[int, int] = (640, 360), duration_s: float = 5.0,
                onset_s: float | None = None, codec: str = "h264") -> dict[str, Any]:
    """Render one synthetic dashcam clip to ``path`` and return its label info.

    ``onset_s`` is where a positive's figure should emerge (default: drawn from the seed, 35–60 % of
    the clip); the returned ``onset_s`` is the *measured* first frame at which at least a fifth of
    the figure is visible. Negatives return ``onset_s=None``. Same arguments → same pixels.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    w, h = int(size[0]) // 2 * 2, int(size[1]) // 2 * 2
    path = Path(path)
    sc = _make_scene(scenario, seed, (w, h), duration_s, onset_s)
    rend = _Renderer(sc)
    n = max(1, int(round(duration_s * fps)))
    writer = _Writer(path, fps, (w, h), codec)
    onset_meas = None
    max_vis = 0.0
    noise = float(sc.rng.uniform(2.5, 4.5))
    try:
        for i in range(n):
            t = i / fps
            rgb, vis = rend.frame(t, noise, i)
            writer.write(rgb)
            if scenario in POSITIVE_SCENARIOS and 0 in vis:
                visible, full = vis[0]
                frac = visible / full if full else 0.0
                max_vis = max(max_vis, frac)
                if onset_meas is None and full > 0 and frac >= 0.2 and visible >= 12:
                    onset_meas = t
    finally:
        writer.close()
    positive = scenario in POSITIVE_SCENARIOS
    kind = "ghost_probing" if positive else ("cut_in" if scenario == "cut_in" else "none")
    obj = None
    if positive:
        obj = sc.figures[0].kind
    elif scenario == "cut_in":
        obj = "vehicle"
    notes = {
        "emerge_pedestrian": "pedestrian emerges from behind a van parked on the right",
        "emerge_cyclist": "cyclist emerges from behind a van parked on the left",
        "emerge_child": "short pedestrian emerges from behind a car parked on the right",
        "empty_road": "empty road, ego motion only",
        "far_crossing": "pedestrian crossing far ahead, visible from the start, never close",
        "parked_only": "parked vehicles, nobody emerges",
        "cut_in": "car in the adjacent lane cuts in (visible from the start): not ghost probing",
    }
    return {
        "video_id": path.name,
        "path": str(path),
        "scenario": scenario,
        "seed": int(seed),
        "ghost_probing": positive,
        "onset_s": (round(onset_meas, 3) if onset_meas is not None else None) if positive else None,
        "requested_onset_s": onset_s,
        "object_type": obj,
        "kind": kind,
        "note": notes[scenario],
        "fps": fps,
        "size": (w, h),
        "frames": n,
        "duration_s": n / fps,
        "max_visible_fraction": round(max_vis, 3) if positive else None,
    }


DEMO_SET: tuple[tuple[str, float, float | None], ...] = (
    # scenario, duration_s, onset_s
    ("emerge_pedestrian", 5.0, 2.0),
    ("emerge_cyclist", 5.0, 2.5),
    ("emerge_child", 6.0, 3.0),
    ("empty_road", 4.0, None),
    ("far_crossing", 5.0, None),
    ("parked_only", 5.0, None),
    ("cut_in", 5.0, 1.5),
)


def write_labels_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write labels in the generic format ``video_id,ghost_probing,onset_s,note``."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(["video_id", "ghost_probing", "onset_s", "note"])
        for r in rows:
            onset = "" if r.get("onset_s") is None else f"{r['onset_s']:.2f}"
            wr.writerow([r["video_id"], 1 if r["ghost_probing"] else 0, onset, r.get("note", "")])
    return path


def render_demo_clips(out_dir: str | Path, seed: int = 0, codec: str = "h264",
                      size: tuple[int, int] = (640, 360), fps: int = 15) -> list[Path]:
    """Write the demo set (3 positives, 4 negatives, 4–6 s, 640x360, 15 fps) and ``labels.csv``.

    Returns the clip paths (labels.csv sits beside them). Names say the scenario, e.g.
    ``synth_emerge_pedestrian_s0.mp4``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, rows = [], []
    for scen, dur, onset in DEMO_SET:
        p = out / f"synth_{scen}_s{seed}{_suffix_for(codec)}"
        info = render_clip(p, scen, seed=seed, fps=fps, size=size, duration_s=dur, onset_s=onset, codec=codec)
        paths.append(p)
        rows.append(info)
    write_labels_csv(rows, out / "labels.csv")
    return paths


def render_edge_cases(out_dir: str | Path, codec: str = "h264") -> dict[str, Path]:
    """Degenerate clips for robustness tests: name → path (see ``EDGE_CASES``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    suf = _suffix_for(codec)
    paths: dict[str, Path] = {}
    rng = np.random.default_rng(1234)

    def write(name: str, frames: list[np.ndarray], fps: int = 15) -> None:
        p = out / f"edge_{name}{suf}"
        h, w = frames[0].shape[:2]
        wr = _Writer(p, fps, (w, h), codec)
        try:
            for fr in frames:
                wr.write(fr)
        finally:
            wr.close()
        paths[name] = p

    # static scene: the road scene with a parked ego car (no ego motion, nothing moves)
    sc = _make_scene("parked_only", 7, (320, 180), 3.0, None)
    sc.v0, sc.static = 0.0, True
    rend = _Renderer(sc)
    write("static_scene", [rend.frame(i / 15, 2.0, i)[0] for i in range(45)])
    sc2 = _make_scene("empty_road", 3, (320, 180), 0.6, None)
    rend2 = _Renderer(sc2)
    write("short_clip", [rend2.frame(i / 15, 3.0, i)[0] for i in range(9)])
    write("single_frame", [rend2.frame(0.0, 3.0, 0)[0]])
    write("black_frames", [np.zeros((180, 320, 3), np.uint8) for _ in range(30)])
    write("heavy_noise", [rng.integers(0, 256, (180, 320, 3), dtype=np.uint8) for _ in range(30)])
    write("tiny_frames", [rng.integers(90, 110, (18, 32, 3), dtype=np.uint8) for _ in range(15)])
    return paths
