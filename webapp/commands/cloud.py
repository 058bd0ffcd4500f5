"""Cloud commands: ``jobs submit-eval|list|refresh|show|cancel|ingest`` and ``endpoints list|deploy|delete``.

Credentials come only from the SDKs' own chains (``DefaultAzureCredential``, boto3's chain); nothing
here prints, logs or stores a secret.
"""

from __future__ import annotations

import argparse

from webapp.cli import print_json


def register(sub: argparse._SubParsersAction) -> None:
    jobs = sub.add_parser("jobs", help="cloud evaluation jobs (Azure ML) and SageMaker transform jobs").add_subparsers(
        dest="jobs_cmd", metavar="ACTION")
    jobs.required = True
    p = jobs.add_parser("ingest", help="turn a run folder (eval --output, a collected job) into a run")
    p.add_argument("dir", help="a run folder: manifest.json + predictions.jsonl")
    p.add_argument("--job", dest="job_id", help="the job it came from (links the run to the job)")
    p.add_argument("--name", help="a unique name for the run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs_ingest)


def cmd_jobs_ingest(args, ctx) -> int:
    from reports import run_folder

    manifest, records = run_folder.read_run_folder(args.dir)
    run_id = run_folder.ingest(ctx.store, args.dir, job_id=args.job_id, name=args.name)
    n = ctx.store.scalar("SELECT count(*) FROM predictions WHERE run_id = ?", [run_id])
    out = {"run_id": run_id, "origin": manifest["run_id"], "records": len(records), "predictions": int(n),
           "planned": manifest.get("planned"), "status": manifest["status"]}
    if args.json:
        print_json(out)
    else:
        print(f"run {run_id}: {n} predictions from {len(records)} records of {args.dir} "
              f"(planned {manifest.get('planned')}, folder status {manifest['status']}).")
    return 0
