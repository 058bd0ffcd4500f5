"""The clip variables a template may use ({duration_s} {num_frames} {timestamps} {fps} {width} {height}
{video_id}), built from a sampled clip."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def clip_variables(clip: Any, video_id: str | None = None) -> dict[str, Any]:
    """All clip variables from an :class:`engines.types.Clip` (duck-typed; no numpy import here).

    duration_s: seconds rounded to 1 decimal; num_frames: sampled frames; timestamps: "0.0s, 0.6s, …"
    (one decimal each); fps: the source video's frame rate rounded to 2 decimals; width/height: the
    source video's resolution (``clip.meta``), falling back to the sampled frame size; video_id:
    the file or folder name without extension unless given."""
    ts = [float(t) for t in (getattr(clip, "timestamps_s", None) or [])]
    frames = getattr(clip, "frames", None)
    shape = getattr(frames, "shape", None)
    num_frames = getattr(clip, "num_frames", None)
    if num_frames is None:
        num_frames = int(shape[0]) if shape is not None else len(ts)
    meta = getattr(clip, "meta", None)
    width = getattr(meta, "width", None) or (int(shape[2]) if shape is not None and len(shape) >= 3 else None)
    height = getattr(meta, "height", None) or (int(shape[1]) if shape is not None and len(shape) >= 3 else None)
    fps = float(getattr(clip, "fps", 0) or 0)
    source = str(getattr(clip, "source", "") or "")
    vid = video_id if video_id is not None else (Path(source.rstrip("/\\")).stem if source else "")
    return {
        "duration_s": round(float(getattr(clip, "duration_s", 0) or 0), 1),
        "num_frames": int(num_frames),
        "timestamps": ", ".join(f"{t:.1f}s" for t in ts),
        "fps": int(fps) if fps == int(fps) else round(fps, 2),
        "width": int(width) if width is not None else 0,
        "height": int(height) if height is not None else 0,
        "video_id": vid,
    }
