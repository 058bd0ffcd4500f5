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
    backend: str = ""  # decord | opencv | images

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Clip:
    """Sampled frames of one video. ``frames`` is uint8 [T, H, W, 3] in RGB order."""

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
