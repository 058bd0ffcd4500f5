"""Engine kinds, engine identity and what a call returns. No database, no UI, no heavy imports.

An engine is one or more of three *kinds* (DESIGN.md, "Contracts"):

- **chat model** (``"chat" in kinds``): ``stream_chat(clip, messages, options) -> Iterator[str]``.
  Detection with a chat model is done by the prediction core, not the engine: render the prompt →
  stream → :func:`engines.verdict.parse`. Only chat models take a prompt (``takes_prompt``).
- **detector** (``"detector" in kinds``): ``detect(clip, options) -> Detection`` — a verdict plus
  artifacts (score tracks, thresholds, boxes, low-resolution maps). The baseline and the anomaly
  engines are detectors; they carry no prompt version.
- **batch** (``"batch" in kinds``): ``submit(plan) -> JobRef``, ``poll(job_id) -> JobStatus``,
  ``collect(job_id, dest) -> Path`` (a folder of responses in the run-folder format), ``cancel``.
  A whole evaluation runs elsewhere (an Azure ML job) and is ingested later.

Every engine has ``availability() -> (ok, one sentence)``, ``describe()`` (the settings that change
its answers, resolved *before* the first call — asking a server which model it serves when none is
configured) and ``cost_location()`` (the price-catalogue key of where it runs, and how many
instances). :meth:`Engine.identity` joins ``describe()`` with the options, sampling and prompt hash
of one call: its :meth:`EngineIdentity.cache_key` with the clip's SHA-256 keys the response cache.
After a call, what the response itself reported (``CallRecord.model``) is checked against the
identity by the core; a mismatch is recorded and the response is cached under what answered.

Engines are found through the ``ghostprobe.engines`` entry-point group (``engines.registry``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from engines.types import Clip, Verdict

CHAT, DETECTOR, BATCH = "chat", "detector", "batch"
KINDS = (CHAT, DETECTOR, BATCH)

# Generation options that never change an answer, only whether one arrives in time.
_NOT_IN_IDENTITY = ("timeout_s",)


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
    """What one call measured. Fields the engine cannot know stay None.

    Latency split: ``decode_s`` (sampling the video, filled by the core), ``preprocess_s`` (the
    engine's input preparation), ``generate_s`` (the model itself), ``latency_s`` (end to end:
    decode + everything the engine did). ``model`` is what the *response* reported, when it did."""

    engine: str
    model: str | None = None
    revision: str | None = None
    latency_s: float | None = None
    decode_s: float | None = None
    preprocess_s: float | None = None
    generate_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    device: str | None = None  # e.g. "cpu", "cuda:0 (NVIDIA H100)", "remote"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Box:
    """One box on one sampled frame, in pixels of the frame as sampled."""

    frame: int  # index into the clip's sampled frames
    t: float  # seconds from the start of the video
    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Artifacts:
    """What a detector measured besides its verdict.

    - ``tracks``: named per-frame score series ``[(t, score), ...]`` (e.g. ``"score"``, ``"anomaly"``);
    - ``thresholds``: the decision threshold of each track, when it has one;
    - ``boxes``: boxes with scores (AI-VAD regions, baseline blobs);
    - ``maps``: optional low-resolution per-pixel maps, float32 ``[T, h, w]`` in 0..1, with
      ``map_times`` (seconds) — heatmaps are rendered from them, never stored as video;
    - ``extra``: anything else JSON-ready (feature summaries, the rule that made the verdict).
    """

    tracks: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    boxes: list[Box] = field(default_factory=list)
    maps: Any = None  # numpy float32 [T, h, w] or None
    map_times: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready, without the maps (they can be large): what the response log stores."""
        out: dict[str, Any] = {
            "tracks": {k: [[float(t), float(s)] for t, s in v] for k, v in self.tracks.items()},
            "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "boxes": len(self.boxes),
        }
        if self.maps is not None:
            out["maps"] = list(getattr(self.maps, "shape", ()))
        if self.extra:
            out["extra"] = self.extra
        return out

    @property
    def empty(self) -> bool:
        return not (self.tracks or self.boxes or self.maps is not None or self.extra)


@dataclass
class Detection:
    """A detector's answer: the verdict, what the call measured, and its artifacts."""

    verdict: Verdict
    call: CallRecord
    artifacts: Artifacts = field(default_factory=Artifacts)

    @property
    def track(self) -> list[tuple[float, float]] | None:
        """The first score track (the one a plot draws), or None."""
        return next(iter(self.artifacts.tracks.values()), None)

    @property
    def threshold(self) -> float | None:
        name = next(iter(self.artifacts.tracks), None)
        return None if name is None else self.artifacts.thresholds.get(name)


DetectResult = Detection  # the old name


@dataclass
class CostLocation:
    """Where an engine runs, as a price-catalogue key: ``aws:ml.g5.xlarge``, ``azure:Standard_NC6s_v3``,
    ``local-cpu``, ``local-cuda``, ``openai:gpt-4o`` (token-priced) — and how many instances."""

    location: str
    instances: int = 1
    defaulted: bool = False  # True when nobody said where it runs (a guess such as local-cpu)


@dataclass(frozen=True)
class EngineIdentity:
    """Everything that changes an engine's answer, resolved before the first call.

    ``endpoint`` is ``scheme://host[:port]/path`` with user-info and query removed: never credentials.
    ``settings`` holds engine-specific settings that change answers (baseline parameters, adapter…).
    """

    engine: str
    kind: str  # chat | detector | batch: what answered
    model: str | None = None
    revision: str | None = None
    endpoint: str | None = None
    video_mode: str | None = None
    dtype: str | None = None
    attention: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)
    prompt_hash: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def canonical(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))

    def digest(self) -> str:
        """sha256 of the canonical JSON: equal digests mean the same answer is expected."""
        return hashlib.sha256(self.canonical().encode("utf-8")).hexdigest()

    def cache_key(self, sha256: str) -> str:
        """The response-cache key: this identity + the clip's own SHA-256."""
        return hashlib.sha256(f"{self.digest()}:{sha256}".encode()).hexdigest()

    def with_model(self, model: str | None) -> "EngineIdentity":
        return replace(self, model=model)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EngineIdentity":
        known = {k: d.get(k) for k in cls.__dataclass_fields__ if k in d}
        for k in ("options", "sampling", "settings"):
            known[k] = dict(known.get(k) or {})
        return cls(**known)


Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


class Engine:
    """Base class. Subclasses set ``name`` and ``kinds``, and are listed in the ``ghostprobe.engines``
    entry-point group (see ``engines.registry``)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # human-readable, shown in the UI
    kinds: ClassVar[frozenset[str]] = frozenset({CHAT})
    remote: ClassVar[bool] = False  # remote engines may run N requests at once; local ones one at a time
    # CPU engines whose detect can run in a worker process (picklable config, no GPU state)
    process_safe: ClassVar[bool] = False
    # How the caller should sample the video for this engine (recorded with every run).
    default_sampling: ClassVar[dict[str, Any]] = {"num_frames": 16, "fps": None, "max_side": 448}

    def __init__(self, model: str | None = None, **config: Any):
        self.model = model
        self.config = config
        self.last_call: CallRecord | None = None

    # -- kinds ---------------------------------------------------------------------------------
    @property
    def chat_capable(self) -> bool:
        return CHAT in self.kinds

    @property
    def takes_prompt(self) -> bool:
        """Only chat models read a prompt; a detector's runs carry no prompt version."""
        return CHAT in self.kinds and DETECTOR not in self.kinds

    def can_chat_reason(self) -> str | None:
        """None when this engine can chat, else why not (one sentence, Chinese first)."""
        if self.chat_capable:
            return None
        return (f"引擎 {self.title or self.name} 只回答“是否有鬼探头”，不能自由对话；请按“检测鬼探头”，"
                f"或换一个视频大模型引擎（见“模型目录”）。")

    # -- to implement --------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Called once in an evaluation worker process before its first video: import (or load) what
        :meth:`detect` needs, so the first video does not pay for it while the other workers compute.
        Default: nothing."""

    def availability(self) -> tuple[bool, str]:
        raise NotImplementedError

    def stream_chat(self, clip: Clip, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        """Chat models: yield text pieces; afterwards ``last_call`` holds what was measured."""
        raise NotImplementedError

    def detect(self, clip: Clip, options: GenerationOptions) -> Detection:
        """Detectors: the verdict and artifacts for ``clip``."""
        raise NotImplementedError

    # -- identity ------------------------------------------------------------------------------
    def model_id(self) -> str | None:
        return self.model

    def revision(self) -> str | None:
        return None

    def describe(self) -> dict[str, Any]:
        """The settings that change this engine's answers, resolved before the first call.

        Keys: ``model``, ``revision``, ``endpoint``, ``video_mode``, ``dtype``, ``attention``,
        ``settings`` (a dict). May contact a server (e.g. ``/v1/models``) to learn the served model;
        raises EngineError with one sentence when it cannot. Override in engines; the default reads
        ``model_id()`` and ``revision()``."""
        return {"model": self.model_id(), "revision": self.revision()}

    def identity(self, options: GenerationOptions | dict[str, Any] | None = None,
                 sampling: dict[str, Any] | None = None, prompt_hash: str | None = None,
                 described: dict[str, Any] | None = None) -> EngineIdentity:
        d = dict(described if described is not None else self.describe())
        opts = options.to_dict() if isinstance(options, GenerationOptions) else dict(options or {})
        if DETECTOR in self.kinds and CHAT not in self.kinds:
            opts = {}  # a detector reads no generation options
            prompt_hash = None
        opts = {k: v for k, v in opts.items() if k not in _NOT_IN_IDENTITY}
        kind = DETECTOR if DETECTOR in self.kinds and CHAT not in self.kinds else (
            CHAT if CHAT in self.kinds else BATCH)
        return EngineIdentity(
            engine=self.name, kind=kind, model=d.get("model"), revision=d.get("revision"),
            endpoint=d.get("endpoint"), video_mode=d.get("video_mode"), dtype=d.get("dtype"),
            attention=d.get("attention"), options=opts,
            sampling={k: v for k, v in dict(sampling or {}).items() if v is not None},
            prompt_hash=prompt_hash, settings=dict(d.get("settings") or {}))

    def cost_location(self) -> CostLocation:
        """Where this engine runs (price-catalogue key). Local engines default to ``local-cpu``."""
        if self.remote:
            return CostLocation(f"{self.name}:{self.model_id()}" if self.model_id() else self.name)
        return CostLocation("local-cpu", defaulted=True)

    # -- shared helpers for chat models --------------------------------------------------------
    def ask(self, clip: Clip, messages: list[Message], options: GenerationOptions) -> Detection:
        """A chat model's detection: the rendered prompt's answer read by :func:`engines.verdict.parse`."""
        from engines.verdict import parse

        text, call = self.chat(clip, messages, options)
        return Detection(verdict=parse(text), call=call)

    def chat(self, clip: Clip, messages: list[Message], options: GenerationOptions) -> tuple[str, CallRecord]:
        start = time.perf_counter()
        self.last_call = None
        text = "".join(self.stream_chat(clip, messages, options))
        call = self.last_call or CallRecord(engine=self.name, model=self.model_id())
        if call.latency_s is None:
            call.latency_s = time.perf_counter() - start
        return text, call


# -- batch ------------------------------------------------------------------------------------------
@dataclass
class BatchPlan:
    """A whole evaluation to run elsewhere: what a batch engine submits."""

    run_id: str
    identity: dict[str, Any]
    prompt: dict[str, Any] | None  # {"ref", "hash", "text"} for chat models, None for detectors
    videos: list[dict[str, Any]]  # [{"video_id", "path" or "uri", "sha256"}]
    sampling: dict[str, Any]
    options: dict[str, Any]
    label_set: str | None = None
    instances: int = 1
    settings: dict[str, Any] = field(default_factory=dict)  # compute, instance type, parallelism …


@dataclass
class JobRef:
    job_id: str
    backend: str  # azureml | sagemaker
    url: str | None = None  # a link to the job in the provider's studio/console


@dataclass
class JobStatus:
    job_id: str
    state: str  # queued | running | completed | failed | canceled
    history: list[tuple[str, str]] = field(default_factory=list)  # (ISO time, state)
    started_at: str | None = None
    ended_at: str | None = None
    message: str = ""


@runtime_checkable
class BatchBackend(Protocol):
    def submit(self, plan: BatchPlan) -> JobRef: ...
    def poll(self, job_id: str) -> JobStatus: ...
    def collect(self, job_id: str, dest: Path) -> Path: ...
    def cancel(self, job_id: str) -> None: ...
