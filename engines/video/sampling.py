"""Sampling: which frames of a clip to take (:func:`sample_indices`), and taking them.

:func:`load_clip` samples a video file or frame folder into a :class:`~engines.types.Clip`;
:func:`iter_frames` streams a whole video at a rate. Every sampling option is checked, and the
memory the frames will take is estimated, *before* anything is decoded: a value out of range or a
clip over the budget raises :class:`~engines.video.common.SamplingError` (a VideoError and a
ValueError) with one sentence saying the limit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from engines.errors import VideoError
from engines.types import Clip, VideoMeta
from engines.video.common import SamplingError, _as_path, _label
from engines.video.decoders import COLORS, Out, _iter_with_fallback, _order, _resized_shape, default_backend
from engines.video.inspection import _positive, _probe

MAX_NUM_FRAMES = 4096
"""The most frames ``num_frames`` may ask for (a 16-frame LLM clip is typical; 4096 is over two
minutes of 30 fps video)."""
MIN_MAX_SIDE = 16
"""The smallest ``max_side``: below it no engine can see anything."""
MAX_CLIP_MB_ENV = "GHOSTPROBE_MAX_CLIP_MB"
DEFAULT_MAX_CLIP_MB = 2048
"""Budget for the sampled frames of one clip (frames × height × width × channels), in MiB."""

# For rate sampling (every frame decoded, one in a few kept) grey and low-resolution output are
# fastest with PyAV (the luma plane, no colour conversion; FFmpeg lowres): bench/bench_baseline.py.
DENSE_GRAY_BACKEND = "pyav"


def max_clip_bytes() -> int:
    """The frame budget of one clip in bytes: ``$GHOSTPROBE_MAX_CLIP_MB`` MiB or 2 GiB."""
    raw = os.environ.get(MAX_CLIP_MB_ENV, "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_MAX_CLIP_MB
    except ValueError:
        mb = DEFAULT_MAX_CLIP_MB
    if not (math.isfinite(mb) and mb > 0):
        mb = DEFAULT_MAX_CLIP_MB
    return int(mb * (1 << 20))


def _window(meta: VideoMeta, p, start_s: float | None, end_s: float | None) -> tuple[int, int]:
    n, rate = meta.frames, meta.fps
    if start_s is None and end_s is None:
        return 0, n
    s = 0.0 if start_s is None else float(start_s)
    e = meta.duration_s if end_s is None else float(end_s)
    if not (math.isfinite(s) and math.isfinite(e)):
        raise VideoError(f'The time window of "{_label(p)}" must be given in finite seconds.')
    a = max(0, math.ceil(max(0.0, s) * rate - 1e-6))
    if a >= n:
        raise VideoError(
            f'The time window starting at {s:g} s is past the end of "{_label(p)}", '
            f"which lasts {meta.duration_s:.2f} s."
        )
    if e <= s:
        raise VideoError(
            f'The time window {s:g}–{e:g} s of "{_label(p)}" is empty: the end must come after the start.'
        )
    b = min(n, math.ceil(e * rate - 1e-6))
    return a, max(b, a + 1)


def _check_fps(fps: Any) -> float | None:
    if fps is None:
        return None
    if isinstance(fps, bool) or not _positive(fps):
        raise SamplingError(f"The sampling rate must be a positive, finite number of frames per second, not {fps!r}.")
    return float(fps)


def _check_num_frames(num_frames: Any) -> int | None:
    if num_frames is None:
        return None
    try:
        k = int(num_frames)
    except (TypeError, ValueError, OverflowError):
        raise SamplingError(f"The number of frames must be a whole number, not {num_frames!r}.") from None
    if isinstance(num_frames, bool) or k != num_frames or k <= 0:
        raise SamplingError(f"The number of frames must be a positive whole number, not {num_frames!r}.")
    if k > MAX_NUM_FRAMES:
        raise SamplingError(f"At most {MAX_NUM_FRAMES} frames can be sampled from one clip, not {k}.")
    return k


def _check_max_side(max_side: Any) -> int | None:
    if max_side is None:
        return None
    try:
        v = int(max_side)
    except (TypeError, ValueError, OverflowError):
        raise SamplingError(f"The frame size (max_side) must be a whole number of pixels, not {max_side!r}.") from None
    if isinstance(max_side, bool) or v != max_side or v < MIN_MAX_SIDE:
        raise SamplingError(f"The frame size (max_side) must be at least {MIN_MAX_SIDE} pixels, not {max_side!r}.")
    return v


def _check_color(color: Any) -> str:
    c = "rgb" if color is None else str(color).lower()
    c = {"grey": "gray", "rgb24": "rgb"}.get(c, c)
    if c not in COLORS:
        raise SamplingError(f"The colour mode must be \"rgb\" or \"gray\", not {color!r}.")
    return c


def sample_indices(
    total: int,
    native_fps: float,
    num_frames: int | None = 16,
    fps: float | None = None,
    start: int = 0,
    stop: int | None = None,
) -> list[int]:
    """Frame indices to sample from frames ``start..stop-1`` of a ``total``-frame video.

    ``fps`` (a rate) wins over ``num_frames``: every ``native_fps / fps``-th frame from ``start``,
    or every frame when the rate is at least the native one. ``num_frames``: the centre of each of
    ``num_frames`` equal segments, ``start + floor((i + 0.5) * n / num_frames)``; exactly
    ``num_frames`` indices, repeating frames when the window is shorter than that.
    """
    stop = total if stop is None else min(stop, total)
    n = stop - start
    if n <= 0:
        return []
    if fps is not None:
        fps = _check_fps(fps)
        if fps >= native_fps:
            return list(range(start, stop))
        step = native_fps / fps
        count = math.ceil(n / step - 1e-9)
        return [start + min(n - 1, int(math.floor(k * step + 1e-9))) for k in range(count)]
    if num_frames is None:
        raise SamplingError("Give a number of frames or a sampling rate.")
    k = _check_num_frames(num_frames)
    return [start + min(n - 1, int(math.floor((i + 0.5) * n / k))) for i in range(k)]


def _check_budget(count: int, out: Out, p) -> None:
    need = count * int(np.prod(out.shape))
    budget = max_clip_bytes()
    if need > budget:
        w, h = out.size
        raise SamplingError(
            f'Sampling {count} frames of {w}x{h} from "{_label(p)}" would take {need / (1 << 20):,.0f} MiB, '
            f"over the limit of {budget / (1 << 20):,.0f} MiB (${MAX_CLIP_MB_ENV}): "
            "ask for fewer frames, a lower rate or a smaller max_side."
        )


def load_clip(
    path: str | os.PathLike[str],
    num_frames: int | None = 16,
    fps: float | None = None,
    max_side: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    *,
    backend: str | None = None,
    source_fps: float | None = None,
    color: str = "rgb",
    lowres: bool = False,
) -> Clip:
    """Sample frames of a video file or frame folder into a :class:`Clip`.

    ``fps`` (a sampling rate) wins over ``num_frames`` (uniform, centre of each segment; exactly
    that many frames, repeating when the clip is shorter). ``start_s``/``end_s`` restrict sampling to
    frames whose time ``index / fps`` lies in ``[start_s, end_s)``. ``max_side`` shrinks frames so the
    longer side is at most that (aspect kept, INTER_AREA; at least 16). ``color``: ``"rgb"``
    (frames uint8 [T,H,W,3]) or ``"gray"`` (uint8 [T,H,W], full-range luma). ``lowres``: allow
    the decoder to reduce the picture by 2^k before resizing, where the codec supports it and the
    result is still at least the output size (PyAV ``lowres``; a few grey levels differ from an
    exact decode, so it is part of the sampling and of the engine identity).
    ``backend``: None/"auto" (the fastest measured first: OpenCV, PyAV for MPEG-4 Part 2; for
    rate sampling PyAV first when ``color="gray"`` or ``lowres``; then the others), "decord", "opencv" or "pyav".
    ``source_fps``: the rate of a frame folder (default 30).
    ``timestamps_s`` are ``index / native fps``; ``sampling`` records num_frames/fps/max_side/backend
    (and start_s/end_s/color/lowres when given). Options and the memory budget (frames × H × W ×
    channels at most ``$GHOSTPROBE_MAX_CLIP_MB``, default 2 GiB) are checked before decoding.
    """
    p = _as_path(path)
    max_side = _check_max_side(max_side)
    fps = _check_fps(fps)
    color = _check_color(color)
    if fps is None and num_frames is None:
        raise SamplingError("Give a number of frames or a sampling rate.")
    if fps is None:
        num_frames = _check_num_frames(num_frames)
    meta, info = _probe(p, source_fps, backend)
    a, b = _window(meta, p, start_s, end_s)
    indices = sample_indices(meta.frames, meta.fps, None if fps is not None else num_frames, fps, a, b)
    wanted = sorted(set(indices))
    out = Out(_resized_shape(meta.width, meta.height, max_side), color, bool(lowres))
    _check_budget(len(indices), out, p)
    by_index: dict[int, int] = {}
    frames = np.empty((len(wanted), *out.shape), np.uint8)
    backends_used: list[str] = []
    prefer = DENSE_GRAY_BACKEND if fps is not None and (color == "gray" or lowres) else default_backend(info)
    frames_iter = _iter_with_fallback(meta, info, p, wanted, out, _order(backend, prefer, info))
    for k, (j, frame, b_used) in enumerate(frames_iter):
        if b_used not in backends_used:
            backends_used.append(b_used)
        frames[k] = frame
        by_index[j] = k
    if len(by_index) != len(wanted):
        raise VideoError(f'"{_label(p)}" is corrupt: some of its frames cannot be decoded.')
    used = "+".join(backends_used) or meta.backend  # "pyav+opencv" when OpenCV took over part-way
    if len(wanted) != len(indices) or wanted != indices:
        frames = frames[[by_index[j] for j in indices]]
    sampling: dict[str, Any] = {
        "num_frames": None if fps is not None else int(num_frames),  # type: ignore[arg-type]
        "fps": None if fps is None else float(fps),
        "max_side": max_side,
        "backend": used,
    }
    if start_s is not None:
        sampling["start_s"] = float(start_s)
    if end_s is not None:
        sampling["end_s"] = float(end_s)
    if color != "rgb":
        sampling["color"] = color
    if lowres:
        sampling["lowres"] = True
    if used != meta.backend:
        meta = replace(meta, backend=used)
    return Clip(
        frames=frames,
        timestamps_s=[j / meta.fps for j in indices],
        indices=list(indices),
        fps=meta.fps,
        duration_s=meta.duration_s,
        source=str(p),
        sha256=meta.sha256,
        meta=meta,
        sampling=sampling,
    )


def iter_frames(
    path: str | os.PathLike[str],
    fps: float | None = None,
    max_side: int | None = None,
    *,
    backend: str | None = None,
    source_fps: float | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Stream ``(index, t_s, rgb)`` through the whole video at ``fps`` (None: every frame).

    OpenCV first (sequential grab/retrieve), then decord and PyAV, unless ``backend`` or
    ``$GHOSTPROBE_VIDEO_BACKEND`` say otherwise. Holds one frame (OpenCV) or one batch of at most
    16 frames / 64 MB (decord) at a time, so it suits long videos. Indices and frames match
    :func:`load_clip`'s. A generator: the file is checked on the first ``next()``; errors are
    :class:`VideoError`.
    """
    p = _as_path(path)
    max_side = _check_max_side(max_side)
    fps = _check_fps(fps)
    meta, info = _probe(p, source_fps, backend)
    indices = sample_indices(meta.frames, meta.fps, None, fps if fps is not None else meta.fps)
    out = Out(_resized_shape(meta.width, meta.height, max_side))
    for j, rgb, _used in _iter_with_fallback(meta, info, p, indices, out, _order(backend, "opencv", info)):
        yield j, j / meta.fps, rgb


__all__ = ["load_clip", "iter_frames", "sample_indices", "max_clip_bytes", "MAX_NUM_FRAMES", "MIN_MAX_SIDE",
           "MAX_CLIP_MB_ENV", "DEFAULT_MAX_CLIP_MB"]
