"""One detect or chat turn, end to end: engine → sampled clip → prompt → model → chat log.

Shared by the CLI (``ghostprobe detect`` / ``ghostprobe chat``) and the 对话检测 tab, so both take
the same path and log the same record:

- :func:`open_engine` refuses an engine that cannot run here, with its one-sentence reason.
- :func:`sampling_for` is the engine's ``default_sampling`` with the caller's overrides.
- :func:`run_detect` renders a detect prompt for the clip, calls ``engine.detect`` and logs the
  turn (``kind="detect"``): engine, model, revision, prompt hash, options, sampling, latency split
  and token counts as measured.
- :class:`ChatTurn` streams one chat answer (``kind="chat"``): the chat prompt's system message,
  then the earlier answered turns of the same chat (so follow-ups keep the video in context), then
  the question. Iterate it for the text pieces; afterwards it holds the turn number and the call.
  A consumer that stops early (the Stop button closes the generator) logs the partial answer as a
  stopped turn.

Every failure — an unavailable engine, a video that cannot be read, an engine that raises — is
logged as an error turn with whatever was known, then re-raised for the caller to show as one
sentence. Nothing here touches the UI.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.base import CallRecord, Engine, GenerationOptions, Message
from engines.errors import EngineError, GhostProbeError
from engines.types import Clip, Verdict
from reports.chats import log_turn, turns
from reports.store import Store

log = logging.getLogger(__name__)

VERDICT_FIELDS = ("ghost_probing", "confidence", "danger_level", "object_type", "onset_s", "reason", "status", "raw")
DANGER_ZH = {"high": "高", "medium": "中", "low": "低"}
OBJECT_ZH = {"pedestrian": "行人", "cyclist": "骑车人", "motorcycle": "摩托车/电动车", "vehicle": "车辆",
             "animal": "动物", "other": "其他"}
STOPPED = "stopped by the user before the answer was complete"


class DetectionError(GhostProbeError):
    """A request this module cannot honour (bad sampling, a chat about another video …)."""


def one_sentence(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# -- steps -------------------------------------------------------------------------------------------

def open_engine(name: str, model: str | None = None) -> Engine:
    """The engine ``name`` (with ``model`` or its configured default), or EngineError with the reason it cannot run."""
    from engines.registry import get_engine

    engine = get_engine(name, model=(model or "").strip() or None)
    try:
        ok, reason = engine.availability()
    except Exception as e:  # an availability check must never take the caller down
        ok, reason = False, f"The availability check of engine {name} failed: {one_sentence(e)}"
    if not ok:
        raise EngineError(reason)
    return engine


def default_model(name: str) -> str:
    """The model an engine uses when none is given (its config or environment), or ""."""
    from engines.registry import get_engine

    try:
        return get_engine(name).model_id() or ""
    except Exception:
        return ""


def sampling_for(engine: Engine | type[Engine], frames: int | None = None, max_side: int | None = None) -> dict[str, Any]:
    """The engine's default sampling; ``frames`` switches to that many uniformly spaced frames."""
    s = dict(getattr(engine, "default_sampling", None) or {})
    if frames is not None:
        if int(frames) < 1:
            raise DetectionError("The number of frames must be at least 1.")
        s["num_frames"], s["fps"] = int(frames), None
    if max_side is not None:
        if int(max_side) < 16:
            raise DetectionError("max_side must be at least 16 pixels.")
        s["max_side"] = int(max_side)
    if s.get("num_frames") is None and s.get("fps") is None:
        s["num_frames"] = 16
    return s


_CLIPS: OrderedDict[tuple, Clip] = OrderedDict()
_CLIPS_LOCK = threading.Lock()
_CLIPS_MAX = 4


def load_clip_timed(path: str | Path, sampling: dict[str, Any]) -> tuple[Clip, float]:
    """Sample the video as ``sampling`` says; returns the clip and the seconds it took.

    The last few clips are kept in memory (keyed by path, size, mtime and sampling), so a follow-up
    question about the same video does not decode it again; the time returned is what this call took."""
    from engines.video import load_clip

    t0 = time.perf_counter()
    try:
        st = os.stat(path)
        key: tuple | None = (str(path), st.st_size, st.st_mtime_ns, sampling.get("num_frames"), sampling.get("fps"),
                             sampling.get("max_side"))
    except OSError:
        key = None  # load_clip says what is wrong with the path
    if key is not None:
        with _CLIPS_LOCK:
            hit = _CLIPS.get(key)
            if hit is not None:
                _CLIPS.move_to_end(key)
                return hit, time.perf_counter() - t0
    clip = load_clip(path, num_frames=sampling.get("num_frames"), fps=sampling.get("fps"),
                     max_side=sampling.get("max_side"))
    if key is not None:
        with _CLIPS_LOCK:
            _CLIPS[key] = clip
            while len(_CLIPS) > _CLIPS_MAX:
                _CLIPS.popitem(last=False)
    return clip, time.perf_counter() - t0


def video_id_of(path: str | Path) -> str:
    return Path(str(path).rstrip("/\\")).name


def chat_context(store: Store, chat_id: str, video_id: str | None) -> list[Message]:
    """Earlier answered chat turns of ``chat_id`` as user/assistant messages (detect, failed and
    stopped turns are left out). DetectionError when the chat is about another video."""
    earlier = turns(store, chat_id)
    if earlier and video_id is not None and earlier[0].get("video_id") not in (None, video_id):
        raise DetectionError(f"Chat {chat_id} is about {earlier[0]['video_id']}, not {video_id}.")
    out: list[Message] = []
    for t in earlier:
        if t.get("kind") == "chat" and t.get("answer") and not t.get("error"):
            out += [{"role": "user", "content": t.get("question") or ""},
                    {"role": "assistant", "content": t["answer"]}]
    return out


def _model_of(engine: Engine | None, call: CallRecord | None, fallback: str | None = None) -> str | None:
    return (call.model if call is not None else None) or (engine.model_id() if engine is not None else None) or fallback


def _revision_of(engine: Engine | None, call: CallRecord | None) -> str | None:
    if call is not None and call.revision:
        return call.revision
    try:
        return engine.revision() if engine is not None else None
    except Exception:
        return None


@dataclass
class _Log:
    """What a turn's row holds, filled in as the turn gets further."""

    store: Store
    kind: str
    chat_id: str
    engine_name: str
    model: str | None
    video_id: str | None
    question: str | None = None
    prompt_hash: str | None = None
    options: GenerationOptions | None = None
    sampling: dict[str, Any] | None = None
    sha256: str | None = None
    engine: Engine | None = None

    def write(self, *, answer: str | None, verdict: dict | None, call: CallRecord | None, error: str | None) -> int:
        return log_turn(self.store, chat_id=self.chat_id, video_id=self.video_id, sha256=self.sha256,
                        engine=self.engine.name if self.engine is not None else self.engine_name,
                        model=_model_of(self.engine, call, self.model), revision=_revision_of(self.engine, call),
                        prompt_hash=self.prompt_hash, kind=self.kind, question=self.question, answer=answer,
                        verdict=verdict, options=self.options or GenerationOptions(), sampling=self.sampling,
                        call=call, error=error)

    def fail(self, e: BaseException, answer: str | None = None) -> int | None:
        if not isinstance(e, GhostProbeError):
            log.error("%s turn with engine %s failed", self.kind, self.engine_name, exc_info=e)
        call = self.engine.last_call if self.engine is not None else None
        try:
            return self.write(answer=answer, verdict=None, call=call, error=one_sentence(e))
        except Exception:  # the failure itself must still reach the person
            log.exception("could not log the failed %s turn", self.kind)
            return None


# -- detect ------------------------------------------------------------------------------------------

@dataclass
class DetectOutcome:
    verdict: Verdict
    call: CallRecord
    track: list[tuple[float, float]] | None
    chat_id: str
    turn: int
    engine: str
    model: str | None
    revision: str | None
    prompt_ref: str
    prompt_hash: str
    video_id: str
    sha256: str
    sampling: dict[str, Any]
    question: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The verdict fields, the call record and what identifies the run (JSON-ready)."""
        v = self.verdict.to_dict()
        out: dict[str, Any] = {k: v.get(k) for k in VERDICT_FIELDS}
        out["call"] = self.call.to_dict() if self.call is not None else None
        out.update(engine=self.engine, model=self.model, revision=self.revision, prompt=self.prompt_ref,
                   prompt_hash=self.prompt_hash, video_id=self.video_id, sha256=self.sha256, sampling=self.sampling,
                   chat_id=self.chat_id, turn=self.turn)
        return out


def run_detect(store: Store, *, engine: str, video: str | Path, video_id: str | None = None, model: str | None = None,
               prompt: str | None = None, frames: int | None = None, max_side: int | None = None,
               options: GenerationOptions | None = None, chat_id: str | None = None, prompts: Any = None) -> DetectOutcome:
    """Ask ``engine`` whether ``video`` shows ghost probing with detect prompt ``prompt`` (default: latest
    ghost_probing) and log the turn. Failures are logged as error turns and re-raised."""
    from prompts import PromptLibrary, clip_variables

    video_id = video_id or video_id_of(video)
    options = options or GenerationOptions()
    rec = _Log(store, "detect", chat_id or uuid.uuid4().hex, engine, (model or "").strip() or None, video_id,
               options=options)
    try:
        lib = prompts or PromptLibrary.load(strict=False)
        template = lib.get(prompt) if (prompt or "").strip() else lib.detect_default()
        if template.kind != "detect":
            raise DetectionError(f"Prompt {template.ref} is a {template.kind} prompt; pick a detect prompt.")
        rec.prompt_hash = template.hash
        rec.engine = eng = open_engine(engine, rec.model)
        rec.sampling = sampling = sampling_for(eng, frames, max_side)
        clip, decode_s = load_clip_timed(video, sampling)
        rec.sha256, rec.sampling = clip.sha256, clip.sampling or sampling
        messages = template.render(clip_variables(clip, Path(video_id).stem))
        rec.question = messages[-1]["content"] if messages else None
        result = eng.detect(clip, messages, options)
    except BaseException as e:
        if isinstance(e, Exception):
            rec.fail(e)
        raise
    call = result.call or eng.last_call or CallRecord(engine=eng.name, model=eng.model_id())
    call.decode_s = decode_s
    verdict = result.verdict
    turn = rec.write(answer=verdict.raw, verdict=verdict.to_dict(), call=call,
                     error=verdict.reason if verdict.status == "error" else None)
    return DetectOutcome(verdict=verdict, call=call, track=result.track, chat_id=rec.chat_id, turn=turn,
                         engine=eng.name, model=_model_of(eng, call), revision=_revision_of(eng, call),
                         prompt_ref=template.ref, prompt_hash=template.hash, video_id=video_id, sha256=clip.sha256,
                         sampling=rec.sampling, question=rec.question)


# -- chat --------------------------------------------------------------------------------------------

@dataclass
class ChatTurn:
    """One chat question about a video, streamed. ``for piece in turn: ...``; afterwards ``turn.turn``,
    ``turn.call``, ``turn.answer``, ``turn.error`` say what happened (all logged)."""

    store: Store
    engine: str
    video: str | Path
    question: str = ""
    video_id: str | None = None
    model: str | None = None
    chat_id: str | None = None
    prompt: str | None = None
    frames: int | None = None
    max_side: int | None = None
    options: GenerationOptions | None = None
    prompts: Any = None
    # results
    turn: int | None = field(default=None, init=False)
    call: CallRecord | None = field(default=None, init=False)
    answer: str = field(default="", init=False)
    error: str | None = field(default=None, init=False)
    stopped: bool = field(default=False, init=False)
    prompt_ref: str | None = field(default=None, init=False)
    sampling: dict[str, Any] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.chat_id = self.chat_id or uuid.uuid4().hex
        self.video_id = self.video_id or video_id_of(self.video)
        self.options = self.options or GenerationOptions()
        self.question = (self.question or "").strip()

    def __iter__(self) -> Iterator[str]:
        from prompts import PromptLibrary, clip_variables

        rec = _Log(self.store, "chat", self.chat_id, self.engine, (self.model or "").strip() or None, self.video_id,
                   question=self.question or None, options=self.options)
        pieces: list[str] = []
        stream = None
        start = time.perf_counter()
        decode_s: float | None = None
        done = False
        try:
            lib = self.prompts or PromptLibrary.load(strict=False)
            template = lib.get(self.prompt) if (self.prompt or "").strip() else lib.chat_default()
            rec.prompt_hash, self.prompt_ref = template.hash, template.ref
            rec.engine = eng = open_engine(self.engine, rec.model)
            if not getattr(eng, "chat_capable", True):
                raise DetectionError(f"Engine {eng.name} answers only the ghost-probing question and cannot chat; "
                                     "use detect (检测鬼探头) with it.")
            history = chat_context(self.store, self.chat_id, self.video_id)
            rec.sampling = sampling = sampling_for(eng, self.frames, self.max_side)
            clip, decode_s = load_clip_timed(self.video, sampling)
            rec.sha256, rec.sampling = clip.sha256, clip.sampling or sampling
            self.sampling = rec.sampling
            rendered = template.render(clip_variables(clip, Path(self.video_id).stem))
            system = [m for m in rendered if m["role"] == "system"]
            if not self.question:
                self.question = next((m["content"] for m in rendered if m["role"] == "user"), "").strip()
                rec.question = self.question or None
            if not self.question:
                raise DetectionError("Ask a question first.")
            messages = [*system, *history, {"role": "user", "content": self.question}]
            start = time.perf_counter()
            stream = iter(eng.stream_chat(clip, messages, self.options))
            for piece in stream:
                pieces.append(piece)
                self.answer = "".join(pieces)
                yield piece
            done = True
        except GeneratorExit:
            self.stopped, self.error = True, STOPPED
            if stream is not None and hasattr(stream, "close"):
                try:
                    stream.close()  # stops generation (the engine's own finally)
                except Exception:
                    log.exception("closing the engine stream failed")
            call = rec.engine.last_call if rec.engine is not None else None
            if call is None and rec.engine is not None:  # what was measured until the stop
                call = CallRecord(engine=rec.engine.name, model=rec.engine.model_id(),
                                  latency_s=time.perf_counter() - start, decode_s=decode_s,
                                  extra={"stopped": True, "pieces": len(pieces)})
            self.call = call
            try:
                self.turn = rec.write(answer="".join(pieces) or None, verdict=None, call=call, error=STOPPED)
            except Exception:
                log.exception("could not log the stopped chat turn")
            raise
        except Exception as e:
            self.error = one_sentence(e)
            self.turn = rec.fail(e, answer="".join(pieces) or None)
            raise
        if done:
            call = eng.last_call
            if call is not None:
                call.decode_s = decode_s
                if call.latency_s is None:
                    call.latency_s = time.perf_counter() - start
            self.call = call
            self.answer = "".join(pieces)
            self.turn = rec.write(answer=self.answer, verdict=None, call=call, error=None)


# -- plain-text summary ------------------------------------------------------------------------------

def call_line_zh(call: dict[str, Any] | CallRecord | None, engine: str, model: str | None) -> str:
    """``引擎 x · 模型 y · 用时 1.23 秒（解码 0.1 + 生成 1.1），输入 10 / 输出 20 token`` — measured values only."""
    c = call.to_dict() if isinstance(call, CallRecord) else (call or {})
    parts = []
    for key, zh in (("decode_s", "解码"), ("preprocess_s", "预处理"), ("generate_s", "生成")):
        if c.get(key) is not None:
            parts.append(f"{zh} {c[key]:.2f}")
    line = f"引擎 {engine}" + (f" · 模型 {model}" if model else "")
    if c.get("latency_s") is not None or c.get("decode_s") is not None:
        total = (c.get("decode_s") or 0) + (c.get("latency_s") or 0)
        line += f" · 用时 {total:.2f} 秒" + (f"（{' + '.join(parts)}）" if parts else "")
    else:
        line += " · 用时未测得"
    if c.get("prompt_tokens") is not None or c.get("completion_tokens") is not None:
        pt = c.get("prompt_tokens")
        ct = c.get("completion_tokens")
        line += f"，输入 {'?' if pt is None else pt} / 输出 {'?' if ct is None else ct} token"
    if c.get("device"):
        line += f" · {c['device']}"
    return line


def summary_zh(v: dict[str, Any], call: dict[str, Any] | None, engine: str, model: str | None) -> str:
    status = v.get("status")
    if status == "ok" and v.get("ghost_probing") is not None:
        head = "鬼探头：是" if v["ghost_probing"] else "鬼探头：否"
        bits = []
        if v.get("confidence") is not None:
            bits.append(f"置信度 {v['confidence']:.2f}")
        if v.get("danger_level"):
            bits.append(f"危险等级 {DANGER_ZH.get(v['danger_level'], v['danger_level'])}")
        if v.get("object_type"):
            bits.append(f"目标 {OBJECT_ZH.get(v['object_type'], v['object_type'])}")
        if v.get("onset_s") is not None:
            bits.append(f"约 {v['onset_s']:.1f} 秒出现")
        lines = [head + (f"（{'，'.join(bits)}）" if bits else "")]
        if v.get("reason"):
            lines.append(f"理由：{v['reason']}")
    elif status == "error":
        lines = [f"鬼探头：出错 — {v.get('reason') or '未知错误'}"]
    else:
        raw = " ".join(str(v.get("raw") or "").split())
        lines = ["鬼探头：无法解析模型的回答（记为“未解析”，不算作“否”）",
                 f"原始回答：{raw[:300]}{'…' if len(raw) > 300 else ''}"]
    if call is not None:
        lines.append(call_line_zh(call, engine, model))
    return "\n".join(lines)
