"""Chat engines for a video LLM behind an endpoint that speaks engines/cloud/contract.py.

- ``azureml``: an Azure ML managed online endpoint (scoring script engines/cloud/azureml_score.py).
  ``GHOSTPROBE_AZUREML_ENDPOINT_URL`` (the scoring URI, ``https://<endpoint>.<region>.inference.ml.azure.com/score``),
  ``GHOSTPROBE_AZUREML_ENDPOINT_KEY`` (the endpoint key, sent as ``Authorization: Bearer``; never shown,
  logged or stored), optional ``GHOSTPROBE_AZUREML_DEPLOYMENT`` (header ``azureml-model-deployment``),
  ``GHOSTPROBE_AZUREML_ENDPOINT_SKU`` (its instance type, for cost) and ``…_INSTANCES``.
- ``sagemaker-vlm``: a SageMaker real-time endpoint with the bring-your-own-container server
  (engines/cloud/byoc_server.py), called with boto3's ``sagemaker-runtime`` ``invoke_endpoint``.
  ``GHOSTPROBE_SAGEMAKER_VLM_ENDPOINT`` (its name), region and credentials from boto3's chain,
  ``GHOSTPROBE_SAGEMAKER_VLM_SKU`` (e.g. ``ml.g5.xlarge``, for cost). (Engine ``sagemaker`` is AI-VAD's
  endpoint, engines/vad/sagemaker.py.)

Both send the sampled frames as base64 JPEGs with their times, so the video is sampled here exactly as
for a local engine, and read the answer text (verdict parsing stays in the core).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from engines.base import CallRecord, CostLocation, Engine, GenerationOptions, Message
from engines.errors import EngineError
from engines.types import Clip


from engines.settings import env as _env  # noqa: E402  (the one settings object)


def _call_record(engine: str, resp: dict[str, Any], t0: float, preprocess_s: float, device: str) -> CallRecord:
    timings = resp.get("timings") or {}
    tokens = resp.get("tokens") or {}
    return CallRecord(engine=engine, model=resp.get("model"), revision=resp.get("revision"),
                      latency_s=time.perf_counter() - t0, preprocess_s=preprocess_s,
                      generate_s=timings.get("generate_s"), prompt_tokens=tokens.get("prompt"),
                      completion_tokens=tokens.get("completion"), device=device,
                      extra={"server_device": resp.get("device"), "server_timings": timings,
                             "server_verdict": resp.get("verdict")})


class AzureMLEndpointEngine(Engine):
    name = "azureml"
    title = "Azure ML online endpoint (video LLM behind the GhostProbe scoring script)"
    remote = True
    default_sampling = {"num_frames": 16, "fps": None, "max_side": 448}

    def __init__(self, model: str | None = None, **config: Any):
        super().__init__(model=model or _env("GHOSTPROBE_AZUREML_ENDPOINT_MODEL"), **config)
        self.url = config.get("url") or _env("GHOSTPROBE_AZUREML_ENDPOINT_URL")
        self._key = config.get("key") or _env("GHOSTPROBE_AZUREML_ENDPOINT_KEY")
        self.deployment = config.get("deployment") or _env("GHOSTPROBE_AZUREML_DEPLOYMENT")
        self.sku = config.get("instance_type") or _env("GHOSTPROBE_AZUREML_ENDPOINT_SKU")
        self.instances = int(config.get("instances") or _env("GHOSTPROBE_AZUREML_ENDPOINT_INSTANCES", "1"))

    def _host(self) -> str:
        p = urlparse(self.url or "")
        return f"{p.scheme}://{p.netloc}" if p.netloc else (self.url or "?")

    def availability(self) -> tuple[bool, str]:
        if not self.url:
            return False, ("Not configured: set GHOSTPROBE_AZUREML_ENDPOINT_URL to the endpoint's scoring URI and "
                           "GHOSTPROBE_AZUREML_ENDPOINT_KEY to its key (`az ml online-endpoint get-credentials`).")
        if not self._key:
            return False, "Set GHOSTPROBE_AZUREML_ENDPOINT_KEY: the endpoint's key (`az ml online-endpoint get-credentials`)."
        return True, f"configured, not yet contacted: {self._host()}" + (
            f", deployment {self.deployment}" if self.deployment else "") + "."

    def describe(self) -> dict[str, Any]:
        from engines.redact import endpoint

        return {"model": self.model, "endpoint": endpoint(self.url) if self.url else None,
                "settings": {"deployment": self.deployment} if self.deployment else {}}

    def cost_location(self) -> CostLocation:
        if self.sku:
            return CostLocation(f"azure:{self.sku}", instances=self.instances)
        return CostLocation("azure", instances=self.instances, defaulted=True)

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key and len(self._key) >= 4 else text

    def stream_chat(self, clip: Clip | None, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        import httpx

        from engines.cloud.contract import encode_request

        ok, why = self.availability()
        if not ok:
            raise EngineError(why)
        self.last_call = None
        t0 = time.perf_counter()
        body = json.dumps(encode_request(clip, messages, options)).encode("utf-8")
        preprocess_s = time.perf_counter() - t0
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self._key}"}
        if self.deployment:
            headers["azureml-model-deployment"] = self.deployment
        timeout = float(options.timeout_s or 300)
        host = self._host()
        try:
            r = httpx.post(self.url, content=body, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0))
        except httpx.TimeoutException:
            raise EngineError(f"The Azure ML endpoint at {host} did not answer within {timeout:g} s.") from None
        except httpx.HTTPError:
            raise EngineError(f"Cannot connect to the Azure ML endpoint at {host}: is it deployed and is "
                              "GHOSTPROBE_AZUREML_ENDPOINT_URL right?") from None
        resp = self._read(r, host)
        self.last_call = _call_record(self.name, resp, t0, preprocess_s, f"remote {host}")
        text = str(resp.get("text") or "")
        if text:
            yield text

    def _read(self, r: Any, host: str) -> dict[str, Any]:
        try:
            doc = r.json()
        except ValueError:
            doc = {}
        if r.status_code in (401, 403):
            raise EngineError(f"The Azure ML endpoint at {host} rejected the key (HTTP {r.status_code}): check "
                              "GHOSTPROBE_AZUREML_ENDPOINT_KEY.")
        if r.status_code != 200:
            why = doc.get("error") if isinstance(doc, dict) else None
            why = self._scrub(str(why or r.text[:200] or "no reason given")).rstrip(".")
            raise EngineError(f"The Azure ML endpoint at {host} answered HTTP {r.status_code}: {why}.")
        if not isinstance(doc, dict) or "text" not in doc:
            raise EngineError(f"The Azure ML endpoint at {host} did not answer with the GhostProbe contract "
                              "(no \"text\"): is engines/cloud/azureml_score.py its scoring script?")
        return doc


class SageMakerEndpointEngine(Engine):
    name = "sagemaker-vlm"
    title = "SageMaker endpoint (video LLM in the GhostProbe container)"
    remote = True
    default_sampling = {"num_frames": 16, "fps": None, "max_side": 448}

    def __init__(self, model: str | None = None, **config: Any):
        super().__init__(model=model or _env("GHOSTPROBE_SAGEMAKER_VLM_MODEL"), **config)
        self.endpoint_name = config.get("endpoint") or _env("GHOSTPROBE_SAGEMAKER_VLM_ENDPOINT")
        self.sku = config.get("instance_type") or _env("GHOSTPROBE_SAGEMAKER_VLM_SKU")
        self.instances = int(config.get("instances") or _env("GHOSTPROBE_SAGEMAKER_VLM_INSTANCES", "1"))
        self._client = config.get("client")

    def availability(self) -> tuple[bool, str]:
        from engines.cloud.sagemaker import availability

        if not self.endpoint_name:
            return False, "Not configured: set GHOSTPROBE_SAGEMAKER_VLM_ENDPOINT to the endpoint's name."
        ok, why = availability()
        if not ok:
            return False, why
        return True, f"configured, not yet contacted: endpoint {self.endpoint_name}."

    def describe(self) -> dict[str, Any]:
        from engines.cloud.sagemaker import region

        return {"model": self.model, "endpoint": f"sagemaker://{region() or '?'}/{self.endpoint_name}"}

    def cost_location(self) -> CostLocation:
        if self.sku:
            return CostLocation(f"aws:{self.sku}", instances=self.instances)
        return CostLocation("aws", instances=self.instances, defaulted=True)

    def client(self):
        if self._client is None:
            import boto3

            from engines.cloud.sagemaker import region

            self._client = boto3.client("sagemaker-runtime", region_name=region())
        return self._client

    def stream_chat(self, clip: Clip | None, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        from engines.cloud.contract import encode_request

        ok, why = self.availability()
        if not ok:
            raise EngineError(why)
        self.last_call = None
        t0 = time.perf_counter()
        body = json.dumps(encode_request(clip, messages, options)).encode("utf-8")
        preprocess_s = time.perf_counter() - t0
        try:
            r = self.client().invoke_endpoint(EndpointName=self.endpoint_name, ContentType="application/json",
                                              Accept="application/json", Body=body)
            doc = json.loads(r["Body"].read())
        except Exception as e:  # botocore ClientError / EndpointConnectionError
            err = getattr(e, "response", {}).get("Error", {}) if hasattr(e, "response") else {}
            msg = err.get("Message") or str(e).splitlines()[0]
            try:  # the container's own sentence, when it gave one (SageMaker quotes the body in its message)
                start = msg.find("{")
                if start >= 0:
                    msg = json.loads(msg[start: msg.rfind("}") + 1]).get("error", msg)
            except (ValueError, AttributeError):
                pass
            raise EngineError(f"SageMaker endpoint {self.endpoint_name} failed: {str(msg)[:240].rstrip('.')}.") from None
        if not isinstance(doc, dict) or "text" not in doc:
            raise EngineError(f"SageMaker endpoint {self.endpoint_name} did not answer with the GhostProbe contract.")
        self.last_call = _call_record(self.name, doc, t0, preprocess_s, f"remote sagemaker:{self.endpoint_name}")
        text = str(doc.get("text") or "")
        if text:
            yield text
