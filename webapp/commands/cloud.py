"""Cloud commands: ``jobs submit-eval|list|refresh|show|cancel|ingest`` and ``endpoints list|deploy|delete``.

Credentials come only from the SDKs' own chains (``DefaultAzureCredential``, boto3's chain); nothing
here prints, logs or stores a secret.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from webapp.cli import CliError, print_json


def register(sub: argparse._SubParsersAction) -> None:
    jobs = sub.add_parser("jobs", help="cloud evaluation jobs (Azure ML) and SageMaker transform jobs").add_subparsers(
        dest="jobs_cmd", metavar="ACTION")
    jobs.required = True

    p = jobs.add_parser("submit-eval", help="run an evaluation as an Azure ML job (sharded with --parallel N)")
    p.add_argument("--backend", default="azureml", choices=["azureml"])
    p.add_argument("--engine", required=True, help="the engine the job runs, e.g. transformers, videollama2, baseline")
    p.add_argument("--model", help="model id or path for the engine")
    p.add_argument("--labels", dest="label_set", help="label set: its labelled videos are evaluated")
    p.add_argument("--subset", help="comma-separated video ids instead of the whole label set")
    p.add_argument("--prompt", help="prompt ref (default: the detect default)")
    p.add_argument("--videos-uri", dest="videos", help="the videos in Azure: azureml://datastores/<store>/paths/<dir> "
                   "or azureml:<data asset>:<version> (default $GHOSTPROBE_AZUREML_VIDEOS)")
    p.add_argument("--parallel", type=int, help="shard over N nodes with a parallel job (default: one command job)")
    p.add_argument("--mini-batch-size", type=int, default=None, help="videos per parallel task (default 4)")
    p.add_argument("--max-retries", type=int, default=None, help="retries of a failed mini-batch (default 2)")
    p.add_argument("--compute", help="compute cluster name (default $GHOSTPROBE_AZUREML_COMPUTE)")
    p.add_argument("--instance-type", help="VM size / SKU, e.g. Standard_NC24s_v3 (cost; serverless when no cluster)")
    p.add_argument("--instance-count", type=int, default=None, help="nodes of a command job (default 1)")
    p.add_argument("--engine-config", help="JSON of engine settings, e.g. '{\"dtype\": \"float16\", \"device_map\": \"auto\"}'")
    p.add_argument("--worker-adapter", choices=["videollama2", "videollama_v1"], default=None,
                   help="--engine videollama2: the GPU worker's adapter started inside the job (default videollama2)")
    p.add_argument("--worker-option", action="append", default=[], metavar="KEY=VALUE",
                   help="--engine videollama2: another worker option (server.py --option), e.g. model_type=llama_v2; "
                        "float16, device_map=auto and eager attention are the defaults")
    p.add_argument("--num-frames", type=int)
    p.add_argument("--max-side", type=int)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--dry-run", action="store_true", help="print the job it would submit; contact nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_submit_eval)

    p = jobs.add_parser("list", help="every job and endpoint with state, duration and cost so far")
    p.add_argument("--active", action="store_true", help="only those still queued or running")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs_list)
    p = jobs.add_parser("refresh", help="ask the cloud for the state of a job (or of every active one)")
    p.add_argument("job", nargs="?")
    p.add_argument("--no-ingest", action="store_true", help="do not ingest a completed job's outputs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs_refresh)
    p = jobs.add_parser("show", help="one job: state history with times, compute, cost, spec")
    p.add_argument("job")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs_show)
    p = jobs.add_parser("cancel", help="cancel a queued or running job")
    p.add_argument("job")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs_cancel)
    p = jobs.add_parser("ingest", help="turn a run folder (eval --output, a collected job) or a completed job into a run")
    p.add_argument("dir", help="a run folder (manifest.json + predictions.jsonl), or a job id")
    p.add_argument("--job", dest="job_id", help="the job a folder came from (links the run to the job)")
    p.add_argument("--name", help="a unique name for the run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs_ingest)


    eps = sub.add_parser("endpoints", help="Azure ML online endpoints and SageMaker endpoints").add_subparsers(
        dest="endpoints_cmd", metavar="ACTION")
    eps.required = True
    p = eps.add_parser("list", help="endpoints with state, instances and cost so far (--sync asks the clouds first)")
    p.add_argument("--sync", action="store_true", help="list the SageMaker account's endpoints and transform jobs first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_endpoints_list)
    p = eps.add_parser("deploy", help="deploy a video LLM behind the GhostProbe contract")
    p.add_argument("--backend", required=True, choices=["azureml", "sagemaker"])
    p.add_argument("--name", required=True, help="endpoint name")
    p.add_argument("--instance-type", required=True, help="e.g. Standard_NC6s_v3 or ml.g5.xlarge")
    p.add_argument("--instance-count", type=int, default=1)
    p.add_argument("--engine", default="transformers", help="the engine the endpoint wraps (Azure ML)")
    p.add_argument("--model-path", help="Azure ML: a local model folder to upload, or azureml:<model>:<version>")
    p.add_argument("--deployment", default="blue", help="Azure ML deployment name")
    p.add_argument("--engine-env", action="append", default=[], metavar="KEY=VALUE",
                   help="engine settings for the endpoint, e.g. GHOSTPROBE_HF_DTYPE=float16 (repeatable)")
    p.add_argument("--image", help="SageMaker: the container image URI (engines/cloud/byoc_server.py as `serve`)")
    p.add_argument("--role", help="SageMaker: the execution role ARN")
    p.add_argument("--model-data", help="SageMaker: s3://…/model.tar.gz with the weights")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_endpoints_deploy)
    p = eps.add_parser("delete", help="delete an endpoint (what stops its bill)")
    p.add_argument("name", help="endpoint name or job id (sagemaker-endpoint:NAME, azureml-endpoint:NAME)")
    p.add_argument("--backend", choices=["azureml", "sagemaker"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_endpoints_delete)


# -- helpers ---------------------------------------------------------------------------------------
def _row(job: dict[str, Any]) -> dict[str, Any]:
    from reports import jobs as J

    return {**job, "duration_s": J.duration_s(job), "duration": J.fmt_duration(J.duration_s(job))}


def _usd(v: float | None) -> str:
    return "unknown" if v is None else f"${v:,.2f}"


# -- jobs ------------------------------------------------------------------------------------------
def submit_eval(store: Any, *, engine: str, model: str | None = None, label_set: str | None = None,
                subset: list[str] | None = None, prompt: str | None = None, videos: str | None = None,
                parallel: int | None = None, mini_batch_size: int | None = None, max_retries: int | None = None,
                compute: str | None = None, instance_type: str | None = None, instance_count: int | None = None,
                engine_config: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
                sampling: dict[str, Any] | None = None, worker_adapter: str | None = None,
                worker_options: list[str] | None = None, dry_run: bool = False) -> dict[str, Any]:
    """An evaluation as an Azure ML job — the one code path of ``jobs submit-eval`` and the Prompt Lab.

    ``dry_run``: the job specification and plan it would submit (``{"submitted": False, "job", "plan", …}``),
    contacting nothing. Otherwise the workspace configuration is checked first (one sentence when it is
    missing, nothing stored), the job submitted and recorded in the jobs store (``{"submitted": True,
    "job_id", "url", "run_id", "videos"}``). Bad input and every Azure refusal: a GhostProbeError."""
    from dataclasses import asdict

    from engines.cloud import azureml as A
    from engines.cloud import service as S

    if not A.sdk_installed():
        raise CliError(A.availability()[1])
    if parallel is not None and int(parallel) < 1:
        raise CliError("--parallel needs at least 1 node.")
    if instance_count is not None and int(instance_count) < 1:
        raise CliError("--instance-count needs at least 1 node.")
    if worker_options:
        bad = [o for o in worker_options if "=" not in o or not o.split("=", 1)[0].strip()]
        if bad:
            raise CliError(f"--worker-option takes KEY=VALUE, not '{bad[0]}'.")
    over = {k: v for k, v in dict(compute=compute or None, instance_type=instance_type or None, parallel=parallel,
                                  mini_batch_size=mini_batch_size, max_retries=max_retries,
                                  instance_count=instance_count, videos=videos or None,
                                  worker_adapter=worker_adapter,
                                  worker_options=list(worker_options) if worker_options else None).items()
            if v is not None}
    settings = A.AzureMLSettings.from_env(**over)
    plan = S.build_plan(store, engine=engine, model=model or None, label_set=label_set or None, subset=subset or None,
                        prompt_ref=prompt or None, options=options or None, sampling=sampling or None,
                        engine_config=dict(engine_config or {}), instances=settings.nodes,
                        settings={"location": settings.location})
    backend = A.AzureMLBackend(settings)
    if dry_run:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory(prefix="gp-azureml-") as tmp:
            _, spec = backend.prepare(plan, Path(tmp))
        ok, why = A.availability(settings)
        return {"submitted": False, "backend": "azureml", "job": spec, "plan": asdict(plan),
                "location": settings.location, "nodes": settings.nodes, "ready": ok, "reason": why}
    ok, why = A.availability(settings)
    if not ok:
        raise CliError(why)
    ref = backend.submit(plan, store=store)
    return {"submitted": True, "job_id": ref.job_id, "url": ref.url, "run_id": plan.run_id, "videos": len(plan.videos)}


def cmd_submit_eval(args, ctx) -> int:
    config: dict[str, Any] = {}
    if args.engine_config:
        try:
            config = json.loads(args.engine_config)
        except ValueError as e:
            raise CliError(f"--engine-config is not valid JSON ({e.msg}).") from None
        if not isinstance(config, dict):
            raise CliError("--engine-config must be a JSON object.")
    subset = [s.strip() for s in args.subset.split(",") if s.strip()] if args.subset else None
    options = {k: v for k, v in (("max_new_tokens", args.max_new_tokens), ("temperature", args.temperature))
               if v is not None}
    sampling = {k: v for k, v in (("num_frames", args.num_frames), ("max_side", args.max_side)) if v is not None}
    out = submit_eval(ctx.store, engine=args.engine, model=args.model, label_set=args.label_set, subset=subset,
                      prompt=args.prompt, videos=args.videos, parallel=args.parallel,
                      mini_batch_size=args.mini_batch_size, max_retries=args.max_retries, compute=args.compute,
                      instance_type=args.instance_type, instance_count=args.instance_count, engine_config=config,
                      options=options, sampling=sampling, worker_adapter=args.worker_adapter,
                      worker_options=args.worker_option, dry_run=args.dry_run)
    if args.dry_run:
        out = {k: v for k, v in out.items() if k not in ("ready", "reason")}
        if args.json:
            print_json(out)
        else:
            import yaml

            print(yaml.safe_dump(out["job"], allow_unicode=True, sort_keys=False))
            print(f"# dry run: {len(out['plan']['videos'])} videos, {out['nodes']} node(s), nothing submitted")
        return 0
    if args.json:
        print_json(out)
    else:
        print(f"submitted {out['job_id']} ({out['videos']} videos); watch it with `ghostprobe jobs refresh "
              f"{out['job_id']}` or in the studio: {out['url']}")
    return 0


def cmd_jobs_list(args, ctx) -> int:
    from reports import jobs as J

    rows = [_row(j) for j in J.list_jobs(ctx.store, active=True if args.active else None)]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no jobs yet (`ghostprobe jobs submit-eval …`, or `endpoints list` to find SageMaker endpoints).")
        return 0
    for j in rows:
        print(f"{j['job_id']}  {j['kind']:<9} {j['state']:<9} {j.get('compute') or '-'} × {j.get('instance_count') or 1}"
              f"  {j['duration']}  {_usd(j.get('cost_usd'))}" + (f"  run {j['run_id']}" if j.get("run_id") else ""))
    return 0


def cmd_jobs_refresh(args, ctx) -> int:
    from engines.cloud import service as S

    if args.job:
        out: Any = S.refresh(ctx.store, args.job, ingest=not args.no_ingest)
    else:
        out = S.refresh_active(ctx.store, ingest=not args.no_ingest)
    if args.json:
        print_json(out)
        return 0
    for r in out if isinstance(out, list) else [out]:
        extra = f", run {r['run_id']}" if r.get("run_id") else ""
        err = r.get("error") or r.get("ingest_error")
        print(f"{r['job_id']}: {r['state']}{extra}" + (f" ({err})" if err else ""))
    return 0


def cmd_jobs_show(args, ctx) -> int:
    from reports import jobs as J

    job = _row(J.get_job(ctx.store, args.job))
    job["events"] = J.events(ctx.store, job["job_id"])
    if args.json:
        print_json(job)
        return 0
    print(f"{job['job_id']} ({job['kind']}, {job['backend']}): {job['state']}"
          + (f" [{job['provider_state']}]" if job.get("provider_state") else ""))
    print(f"  compute {job.get('compute') or '-'}, {job.get('instance_count') or 1} × {job.get('instance_type') or '?'}")
    print(f"  duration {job['duration']}, cost so far {_usd(job.get('cost_usd'))} ({job.get('cost_note') or ''})")
    if job.get("url"):
        print(f"  logs: {job['url']}")
    if job.get("run_id"):
        print(f"  ingested as run {job['run_id']}")
    for e in job["events"]:
        print(f"  {e['at']}  {e['state']}" + (f"  {e['message']}" if e.get("message") else ""))
    return 0


def cmd_jobs_cancel(args, ctx) -> int:
    from engines.cloud import service as S

    out = S.cancel(ctx.store, args.job)
    if args.json:
        print_json(out)
    else:
        print(f"{out['job_id']}: {out['state']}")
    return 0


def cmd_jobs_ingest(args, ctx) -> int:
    from pathlib import Path

    from reports import run_folder

    if not Path(args.dir).exists():
        from reports import jobs as J

        try:
            job = J.get_job(ctx.store, args.dir)
        except J.JobError:
            raise CliError(f"{args.dir} is neither a run folder nor a known job.") from None
        from engines.cloud import service as S

        run_id = S.collect_and_ingest(ctx.store, job["job_id"])
        out = {"run_id": run_id, "job_id": job["job_id"]}
        print_json(out) if args.json else print(f"job {job['job_id']} ingested as run {run_id}.")
        return 0
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


# -- endpoints ---------------------------------------------------------------------------------------
def cmd_endpoints_list(args, ctx) -> int:
    from reports import jobs as J

    problems = []
    if args.sync:
        from engines.cloud.sagemaker import SageMakerBackend
        from engines.errors import GhostProbeError

        try:
            SageMakerBackend().sync(ctx.store)
        except GhostProbeError as e:
            problems.append(str(e))
    rows = [_row(j) for j in J.list_jobs(ctx.store, kind="endpoint")]
    if args.json:
        print_json({"endpoints": rows, "problems": problems})
        return 0
    for msg in problems:
        print(f"note: {msg}")
    if not rows:
        print("no endpoints recorded (`ghostprobe endpoints list --sync` lists SageMaker's).")
    for j in rows:
        print(f"{j['job_id']}  {j['state']:<8} {j.get('instance_type') or '?'} × {j.get('instance_count') or 1}  "
              f"in service {j['duration']}  {_usd(j.get('cost_usd'))}")
    return 0


def _kv(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k.strip():
            raise CliError(f"--engine-env takes KEY=VALUE, not '{it}'.")
        out[k.strip()] = v
    return out


def cmd_endpoints_deploy(args, ctx) -> int:
    if args.instance_count < 1:
        raise CliError("--instance-count needs at least 1.")
    if args.backend == "azureml":
        import tempfile
        from pathlib import Path

        from engines.cloud import azureml as A

        o = A.OnlineSettings(endpoint=args.name, deployment=args.deployment, instance_type=args.instance_type,
                             instance_count=args.instance_count, engine=args.engine, model_path=args.model_path,
                             engine_env=_kv(args.engine_env))
        backend = A.AzureMLBackend(A.AzureMLSettings.from_env())
        if args.dry_run:
            with tempfile.TemporaryDirectory() as tmp:
                ep, dep = A.build_online(o, backend.settings, A.stage_scoring_code(Path(tmp) / "code"))
                out = {"submitted": False, "endpoint": A.job_spec(ep), "deployment": A.job_spec(dep)}
        else:
            ok, why = A.availability(backend.settings) if backend.settings.missing() else (True, "")
            if not ok:
                raise CliError(why)
            out = {"submitted": True, **A.deploy_online(backend, o, store=ctx.store)}
            if not args.json:
                print(f"{out['job_id']}: {out['state']}, traffic {out['traffic'] or 'none'}; scoring URI "
                      f"{out['scoring_uri']} (its key: `az ml online-endpoint get-credentials --name {args.name}`); "
                      "`ghostprobe endpoints list` shows its time in service and cost, `endpoints delete` stops it.")
                return 0
    else:
        from engines.cloud import sagemaker as SM

        if not args.image or not args.role:
            raise CliError("A SageMaker endpoint needs --image (the container) and --role (its execution role ARN).")
        spec = {"name": args.name, "image_uri": args.image, "role_arn": args.role, "instance_type": args.instance_type,
                "instance_count": args.instance_count, "model_data_url": args.model_data,
                "environment": {"GHOSTPROBE_SCORE_ENGINE": args.engine, **_kv(args.engine_env)}}
        if args.dry_run:
            out = {"submitted": False, "sagemaker": spec}
        else:
            backend = SM.SageMakerBackend()
            SM.deploy_endpoint(backend.client(), **spec)
            backend.sync(ctx.store)
            out = {"submitted": True, "job_id": SM.SageMakerBackend.job_id("endpoint", args.name)}
    if args.json:
        print_json(out)
    else:
        print(json.dumps(out, indent=2, ensure_ascii=False, default=str) if args.dry_run
              else f"deploying {out.get('job_id')}; watch it with `ghostprobe endpoints list`.")
    return 0


def cmd_endpoints_delete(args, ctx) -> int:
    from engines.cloud import service as S
    from reports import jobs as J

    ref = args.name
    if ":" not in ref:
        if not args.backend:
            raise CliError("Say --backend azureml or sagemaker, or name the endpoint by its job id.")
        ref = f"{args.backend}-endpoint:{ref}"
    try:
        J.get_job(ctx.store, ref)
    except J.JobError:
        if ref.startswith("sagemaker-endpoint:"):
            from engines.cloud.sagemaker import SageMakerBackend

            SageMakerBackend().sync(ctx.store)
    out = S.cancel(ctx.store, ref)
    print_json(out) if args.json else print(f"{out['job_id']}: {out['state']}")
    return 0
