"""One detect or chat turn, end to end, on the prediction core (webapp/predict.py).

Shared by the CLI (``ghostprobe detect`` / ``ghostprobe chat``) and the 对话检测 tab:

- :func:`run_detect` asks an engine the ghost-probing question about one video through
  :class:`webapp.predict.Predictor` — the same identity, cache, sampling, call and response log as
  every evaluation — as a turn of a chat (``kind="detect"``). A detector (the baseline) takes no
  prompt; a chat model gets the detect prompt (default: the latest ghost_probing).
- :class:`ChatTurn` streams one chat answer (``kind="chat"``): the chat prompt's system message,
  then the earlier answered turns of the same chat (so follow-ups keep the video in context), then
  the question. Iterate it for the text pieces; afterwards it holds the turn number and the call.
  A consumer that stops early (the Stop button closes the generator) logs the partial answer as a
  stopped turn. Chat answers are not cached.

Every failure — an unavailable engine, a video that cannot be read, an engine that raises — is
logged as an error turn with whatever was known, then raised for the caller to show as one
sentence. Nothing here touches the UI.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.base import Artifacts, CallRecord, Engine, EngineIdentity, GenerationOptions, Message
from engines.errors import EngineError, GhostProbeError
from engines.types import Verdict
from reports import responses as RL
from reports.chats import turns
from reports.store import Store
from webapp.predict import (PredictionError, Predictor, ensure_available, load_clip_timed,  # noqa: F401
                            one_sentence, open_engine, sampling_for, video_id_of)

log = logging.getLogger(__name__)

VERDICT_FIELDS = ("ghost_probing", "confidence", "danger_level", "object_type", "onset_s", "reason", "status", "raw")
DANGER_ZH = {"high": "高", "medium": "中", "low": "低"}
OBJECT_ZH = {"pedestrian": "行人", "cyclist": "骑车人", "motorcycle": "摩托车/电动车", "vehicle": "车辆",
             "animal": "动物", "other": "其他"}
STOPPED = "stopped by the user before the answer was complete"

DetectionError = PredictionError  # the old name


def default_model(name: str) -> str:
    """The model an engine uses when none is given (its config or environment), or ""."""
    from engines.registry import get_engine

    try:
        return get_engine(name).model_id() or ""
    except Exception:
        return ""


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


def _log_failure(store: Store, *, kind: str, chat_id: str, engine_name: str, model: str | None,
                 video_id: str | None, e: BaseException, question: str | None = None, answer: str | None = None,
                 identity: EngineIdentity | None = None, call: CallRecord | None = None,
                 sha256: str | None = None, prompt_hash: str | None = None) -> int | None:
    """An error turn for what failed before or around the engine call (then the caller re-raises)."""
    if not isinstance(e, GhostProbeError):
        log.error("%s turn with engine %s failed", kind, engine_name, exc_info=e)
    f: dict[str, Any] = {}
    if identity is not None:
        f = {"engine_kind": identity.kind, "model": identity.model, "revision": identity.revision,
             "endpoint": identity.endpoint, "identity": identity.to_dict(), "identity_hash": identity.digest(),
             "prompt_hash": identity.prompt_hash, "options": identity.options, "sampling": identity.sampling}
    else:
        f["model"] = model
        f["prompt_hash"] = prompt_hash
    try:
        rid = RL.log_response(store, kind=kind, engine=engine_name, verdict=None, call=call, chat_id=chat_id,
                              video_id=video_id, sha256=sha256, question=question, response=answer,
                              error=one_sentence(e), **f)
        return RL.turn_of(store, rid)
    except Exception:  # the failure itself must still reach the person
        log.exception("could not log the failed %s turn", kind)
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
    prompt_ref: str | None
    prompt_hash: str | None
    video_id: str
    sha256: str | None
    sampling: dict[str, Any]
    question: str | None = None
    threshold: float | None = None
    artifacts: Artifacts = field(default_factory=Artifacts)
    identity: EngineIdentity | None = None
    cached: bool = False
    response_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The verdict fields, the call record and what identifies the answer (JSON-ready)."""
        v = self.verdict.to_dict()
        out: dict[str, Any] = {k: v.get(k) for k in VERDICT_FIELDS}
        out["call"] = self.call.to_dict() if self.call is not None else None
        out.update(engine=self.engine, model=self.model, revision=self.revision, prompt=self.prompt_ref,
                   prompt_hash=self.prompt_hash, video_id=self.video_id, sha256=self.sha256, sampling=self.sampling,
                   chat_id=self.chat_id, turn=self.turn, cached=self.cached, response_id=self.response_id,
                   identity=self.identity.to_dict() if self.identity is not None else None,
                   threshold=self.threshold)
        return out


def run_detect(store: Store, *, engine: str, video: str | Path, video_id: str | None = None, model: str | None = None,
               prompt: str | None = None, frames: int | None = None, max_side: int | None = None,
               options: GenerationOptions | None = None, chat_id: str | None = None, prompts: Any = None,
               use_cache: bool = True) -> DetectOutcome:
    """Ask ``engine`` whether ``video`` shows ghost probing and log the answer as a detect turn.

    A failure (unavailable engine, unreadable video, engine error) is logged as an error turn and raised."""
    video_id = video_id or video_id_of(video)
    options = options or GenerationOptions()
    chat_id = chat_id or uuid.uuid4().hex
    model = (model or "").strip() or None
    pred = template = None
    try:
        from engines.registry import get_engine

        eng = get_engine(engine, model=model)
        if eng.takes_prompt:
            from prompts import PromptLibrary

            lib = prompts or PromptLibrary.load(strict=False)
            template = lib.get(prompt) if (prompt or "").strip() else lib.detect_default()
            if template.kind != "detect":
                raise DetectionError(f"Prompt {template.ref} is a {template.kind} prompt; pick a detect prompt.")
        ensure_available(eng)
        sampling = sampling_for(eng, frames, max_side)
        pred = Predictor(store, eng, sampling=sampling, options=options, template=template, use_cache=use_cache)
        ans = pred.predict(video, video_id, kind="detect", chat_id=chat_id)
    except Exception as e:
        _log_failure(store, kind="detect", chat_id=chat_id, engine_name=engine, model=model, video_id=video_id, e=e,
                     identity=pred.identity if pred is not None else None,
                     prompt_hash=template.hash if template is not None else None)
        raise
    if ans.failed == "video":  # logged as an error turn; the caller shows the sentence
        from engines.errors import VideoError

        raise VideoError(ans.error)
    if ans.failed:
        raise EngineError(ans.error)
    return DetectOutcome(
        verdict=ans.verdict, call=ans.call, track=next(iter(ans.artifacts.tracks.values()), None) or None,
        chat_id=chat_id, turn=ans.turn or 0, engine=eng.name, model=ans.identity.model,
        revision=ans.identity.revision, prompt_ref=template.ref if template is not None else None,
        prompt_hash=template.hash if template is not None else None, video_id=video_id, sha256=ans.sha256,
        sampling=pred.sampling, question=ans.question,
        threshold=(ans.artifacts.thresholds.get(next(iter(ans.artifacts.tracks), ""))
                   if ans.artifacts.tracks else None),
        artifacts=ans.artifacts, identity=ans.identity, cached=ans.cached, response_id=ans.response_id)


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
    identity: EngineIdentity | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.chat_id = self.chat_id or uuid.uuid4().hex
        self.video_id = self.video_id or video_id_of(self.video)
        self.options = self.options or GenerationOptions()
        self.question = (self.question or "").strip()

    def _write(self, eng: Engine | None, *, answer: str | None, call: CallRecord | None, error: str | None,
               sha256: str | None) -> int:
        ident = self.identity
        f: dict[str, Any] = {}
        if ident is not None:
            if call is not None and call.model and call.model != ident.model:
                call.extra = {**(call.extra or {}), "model_mismatch": {"resolved": ident.model, "reported": call.model}}
            f = {"engine_kind": ident.kind, "model": ident.model, "revision": ident.revision,
                 "endpoint": ident.endpoint, "identity": ident.to_dict(), "identity_hash": ident.digest(),
                 "prompt_hash": ident.prompt_hash, "options": ident.options, "sampling": ident.sampling}
        rid = RL.log_response(self.store, kind="chat", engine=eng.name if eng is not None else self.engine,
                              verdict=None, call=call, chat_id=self.chat_id, video_id=self.video_id, sha256=sha256,
                              question=self.question or None, response=answer, error=error, **f)
        return int(RL.turn_of(self.store, rid) or 0)

    def __iter__(self) -> Iterator[str]:
        from prompts import PromptLibrary, clip_variables

        pieces: list[str] = []
        stream = None
        eng: Engine | None = None
        start = time.perf_counter()
        decode_s: float | None = None
        sha: str | None = None
        template_hash: str | None = None
        done = False
        try:
            lib = self.prompts or PromptLibrary.load(strict=False)
            template = lib.get(self.prompt) if (self.prompt or "").strip() else lib.chat_default()
            self.prompt_ref, template_hash = template.ref, template.hash
            eng = open_engine(self.engine, self.model)
            reason = eng.can_chat_reason()
            if reason:
                raise DetectionError(reason)
            history = chat_context(self.store, self.chat_id, self.video_id)
            self.sampling = sampling = sampling_for(eng, self.frames, self.max_side)
            self.identity = eng.identity(self.options, sampling, template.hash)
            RL.save_prompt(self.store, template)
            clip, decode_s = load_clip_timed(self.video, sampling)
            sha = clip.sha256
            rendered = template.render(clip_variables(clip, Path(self.video_id).stem))
            system = [m for m in rendered if m["role"] == "system"]
            if not self.question:
                self.question = next((m["content"] for m in rendered if m["role"] == "user"), "").strip()
            if not self.question:
                raise DetectionError("Ask a question first.")
            messages = [*system, *history, {"role": "user", "content": self.question}]
            start = time.perf_counter()
            eng.last_call = None
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
            call = eng.last_call if eng is not None else None
            if call is None and eng is not None:  # what was measured until the stop
                call = CallRecord(engine=eng.name, model=None, latency_s=time.perf_counter() - start,
                                  extra={"stopped": True, "pieces": len(pieces)})
            if call is not None:
                call.decode_s = decode_s
            self.call = call
            try:
                self.turn = self._write(eng, answer="".join(pieces) or None, call=call, error=STOPPED, sha256=sha)
            except Exception:
                log.exception("could not log the stopped chat turn")
            raise
        except Exception as e:
            self.error = one_sentence(e)
            call = eng.last_call if eng is not None else None
            self.turn = _log_failure(self.store, kind="chat", chat_id=self.chat_id, engine_name=self.engine,
                                     model=self.model, video_id=self.video_id, e=e, question=self.question or None,
                                     answer="".join(pieces) or None, identity=self.identity, call=call, sha256=sha,
                                     prompt_hash=template_hash)
            raise
        if done:
            call = (eng.last_call if eng is not None else None) or CallRecord(engine=self.engine)
            call.decode_s = decode_s
            if call.latency_s is None:
                call.latency_s = time.perf_counter() - start
            self.call = call
            self.answer = "".join(pieces)
            self.turn = self._write(eng, answer=self.answer, call=call, error=None, sha256=sha)


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
