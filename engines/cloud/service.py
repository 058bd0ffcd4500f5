"""Jobs across backends: build a plan, submit, refresh (state machine + cost), cancel, collect and ingest.

Used by the CLI (``webapp/commands/cloud.py``) and the 任务 · Jobs tab. Backends are built from the
job's row (``backend`` column) with settings from the environment; tests pass their own backend.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engines.base import BatchPlan
from engines.errors import EngineError, GhostProbeError

log = logging.getLogger(__name__)


def backend_for(name: str, **settings: Any):
    if name == "azureml":
        from engines.cloud.azureml import AzureMLBackend, AzureMLSettings

        known = set(AzureMLSettings.__dataclass_fields__)
        return AzureMLBackend(AzureMLSettings.from_env(**{k: v for k, v in settings.items() if k in known}))
    if name == "sagemaker":
        from engines.cloud.sagemaker import SageMakerBackend

        return SageMakerBackend(**settings)
    raise EngineError(f"Unknown cloud backend '{name}'; use azureml or sagemaker.")


def cloud_status() -> list[dict[str, Any]]:
    """One line per backend: can it be used from here, and if not, why (one sentence, no network)."""
    import importlib

    out = []
    for backend, mod, sdk in (("azureml", "engines.cloud.azureml", "azure-ai-ml"),
                              ("sagemaker", "engines.cloud.sagemaker", "boto3")):
        try:
            ok, why = importlib.import_module(mod).availability()
        except ImportError:  # a CPU Space installs no cloud SDKs
            ok, why = False, f"The {sdk} package is not installed (pip install '.[cloud]')."
        except Exception as e:  # availability must never take the page down
            ok, why = False, f"The {backend} check failed: {type(e).__name__}: {e}."
        out.append({"backend": backend, "available": ok, "reason": why})
    return out


# -- plans ----------------------------------------------------------------------------------------
def build_plan(store: Any, *, engine: str, model: str | None = None, label_set: str | None = None,
               subset: list[str] | None = None, prompt_ref: str | None = None,
               options: dict[str, Any] | None = None, sampling: dict[str, Any] | None = None,
               engine_config: dict[str, Any] | None = None, instances: int = 1,
               settings: dict[str, Any] | None = None) -> BatchPlan:
    """What a cloud job will evaluate: the engine's identity, the prompt text, the videos (ids of the label
    set or the subset; the file names under the job's videos input) and their hashes when known here."""
    from engines.registry import get_engine
    from reports import runs as R
    from webapp.predict import make_options, sampling_for

    eng = get_engine(engine, model=model, **dict(engine_config or {}))
    opts = make_options(options)
    samp = sampling_for(eng, (sampling or {}).get("num_frames"), (sampling or {}).get("max_side"))
    prompt = None
    if eng.takes_prompt:
        from prompts import PromptLibrary

        lib = PromptLibrary.load(strict=False)
        t = lib.get(prompt_ref) if prompt_ref else lib.detect_default()
        prompt = {"ref": f"{t.id}@{t.version}", "hash": t.hash, "text": t.to_yaml()}
    try:
        described = eng.describe()
    except GhostProbeError:
        described = {"model": model}
    ident = eng.identity(opts, samp, prompt["hash"] if prompt else None, described=described).to_dict()
    if subset:
        ids = list(subset)
    elif label_set:
        R.require_label_set(store, label_set)
        ids = [r["video_id"] for r in store.query(
            "SELECT video_id FROM labels WHERE label_set = ? ORDER BY video_id", [label_set])]
    else:
        raise EngineError("Say which videos to evaluate: --labels SET (its labelled videos) or --subset ids.")
    if not ids:
        raise EngineError(f"Label set {label_set} has no videos to evaluate.")
    shas = {r["video_id"]: r["sha256"] for r in store.query("SELECT video_id, sha256 FROM videos")}
    keyed = {R.video_key(k): v for k, v in shas.items()}
    videos = [{"video_id": v, "path": v, "sha256": shas.get(v) or keyed.get(R.video_key(v))} for v in ids]
    return BatchPlan(run_id=R.new_run_id(), identity=ident, prompt=prompt, videos=videos, sampling=samp,
                     options={k: v for k, v in opts.to_dict().items()}, label_set=label_set,
                     instances=int(instances or 1),
                     settings={"engine": engine, "model": model, "engine_config": dict(engine_config or {}),
                               **dict(settings or {})})


# -- refresh / cancel / collect -------------------------------------------------------------------
def refresh(store: Any, job_id: str, backend: Any = None, *, ingest: bool = True,
            downloads: Path | None = None) -> dict[str, Any]:
    """Ask the backend for the job's state, record any change (with its time) and the cost so far; a
    completed job's outputs are collected and ingested as a run linked to the job (once)."""
    from reports import jobs as J

    job = J.get_job(store, job_id)
    b = backend or backend_for(job["backend"])
    status = b.poll(job["job_id"]) if job["kind"] == "job" else b.poll(job["job_id"], kind=job["kind"])
    provider_state = getattr(status, "provider_state", None)
    entered = J.apply_status(store, status, provider_state=provider_state,
                             instance_count=getattr(status, "instance_count", None))
    job = J.get_job(store, job["job_id"])
    out = {"job_id": job["job_id"], "state": job["state"], "entered": entered, "run_id": job.get("run_id"),
           "cost_usd": job.get("cost_usd"), "cost_note": job.get("cost_note"), "ingest_error": None}
    if ingest and job["kind"] == "job" and job["state"] == "completed" and not job.get("run_id"):
        try:
            out["run_id"] = collect_and_ingest(store, job["job_id"], b, downloads=downloads)
        except GhostProbeError as e:
            out["ingest_error"] = str(e)
    return out


def refresh_active(store: Any, backends: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
    """Refresh every job not in a final state (and completed jobs not yet ingested)."""
    from reports import jobs as J

    out = []
    todo = J.list_jobs(store, active=True) + [j for j in J.list_jobs(store, active=False)
                                              if j["state"] == "completed" and j["kind"] == "job" and not j["run_id"]]
    for job in todo:
        try:
            b = (backends or {}).get(job["backend"])
            out.append(refresh(store, job["job_id"], b, **kw))
        except GhostProbeError as e:
            out.append({"job_id": job["job_id"], "state": job["state"], "error": str(e)})
    return out


def cancel(store: Any, job_id: str, backend: Any = None) -> dict[str, Any]:
    from reports import jobs as J

    job = J.get_job(store, job_id)
    if job["state"] in J.FINAL:
        raise J.JobError(f"Job {job['job_id']} is already {job['state']}; there is nothing to cancel.")
    b = backend or backend_for(job["backend"])
    if job["kind"] == "job":
        b.cancel(job["job_id"])
    else:
        b.cancel(job["job_id"], kind=job["kind"])
    return refresh(store, job["job_id"], b, ingest=False)


def collect_and_ingest(store: Any, job_id: str, backend: Any = None, *, downloads: Path | None = None) -> str:
    """Download a completed job's outputs, turn them into a run folder and ingest it (idempotent)."""
    import tempfile

    from reports import jobs as J
    from reports.run_folder import ingest

    job = J.get_job(store, job_id)
    b = backend or backend_for(job["backend"])
    plan = (job.get("spec") or {}).get("plan")
    root = Path(downloads) if downloads else Path(tempfile.mkdtemp(prefix="gp-job-"))
    dest = root / job["name"]
    folder = b.collect(job["job_id"], dest, plan=plan, state=job["state"])
    run_id = ingest(store, folder, job_id=job["job_id"])
    J.set_job_run(store, job["job_id"], run_id)
    return run_id
