"""SageMaker endpoints and batch transform jobs in the same jobs table (reports.jobs).

- :meth:`SageMakerBackend.sync` lists the account's endpoints and transform jobs (``list_endpoints``,
  ``list_transform_jobs``) and records each as a job of kind ``endpoint`` / ``transform`` with its
  compute (instance type × count from the endpoint config or the transform resources), state and the
  provider's times. Refreshing one is :meth:`poll`.
- States: endpoint Creating → queued; InService, Updating, SystemUpdating, RollingBack, Deleting,
  OutOfService → running (instances are up and billed); Failed → failed; gone → deleted. Transform
  InProgress/Stopping → running; Completed; Failed; Stopped → canceled.
- Cost: an endpoint's time in service (from its creation time, when SageMaker starts provisioning its
  instances, to now or its deletion) × instance count × the catalogue price of ``aws:<instance type>``;
  a transform job's start → end. A SKU with no price is "unknown" (``ghostprobe prices set aws …``).
- :func:`deploy_endpoint` creates model + endpoint config + endpoint for a bring-your-own-container
  image that speaks the scoring contract (engines/cloud/contract.py: ``GET /ping``, ``POST /invocations``).

Region from ``GHOSTPROBE_SAGEMAKER_REGION`` / ``AWS_REGION`` / ``AWS_DEFAULT_REGION``; credentials only
from boto3's own chain (environment, shared files, SSO, instance role) — never read, shown or stored here.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import datetime, timezone
from typing import Any

from engines.base import JobStatus
from engines.errors import EngineError

ENDPOINT_STATES = {"creating": "queued", "inservice": "running", "updating": "running", "systemupdating": "running",
                   "rollingback": "running", "deleting": "running", "outofservice": "running", "failed": "failed"}
TRANSFORM_STATES = {"inprogress": "running", "stopping": "running", "completed": "completed", "failed": "failed",
                    "stopped": "canceled"}


def region() -> str | None:
    for k in ("GHOSTPROBE_SAGEMAKER_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(k):
            return os.environ[k]
    return None


def availability() -> tuple[bool, str]:
    """Whether SageMaker can be reached from here, as one sentence (boto3's chain is consulted, no API call)."""
    if importlib.util.find_spec("boto3") is None:
        return False, "SageMaker needs boto3: pip install 'ghostprobe-studio[cloud]'."
    if not region():
        return False, "SageMaker is not configured: set AWS_REGION (or GHOSTPROBE_SAGEMAKER_REGION), e.g. us-east-1."
    import boto3

    try:
        creds = boto3.Session(region_name=region()).get_credentials()
    except Exception as e:  # a broken profile file
        return False, f"AWS credentials could not be read ({type(e).__name__}); check ~/.aws/config."
    if creds is None:
        return False, ("No AWS credentials found by boto3 (environment, ~/.aws/credentials, SSO or an instance "
                       "role); run `aws configure` or `aws sso login`.")
    return True, f"configured, not yet contacted: region {region()}."


def _iso(t: Any) -> str | None:
    if t is None:
        return None
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        return t.isoformat()
    return str(t)


def console_url(kind: str, name: str, reg: str | None) -> str:
    r = reg or "us-east-1"
    part = "endpoints" if kind == "endpoint" else "transform-jobs"
    return f"https://{r}.console.aws.amazon.com/sagemaker/home?region={r}#/{part}/{name}"


class SageMakerBackend:
    backend = "sagemaker"

    def __init__(self, region_name: str | None = None, client: Any = None, **_: Any):
        self.region = region_name or region()
        self._client = client

    def client(self):
        if self._client is None:
            ok, why = availability()
            if not ok:
                raise EngineError(why)
            import boto3

            self._client = boto3.client("sagemaker", region_name=self.region)
        return self._client

    def _error(self, e: Exception, what: str) -> EngineError:
        from engines.redact import redact

        code = getattr(e, "response", {}).get("Error", {}).get("Code") if hasattr(e, "response") else None
        msg = getattr(e, "response", {}).get("Error", {}).get("Message") if hasattr(e, "response") else None
        if code in ("AccessDeniedException", "UnrecognizedClientException", "InvalidClientTokenId"):
            return EngineError(f"SageMaker refused to {what} ({code}): the AWS identity needs sagemaker:Describe*, "
                               "List* (and Create*/Delete*/Stop* to change things).")
        first = (msg or str(e) or type(e).__name__).splitlines()[0][:240].rstrip(".")
        return EngineError(redact(f"SageMaker could not {what}: {first}."))

    @staticmethod
    def _name(job_id: str) -> tuple[str, str]:
        kind, _, name = job_id.partition(":")
        if kind == "sagemaker-endpoint":
            return "endpoint", name
        if kind == "sagemaker-transform":
            return "transform", name
        raise EngineError(f"{job_id} is not a SageMaker endpoint or transform job id.")

    @staticmethod
    def job_id(kind: str, name: str) -> str:
        return f"sagemaker-{kind}:{name}"

    # -- reading ----------------------------------------------------------------------------------
    def _endpoint_compute(self, d: dict[str, Any]) -> tuple[str | None, int | None]:
        c = self.client()
        itype, count = None, None
        try:
            cfg = c.describe_endpoint_config(EndpointConfigName=d["EndpointConfigName"])
            v = (cfg.get("ProductionVariants") or [{}])[0]
            itype, count = v.get("InstanceType"), v.get("InitialInstanceCount")
        except Exception:  # noqa: BLE001 - the config may be gone; the endpoint still reports its variants
            pass
        pv = (d.get("ProductionVariants") or [{}])[0]
        count = pv.get("CurrentInstanceCount") or count
        return itype, count

    def describe(self, kind: str, name: str) -> dict[str, Any]:
        """The endpoint or transform job as a jobs-table row (state, compute, times)."""
        c = self.client()
        try:
            if kind == "endpoint":
                d = c.describe_endpoint(EndpointName=name)
                itype, count = self._endpoint_compute(d)
                raw = d.get("EndpointStatus")
                state = ENDPOINT_STATES.get((raw or "").lower(), "queued")
                return {"kind": kind, "name": name, "provider_state": raw, "state": state, "instance_type": itype,
                        "instance_count": count, "created_at": d.get("CreationTime"),
                        "started_at": d.get("CreationTime") if state in ("running", "failed") else None,
                        "ended_at": d.get("LastModifiedTime") if state == "failed" else None,
                        "message": d.get("FailureReason") or ""}
            d = c.describe_transform_job(TransformJobName=name)
            raw = d.get("TransformJobStatus")
            res = d.get("TransformResources") or {}
            return {"kind": kind, "name": name, "provider_state": raw,
                    "state": TRANSFORM_STATES.get((raw or "").lower(), "queued"),
                    "instance_type": res.get("InstanceType"), "instance_count": res.get("InstanceCount"),
                    "created_at": d.get("CreationTime"), "started_at": d.get("TransformStartTime"),
                    "ended_at": d.get("TransformEndTime"), "message": d.get("FailureReason") or ""}
        except Exception as e:
            code = getattr(e, "response", {}).get("Error", {}).get("Code") if hasattr(e, "response") else None
            msg = str(getattr(e, "response", {}).get("Error", {}).get("Message", "")) if hasattr(e, "response") else ""
            low = msg.lower()
            if code == "ValidationException" and ("not found" in low or "could not find" in low):
                return {"kind": kind, "name": name, "provider_state": "Deleted",
                        "state": "deleted" if kind == "endpoint" else "failed", "message": msg}
            raise self._error(e, f"describe {kind} {name}") from None

    def poll(self, job_id: str, kind: str | None = None) -> JobStatus:
        k, name = self._name(job_id)
        d = self.describe(k, name)
        st = JobStatus(job_id=job_id, state=d["state"], started_at=_iso(d.get("started_at")),
                       ended_at=_iso(d.get("ended_at")), message=d.get("message") or "")
        st.provider_state = d.get("provider_state")
        st.instance_count = d.get("instance_count")
        return st

    def sync(self, store: Any) -> list[str]:
        """Record every endpoint and transform job of the account/region; refresh those already known.
        Returns the job ids seen."""
        from reports import jobs as J

        c = self.client()
        seen = []
        try:
            endpoints = [("endpoint", e["EndpointName"]) for page in c.get_paginator("list_endpoints").paginate()
                         for e in page.get("Endpoints", [])]
            transforms = [("transform", t["TransformJobName"]) for page in
                          c.get_paginator("list_transform_jobs").paginate()
                          for t in page.get("TransformJobSummaries", [])]
        except Exception as e:
            raise self._error(e, "list endpoints and transform jobs") from None
        for kind, name in endpoints + transforms:
            jid = self.job_id(kind, name)
            d = self.describe(kind, name)
            J.add_job(store, job_id=jid, backend="sagemaker", kind=kind, name=name, state="queued",
                      provider_state=d.get("provider_state"), compute=f"SageMaker {kind}",
                      instance_type=d.get("instance_type"), instance_count=d.get("instance_count"),
                      location=f"aws:{d['instance_type']}" if d.get("instance_type") else None,
                      created_at=d.get("created_at"), url=console_url(kind, name, self.region))
            self._apply(store, jid, d)
            seen.append(jid)
        # endpoints we knew that are gone now
        for job in J.list_jobs(store, backend="sagemaker", kind="endpoint", active=True):
            if job["job_id"] not in seen:
                J.record_state(store, job["job_id"], "deleted", provider_state="Deleted")
                J.update_cost(store, job["job_id"])
        return seen

    def _apply(self, store: Any, job_id: str, d: dict[str, Any]) -> None:
        from reports import jobs as J

        st = JobStatus(job_id=job_id, state=d["state"], started_at=_iso(d.get("started_at")),
                       ended_at=_iso(d.get("ended_at")), message=d.get("message") or "")
        history = []
        if d["state"] in J.FINAL and d.get("started_at"):
            history.append((_iso(d["started_at"]), "running"))
        st.history = history
        J.apply_status(store, st, provider_state=d.get("provider_state"), instance_count=d.get("instance_count"))

    # -- changing ---------------------------------------------------------------------------------
    def cancel(self, job_id: str, kind: str | None = None) -> None:
        """Stop a transform job; delete an endpoint (what stops its bill)."""
        k, name = self._name(job_id)
        c = self.client()
        try:
            if k == "transform":
                c.stop_transform_job(TransformJobName=name)
            else:
                c.delete_endpoint(EndpointName=name)
        except Exception as e:
            raise self._error(e, f"{'stop' if k == 'transform' else 'delete'} {k} {name}") from None


def deploy_endpoint(client: Any, *, name: str, image_uri: str, role_arn: str, instance_type: str,
                    instance_count: int = 1, model_data_url: str | None = None,
                    environment: dict[str, str] | None = None) -> dict[str, Any]:
    """A bring-your-own-container endpoint: model (image + optional weights tarball) → endpoint config →
    endpoint. The container must answer ``GET /ping`` and ``POST /invocations`` (engines/cloud/contract.py)."""
    container: dict[str, Any] = {"Image": image_uri, "Environment": dict(environment or {})}
    if model_data_url:
        container["ModelDataUrl"] = model_data_url
    try:
        client.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=role_arn)
        client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
            "VariantName": "primary", "ModelName": name, "InitialInstanceCount": int(instance_count),
            "InstanceType": instance_type, "InitialVariantWeight": 1.0}])
        return client.create_endpoint(EndpointName=name, EndpointConfigName=name)
    except Exception as e:
        raise SageMakerBackend(client=client)._error(e, f"deploy endpoint {name}") from None
