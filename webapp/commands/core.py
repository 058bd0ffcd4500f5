"""Core commands: serve, probe, library, labels, demo-clips, db."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from webapp.cli import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="start the dashboard")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1; 0.0.0.0 on Spaces)")
    p.add_argument("--port", type=int, default=None, help="port (default $GHOSTPROBE_PORT or 7860)")
    p.add_argument("--no-demo", action="store_true", help="do not render demo clips into an empty library")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("probe", help="probe a video file or DADA frame folder")
    p.add_argument("path")
    p.add_argument("--fps", type=float, default=None, help="frame rate of a frame folder (default 30)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_probe)

    lib = sub.add_parser("library", help="the video library").add_subparsers(dest="library_cmd", metavar="ACTION")
    lib.required = True
    p = lib.add_parser("list", help="index the library roots and list the videos")
    p.add_argument("--labels", help="attach the labels of this label set")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_library_list)

    labels = sub.add_parser("labels", help="label sets").add_subparsers(dest="labels_cmd", metavar="ACTION")
    labels.required = True
    p = labels.add_parser("import", help="import a label CSV (DADA or generic style) as a label set")
    p.add_argument("file")
    p.add_argument("--set", required=True, dest="set_name")
    p.add_argument("--format", default="auto", choices=["auto", "dada", "generic"])
    p.add_argument("--replace", action="store_true", help="replace an existing set of that name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_labels_import)
    p = labels.add_parser("preset", help="weak labels by DADA category (seed, dada-crossing)")
    p.add_argument("name")
    p.add_argument("--set", required=True, dest="set_name")
    p.add_argument("--replace", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_labels_preset)
    p = labels.add_parser("list", help="list labels (or label sets with --sets)")
    p.add_argument("--set", dest="set_name")
    p.add_argument("--sets", action="store_true", help="list the label sets instead of labels")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_labels_list)

    p = sub.add_parser("demo-clips", help="render synthetic dashcam demo clips with a label file")
    p.add_argument("dir")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo_clips)

    db = sub.add_parser("db", help="the DuckDB store").add_subparsers(dest="db_cmd", metavar="ACTION")
    db.required = True
    p = db.add_parser("info", help="path, schema migrations and row counts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_db_info)


def cmd_serve(args, ctx) -> int:
    from webapp.server import serve

    serve(ctx, host=args.host, port=args.port, demo=not args.no_demo)
    return 0


def cmd_probe(args, ctx) -> int:
    from engines.errors import input_file
    from engines.video import probe

    input_file(args.path, "video file or frame folder", allow_dir=True)  # FIFO, device, symlink loop: one sentence
    meta = probe(args.path, fps=args.fps)
    d = meta.to_dict()
    if args.json:
        print_json(d)
    else:
        print(f"{Path(meta.path).name}: {meta.width}x{meta.height}, {meta.frames} frames at {meta.fps:g} fps "
              f"({meta.duration_s:.2f} s), codec {meta.codec}, sha256 {meta.sha256[:16]}…")
    return 0


def cmd_library_list(args, ctx) -> int:
    from webapp.library import Library

    lib = Library(ctx.config, ctx.store)
    res = lib.scan()
    for path, reason in res.failed.items():
        print(f"skipped: {reason}", file=sys.stderr)
    rows = lib.videos(label_set=args.labels)
    if args.json:
        print_json([{k: r[k] for k in ("video_id", "path", "origin", "sha256", "frames", "fps", "duration_s",
                                        "width", "height", "codec", "size_bytes")} | {"label": r["label"]} for r in rows])
        return 0
    from reports.labels import label_badge

    for r in rows:
        badge = f"  [{label_badge(r['label'])}]" if args.labels else ""
        print(f"{r['video_id']}\t{r['width']}x{r['height']}\t{r['duration_s']:.1f}s\t{r['codec']}\t{r['origin']}{badge}")
    print(f"{len(rows)} videos", file=sys.stderr)
    return 0


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print_json(summary)
    else:
        print(f"label set '{summary['label_set']}': {summary['videos']} videos, {summary['ghost_probing']} ghost probing, "
              f"{summary['cut_in']} cut-in, {summary['none']} none ({summary['format']})")


def cmd_labels_import(args, ctx) -> int:
    from reports.labels import import_label_csv
    from reports.runs import label_set_coverage
    from webapp.library import Library

    summary = import_label_csv(ctx.store, args.file, args.set_name, args.format, replace=args.replace)
    try:
        Library(ctx.config, ctx.store).scan()
    except Exception:  # an unreadable library root must not hide the import that succeeded
        pass
    cov = label_set_coverage(ctx.store, summary["label_set"])
    summary.update(in_library=cov["in_library"], not_in_library=cov["missing"])
    _print_summary(summary, args.json)
    if not args.json:
        print(f"{cov['in_library']} of its {cov['labelled']} videos are in the library"
              + (f"; not in the library: {', '.join(cov['missing'][:8])}{' …' if len(cov['missing']) > 8 else ''}"
                 if cov["missing"] else "") + ".")
    return 0


def cmd_labels_preset(args, ctx) -> int:
    from reports.labels import apply_preset
    from webapp.library import Library

    Library(ctx.config, ctx.store).scan()
    summary = apply_preset(ctx.store, args.name, args.set_name, replace=args.replace)
    _print_summary(summary, args.json)
    print("note: category presets are weak labels (DADA category, not a human judgement of ghost probing).",
          file=sys.stderr)
    return 0


def cmd_labels_list(args, ctx) -> int:
    from reports.labels import list_labels, list_sets

    if args.sets:
        rows = list_sets(ctx.store, args.set_name)
        if args.json:
            print_json(rows)
        else:
            for r in rows:
                print(f"{r['name']}\t{r['videos']} videos\t{r['ghost_probing']} ghost probing\t{r['source']}"
                      + ("\t(weak)" if r["weak"] else ""))
        return 0
    rows = list_labels(ctx.store, args.set_name)
    if args.json:
        print_json([{k: r[k] for k in ("video_id", "label_set", "ghost_probing", "kind", "onset_s", "note", "source")}
                    for r in rows])
    else:
        for r in rows:
            onset = f"{r['onset_s']:g}s" if r["onset_s"] is not None else "-"
            print(f"{r['label_set']}\t{r['video_id']}\t{r['kind']}\t{onset}\t{r['note'] or ''}")
    return 0


def cmd_demo_clips(args, ctx) -> int:
    from engines.synth import render_demo_clips

    paths = render_demo_clips(Path(args.dir), seed=args.seed)
    for p in paths:
        print(p)
    print(f"{len(paths)} clips and labels.csv written to {args.dir}", file=sys.stderr)
    return 0


def cmd_db_info(args, ctx) -> int:
    info = ctx.store.info()
    if args.json:
        print_json(info)
    else:
        print(f"{info['path']} ({info['size_bytes'] / 1e6:.1f} MB, DuckDB {info['duckdb_version']})")
        print("migrations: " + ", ".join(info["migrations"]))
        for t, n in info["tables"].items():
            print(f"  {t}: {n} rows")
    return 0
