"""The weights-free baseline as an engine: motion detector on CPU, registered as "baseline"."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, ClassVar

from engines.base import CallRecord, DetectResult, Engine, GenerationOptions, Message
from engines.baseline.config import BaselineConfig
from engines.registry import register
from engines.types import Clip, Verdict

MODEL_ID = "baseline-flow-v1"


def _summary_zh(v: Verdict) -> str:
    if v.status != "ok":
        return f"检测失败：{v.reason}"
    if v.ghost_probing:
        when = f"{v.onset_s:.1f} 秒" if v.onset_s is not None else "某一时刻"
        return f"检测结果：疑似鬼探头（{when}，置信度 {v.confidence:.2f}）。{v.reason}"
    return f"检测结果：未发现鬼探头（置信度 {v.confidence:.2f}）。{v.reason}"


@register
class BaselineEngine(Engine):
    """Optical flow + ego-motion compensation + blob tracking; see engines/baseline/detector.py."""

    name: ClassVar[str] = "baseline"
    title: ClassVar[str] = "基线运动检测 (CPU, 无需权重)"
    chat_capable: ClassVar[bool] = False
    # A steady rate, not a handful of frames: the detector measures motion between neighbours.
    # 10 fps at 480 px keeps decode and flow well under real time on two cores (bench_baseline.py).
    default_sampling: ClassVar[dict[str, Any]] = {"num_frames": None, "fps": 10, "max_side": 480}

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

    def model_id(self) -> str | None:
        return MODEL_ID

    def revision(self) -> str | None:
        return self.cfg.revision()

    def _run(self, clip: Clip) -> tuple[Verdict, list[tuple[float, float]], float]:
        from engines.baseline.detector import detect_frames

        start = time.perf_counter()
        try:
            verdict, track, _feat = detect_frames(clip.frames, list(clip.timestamps_s), self.cfg)
        except Exception as e:  # never take the app down; the failure is recorded, not a "no"
            verdict, track = Verdict.error(f"基线检测出错：{type(e).__name__}: {e}"), []
        return verdict, track, time.perf_counter() - start

    def detect(self, clip: Clip, messages: list[Message], options: GenerationOptions) -> DetectResult:
        """Answer the ghost-probing question from motion alone; the prompt is ignored."""
        verdict, track, elapsed = self._run(clip)
        call = CallRecord(engine=self.name, model=MODEL_ID, revision=self.revision(), latency_s=elapsed,
                          generate_s=elapsed, device="cpu",
                          extra={"frames": clip.num_frames, "sampling": dict(clip.sampling or {})})
        self.last_call = call
        return DetectResult(verdict=verdict, call=call, track=track)

    def stream_chat(self, clip: Clip, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        """No free-form chat: one sentence saying so, then a one-line summary of the detection."""
        yield "基线运动检测器不理解自然语言提问，只回答“是否有鬼探头”这一个问题（请按“检测鬼探头”）。\n"
        verdict, _track, elapsed = self._run(clip)
        self.last_call = CallRecord(engine=self.name, model=MODEL_ID, revision=self.revision(),
                                    latency_s=elapsed, generate_s=elapsed, device="cpu")
        yield _summary_zh(verdict)
