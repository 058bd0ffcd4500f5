"""``ghostprobe logs``: the response log, newest first (simonw/llm's ``llm logs`` is the model)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logs", help="every model call, newest first: detect, chat turns, eval predictions, imports")
    p.add_argument("-n", "--count", type=int, default=20, help="how many (default 20)")
    p.add_argument("--engine", help="only this engine")
    p.add_argument("--kind", choices=["detect", "chat", "eval", "import", "cache-legacy"])
    p.add_argument("--run", help="only the answers of this run (id or name)")
    p.add_argument("--chat", help="only the turns of this chat id")
    p.add_argument("--json", action="store_true", help="every field, with the prompt text")
    p.set_defaults(func=cmd_logs)


def _line(r: dict[str, Any]) -> str:
    ident = r.get("identity") or {}
    verdict = r.get("status") or ("error" if r.get("error") else "answered")
    if r.get("status") == "ok":
        verdict = "是" if r.get("ghost_probing") else "否"
    lat = r.get("latency_s")
    bits = [f"#{r['id']}", str(r.get("created_at"))[:19], r["kind"], r["engine"]]
    if r.get("model"):
        bits.append(str(r["model"]))
    if ident.get("endpoint") or r.get("endpoint"):
        bits.append(str(ident.get("endpoint") or r.get("endpoint")))
    if r.get("prompt_id"):
        bits.append(f"{r['prompt_id']}@{r['prompt_version']}")
    bits.append(r.get("video_id") or "-")
    bits.append(verdict + (" (cached)" if r.get("cached") else ""))
    if lat is not None:
        bits.append(f"{lat:.2f}s")
    head = "  ".join(bits)
    text = " ".join(str(r.get("error") or r.get("response") or "").split())
    return head + (f"\n    {text[:200]}{'…' if len(text) > 200 else ''}" if text else "")


def cmd_logs(args, ctx) -> int:
    from reports.responses import logs
    from reports.runs import get_run
    from webapp.cli import CliError, print_json

    if args.count < 1:
        raise CliError("-n must be 1 or more.")
    run_id = get_run(ctx.store, args.run)["run_id"] if args.run else None
    rows = logs(ctx.store, limit=args.count, engine=args.engine, kind=args.kind, run_id=run_id, chat_id=args.chat)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("No responses logged yet. Try: ghostprobe detect VIDEO")
        return 0
    for r in rows:
        print(_line(r))
    return 0
