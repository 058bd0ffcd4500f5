"""``ghostprobe models list [--json]`` and ``ghostprobe models pull NAME [--dry-run]``: the model catalogue.

A pull is the only thing here that touches the network, and only when asked: it prints the size from
the hub's file listing first, then downloads with a progress bar into ``$GHOSTPROBE_DATA_DIR/models/NAME``;
afterwards the folder is the ``transformers`` engine's model (``--model PATH`` or ``GHOSTPROBE_HF_MODEL``).
These commands never open the database, so they work while the dashboard runs.
"""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("models", help="the model catalogue: small video LLMs to pull for chat on a CPU or small GPU")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    pl = msub.add_parser("list", help="catalogue models with size, Chinese support and whether pulled here")
    pl.add_argument("--json", action="store_true", help="print JSON")
    pl.set_defaults(func=cmd_list)
    pp = msub.add_parser("pull", help="download a catalogue model (size shown first) with huggingface_hub")
    pp.add_argument("name", metavar="NAME", help="catalogue name (see `ghostprobe models list`) or its hub id")
    pp.add_argument("--dry-run", action="store_true", help="only show the size from the hub's file listing")
    pp.add_argument("--json", action="store_true", help="print the result as JSON")
    pp.set_defaults(func=cmd_pull)


def cmd_list(args, ctx) -> int:
    from webapp import models as M
    from webapp.cli import print_json

    rows = M.rows(ctx.config)
    if args.json:
        print_json(rows)
        return 0
    print(f"{'name':<15} {'hub id':<44} {'params':>7}  {'Chinese':<7} {'size':<44} pulled")
    for r, m in zip(rows, M.CATALOGUE):
        size = M.size_text(ctx.config, m, "en")
        print(f"{r['name']:<15} {r['repo_id']:<44} {r['params_b']:>6g}B  {r['chinese']:<7} {size:<44} "
              f"{r['path'] if r['pulled'] else '-'}")
    print(f"models folder: {M.models_dir(ctx.config)}")
    return 0


def cmd_pull(args, ctx) -> int:
    from webapp import models as M
    from webapp.cli import print_json

    m = M.get(args.name)
    done = M.pulled_info(ctx.config, m)
    if done is not None:
        path = M.local_path(ctx.config, m)
        if args.json:
            print_json({"name": m.name, "path": str(path), "bytes": done.get("bytes"), "pulled": True, "new": False})
        else:
            print(f"{m.name} is already pulled: {path}")
        return 0
    size = M.remote_size(ctx.config, m)
    print(f"{m.name} ({m.repo_id}): {size['files']} files, {M.human_bytes(size['bytes'])} "
          f"({size['bytes']} bytes, from the hub's file listing, revision {str(size['revision'])[:12]})",
          file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.dry_run:
        if args.json:
            print_json({"name": m.name, **size, "pulled": False})
        return 0
    from tqdm import tqdm

    bar = tqdm(total=size["bytes"], unit="B", unit_scale=True, desc=f"pull {m.name}", file=sys.stderr,
               mininterval=0.2)

    def progress(got: int, total: int) -> None:
        bar.update(max(got - bar.n, 0))

    try:
        path = M.pull(ctx.config, m.name, progress=progress, size=size)
    finally:
        bar.close()
    if args.json:
        print_json({"name": m.name, "path": str(path), "bytes": M.pulled_info(ctx.config, m)["bytes"], "pulled": True,
                    "new": True})
    else:
        print(f"pulled {m.name} into {path}\nuse it: ghostprobe chat VIDEO --engine transformers --model {path}")
    return 0
