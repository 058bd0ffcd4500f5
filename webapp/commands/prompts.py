"""``ghostprobe prompts list|show|diff`` and ``ghostprobe verdict parse``."""

from __future__ import annotations

import sys

from engines.errors import GhostProbeError

VERDICT_FIELDS = ("ghost_probing", "confidence", "danger_level", "object_type", "onset_s", "reason", "status", "raw")

_DANGER_ZH = {"high": "高", "medium": "中", "low": "低"}
_OBJECT_ZH = {"pedestrian": "行人", "cyclist": "骑车人", "motorcycle": "摩托车/电动车", "vehicle": "车辆",
              "animal": "动物", "other": "其他"}


class InputFileError(GhostProbeError):
    """A file named on the command line that is missing or unreadable."""


def register(sub) -> None:
    p = sub.add_parser("prompts", help="prompt library: list, show and diff versioned templates")
    psub = p.add_subparsers(dest="prompts_command", metavar="ACTION")
    psub.required = True

    pl = psub.add_parser("list", help="every template version (bundled and user folder)")
    pl.add_argument("--kind", choices=("detect", "chat"), help="only this kind")
    pl.add_argument("--json", action="store_true", help="print JSON")
    pl.set_defaults(func=cmd_list)

    ps = psub.add_parser("show", help="one template: REF is id, id@version or a hash prefix (6+ digits)")
    ps.add_argument("ref")
    ps.add_argument("--json", action="store_true", help="print JSON")
    ps.set_defaults(func=cmd_show)

    pd = psub.add_parser("diff", help="unified diff of two versions' YAML")
    pd.add_argument("a")
    pd.add_argument("b")
    pd.set_defaults(func=cmd_diff)

    v = sub.add_parser("verdict", help="read model answers into verdicts")
    vsub = v.add_subparsers(dest="verdict_command", metavar="ACTION")
    vsub.required = True
    vp = vsub.add_parser("parse", help="parse a model answer from FILE, or - for stdin")
    vp.add_argument("file", metavar="FILE|-")
    vp.add_argument("--json", action="store_true", help="print the Verdict fields as JSON")
    vp.set_defaults(func=cmd_verdict_parse)


def _library():
    from prompts import PromptLibrary

    return PromptLibrary.load()


def cmd_list(args, ctx) -> int:
    from webapp.cli import print_json

    items = [t for t in _library().all() if not args.kind or t.kind == args.kind]
    if args.json:
        print_json([t.summary() for t in items])
        return 0
    if not items:
        print("（没有模板）")
        return 0
    width = max(len(t.ref) for t in items)
    for t in items:
        parent = f"  ← {t.parent}" if t.parent else ""
        print(f"{t.ref.ljust(width)}  {t.short_hash}  {t.kind:<6}  {t.language}  {t.title}{parent}")
    return 0


def cmd_show(args, ctx) -> int:
    from webapp.cli import print_json

    t = _library().get(args.ref)
    if args.json:
        print_json(t.to_dict())
    else:
        sys.stdout.write(t.to_yaml())
    return 0


def cmd_diff(args, ctx) -> int:
    from prompts import diff

    lib = _library()
    out = diff(lib.get(args.a), lib.get(args.b))
    sys.stdout.write(out or "（两个版本内容相同）\n")
    return 0


def _read_input(name: str) -> str:
    if name == "-":
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    else:
        from engines.errors import InputError, input_file

        try:  # a FIFO would block the read forever; a symlink loop says so
            p = input_file(name, "file with a model answer")
        except InputError as e:
            raise InputFileError(str(e)) from None
        try:
            data = p.read_bytes()
        except OSError as e:
            raise InputFileError(f"{name} cannot be read ({e.strerror or e}).") from None
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    return data


def summary_zh(v) -> str:
    """A short human summary of a Verdict, in Chinese."""
    if v.status != "ok" or v.ghost_probing is None:
        head = "无法解析：回答中没有可读的结论（记为未解析，不计为“否”）。" if v.status != "error" else f"出错：{v.reason}"
        lines = [head]
    else:
        details = []
        if v.confidence is not None:
            details.append(f"置信度 {v.confidence:.2f}")
        if v.danger_level:
            details.append(f"危险等级 {_DANGER_ZH.get(v.danger_level, v.danger_level)}")
        if v.object_type:
            details.append(f"目标 {_OBJECT_ZH.get(v.object_type, v.object_type)}")
        if v.onset_s is not None:
            details.append(f"出现于 {v.onset_s:g} 秒")
        lines = [f"鬼探头：{'是' if v.ghost_probing else '否'}" + (f"（{'，'.join(details)}）" if details else "")]
    if v.reason and v.status != "error":
        lines.append(f"理由：{v.reason}")
    return "\n".join(lines)


def cmd_verdict_parse(args, ctx) -> int:
    from engines.verdict import parse
    from webapp.cli import print_json

    v = parse(_read_input(args.file))
    if args.json:
        d = v.to_dict()
        print_json({k: d[k] for k in VERDICT_FIELDS})
    else:
        print(summary_zh(v))
    return 0
