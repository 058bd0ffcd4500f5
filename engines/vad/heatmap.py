"""Anomaly heatmaps: low-resolution maps blended over their frames, boxes, a browser-playable MP4.

Alignment: a map always covers the *whole* frame it belongs to (every engine builds it that way),
so it is resized to exactly the frame's width × height — never padded, cropped or letter-boxed —
whatever the two sizes and aspect ratios are. That is the fix for heatmaps drifting off their
frames at sizes other than the model's input.

The video is H.264 (libx264, yuv420p, even dimensions, ``+faststart``) in MP4, written with PyAV
with each frame's presentation time equal to its timestamp in the source video, so a time on the
score timeline is the same time in the player. (OpenCV's ``mp4v`` FourCC does not play in Chromium.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Box
from engines.errors import VideoError

BOX_COLOR = (255, 64, 64)  # RGB
RANDOM_WEIGHTS_BANNER = "random weights: scores are meaningless"


def map_index(map_times: Sequence[float], t: float) -> int:
    """The map shown at time ``t``: the latest map at or before ``t`` (the first map before it)."""
    if not len(map_times):
        return -1
    mt = np.asarray(map_times, dtype=float)
    i = int(np.searchsorted(mt, float(t) + 1e-6, side="right")) - 1
    return max(0, min(i, len(mt) - 1))


def colorize(m: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The map resized to ``width`` × ``height`` (bilinear) and its JET colours: (rgb uint8, weight 0..1)."""
    import cv2

    m = np.nan_to_num(np.asarray(m, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    big = np.clip(cv2.resize(m, (int(width), int(height)), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    rgb = cv2.cvtColor(cv2.applyColorMap((big * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return rgb, big


def overlay(frame: np.ndarray, m: np.ndarray | None, alpha: float = 0.6) -> np.ndarray:
    """``frame`` (RGB uint8) with ``m`` (0..1, any size, covering the whole frame) blended over it:
    each pixel mixes in the colour by ``alpha × value``, so where nothing is anomalous the frame
    stays as it was."""
    f = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
    if m is None:
        return f.copy()
    h, w = f.shape[:2]
    rgb, weight = colorize(m, w, h)
    a = (alpha * weight)[..., None]
    return (f.astype(np.float32) * (1.0 - a) + rgb.astype(np.float32) * a).round().astype(np.uint8)


def draw_boxes(img: np.ndarray, boxes: Iterable[Box], threshold: float | None = None,
               scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Boxes with their scores; boxes at or above ``threshold`` thick, the others thin."""
    import cv2

    out = np.ascontiguousarray(img).copy()
    h, w = out.shape[:2]
    sx, sy = scale
    for b in boxes:
        x1, y1 = int(round(b.x1 * sx)), int(round(b.y1 * sy))
        x2, y2 = int(round(b.x2 * sx)), int(round(b.y2 * sy))
        x1, x2 = max(0, min(x1, w - 1)), max(0, min(x2, w - 1))
        y1, y2 = max(0, min(y1, h - 1)), max(0, min(y2, h - 1))
        strong = threshold is None or b.score >= threshold
        cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOR if strong else (255, 200, 64), 2 if strong else 1)
        text = f"{b.label + ' ' if b.label else ''}{b.score:.2f}"
        cv2.putText(out, text, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 2,
                    cv2.LINE_AA)
        cv2.putText(out, text, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, BOX_COLOR, 1, cv2.LINE_AA)
    return out


def banner(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = np.ascontiguousarray(img).copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 16), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def _boxes_by_frame(boxes: Iterable[Box]) -> dict[int, list[Box]]:
    by: dict[int, list[Box]] = {}
    for b in boxes:
        by.setdefault(int(b.frame), []).append(b)
    return by


def render_frame(frame: np.ndarray, i: int, t: float, maps: Any, map_times: Sequence[float],
                 boxes_by_frame: dict[int, list[Box]], threshold: float | None = None,
                 random_weights: bool = False, alpha: float = 0.6) -> np.ndarray:
    j = map_index(map_times, t) if maps is not None else -1
    img = overlay(frame, maps[j] if j >= 0 else None, alpha)
    img = draw_boxes(img, boxes_by_frame.get(int(i), []), threshold)
    if random_weights:
        img = banner(img, RANDOM_WEIGHTS_BANNER)
    return img


def render_frames(frames: np.ndarray, timestamps: Sequence[float], maps: Any, map_times: Sequence[float],
                  boxes: Iterable[Box], threshold: float | None = None, random_weights: bool = False,
                  alpha: float = 0.6) -> Iterable[np.ndarray]:
    by = _boxes_by_frame(boxes)
    for i, (fr, t) in enumerate(zip(frames, timestamps)):
        yield render_frame(fr, i, float(t), maps, map_times, by, threshold, random_weights, alpha)


def write_mp4(frames: Iterable[np.ndarray], timestamps: Sequence[float], dst: str | os.PathLike[str]) -> Path:
    """H.264 MP4 (yuv420p, even size, +faststart) with each frame shown at its own timestamp.

    Written under a temporary name and renamed into place, so a reader never sees half a file."""
    import av

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.tmp.mp4")
    tb = Fraction(1, 1000)
    n = 0
    last_pts = -1
    try:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = None
            for fr, t in zip(frames, timestamps):
                if stream is None:
                    h, w = fr.shape[:2]
                    w2, h2 = w - w % 2, h - h % 2
                    if w2 < 2 or h2 < 2:
                        raise VideoError(f"The heatmap frames are too small to encode ({w}x{h}).")
                    ts = [float(x) for x in timestamps]
                    step = float(np.median(np.diff(ts))) if len(ts) > 1 else 0.1
                    rate = Fraction(1.0 / max(step, 1e-3)).limit_denominator(1000)
                    stream = out.add_stream("libx264", rate=rate)
                    stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
                    stream.time_base = tb
                    stream.options = {"crf": "23", "preset": "veryfast"}
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(fr[:h2, :w2, :3]), format="rgb24")
                pts = max(last_pts + 1, int(round(float(t) * 1000)))
                vf.pts, vf.time_base = pts, tb
                last_pts = pts
                for pk in stream.encode(vf):
                    out.mux(pk)
                n += 1
            if stream is None:
                raise VideoError("There are no frames to write into the heatmap video.")
            for pk in stream.encode():
                out.mux(pk)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst


def write_heatmap_video(frames: np.ndarray, timestamps: Sequence[float], maps: Any, map_times: Sequence[float],
                        boxes: Iterable[Box], dst: str | os.PathLike[str], threshold: float | None = None,
                        random_weights: bool = False) -> Path:
    """The heatmap video of one clip: every sampled frame with its map and boxes, at its own time."""
    boxes = list(boxes)
    return write_mp4(render_frames(frames, timestamps, maps, map_times, boxes, threshold, random_weights),
                     timestamps, dst)


def top_frames(track: Sequence[tuple[float, float]], timestamps: Sequence[float], k: int = 6,
               min_gap_s: float = 0.3) -> list[tuple[int, float, float]]:
    """The ``k`` most anomalous moments ``[(frame index, t, score)]``, best first, at least
    ``min_gap_s`` apart (so the gallery does not show one event six times)."""
    ts = np.asarray([float(t) for t in timestamps])
    picked: list[tuple[int, float, float]] = []
    for t, s in sorted(track, key=lambda p: -float(p[1])):
        if len(picked) >= k:
            break
        if any(abs(float(t) - pt) < min_gap_s for _, pt, _ in picked):
            continue
        i = int(np.argmin(np.abs(ts - float(t)))) if len(ts) else 0
        picked.append((i, float(t), float(s)))
    return picked


def gallery(frames: np.ndarray, timestamps: Sequence[float], track: Sequence[tuple[float, float]], maps: Any,
            map_times: Sequence[float], boxes: Iterable[Box], threshold: float | None = None,
            random_weights: bool = False, k: int = 6) -> list[tuple[np.ndarray, str]]:
    """``[(image, caption)]`` of the most anomalous frames with their maps, boxes and scores."""
    by = _boxes_by_frame(boxes)
    out = []
    for i, t, s in top_frames(track, timestamps, k):
        img = render_frame(frames[i], i, float(timestamps[i]), maps, map_times, by, threshold, random_weights)
        nb = len(by.get(i, []))
        cap = f"{t:.2f} s · 得分 {s:.3f}" + (f" · {nb} 框" if nb else "")
        if random_weights:
            cap += " · " + RANDOM_WEIGHTS_BANNER
        out.append((img, cap))
    return out
