"""Evaluation commands: eval, runs (list/show/compare/review), import-predictions, report, export, prices."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from webapp.cli import CliError, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="run an engine over labelled videos and score it")
    p.add_argument("--engine", help="engine name, e.g. baseline, transformers, openai")
    p.add_argument("--labels", dest="label_set", help="label set to score against")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--videos", dest="videos_dir", help="a folder of videos to run (instead of the library)")
    src.add_argument("--subset", help="comma-separated video ids from the library (default: every labelled video)")
    p.add_argument("--prompt", help="prompt ref: id, id@version or hash prefix (default: the detect default)")
    p.add_argument("--model", help="model id or path for the engine")
    p.add_argument("--concurrency", type=int, default=1, help="requests at once for remote engines (default 1)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes for CPU engines such as the baseline (default: the machine's cores)")
    p.add_argument("--output", metavar="DIR", help="also write the run folder a cloud job writes (manifest + JSONL)")
    p.add_argument("--resume", metavar="RUN", help="finish an interrupted run (id or name)")
    p.add_argument("--retry-errors", action="store_true", help="with --resume: run errored videos again")
    p.add_argument("--location", help="where it runs, a price-catalogue key (default $GHOSTPROBE_LOCATION or local)")
    p.add_argument("--instances", type=int, default=None, help="billed instances (default: what the engine says, 1)")
    p.add_argument("--name", help="a unique name for the run")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (0 = deterministic, cached)")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--num-frames", type=int, default=None, help="override the engine's frame sampling")
    p.add_argument("--max-side", type=int, default=None)
    p.add_argument("--no-cache", action="store_true", help="always call the model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    runs = sub.add_parser("runs", help="evaluation runs").add_subparsers(dest="runs_cmd", metavar="ACTION")
    runs.required = True
    p = runs.add_parser("list", help="every run with its accuracy and interval")
    p.add_argument("--engine")
    p.add_argument("--labels", dest="label_set")
    p.add_argument("--status")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs_list)
    p = runs.add_parser("show", help="metrics of one run (RUN = id or name)")
    p.add_argument("run")
    p.add_argument("--policy", default="counted_wrong", choices=["counted_wrong", "excluded"])
    p.add_argument("--predictions", action="store_true", help="also list every prediction")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs_show)
    p = runs.add_parser("compare", help="two runs side by side with McNemar's exact test")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--policy", default="counted_wrong", choices=["counted_wrong", "excluded"])
    p.add_argument("--labels", dest="label_set", help="label set to compare on (default: A's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs_compare)
    p = runs.add_parser("review", help="mark a prediction: agree, disagree, unsure, label-wrong")
    p.add_argument("run")
    p.add_argument("video")
    p.add_argument("mark", choices=["agree", "disagree", "unsure", "label-wrong"])
    p.add_argument("--comment")
    p.add_argument("--reviewer")
    p.set_defaults(func=cmd_runs_review)

    p = sub.add_parser("import-predictions", help="import another system's answers (CSV, JSONL, JSON) as a run")
    p.add_argument("file")
    p.add_argument("--name", required=True)
    p.add_argument("--labels", dest="label_set", required=True)
    p.add_argument("--video-field", required=True)
    p.add_argument("--answer-field", required=True)
    p.add_argument("--positive", required=True, help="regex for a 'yes' answer (case-insensitive)")
    p.add_argument("--negative", help="regex for a 'no' answer; wins over --positive")
    p.add_argument("--confidence-field")
    p.add_argument("--model", help="what the external system was, e.g. gpt-4o")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("report", help="write a self-contained HTML report (and a Markdown summary beside it)")
    p.add_argument("--out", required=True, help="FILE.html")
    p.add_argument("--runs", nargs="*", help="runs to detail (ids or names); default: the most recent")
    p.add_argument("--force", action="store_true", help="overwrite FILE.html (and the .md beside it) if they exist")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="write runs and predictions as CSV or Parquet")
    p.add_argument("--format", default="csv", choices=["csv", "parquet"])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--runs", nargs="*")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)

    prices = sub.add_parser("prices", help="the price catalogue used for costs").add_subparsers(
        dest="prices_cmd", metavar="ACTION")
    prices.required = True
    p = prices.add_parser("list", help="every price with its source and date")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_prices_list)
    p = prices.add_parser("set", help="set or correct a price (kept over catalogue updates)")
    p.add_argument("provider")
    p.add_argument("sku")
    p.add_argument("--region", default="")
    p.add_argument("--usd-per-hour", type=float)
    p.add_argument("--usd-per-1m-input", type=float)
    p.add_argument("--usd-per-1m-output", type=float)
    p.add_argument("--gpus", type=int)
    p.add_argument("--gpu-type")
    p.add_argument("--source", help="where the figure comes from (URL or document)")
    p.set_defaults(func=cmd_prices_set)


# -- formatting ------------------------------------------------------------------------------------
def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _ci(v: float | None, ci: list[float] | None) -> str:
    if v is None:
        return "n/a"
    return f"{_pct(v)} (95% CI {_pct(ci[0])}–{_pct(ci[1])})" if ci else _pct(v)


def _metrics_lines(m: dict[str, Any]) -> list[str]:
    lines = [f"label set {m.get('label_set')}, n={m['n']} (policy {m['policy']}: unparsed {m['unparsed']}, "
             f"errors {m['errors']}; unlabelled {m['unlabelled']}, not predicted {m.get('missing')})",
             f"TP {m['tp']}  FP {m['fp']}  TN {m['tn']}  FN {m['fn']}"]
    for k in ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1"):
        lines.append(f"{k:<18} {_ci(m[k], m.get(k + '_ci'))}")
    ex = m["metrics_both_ways"]["excluded" if m["policy"] == "counted_wrong" else "counted_wrong"]
    lines.append(f"{'with them ' + ('left out' if m['policy'] == 'counted_wrong' else 'counted wrong'):<18} "
                 f"accuracy {_ci(ex['accuracy'], ex['accuracy_ci'])}, n={ex['n']}")
    if m.get("auroc") is not None:
        lines.append(f"{'AUROC':<18} {m['auroc']:.3f} (95% CI {m['auroc_ci'][0]:.3f}–{m['auroc_ci'][1]:.3f}, n={m['auroc_n']})")
    on = m.get("onset") or {}
    if on.get("n"):
        lines.append(f"{'onset error':<18} median {on['median_abs_s']:.2f} s, within 1 s "
                     f"{_ci(on['within_1s'], on['within_1s_ci'])}, n={on['n']}")
    lat = m.get("latency_s") or {}
    if lat.get("n"):
        lines.append(f"{'latency':<18} p50 {lat['p50']:.2f} s, p95 {lat['p95']:.2f} s (n={lat['n']})")
    return lines


def _cost_line(c: dict[str, Any]) -> str:
    if c.get("usd") is None:
        return c.get("reason") or "Cost unknown."
    per = "" if c.get("usd_per_video") is None else f", ${c['usd_per_video']:.5f} per video"
    return f"cost ${c['usd']:.4f}{per} ({c['basis']})"


class _ProgressPrinter:
    """Plain-text progress on stderr: "[3/12] images_5_046.avi ✓ 1.2s"."""

    SYMBOL = {"ok": "✓", "unparsed": "?", "error": "✗"}

    def __call__(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        if kind == "start":
            if ev.get("missing"):
                ids = ", ".join(ev.get("missing_ids") or [])
                print(f"note: {ev['missing']} of the {ev['planned']} labelled videos are not in the library and "
                      f"will get no prediction ({ids}{'…' if ev['missing'] > len(ev.get('missing_ids') or []) else ''}); "
                      "the run will be partial.", file=sys.stderr, flush=True)
            msg = (f"run {ev['run_id']}: {ev['todo']} videos to do"
                   + (f" ({ev['skipped']} already done)" if ev["skipped"] else "")
                   + f", engine {ev['engine']}" + (f" {ev['model']}" if ev.get("model") else "")
                   + (f", prompt {ev['prompt']}" if ev.get("prompt") else ", no prompt (detector)")
                   + f", label set {ev['label_set']}, {ev['workers']} at a time ({ev.get('mode', 'serial')})")
        elif kind == "video":
            lat = ev.get("latency_s")
            t = f" {lat:.1f}s" if lat is not None and not ev["cached"] else ""
            msg = (f"[{ev['index']}/{ev['total']}] {ev['video_id']} {self.SYMBOL.get(ev['status'], '?')}{t}"
                   + (" cached" if ev["cached"] else "")
                   + (f" — {ev['error']}" if ev.get("error") else ""))
        elif kind == "cancelling":
            msg = f"cancelling: waiting for {ev['in_flight']} video(s) in flight…"
        elif kind == "done":
            msg = f"{ev['status']}: {ev['text']}, errors {ev['errors']}, unparsed {ev['unparsed']}"
        else:
            return
        print(msg, file=sys.stderr, flush=True)


# -- handlers --------------------------------------------------------------------------------------
def _early_pool(args) -> tuple[Any, Any]:
    """(engine, its worker pool) for a new run of a process-safe CPU engine, started before the store and
    the reports modules are imported, so that the workers' start-up overlaps the parent's (3 % of a 12-clip
    baseline eval on 2 cores, bench_baseline against the revision before, interleaved); (None, None)
    otherwise or when the engine cannot be built (the planning that follows says why, in its own words)."""
    if args.resume or not args.engine or (args.workers is not None and args.workers < 2):
        return None, None
    try:
        from engines.registry import all_engines, get_engine
        from webapp.predict import early_workers, engine_spec, start_pool

        cls = all_engines().get(args.engine)
        if cls is None or getattr(cls, "remote", True) or not getattr(cls, "process_safe", False):
            return None, None  # built by the planning, after the label set and the rest are checked
        engine = get_engine(args.engine, model=args.model or None)
        n = early_workers(engine, args.workers)
        return (engine, start_pool(n, engine_spec(engine)) if n else None)
    except Exception:
        return None, None


def cmd_eval(args, ctx) -> int:
    if not args.resume and (not args.engine or not args.label_set):
        raise CliError("eval needs --engine and --labels (or --resume RUN).")
    if args.retry_errors and not args.resume:
        raise CliError("--retry-errors goes with --resume.")
    engine, pool = _early_pool(args)
    try:
        return _eval(args, ctx, engine, pool)
    finally:
        if pool is not None:  # the run shut it down when it used it; this is for a failure before that
            pool.shutdown(wait=False, cancel_futures=True)


def _eval(args, ctx, engine, pool) -> int:
    from reports import costs, metrics
    from webapp.evaluation import run_eval

    options: dict[str, Any] | None = None
    if args.temperature is not None or args.max_new_tokens is not None:
        options = {}
        if args.temperature is not None:
            options["temperature"] = args.temperature
        if args.max_new_tokens is not None:
            options["max_new_tokens"] = args.max_new_tokens
    sampling = {k: v for k, v in (("num_frames", args.num_frames), ("max_side", args.max_side)) if v is not None}
    subset = [s.strip() for s in args.subset.split(",") if s.strip()] if args.subset else None
    if args.subset is not None and not subset:
        raise CliError("--subset needs at least one video id.")
    rid = run_eval(ctx.store, engine_name=args.engine, model=args.model, label_set=args.label_set,
                   video_ids=subset, videos_dir=args.videos_dir, prompt_ref=args.prompt, options=options,
                   sampling=sampling or None, concurrency=args.concurrency, resume=args.resume,
                   location=args.location, instances=args.instances, name=args.name,
                   progress=_ProgressPrinter(), retry_errors=args.retry_errors, use_cache=not args.no_cache,
                   workers=args.workers, output_dir=args.output, engine=engine, pool=pool)
    summary = rid.summary
    m = metrics.run_metrics(ctx.store, str(rid))
    c = costs.run_cost(ctx.store, str(rid))
    if args.json:
        print_json({"run_id": str(rid), "metrics": m, "cost": c,
                    "cache": {k: summary[k] for k in ("cached", "model_calls", "processed", "skipped_done",
                                                      "deterministic", "text")},
                    "summary": summary})
    else:
        print(f"run {rid} ({summary['status']}): {summary['text']}")
        for line in _metrics_lines(m):
            print("  " + line)
        print("  " + _cost_line(c))
        if summary["status"] in ("cancelled", "partial"):
            print(f"  scored {summary['scored']}/{summary['planned']} planned videos"
                  + (f"; {summary['missing']} not in the library" if summary.get("missing") else ""))
        if summary["status"] == "cancelled":
            print(f"  resume with: ghostprobe eval --resume {rid}")
    return 130 if summary["status"] == "cancelled" else 0


def cmd_runs_list(args, ctx) -> int:
    from reports import costs, metrics

    overview = metrics.runs_overview(ctx.store)
    if args.engine:
        overview = [r for r in overview if r["engine"] == args.engine]
    if args.label_set:
        overview = [r for r in overview if r["label_set"] == args.label_set]
    if args.status:
        overview = [r for r in overview if r["status"] == args.status]
    cs = costs.runs_costs(ctx.store, [r["run_id"] for r in overview]) if overview else {}
    if args.json:
        keys = ("run_id", "name", "engine", "model", "prompt_id", "prompt_version", "label_set", "status", "location",
                "created_at", "predictions", "planned", "scored", "errored", "missing", "coverage", "n", "tp", "fp", "tn", "fn", "unparsed", "errors", "accuracy",
                "accuracy_ci", "balanced_accuracy", "balanced_accuracy_ci", "f1", "f1_ci", "policy")
        print_json([{**{k: r.get(k) for k in keys}, "usd": cs.get(r["run_id"], {}).get("usd"),
                     "usd_per_video": cs.get(r["run_id"], {}).get("usd_per_video")} for r in overview])
        return 0
    if not overview:
        print("No runs yet. Start one with: ghostprobe eval --engine baseline --labels SET")
        return 0
    for r in overview:
        prompt = f"{r['prompt_id']}@{r['prompt_version']}" if r.get("prompt_id") else "-"
        c = cs.get(r["run_id"], {})
        cost = "cost unknown" if c.get("usd") is None else f"${c['usd']:.4f}"
        print(f"{r['run_id']}  {r.get('name') or '':<16} {r['engine']:<12} {prompt:<20} {r.get('label_set') or '-':<12} "
              f"{r['status']:<9} scored {r['coverage']:<7} n={r['n']:<5} acc {_ci(r['accuracy'], r['accuracy_ci'])}  "
              f"unparsed {r['unparsed']} errors {r['errors']}  {cost}")
    return 0


def cmd_runs_show(args, ctx) -> int:
    from reports import costs, metrics, runs

    m = metrics.run_metrics(ctx.store, args.run, args.policy)
    c = costs.run_cost(ctx.store, m["run_id"])
    preds = runs.predictions(ctx.store, m["run_id"]) if args.predictions else None
    if args.json:
        out = {**m, "cost": c, "identity": runs.get_run(ctx.store, m["run_id"]).get("identity")}
        if preds is not None:
            out["predictions"] = preds
        print_json(out)
        return 0
    print(f"run {m['run_id']}" + (f" ({m['name']})" if m.get("name") else "") + f": {m['engine']}"
          + (f" {m['model']}" if m.get("model") else "")
          + (f", prompt {m['prompt_id']}@{m['prompt_version']}" if m.get("prompt_id") else "")
          + f", {m['status']}, location {m.get('location')}, scored {m['coverage']} planned videos"
          + (f" ({m['not_in_library']} not in the library)" if m.get("not_in_library") else ""))
    run = runs.get_run(ctx.store, m["run_id"])
    ident = run.get("identity") or {}
    if ident:
        shown = ", ".join(f"{k} {ident[k]}" for k in ("model", "revision", "endpoint", "video_mode", "dtype",
                                                        "attention") if ident.get(k))
        print(f"  identity: {ident.get('kind') or '-'} engine {ident.get('engine')}" + (f", {shown}" if shown else "")
              + (f", sampling {json.dumps(ident.get('sampling'), ensure_ascii=False)}" if ident.get("sampling") else ""))
    for line in _metrics_lines(m):
        print("  " + line)
    print("  " + _cost_line(c))
    from reports.export import decide

    print("  decision: " + decide(m["accuracy"], m["accuracy_ci"], m["n"], m.get("label_set"))["text"])
    if preds is not None:
        for p in preds:
            pred = {True: "yes", False: "no"}.get(p["ghost_probing"], p["status"])
            lab = {True: "yes", False: "no"}.get(p["label_ghost_probing"], "—")
            mark = {True: "✓", False: "✗"}.get(p["correct"], " ")
            print(f"  {mark} {p['video_id']:<28} label {lab:<4} pred {pred:<9} {p.get('reason') or ''}"[:160])
    return 0


def cmd_runs_compare(args, ctx) -> int:
    from reports import metrics

    c = metrics.compare_runs(ctx.store, args.a, args.b, args.policy, args.label_set)
    if args.json:
        print_json(c)
        return 0
    for tag in ("a", "b"):
        m = c[tag]
        print(f"{tag.upper()}: {m['run_id']}" + (f" ({m['name']})" if m.get("name") else "")
              + f" accuracy {_ci(m['accuracy'], m['accuracy_ci'])}, n={m['n']}, label set {m['label_set']}")
    s = c["shared"]
    print(f"shared labelled videos: {s['n']} (label set {c['label_set']}, policy {c['policy']})")
    print(f"  A {_ci(s['a_accuracy'], s['a_accuracy_ci'])} vs B {_ci(s['b_accuracy'], s['b_accuracy_ci'])}")
    print(f"  both right {s['both_right']}, both wrong {s['both_wrong']}, A right B wrong {s['a_right_b_wrong']}, "
          f"A wrong B right {s['a_wrong_b_right']}")
    p = c["mcnemar_p"]
    print(f"  McNemar exact p = {'n/a' if p is None else f'{p:.4g}'}")
    if c["flipped"]["right_to_wrong"]:
        print("  right → wrong: " + ", ".join(c["flipped"]["right_to_wrong"]))
    if c["flipped"]["wrong_to_right"]:
        print("  wrong → right: " + ", ".join(c["flipped"]["wrong_to_right"]))
    return 0


def cmd_runs_review(args, ctx) -> int:
    from reports import runs

    run = runs.get_run(ctx.store, args.run)
    ids = runs.done_video_ids(ctx.store, run["run_id"])
    vid = args.video if args.video in ids else next((v for v in ids if runs.video_key(v) == runs.video_key(args.video)),
                                                    args.video)
    runs.add_review(ctx.store, run["run_id"], vid, args.mark, args.comment, args.reviewer)
    print(f"marked {vid} in {run['run_id']}: {args.mark}")
    return 0


def cmd_import(args, ctx) -> int:
    from reports import metrics
    from reports.predictions_import import import_predictions

    s = import_predictions(ctx.store, args.file, name=args.name, label_set=args.label_set,
                           video_field=args.video_field, answer_field=args.answer_field, positive=args.positive,
                           negative=args.negative, confidence_field=args.confidence_field, model=args.model)
    m = metrics.run_metrics(ctx.store, s["run_id"])
    if args.json:
        print_json({**s, "metrics": m})
        return 0
    print(f"imported run {s['run_id']} ({s['name']}): {s['rows']} rows — yes {s['yes']}, no {s['no']}, "
          f"unparsed {s['unparsed']}; {s['unlabelled']} not in label set {s['label_set']}")
    for line in _metrics_lines(m):
        print("  " + line)
    return 0


def cmd_report(args, ctx) -> int:
    from reports import export

    if not args.out.lower().endswith((".html", ".htm")):
        raise CliError("--out must name an .html file.")
    paths = export.write_report(ctx.store, args.out, args.runs or None, lang=getattr(args, "lang", "zh"),
                                force=args.force)
    if args.json:
        print_json({**paths, **export.report_json(ctx.store, args.runs or None)})
    else:
        print(f"wrote {paths['html']} and {paths['markdown']}")
    return 0


def cmd_export(args, ctx) -> int:
    from reports import export

    paths = export.export_tables(ctx.store, args.out, args.format, args.runs or None)
    if args.json:
        print_json({"files": paths})
    else:
        print("wrote " + ", ".join(paths))
    return 0


def cmd_prices_list(args, ctx) -> int:
    from reports import costs

    rows = costs.list_prices(ctx.store)
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        hour = "" if r["usd_per_hour"] is None else f"${r['usd_per_hour']}/h"
        tok = "" if r["usd_per_1m_input_tokens"] is None else \
            f"${r['usd_per_1m_input_tokens']}/${r['usd_per_1m_output_tokens']} per 1M tok in/out"
        print(f"{r['location']:<40} {hour or tok or 'price unknown':<32} as of {r['as_of'] or '-'}  "
              f"{'(edited)' if r['edited'] else ''} {r['source'] or ''}")
    return 0


def cmd_prices_set(args, ctx) -> int:
    from reports import costs

    fields = {k: v for k, v in (("usd_per_hour", args.usd_per_hour), ("usd_per_1m_input_tokens", args.usd_per_1m_input),
                                ("usd_per_1m_output_tokens", args.usd_per_1m_output), ("gpus", args.gpus),
                                ("gpu_type", args.gpu_type), ("source", args.source)) if v is not None}
    if not fields:
        raise CliError("Give at least one of --usd-per-hour, --usd-per-1m-input, --usd-per-1m-output, --gpus, --gpu-type.")
    row = costs.set_price(ctx.store, args.provider, args.sku, args.region, **fields)
    print_json(row)
    return 0
