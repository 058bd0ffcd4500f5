"""The weights-free baseline as a *detector* engine: motion on CPU, registered as "baseline".

It reads no prompt and no generation options, so its runs carry no prompt version. ``detect``
returns the verdict plus artifacts: the per-frame score track (``"score"``) and its threshold.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from engines.base import DETECTOR, Artifacts, CallRecord, CostLocation, Detection, Engine, GenerationOptions
from engines.baseline.config import BaselineConfig
from engines.types import Clip, Verdict

MODEL_ID = "baseline-flow-v1"


class BaselineEngine(Engine):
    """Optical flow + ego-motion compensation + blob tracking; see engines/baseline/detector.py."""

    name: ClassVar[str] = "baseline"
    title: ClassVar[str] = "基线运动检测 (CPU, 无需权重)"
    kinds: ClassVar[frozenset[str]] = frozenset({DETECTOR})
    process_safe: ClassVar[bool] = True
    # A steady rate, not a handful of frames: the detector measures motion between neighbours.
    # Grey at 480 px (the detector resizes to proc_width=320): PyAV hands over the luma plane,
    # low-resolution decoded where the codec allows it (MPEG-4 Part 2, the DADA clips: lowres 1),
    # with no RGB intermediate. Chosen over grey straight at 320 px, which lost one generated
    # held-out negative (bench/eval_baseline_dada.py, pipeline_comparison_*). The detector
    # accepts RGB clips as well.
    default_sampling: ClassVar[dict[str, Any]] = {"num_frames": None, "fps": 10, "max_side": 480,
                                                  "color": "gray", "lowres": True}

    def __init__(self, model: str | None = None, **config: Any):
        super().__init__(model=model or MODEL_ID, **config)
        fields = set(BaselineConfig.__dataclass_fields__)
        unknown = sorted(set(config) - fields)
        if unknown:
            from engines.errors import EngineError

            raise EngineError(f"Unknown baseline parameter(s): {', '.join(unknown)}.")
        self.cfg = BaselineConfig(**config)

    def availability(self) -> tuple[bool, str]:
        return True, "ready: weights-free motion detector on CPU"

    def warm_up(self) -> None:
        import av  # noqa: F401 - the decoder the default sampling uses

        import engines.baseline.detector  # noqa: F401

    def model_id(self) -> str | None:
        return MODEL_ID

    def revision(self) -> str | None:
        return self.cfg.revision()

    def describe(self) -> dict[str, Any]:
        return {"model": MODEL_ID, "revision": self.cfg.revision(), "dtype": "float32"}

    def cost_location(self) -> CostLocation:
        return CostLocation("local-cpu")

    def detect(self, clip: Clip, options: GenerationOptions | None = None) -> Detection:
        """Answer the ghost-probing question from motion alone."""
        from engines.baseline.detector import detect_frames

        start = time.perf_counter()
        try:
            verdict, track, _feat = detect_frames(clip.frames, list(clip.timestamps_s), self.cfg)
        except Exception as e:  # never take the app down; the failure is recorded, not a "no"
            verdict, track = Verdict.error(f"基线检测出错：{type(e).__name__}: {e}"), []
        elapsed = time.perf_counter() - start
        call = CallRecord(engine=self.name, model=MODEL_ID, revision=self.revision(), latency_s=elapsed,
                          generate_s=elapsed, device="cpu",
                          extra={"frames": clip.num_frames, "sampling": dict(clip.sampling or {})})
        self.last_call = call
        arts = Artifacts(tracks={"score": track} if track else {},
                         thresholds={"score": float(self.cfg.score_threshold)} if track else {})
        return Detection(verdict=verdict, call=call, artifacts=arts)
