"""The engine protocol shared by every detector: video LLMs and the weights-free baseline.

An engine takes a :class:`~engines.types.Clip` and answers. It never touches the database or the UI.

- ``availability()`` says whether it can run here, or one sentence why not.
- ``stream_chat(clip, messages, options)`` yields text pieces as they are generated; after the
  iterator is exhausted, ``last_call`` holds what was measured (latency split, tokens).
- ``detect(clip, messages, options)`` answers the ghost-probing question with a Verdict. For a
  video LLM that is: stream_chat over the rendered prompt → ``engines.verdict.parse``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from engines.types import Clip, Verdict


@dataclass
class GenerationOptions:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 means greedy decoding: deterministic, cacheable
    top_p: float = 1.0
    seed: int | None = None
    timeout_s: float = 300.0

    @property
    def deterministic(self) -> bool:
        return self.temperature == 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CallRecord:
    """What one model call measured. Fields that the engine cannot know stay None."""

    engine: str
    model: str | None = None
    revision: str | None = None
    latency_s: float | None = None
    decode_s: float | None = None  # decoding/sampling the video (filled by the caller that sampled)
    preprocess_s: float | None = None
    generate_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    device: str | None = None  # e.g. "cpu", "cuda:0 (NVIDIA H100)", "remote"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DetectResult:
    verdict: Verdict
    call: CallRecord
    track: list[tuple[float, float]] | None = None  # optional per-frame (t, score) for plots


Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


class Engine:
    """Base class. Subclasses set ``name`` and register with :func:`engines.registry.register`."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # human-readable, shown in the UI
    remote: ClassVar[bool] = False  # remote engines may run N requests at once; local GPU ones one at a time
    chat_capable: ClassVar[bool] = True
    # How the caller should sample the video for this engine (recorded with every run).
    # Video LLMs take a few frames; the motion baseline wants a steady rate.
    default_sampling: ClassVar[dict[str, Any]] = {"num_frames": 16, "fps": None, "max_side": 448}

    def __init__(self, model: str | None = None, **config: Any):
        self.model = model
        self.config = config
        self.last_call: CallRecord | None = None

    # -- to implement --------------------------------------------------------------------------
    def availability(self) -> tuple[bool, str]:
        raise NotImplementedError

    def stream_chat(self, clip: Clip, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------
    def model_id(self) -> str | None:
        return self.model

    def revision(self) -> str | None:
        return None

    def chat(self, clip: Clip, messages: list[Message], options: GenerationOptions) -> tuple[str, CallRecord]:
        start = time.perf_counter()
        text = "".join(self.stream_chat(clip, messages, options))
        call = self.last_call or CallRecord(engine=self.name, model=self.model_id())
        if call.latency_s is None:
            call.latency_s = time.perf_counter() - start
        return text, call

    def detect(self, clip: Clip, messages: list[Message], options: GenerationOptions) -> DetectResult:
        from engines.verdict import parse

        text, call = self.chat(clip, messages, options)
        return DetectResult(verdict=parse(text), call=call)
