"""``ghostprobe engines list``, ``ghostprobe detect VIDEO`` and ``ghostprobe chat VIDEO "问题"``.

Generic over the Engine protocol: video LLMs (transformers, openai, videollama2) and the weights-free
baseline all go through ``availability()`` → ``load_clip`` with the engine's ``default_sampling`` →
prompt → ``detect()`` / ``stream_chat()``. Every turn, failed ones included, is logged to ``chats``.
The path itself is :mod:`webapp.detection`, shared with the 对话检测 tab; this module parses flags and prints.
"""

from __future__ import annotations

import sys
from pathlib import Path


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
    _allow_intermixed(c)  # `chat VIDEO --engine E "问题"`: the question may follow the options
    _common(c)
    c.add_argument("question", nargs="?", help="the question (default: the chat prompt's first question)")
    c.add_argument("--prompt", help="chat prompt: id, id@version or hash prefix (default: latest chat)")
    c.add_argument("--chat-id", help="continue this chat (same video): earlier turns are sent as context")
    c.set_defaults(func=cmd_chat)


def _allow_intermixed(parser) -> None:
    """Let positionals follow options (argparse's parse_known_intermixed_args) for this subparser only."""
    base = type(parser)

    class _Intermixed(base):  # type: ignore[misc, valid-type]
        _mixing = False

        def parse_known_args(self, args=None, namespace=None):
            if self._mixing:
                return super().parse_known_args(args, namespace)
            self._mixing = True
            try:
                return super().parse_known_intermixed_args(args, namespace)
            finally:
                self._mixing = False

    parser.__class__ = _Intermixed


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


# -- shared steps (the detect/chat path itself lives in webapp/detection.py, shared with the UI) ----------

def _check_flags(args) -> None:
    """Every flag checked before anything is decoded, called or stored; the video path too (a FIFO
    would block, a symlink loop would only say "cannot read")."""
    import math

    from engines.errors import input_file
    from webapp.cli import CliError

    if args.frames is not None and args.frames < 1:
        raise CliError("--frames must be at least 1")
    if args.max_side is not None and args.max_side < 16:
        raise CliError("--max-side must be at least 16 pixels")
    if not math.isfinite(args.temperature) or args.temperature < 0:
        raise CliError(f"--temperature must be a number of at least 0, not {args.temperature:g}")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise CliError("--max-new-tokens must be at least 1")
    if args.timeout is not None and (not math.isfinite(args.timeout) or args.timeout <= 0):
        raise CliError(f"--timeout must be a positive number of seconds, not {args.timeout:g}")
    input_file(args.video, "video file or frame folder", allow_dir=True)


def video_id_of(path: str) -> str:
    return Path(str(path).rstrip("/\\")).name


def _options(args):
    from engines.base import GenerationOptions

    o = GenerationOptions(temperature=float(args.temperature), seed=args.seed)
    if args.max_new_tokens is not None:
        o.max_new_tokens = int(args.max_new_tokens)
    if args.timeout is not None:
        o.timeout_s = float(args.timeout)
    return o


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

def cmd_detect(args, ctx) -> int:
    from webapp.cli import print_json
    from webapp.detection import run_detect, summary_zh

    _check_flags(args)
    out = run_detect(ctx.store, engine=args.engine, model=args.model, video=args.video, video_id=video_id_of(args.video),
                     prompt=args.prompt, frames=args.frames, max_side=args.max_side, options=_options(args))
    if args.json:
        print_json(out.to_dict())
    else:
        print(summary_zh(out.verdict.to_dict(), out.call.to_dict(), out.engine, out.model))
    return 0


# -- chat ------------------------------------------------------------------------------------------

def cmd_chat(args, ctx) -> int:
    from engines.errors import GhostProbeError
    from reports.chats import turns
    from webapp.cli import CliError
    from webapp.detection import ChatTurn

    _check_flags(args)
    video_id = video_id_of(args.video)
    if args.chat_id:
        earlier = turns(ctx.store, args.chat_id)
        if not earlier:
            raise CliError(f"no chat with id {args.chat_id}")
        if earlier[0].get("video_id") not in (None, video_id):
            raise CliError(f"chat {args.chat_id} is about {earlier[0]['video_id']}, not {video_id}")
    turn = ChatTurn(ctx.store, engine=args.engine, model=args.model, video=args.video, video_id=video_id,
                    question=args.question or "", chat_id=args.chat_id, prompt=args.prompt, frames=args.frames,
                    max_side=args.max_side, options=_options(args))
    wrote = False
    try:
        for piece in turn:
            wrote = True
            sys.stdout.write(piece)
            sys.stdout.flush()
    except GhostProbeError:
        if wrote:
            sys.stdout.write("\n")
        raise
    sys.stdout.write("\n")
    sys.stdout.flush()
    print(f"（会话 {turn.chat_id} · 第 {turn.turn} 轮；继续提问：--chat-id {turn.chat_id}）", file=sys.stderr)
    return 0
