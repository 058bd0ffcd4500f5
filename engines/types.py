"""Plain data types shared by engines, reports and the web app (no heavy imports here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class VideoMeta:
    """What probing a video tells without decoding it all."""

    path: str
    frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    codec: str
    sha256: str
    size_bytes: int
    kind: str = "file"  # "file" or "frames" (a DADA-style image folder)
    backend: str = ""  # opencv | decord | pyav | images

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Clip:
    """Sampled frames of one video (made by :func:`engines.video.load_clip`).

    ``frames`` is uint8 [T, H, W, 3] in RGB order, or uint8 [T, H, W] (full-range luma) when the
    sampling asked for ``color="gray"``; ``sampling["color"]`` is then ``"gray"`` (absent means RGB).
    An engine that needs colour must not be given grey frames: its ``default_sampling`` decides.

    ``sampling`` holds the keys :func:`~engines.video.load_clip` was called with, as recorded
    with runs and in the engine identity: ``num_frames`` | ``fps`` (a rate wins), ``max_side``
    (longer side in px), ``start_s``/``end_s`` (a window), ``color`` (``"rgb"``/``"gray"``),
    ``lowres`` (the decoder may reduce the picture by 2^k first, where the codec allows it), and
    ``backend`` (the decoder(s) that delivered the frames, e.g. ``"pyav"`` or ``"pyav+opencv"``).
    """

    frames: np.ndarray
    timestamps_s: list[float]
    indices: list[int]
    fps: float
    duration_s: float
    source: str
    sha256: str
    meta: VideoMeta
    sampling: dict[str, Any] = field(default_factory=dict)  # num_frames / fps / max_side, recorded with runs

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


DANGER_LEVELS = ("high", "medium", "low")
OBJECT_TYPES = ("pedestrian", "cyclist", "motorcycle", "vehicle", "animal", "other")
VERDICT_STATUSES = ("ok", "unparsed", "error")


@dataclass
class Verdict:
    """A structured answer to "is there ghost probing in this clip?".

    ``ghost_probing`` is None whenever no answer could be read: an unparsed answer is never a "no".
    """

    ghost_probing: bool | None = None
    confidence: float | None = None
    danger_level: str | None = None
    object_type: str | None = None
    onset_s: float | None = None
    reason: str = ""
    status: str = "unparsed"
    raw: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def error(cls, message: str, raw: str = "") -> "Verdict":
        return cls(status="error", reason=message, raw=raw)
