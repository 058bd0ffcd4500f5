"""Azure ML evaluation jobs: this project's prediction core run on a GPU cluster, sharded or not.

Engine ``azureml-job`` (kind ``batch``): ``submit(plan) → JobRef``, ``poll``, ``cancel``, ``collect``.

What is submitted (``jobs submit-eval --backend azureml``; ``--dry-run`` prints it):

- **code** — a snapshot of this project (``engines/``, ``webapp/``, ``reports/``, ``prompts/``,
  ``pyproject.toml``) plus ``job/plan.json``: the :class:`engines.base.BatchPlan` (engine identity,
  prompt text, videos, sampling, options). Nothing from ``data/`` and no credentials.
- **environment** — a curated Azure ML GPU base image (default
  ``mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04``) with a conda layer:
  Python 3.11 and the project's own requirements (``pyproject.toml``: dependencies + the ``llm`` extra).
- **a command job** (default, small sets): ``python -m engines.cloud.worker --plan job/plan.json
  --videos ${{inputs.videos}} --output ${{outputs.results}}`` on the compute cluster, writing a run
  folder (``manifest.json`` + ``predictions.jsonl``) to the ``results`` output.
- **a parallel job** (``--parallel N``): N nodes, ``mini_batch_size`` videos per task, each task
  calling ``engines/cloud/azureml_parallel.py`` ``run()``, failed mini-batches retried
  (``retry_settings``), records appended to one file by the ``append_row`` output action. The
  manifest is written on our side from the plan when the outputs are collected.

Configuration (arguments win over the environment): ``GHOSTPROBE_AZUREML_SUBSCRIPTION``,
``GHOSTPROBE_AZUREML_RESOURCE_GROUP``, ``GHOSTPROBE_AZUREML_WORKSPACE`` (or ``AZUREML_CONFIG``: the
studio's ``config.json``), ``GHOSTPROBE_AZUREML_COMPUTE`` (cluster name), ``GHOSTPROBE_AZUREML_SKU``
(its VM size, e.g. ``Standard_NC24s_v3``: used for cost, and as the serverless instance type when no
cluster is named), ``GHOSTPROBE_AZUREML_VIDEOS`` (the videos input: ``azureml://datastores/…/paths/…``,
a data asset ``azureml:name:version`` or a local folder the SDK uploads), ``GHOSTPROBE_AZUREML_IMAGE``.
Credentials come only from ``DefaultAzureCredential``; none is read, shown or stored here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import tempfile
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engines.base import BATCH, BatchPlan, CostLocation, Engine, JobRef, JobStatus
from engines.errors import EngineError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04"
EXPERIMENT = "ghostprobe"
CODE_PARTS = ("engines", "webapp", "reports", "prompts", "pyproject.toml", "README.md")
WORKER_COMMAND = ("python -m engines.cloud.worker --plan job/plan.json "
                  "--videos ${{inputs.videos}} --output ${{outputs.results}}")
PARALLEL_ENTRY = "engines/cloud/azureml_parallel.py"
# --engine videollama2: the seed's case (docs in engines/cloud/videollama2_job.py). The image behind the curated
# environment AzureML-ACPT-pytorch-1.13-py38-cuda11.7-gpu: Python 3.8, torch 1.13 + CUDA 11.7 in /opt/conda/envs/ptca.
ACPT_IMAGE = "mcr.microsoft.com/azureml/curated/acpt-pytorch-1.13-cuda11.7:latest"
ACPT_PYTHON = "/opt/conda/envs/ptca/bin/python"
WORKER_REQUIREMENTS = "engines/llm/worker/requirements-videollama2.txt"
VIDEOLLAMA2_PACKAGE = "git+https://github.com/DAMO-NLP-SG/VideoLLaMA2@c0bb03abf6b8a6b9a8dccac006fb4db5d4d9e414"
VIDEOLLAMA2_MODEL = "DAMO-NLP-SG/VideoLLaMA2.1-7B-16F"
VIDEOLLAMA2_COMMAND = ("python -m engines.cloud.videollama2_job --plan job/plan.json "
                       "--videos ${{inputs.videos}} --output ${{outputs.results}}")
APPEND_ROW_FILES = ("predictions.jsonl", "parallel_run_step.txt")

# Azure ML job statuses → our state machine (reports.jobs)
STATE_MAP = {
    "notstarted": "queued", "starting": "queued", "provisioning": "queued", "preparing": "queued",
    "queued": "queued", "paused": "queued", "scheduled": "queued",
    "running": "running", "finalizing": "running", "cancelrequested": "running",
    "completed": "completed", "finished": "completed",
    "failed": "failed", "notresponding": "failed",
    "canceled": "canceled", "cancelled": "canceled",
}


from engines.settings import env as _env  # noqa: E402  (the one settings object)


def map_state(status: str | None) -> str:
    return STATE_MAP.get((status or "").replace(" ", "").lower(), "queued")


@dataclass
class AzureMLSettings:
    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None
    compute: str | None = None  # cluster name; None = serverless (needs instance_type)
    instance_type: str | None = None  # VM size (SKU), e.g. Standard_NC24s_v3
    instance_count: int = 1
    parallel: int | None = None  # nodes of a parallel job; None = one command job
    mini_batch_size: int = 4  # videos per parallel task
    max_retries: int = 2  # retries of a failed mini-batch
    task_timeout_s: int = 3600  # one mini-batch's time limit
    processes_per_node: int = 1  # one process per node: a 7B model over all its GPUs (device_map="auto")
    videos: str | None = None  # the videos input
    image: str = DEFAULT_IMAGE
    region: str | None = None
    extra_pip: list[str] = field(default_factory=list)
    # --engine videollama2 only: the GPU worker inside the job (engines/cloud/videollama2_job.py)
    worker_image: str = ACPT_IMAGE
    worker_python: str = ACPT_PYTHON
    worker_adapter: str = "videollama2"  # or videollama_v1 (the seed's Video-LLaMA-2-7B-Finetuned)
    worker_dtype: str = "float16"  # V100: no bfloat16
    worker_device_map: str = "auto"  # a 7B model over the node's 4× 16 GB
    worker_attn: str = "eager"  # torch 1.13 has no SDPA
    worker_options: list[str] = field(default_factory=list)  # more server.py --option KEY=VALUE
    worker_package: str = VIDEOLLAMA2_PACKAGE

    @classmethod
    def from_env(cls, **over: Any) -> "AzureMLSettings":
        s = cls(subscription_id=_env("GHOSTPROBE_AZUREML_SUBSCRIPTION"),
                resource_group=_env("GHOSTPROBE_AZUREML_RESOURCE_GROUP"),
                workspace=_env("GHOSTPROBE_AZUREML_WORKSPACE"), compute=_env("GHOSTPROBE_AZUREML_COMPUTE"),
                instance_type=_env("GHOSTPROBE_AZUREML_SKU"), videos=_env("GHOSTPROBE_AZUREML_VIDEOS"),
                image=_env("GHOSTPROBE_AZUREML_IMAGE", DEFAULT_IMAGE), region=_env("GHOSTPROBE_AZUREML_REGION"),
                worker_image=_env("GHOSTPROBE_AZUREML_WORKER_IMAGE", ACPT_IMAGE),
                worker_python=_env("GHOSTPROBE_AZUREML_WORKER_PYTHON", ACPT_PYTHON))
        cfg = _env("AZUREML_CONFIG")
        if cfg and not (s.subscription_id and s.resource_group and s.workspace):
            try:
                d = json.loads(Path(cfg).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                d = {}
            s.subscription_id = s.subscription_id or d.get("subscription_id")
            s.resource_group = s.resource_group or d.get("resource_group")
            s.workspace = s.workspace or d.get("workspace_name")
        for k, v in over.items():
            if v is not None:
                setattr(s, k, v)
        return s

    def missing(self) -> list[str]:
        names = {"subscription_id": "GHOSTPROBE_AZUREML_SUBSCRIPTION", "resource_group": "GHOSTPROBE_AZUREML_RESOURCE_GROUP",
                 "workspace": "GHOSTPROBE_AZUREML_WORKSPACE"}
        return [env for k, env in names.items() if not getattr(self, k)]

    @property
    def location(self) -> str | None:
        if not self.instance_type:
            return None
        return ":".join(x for x in ("azure", self.instance_type, self.region) if x)

    @property
    def nodes(self) -> int:
        return int(self.parallel) if self.parallel else int(self.instance_count or 1)

    def studio_url(self, job_name: str) -> str:
        return (f"https://ml.azure.com/runs/{job_name}?wsid=/subscriptions/{self.subscription_id}"
                f"/resourcegroups/{self.resource_group}/workspaces/{self.workspace}")


def sdk_installed() -> bool:
    """azure-ai-ml and azure-identity importable (find_spec raises, not answers None, when a parent is missing)."""
    try:
        return importlib.util.find_spec("azure.ai.ml") is not None and importlib.util.find_spec("azure.identity") is not None
    except (ImportError, ValueError):
        return False


def availability(settings: AzureMLSettings | None = None) -> tuple[bool, str]:
    """Whether Azure ML jobs can be submitted from here (no network call), as one sentence."""
    if not sdk_installed():
        return False, "Azure ML needs azure-ai-ml and azure-identity: pip install 'ghostprobe-studio[cloud]'."
    s = settings or AzureMLSettings.from_env()
    miss = s.missing()
    if miss:
        return False, (f"Azure ML is not configured: set {', '.join(miss)} (or AZUREML_CONFIG to the studio's "
                       "config.json); credentials come from DefaultAzureCredential (az login, a managed identity "
                       "or AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET).")
    where = f"cluster {s.compute}" if s.compute else (f"serverless {s.instance_type}" if s.instance_type else None)
    if where is None:
        return False, "Name a compute cluster (GHOSTPROBE_AZUREML_COMPUTE or --compute) or a serverless --instance-type."
    return True, f"configured, not yet contacted: workspace {s.workspace}, {where}."


# -- what is submitted ----------------------------------------------------------------------------
def project_requirements(llm: bool = True) -> list[str]:
    """The project's requirements for the GPU worker: pyproject dependencies + the llm extra (without it for
    a videollama2 job, whose model runs in the worker's own Python: GhostProbe there is an HTTP client)."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    proj = data["project"]
    deps = list(proj.get("dependencies") or [])
    if llm:
        deps += list((proj.get("optional-dependencies") or {}).get("llm") or [])
    return deps


def conda_spec(settings: AzureMLSettings, llm: bool = True) -> dict[str, Any]:
    return {"name": "ghostprobe-gpu" if llm else "ghostprobe-client", "channels": ["conda-forge"],
            "dependencies": ["python=3.11", "pip", {"pip": project_requirements(llm) + list(settings.extra_pip)}]}


def is_worker_job(plan: BatchPlan) -> bool:
    """A videollama2 evaluation: the GPU worker runs inside the job (engines/cloud/videollama2_job.py)."""
    return str((plan.settings or {}).get("engine") or plan.identity.get("engine")) == "videollama2"


def worker_env_vars(plan: BatchPlan, settings: AzureMLSettings) -> dict[str, str]:
    """How the job starts the worker: its Python (the curated image's), requirements, package, adapter, model
    and the V100 options (float16, device_map=auto, eager attention)."""
    model = (plan.settings or {}).get("model") or plan.identity.get("model") or VIDEOLLAMA2_MODEL
    env = {"GHOSTPROBE_WORKER_PYTHON": settings.worker_python, "GHOSTPROBE_WORKER_REQUIREMENTS": WORKER_REQUIREMENTS,
           "GHOSTPROBE_WORKER_PACKAGE": settings.worker_package, "GHOSTPROBE_WORKER_ADAPTER": settings.worker_adapter,
           "GHOSTPROBE_WORKER_MODEL": str(model), "GHOSTPROBE_WORKER_DTYPE": settings.worker_dtype,
           "GHOSTPROBE_WORKER_DEVICE_MAP": settings.worker_device_map, "GHOSTPROBE_WORKER_ATTN": settings.worker_attn,
           "GHOSTPROBE_WORKER_PORT": "8008"}
    if settings.worker_options:
        env["GHOSTPROBE_WORKER_OPTIONS"] = " ".join(settings.worker_options)
    return env


def job_name(plan: BatchPlan) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", f"gp-eval-{plan.run_id}".lower()).strip("-")
    return name[:250]


def stage_code(plan: BatchPlan, dest: Path) -> Path:
    """A snapshot of the project plus ``job/plan.json``: the job's code (uploaded by the SDK)."""
    dest = Path(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "data", ".venv*")
    for part in CODE_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / part)
    (dest / "job").mkdir(parents=True, exist_ok=True)
    (dest / "job" / "plan.json").write_text(json.dumps(asdict(plan), ensure_ascii=False, indent=2, default=str),
                                           encoding="utf-8")
    (dest / ".amlignore").write_text("__pycache__/\n*.pyc\ndata/\n.venv*/\n", encoding="utf-8")
    return dest


def build_environment(settings: AzureMLSettings, worker: bool = False):
    from azure.ai.ml.entities import Environment

    if worker:  # videollama2: the ACPT curated image (the worker's Python and torch) + GhostProbe as a client
        return Environment(image=settings.worker_image, conda_file=conda_spec(settings, llm=False),
                           description="GhostProbe + VideoLLaMA2 worker: the image of AzureML-ACPT-pytorch-1.13-py38-"
                                       "cuda11.7-gpu (the worker's Python, torch 1.13, CUDA 11.7; the worker's "
                                       f"requirements {WORKER_REQUIREMENTS} added on the node) + GhostProbe's requirements")
    return Environment(image=settings.image, conda_file=conda_spec(settings),
                       description="GhostProbe GPU worker: curated Azure ML GPU base image + the project's requirements")


def _env_vars() -> dict[str, str]:
    return {"PYTHONUNBUFFERED": "1", "GHOSTPROBE_DATA_DIR": "/tmp/ghostprobe", "HF_HUB_DISABLE_TELEMETRY": "1",
            "GRADIO_ANALYTICS_ENABLED": "False"}


def _videos_input(settings: AzureMLSettings):
    from azure.ai.ml import Input
    from azure.ai.ml.constants import AssetTypes, InputOutputModes

    if not settings.videos:
        raise EngineError("Say where the videos are in Azure: --videos azureml://datastores/<store>/paths/<folder> "
                          "or a data asset azureml:<name>:<version> (GHOSTPROBE_AZUREML_VIDEOS).")
    return Input(type=AssetTypes.URI_FOLDER, path=settings.videos, mode=InputOutputModes.RO_MOUNT)


def build_job(plan: BatchPlan, settings: AzureMLSettings, code_dir: Path):
    """The azure-ai-ml job entity: a command job, or a parallel job when ``settings.parallel``."""
    from azure.ai.ml import Output, command
    from azure.ai.ml.constants import AssetTypes, InputOutputModes

    if not settings.compute and not settings.instance_type:
        raise EngineError("Name a compute cluster (--compute) or a serverless --instance-type such as Standard_NC24s_v3.")
    worker = is_worker_job(plan)
    if worker and settings.parallel:
        raise EngineError("A videollama2 job runs as one command job (the worker spreads the model over one node's "
                          "GPUs with device_map=auto); drop --parallel.")
    if worker and int(settings.instance_count or 1) != 1:
        raise EngineError("A videollama2 job uses one node (--instance-count 1): every node of a command job would "
                          "answer every video.")
    env = build_environment(settings, worker=worker)
    name = job_name(plan)
    tags = {"ghostprobe_run": plan.run_id, "engine": str(plan.identity.get("engine")),
            "model": str(plan.identity.get("model") or ""), "videos": str(len(plan.videos))}
    outputs = {"results": Output(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RW_MOUNT)}
    if settings.parallel:
        from azure.ai.ml import Input
        from azure.ai.ml.dsl import pipeline
        from azure.ai.ml.parallel import RunFunction, parallel_run_function

        videos = _videos_input(settings)
        step = parallel_run_function(
            name="ghostprobe_eval_shard", display_name="GhostProbe eval shard",
            inputs={"videos": Input(type=AssetTypes.URI_FOLDER, mode=InputOutputModes.RO_MOUNT)},
            outputs=outputs, input_data="${{inputs.videos}}",
            instance_count=int(settings.parallel),
            instance_type=None if settings.compute else settings.instance_type,
            max_concurrency_per_instance=int(settings.processes_per_node),
            mini_batch_size=str(int(settings.mini_batch_size)), mini_batch_error_threshold=-1, error_threshold=-1,
            retry_settings={"max_retries": int(settings.max_retries), "timeout": int(settings.task_timeout_s)},
            logging_level="INFO", environment_variables=_env_vars(),
            task=RunFunction(code=str(code_dir), entry_script=PARALLEL_ENTRY, program_arguments="--plan job/plan.json",
                             environment=env, append_row_to="${{outputs.results}}"),
        )

        @pipeline(name=name, display_name=f"GhostProbe eval {plan.run_id} ({len(plan.videos)} videos, "
                                          f"{settings.parallel} nodes)",
                  experiment_name=EXPERIMENT, tags=tags, default_compute=settings.compute)
        def ghostprobe_eval(videos):
            shard = step(videos=videos)
            return {"results": shard.outputs.results}

        job = ghostprobe_eval(videos=videos)
        job.name = name
        if settings.compute:
            job.settings.default_compute = settings.compute
        return job
    kwargs: dict[str, Any] = {}
    if settings.compute:
        kwargs.update(compute=settings.compute, instance_count=int(settings.instance_count or 1))
    else:
        kwargs.update(instance_type=settings.instance_type, instance_count=int(settings.instance_count or 1))
    return command(
        name=name, display_name=f"GhostProbe eval {plan.run_id} ({len(plan.videos)} videos)",
        experiment_name=EXPERIMENT, tags=tags, code=str(code_dir),
        command=VIDEOLLAMA2_COMMAND if worker else WORKER_COMMAND,
        inputs={"videos": _videos_input(settings)}, outputs=outputs, environment=env,
        environment_variables={**_env_vars(), **(worker_env_vars(plan, settings) if worker else {})}, **kwargs)


def job_spec(job: Any) -> dict[str, Any]:
    """The job as the YAML/dict azure-ai-ml would write for it (what ``--dry-run`` prints)."""
    d = job._to_dict()
    return json.loads(json.dumps(d, default=str))


# -- the backend ----------------------------------------------------------------------------------
def _iso(t: Any) -> str | None:
    if t is None:
        return None
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        return t.isoformat()
    return str(t)


class AzureMLBackend:
    """Submit, poll, cancel and collect Azure ML jobs (engines.base.BatchBackend)."""

    backend = "azureml"
    delete_wait_s = 120.0  # how long `endpoints delete` waits for Azure to remove an endpoint

    def __init__(self, settings: AzureMLSettings | None = None, ml_client: Any = None, credential: Any = None,
                 **client_kwargs: Any):
        self.settings = settings or AzureMLSettings.from_env()
        self._client = ml_client
        self._credential = credential
        self._client_kwargs = client_kwargs

    def client(self):
        if self._client is None:
            miss = self.settings.missing()
            if miss:
                raise EngineError(availability(self.settings)[1])
            from azure.ai.ml import MLClient

            cred = self._credential
            if cred is None:
                from azure.identity import DefaultAzureCredential

                cred = DefaultAzureCredential()
            self._client = MLClient(cred, self.settings.subscription_id, self.settings.resource_group,
                                    self.settings.workspace, **self._client_kwargs)
        return self._client

    def _error(self, e: Exception, what: str) -> EngineError:
        from engines.redact import redact

        code = getattr(e, "status_code", None)
        first = (str(getattr(e, "message", "") or e).strip().splitlines() or [type(e).__name__])[0][:240]
        if code in (401, 403):
            return EngineError(f"Azure ML refused to {what} (HTTP {code}): the signed-in identity needs the "
                               "AzureML Data Scientist role on the workspace.")
        if code == 404:
            return EngineError(f"Azure ML could not {what}: not found (HTTP 404): check the workspace, compute and job name.")
        return EngineError(redact(f"Azure ML could not {what}: {first.rstrip('.')}."))

    def prepare(self, plan: BatchPlan, staging: Path) -> tuple[Any, dict[str, Any]]:
        code = stage_code(plan, Path(staging) / "code")
        job = build_job(plan, self.settings, code)
        return job, job_spec(job)

    def submit(self, plan: BatchPlan, store: Any = None) -> JobRef:
        with tempfile.TemporaryDirectory(prefix="gp-azureml-") as tmp:
            job, spec = self.prepare(plan, Path(tmp))
            try:
                created = self.client().jobs.create_or_update(job, experiment_name=EXPERIMENT)
            except EngineError:
                raise
            except Exception as e:  # azure-core HttpResponseError, ValidationException, credential errors …
                raise self._error(e, f"submit job {job.name}") from None
        name = getattr(created, "name", None) or job.name
        url = getattr(created, "studio_url", None) or self.settings.studio_url(name)
        ref = JobRef(job_id=f"azureml:{name}", backend="azureml", url=url)
        if store is not None:
            from reports import jobs as J

            J.add_job(store, job_id=ref.job_id, backend="azureml", kind="job", name=name,
                      state=map_state(getattr(created, "status", None)), provider_state=getattr(created, "status", None),
                      compute=self.settings.compute or "serverless", instance_type=self.settings.instance_type,
                      instance_count=self.settings.nodes, location=self.settings.location, url=url,
                      created_at=getattr(getattr(created, "creation_context", None), "created_at", None),
                      spec={"job": spec, "plan": asdict(plan), "parallel": bool(self.settings.parallel)})
        return ref

    @staticmethod
    def _name(job_id: str) -> str:
        return job_id.split(":", 1)[1] if job_id.startswith("azureml:") else job_id

    def poll(self, job_id: str, kind: str | None = None) -> JobStatus:
        if job_id.startswith("azureml-endpoint:") or kind == "endpoint":
            return self._poll_endpoint(job_id)
        try:
            job = self.client().jobs.get(self._name(job_id))
        except EngineError:
            raise
        except Exception as e:
            raise self._error(e, f"read job {self._name(job_id)}") from None
        status = getattr(job, "status", None)
        props = dict(getattr(job, "properties", None) or {})
        started = props.get("StartTimeUtc") or props.get("startTimeUtc")
        ended = props.get("EndTimeUtc") or props.get("endTimeUtc")
        msg = ""
        if map_state(status) == "failed":
            err = getattr(job, "error", None) or props.get("error")
            msg = str(getattr(err, "message", None) or err or "the job failed; see its logs in the studio.")
        st = JobStatus(job_id=f"azureml:{self._name(job_id)}", state=map_state(status), started_at=_iso(started),
                       ended_at=_iso(ended), message=msg)
        st.provider_state = status  # the provider's own word, shown beside our state
        return st

    def _poll_endpoint(self, job_id: str) -> JobStatus:
        """An online endpoint's state: in service (``running``) once the endpoint and a deployment have
        succeeded; its time in service (what is billed) starts when that deployment was created, and the
        instance count is the succeeded deployments' together. Gone (HTTP 404): ``deleted``."""
        name = job_id.split(":", 1)[1]
        c = self.client()
        try:
            ep = c.online_endpoints.get(name)
            deps = list(c.online_deployments.list(name))
        except Exception as e:
            if getattr(e, "status_code", None) == 404:
                st = JobStatus(job_id=job_id, state="deleted")
                st.provider_state = "Deleted"
                return st
            raise self._error(e, f"read online endpoint {name}") from None
        raw = getattr(ep, "provisioning_state", None)
        state = {"creating": "queued", "succeeded": "running", "updating": "running", "deleting": "running",
                 "failed": "failed", "canceled": "failed"}.get((raw or "").lower(), "queued")
        live = [d for d in deps if (getattr(d, "provisioning_state", None) or "").lower() in ("succeeded", "updating")]
        if state == "running" and (raw or "").lower() == "succeeded" and not live:
            state = "queued"  # the endpoint exists, but nothing serves (and bills) yet
        started = min((t for t in (getattr(getattr(d, "creation_context", None), "created_at", None) for d in live)
                       if t is not None), default=None)
        st = JobStatus(job_id=job_id, state=state, started_at=_iso(started) if state == "running" else None)
        st.provider_state = raw
        if live:
            st.instance_count = sum(int(getattr(d, "instance_count", None) or 1) for d in live)
        return st

    def provider_state(self, job_id: str) -> str | None:
        return getattr(self.client().jobs.get(self._name(job_id)), "status", None)

    def cancel(self, job_id: str, kind: str | None = None) -> None:
        if job_id.startswith("azureml-endpoint:") or kind == "endpoint":
            name = job_id.split(":", 1)[1]
            import contextlib
            import sys

            try:
                with contextlib.redirect_stdout(sys.stderr):  # the SDK's poll dots are not our output
                    poller = self.client().online_endpoints.begin_delete(name=name)
                    poller.wait(timeout=self.delete_wait_s)  # still "Deleting" then: a later refresh sees it gone
            except Exception as e:
                raise self._error(e, f"delete online endpoint {name}") from None
            return
        try:
            poller = self.client().jobs.begin_cancel(self._name(job_id))
            if hasattr(poller, "wait"):
                poller.wait(timeout=60)
        except EngineError:
            raise
        except Exception as e:
            raise self._error(e, f"cancel job {self._name(job_id)}") from None

    def collect(self, job_id: str, dest: Path, plan: dict[str, Any] | None = None, state: str = "completed") -> Path:
        """Download the ``results`` output into ``dest`` and return a run folder (manifest + predictions)."""
        dest = Path(dest)
        try:
            self.client().jobs.download(self._name(job_id), download_path=str(dest), output_name="results")
        except EngineError:
            raise
        except Exception as e:
            raise self._error(e, f"download the outputs of {self._name(job_id)}") from None
        return assemble_run_folder(dest, plan, job_id=job_id, state=state, location=self.settings.location)


def _find_results(root: Path) -> Path:
    for cand in (root / "named-outputs" / "results", root / "results", root):
        if cand.is_dir() and any(cand.iterdir()):
            return cand
    raise EngineError(f"The job's outputs in {root} hold no results folder.")


def assemble_run_folder(downloaded: Path, plan: dict[str, Any] | None, *, job_id: str | None = None,
                        state: str = "completed", location: str | None = None) -> Path:
    """A downloaded ``results`` output as a run folder: a command job wrote one itself; a parallel job's
    appended rows get the manifest from the plan (and the job's final state)."""
    from reports.run_folder import MANIFEST, PREDICTIONS, RunFolderWriter, read_run_folder
    from engines.cloud.worker import manifest_for

    res = _find_results(Path(downloaded))
    if (res / MANIFEST).exists():
        return res
    if plan is None:
        raise EngineError(f"{res} has no manifest.json and the job's plan is not known here.")
    rows = next((res / n for n in APPEND_ROW_FILES if (res / n).exists()), None)
    if rows is None:
        raise EngineError(f"The parallel job's outputs in {res} hold no {' or '.join(APPEND_ROW_FILES)}.")
    folder = res.parent / "run-folder"
    text = rows.read_text(encoding="utf-8")
    w = RunFolderWriter(folder, manifest_for(plan, job_id=job_id, location=location))
    w.close({"completed": "done", "failed": "failed", "canceled": "cancelled"}.get(state, "partial"),
            {"job_state": state})
    (folder / PREDICTIONS).write_text(text if text.endswith("\n") or not text else text + "\n", encoding="utf-8")
    read_run_folder(folder)  # every line checked now, one sentence for a bad one
    return folder


# -- the engine -----------------------------------------------------------------------------------
class AzureMLJobEngine(Engine):
    """A whole evaluation as an Azure ML job (kind batch): see the module docstring."""

    name = "azureml-job"
    title = "Azure ML job (GPU cluster, sharded evaluation)"
    kinds = frozenset({BATCH})
    remote = True

    def __init__(self, model: str | None = None, **config: Any):
        super().__init__(model=model, **config)
        known = set(AzureMLSettings.__dataclass_fields__)
        self.settings = AzureMLSettings.from_env(**{k: v for k, v in config.items() if k in known})
        self.backend = AzureMLBackend(self.settings, ml_client=config.get("ml_client"),
                                      credential=config.get("credential"))

    def availability(self) -> tuple[bool, str]:
        return availability(self.settings)

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "endpoint": None,
                "settings": {"compute": self.settings.compute, "instance_type": self.settings.instance_type,
                             "nodes": self.settings.nodes, "parallel": self.settings.parallel}}

    def cost_location(self) -> CostLocation:
        if self.settings.location:
            return CostLocation(self.settings.location, instances=self.settings.nodes)
        return CostLocation("azure", instances=self.settings.nodes, defaulted=True)

    def submit(self, plan: BatchPlan) -> JobRef:
        return self.backend.submit(plan)

    def poll(self, job_id: str) -> JobStatus:
        return self.backend.poll(job_id)

    def collect(self, job_id: str, dest: Path) -> Path:
        return self.backend.collect(job_id, dest)

    def cancel(self, job_id: str) -> None:
        self.backend.cancel(job_id)


# -- managed online endpoints ---------------------------------------------------------------------
SCORING_SCRIPT = "engines/cloud/azureml_score.py"


@dataclass
class OnlineSettings:
    endpoint: str
    deployment: str = "blue"
    instance_type: str = "Standard_NC6s_v3"
    instance_count: int = 1
    engine: str = "transformers"
    model_path: str | None = None  # a local model folder the SDK uploads, or azureml:<model>:<version>
    engine_env: dict[str, str] = field(default_factory=dict)  # e.g. GHOSTPROBE_HF_DTYPE=float16
    request_timeout_ms: int = 90000


def build_online(o: OnlineSettings, settings: AzureMLSettings, code_dir: Path):
    """(ManagedOnlineEndpoint with key auth, ManagedOnlineDeployment running the scoring script)."""
    from azure.ai.ml.entities import (CodeConfiguration, Environment, ManagedOnlineDeployment, ManagedOnlineEndpoint,
                                      Model, OnlineRequestSettings)

    spec = conda_spec(settings)
    spec["dependencies"][-1]["pip"].append("azureml-inference-server-http>=1.4")
    env = Environment(image=settings.image, conda_file=spec,
                      description="GhostProbe scoring: curated Azure ML GPU base image + the project's requirements "
                                  "+ azureml-inference-server-http")
    endpoint = ManagedOnlineEndpoint(name=o.endpoint, auth_mode="key",
                                     description="GhostProbe video LLM (engines/cloud/contract.py)",
                                     tags={"ghostprobe": "video-chat/1"})
    model = None
    if o.model_path:
        model = o.model_path if o.model_path.startswith("azureml:") else Model(path=o.model_path, name=f"{o.endpoint}-model")
    env_vars = {"GHOSTPROBE_SCORE_ENGINE": o.engine, "HF_HUB_OFFLINE": "1", **o.engine_env}
    deployment = ManagedOnlineDeployment(
        name=o.deployment, endpoint_name=o.endpoint, model=model, environment=env,
        code_configuration=CodeConfiguration(code=str(code_dir), scoring_script=SCORING_SCRIPT),
        instance_type=o.instance_type, instance_count=int(o.instance_count), environment_variables=env_vars,
        request_settings=OnlineRequestSettings(request_timeout_ms=int(o.request_timeout_ms), max_concurrent_requests_per_instance=1))
    return endpoint, deployment


def stage_scoring_code(dest: Path) -> Path:
    dest = Path(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "data", ".venv*")
    for part in CODE_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


def deploy_online(backend: AzureMLBackend, o: OnlineSettings, store: Any = None, wait: bool = True) -> dict[str, Any]:
    """Create (or update) the endpoint and its deployment — azure-ai-ml's long-running operations, polled
    to the end — route all traffic to the deployment, and record the endpoint as a job (its state and
    time in service read back from Azure). ``wait=False`` returns once the deployment is accepted; its
    traffic is then not routed (``endpoints deploy`` again, or the studio, does it)."""
    import contextlib
    import sys

    with tempfile.TemporaryDirectory(prefix="gp-online-") as tmp, contextlib.redirect_stdout(sys.stderr):
        # azure-ai-ml's polling prints a "." per poll on stdout: progress goes to stderr, stdout stays ours
        endpoint, deployment = build_online(o, backend.settings, stage_scoring_code(Path(tmp) / "code"))
        c = backend.client()
        try:
            c.online_endpoints.begin_create_or_update(endpoint).result()
            poller = c.online_deployments.begin_create_or_update(deployment)
            if wait:
                poller.result()
                endpoint.traffic = {o.deployment: 100}
                c.online_endpoints.begin_create_or_update(endpoint).result()
            ep = c.online_endpoints.get(o.endpoint)
        except EngineError:
            raise
        except Exception as e:
            raise backend._error(e, f"deploy online endpoint {o.endpoint}") from None
    job_id = f"azureml-endpoint:{o.endpoint}"
    out = {"job_id": job_id, "endpoint": o.endpoint, "deployment": o.deployment,
           "scoring_uri": getattr(ep, "scoring_uri", None), "traffic": dict(getattr(ep, "traffic", None) or {}),
           "state": None}
    if store is not None:
        from engines.cloud import service as S
        from reports import jobs as J

        J.add_job(store, job_id=job_id, backend="azureml", kind="endpoint", name=o.endpoint, state="queued",
                  provider_state="Creating", compute="managed online endpoint", instance_type=o.instance_type,
                  instance_count=o.instance_count, location=f"azure:{o.instance_type}",
                  url=f"https://ml.azure.com/endpoints/realtime/{o.endpoint}/detail",
                  created_at=_endpoint_created(ep),
                  spec={"endpoint": job_spec(endpoint), "deployment": job_spec(deployment),
                        "scoring_uri": out["scoring_uri"]})
        out["state"] = S.refresh(store, job_id, backend, ingest=False)["state"]
    return out


def _endpoint_created(ep: Any) -> datetime | None:
    """When Azure created the endpoint (azure-ai-ml puts systemData.createdAt in its properties)."""
    raw = (getattr(ep, "properties", None) or {}).get("createdAt")
    try:
        return datetime.strptime(raw, "%Y-%m-%dT%H:%M:%S.%f%z") if raw else None
    except (TypeError, ValueError):
        return None


def online_engine(backend: AzureMLBackend, endpoint: str, **config: Any):
    """The ``azureml`` chat engine for a deployed endpoint: its scoring URI and key read from Azure ML
    (``online_endpoints.get`` / ``get_keys``), the deployment taking its traffic and that deployment's
    instance type and count (for cost). The key stays inside the engine: never shown, logged or stored."""
    from engines.cloud.endpoint_engine import AzureMLEndpointEngine

    c = backend.client()
    try:
        ep = c.online_endpoints.get(endpoint)
        keys = c.online_endpoints.get_keys(endpoint)
        traffic = {k: v for k, v in (getattr(ep, "traffic", None) or {}).items() if v}
        dep_name = max(traffic, key=traffic.get) if traffic else None
        dep = c.online_deployments.get(dep_name, endpoint) if dep_name else None
    except EngineError:
        raise
    except Exception as e:
        raise backend._error(e, f"read online endpoint {endpoint}") from None
    if dep is None:
        raise EngineError(f"Online endpoint {endpoint} routes no traffic to a deployment yet; "
                          "`ghostprobe endpoints deploy` waits for one and routes it.")
    key = getattr(keys, "primary_key", None)
    if not key:
        raise EngineError(f"Online endpoint {endpoint} has no key (auth mode {getattr(ep, 'auth_mode', '?')}); "
                          "GhostProbe deploys with key auth.")
    return AzureMLEndpointEngine(url=ep.scoring_uri, key=key, deployment=dep_name,
                                 instance_type=getattr(dep, "instance_type", None),
                                 instances=getattr(dep, "instance_count", None) or 1, **config)
