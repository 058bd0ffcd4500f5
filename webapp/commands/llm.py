"""``ghostprobe engines list``, ``ghostprobe detect VIDEO`` and ``ghostprobe chat VIDEO "问题"``.

Generic over the Engine protocol: video LLMs (transformers, openai, videollama2) and the weights-free
baseline all go through ``availability()`` → ``load_clip`` with the engine's ``default_sampling`` →
prompt → ``detect()`` / ``stream_chat()``. Every turn, failed ones included, is logged to ``chats``.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

VERDICT_FIELDS = ("ghost_probing", "confidence", "danger_level", "object_type", "onset_s", "reason", "status", "raw")
_DANGER_ZH = {"high": "高", "medium": "中", "low": "低"}
_OBJECT_ZH = {"pedestrian": "行人", "cyclist": "骑车人", "motorcycle": "摩托车/电动车", "vehicle": "车辆",
              "animal": "动物", "other": "其他"}


def register(sub) -> None:
    p = sub.add_parser("engines", help="detection engines: which can run here and why not")
    esub = p.add_subparsers(dest="engines_command", metavar="ACTION")
    esub.required = True
    pl = esub.add_parser("list", help="every registered engine with its availability")
    pl.add_argument("--json", action="store_true", help="print JSON")
    pl.set_defaults(func=cmd_engines_list)

    d = sub.add_parser("detect", help="ask an engine whether a video shows ghost probing (鬼探头)")
    _common(d)
    d.add_argument("--prompt", help="detect prompt: id, id@version or hash prefix (default: latest ghost_probing)")
    d.add_argument("--json", action="store_true", help="print the verdict and call record as JSON")
    d.set_defaults(func=cmd_detect)

    c = sub.add_parser("chat", help="ask an engine a question about a video; the answer streams to stdout")
    _common(c)
    c.add_argument("question", nargs="?", help="the question (default: the chat prompt's first question)")
    c.add_argument("--prompt", help="chat prompt: id, id@version or hash prefix (default: latest chat)")
    c.add_argument("--chat-id", help="continue this chat (same video): earlier turns are sent as context")
    c.set_defaults(func=cmd_chat)


def _common(p) -> None:
    p.add_argument("video", metavar="VIDEO", help="video file or DADA frame folder")
    p.add_argument("--engine", required=True, help="engine name (see `ghostprobe engines list`)")
    p.add_argument("--model", help="model id, local folder or server model name (engine-specific)")
    p.add_argument("--frames", type=int, help="number of frames to sample (overrides the engine's default)")
    p.add_argument("--max-side", type=int, help="shrink frames so the longer side is at most this")
    p.add_argument("--max-new-tokens", type=int, default=None, help="answer length limit (default 512)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait for the model (default 300)")


# -- shared steps ------------------------------------------------------------------------------------

def _engine(args):
    from engines.errors import EngineError
    from engines.registry import get_engine

    engine = get_engine(args.engine, model=args.model)
    ok, reason = engine.availability()
    if not ok:
        raise EngineError(reason)
    return engine


def _sampling(engine, args) -> dict[str, Any]:
    from webapp.cli import CliError

    s = dict(engine.default_sampling or {})
    if args.frames is not None:
        if args.frames < 1:
            raise CliError("--frames must be at least 1")
        s["num_frames"], s["fps"] = args.frames, None
    if args.max_side is not None:
        if args.max_side < 16:
            raise CliError("--max-side must be at least 16 pixels")
        s["max_side"] = args.max_side
    if s.get("num_frames") is None and s.get("fps") is None:
        s["num_frames"] = 16
    return s


def _clip(args, sampling):
    from engines.video import load_clip

    t0 = time.perf_counter()
    clip = load_clip(args.video, num_frames=sampling.get("num_frames"), fps=sampling.get("fps"),
                     max_side=sampling.get("max_side"))
    return clip, time.perf_counter() - t0


def _options(args):
    from engines.base import GenerationOptions

    o = GenerationOptions(temperature=float(args.temperature), seed=args.seed)
    if args.max_new_tokens is not None:
        o.max_new_tokens = int(args.max_new_tokens)
    if args.timeout is not None:
        o.timeout_s = float(args.timeout)
    return o


def video_id_of(path: str) -> str:
    return Path(str(path).rstrip("/\\")).name


def _model_of(engine, call) -> str | None:
    return (getattr(call, "model", None) if call is not None else None) or engine.model_id()


def _revision_of(engine, call) -> str | None:
    return (getattr(call, "revision", None) if call is not None else None) or engine.revision()


# -- engines list ----------------------------------------------------------------------------------

def cmd_engines_list(args, ctx) -> int:
    from engines.registry import engine_status
    from webapp.cli import print_json

    rows = engine_status()
    if args.json:
        print_json([{"name": r["name"], "available": r["available"], "reason": r["reason"],
                     "title": r.get("title"), "remote": r.get("remote")} for r in rows])
        return 0
    if not rows:
        print("（没有已注册的引擎）")
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        mark = "可用  " if r["available"] else "不可用"
        print(f"{r['name'].ljust(width)}  {mark}  {r['reason']}")
    return 0


# -- detect ----------------------------------------------------------------------------------------

def _summary_zh(v: dict[str, Any], call: dict[str, Any] | None, engine: str, model: str | None) -> str:
    status = v.get("status")
    if status == "ok" and v.get("ghost_probing") is not None:
        head = "鬼探头：是" if v["ghost_probing"] else "鬼探头：否"
        bits = []
        if v.get("confidence") is not None:
            bits.append(f"置信度 {v['confidence']:.2f}")
        if v.get("danger_level"):
            bits.append(f"危险等级 {_DANGER_ZH.get(v['danger_level'], v['danger_level'])}")
        if v.get("object_type"):
            bits.append(f"目标 {_OBJECT_ZH.get(v['object_type'], v['object_type'])}")
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
    if call:
        parts = []
        for key, zh in (("decode_s", "解码"), ("preprocess_s", "预处理"), ("generate_s", "生成")):
            if call.get(key) is not None:
                parts.append(f"{zh} {call[key]:.2f}")
        total = sum(call.get(k) or 0 for k in ("decode_s",)) + (call.get("latency_s") or 0)
        tok = ""
        if call.get("prompt_tokens") is not None or call.get("completion_tokens") is not None:
            tok = f"，输入 {call.get('prompt_tokens', '?')} / 输出 {call.get('completion_tokens', '?')} token"
        lines.append(f"引擎 {engine}" + (f" · 模型 {model}" if model else "")
                     + f" · 用时 {total:.2f} 秒" + (f"（{' + '.join(parts)}）" if parts else "") + tok)
    return "\n".join(lines)


def cmd_detect(args, ctx) -> int:
    from engines.errors import GhostProbeError
    from prompts import PromptLibrary, clip_variables
    from reports.chats import log_turn
    from webapp.cli import print_json

    engine = _engine(args)
    sampling = _sampling(engine, args)
    clip, decode_s = _clip(args, sampling)
    video_id = video_id_of(args.video)
    lib = PromptLibrary.load()
    template = lib.get(args.prompt) if args.prompt else lib.detect_default()
    messages = template.render(clip_variables(clip, Path(video_id).stem))
    options = _options(args)
    chat_id = uuid.uuid4().hex
    question = messages[-1]["content"] if messages else None
    common = dict(chat_id=chat_id, video_id=video_id, sha256=clip.sha256, engine=engine.name,
                  prompt_hash=template.hash, kind="detect", question=question, options=options.to_dict(),
                  sampling=clip.sampling or sampling)
    try:
        result = engine.detect(clip, messages, options)
    except GhostProbeError as e:
        log_turn(ctx.store, model=engine.model_id(), revision=engine.revision(), answer=None, verdict=None,
                 call=engine.last_call, error=str(e), **common)
        raise
    call = result.call
    call.decode_s = decode_s
    verdict = result.verdict.to_dict()
    turn = log_turn(ctx.store, model=_model_of(engine, call), revision=_revision_of(engine, call),
                    answer=result.verdict.raw, verdict=verdict, call=call,
                    error=result.verdict.reason if result.verdict.status == "error" else None, **common)
    call_d = call.to_dict()
    if args.json:
        out = {k: verdict.get(k) for k in VERDICT_FIELDS}
        out["call"] = call_d
        out.update(engine=engine.name, model=_model_of(engine, call), prompt=template.ref, prompt_hash=template.hash,
                   video_id=video_id, sha256=clip.sha256, sampling=clip.sampling, chat_id=chat_id, turn=turn)
        print_json(out)
    else:
        print(_summary_zh(verdict, call_d, engine.name, _model_of(engine, call)))
    return 0


# -- chat ------------------------------------------------------------------------------------------

def cmd_chat(args, ctx) -> int:
    from engines.errors import GhostProbeError
    from prompts import PromptLibrary, clip_variables
    from reports.chats import log_turn, turns
    from webapp.cli import CliError

    engine = _engine(args)
    if not getattr(engine, "chat_capable", True):
        raise CliError(f"engine {engine.name} cannot chat; use `ghostprobe detect` with it")
    sampling = _sampling(engine, args)
    clip, decode_s = _clip(args, sampling)
    video_id = video_id_of(args.video)
    lib = PromptLibrary.load()
    template = lib.get(args.prompt) if args.prompt else lib.chat_default()
    rendered = template.render(clip_variables(clip, Path(video_id).stem))
    system = [m for m in rendered if m["role"] == "system"]
    default_q = next((m["content"] for m in rendered if m["role"] == "user"), "")
    question = (args.question or "").strip() or default_q.strip()
    if not question:
        raise CliError("give a question")

    history: list[dict[str, str]] = []
    chat_id = args.chat_id or uuid.uuid4().hex
    if args.chat_id:
        earlier = turns(ctx.store, args.chat_id)
        if not earlier:
            raise CliError(f"no chat with id {args.chat_id}")
        if earlier[0].get("video_id") not in (None, video_id):
            raise CliError(f"chat {args.chat_id} is about {earlier[0]['video_id']}, not {video_id}")
        for t in earlier:
            if t.get("kind") == "chat" and t.get("answer") and not t.get("error"):
                history += [{"role": "user", "content": t["question"] or ""},
                            {"role": "assistant", "content": t["answer"]}]
    messages = [*system, *history, {"role": "user", "content": question}]
    options = _options(args)
    common = dict(chat_id=chat_id, video_id=video_id, sha256=clip.sha256, engine=engine.name,
                  prompt_hash=template.hash, kind="chat", question=question, options=options.to_dict(),
                  sampling=clip.sampling or sampling)
    pieces: list[str] = []
    start = time.perf_counter()
    try:
        for piece in engine.stream_chat(clip, messages, options):
            pieces.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
    except GhostProbeError as e:
        if pieces:
            sys.stdout.write("\n")
        log_turn(ctx.store, model=engine.model_id(), revision=engine.revision(), answer="".join(pieces) or None,
                 verdict=None, call=engine.last_call, error=str(e), **common)
        raise
    sys.stdout.write("\n")
    sys.stdout.flush()
    call = engine.last_call
    if call is not None:
        call.decode_s = decode_s
        if call.latency_s is None:
            call.latency_s = time.perf_counter() - start
    turn = log_turn(ctx.store, model=_model_of(engine, call), revision=_revision_of(engine, call),
                    answer="".join(pieces), verdict=None, call=call, error=None, **common)
    print(f"（会话 {chat_id} · 第 {turn} 轮；继续提问：--chat-id {chat_id}）", file=sys.stderr)
    return 0
