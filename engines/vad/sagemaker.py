"""AI-VAD on a SageMaker endpoint (``sagemaker``): ``sagemaker-runtime.invoke_endpoint`` per chunk.

Frames go inline as base64 JPEG in ``application/json`` ``{"images": [...], "clip": true}`` requests,
split so every body stays under the 6 MB payload limit (consecutive chunks overlap by one frame, so
every pair is scored exactly once), or through S3 (``s3_prefix``: frames uploaded, URIs sent).
Throttling and 5xx answers are retried with exponential backoff. Missing credentials, a missing
endpoint and persistent throttling each become one sentence. The response is the container's
(:mod:`engines.vad.serve.server`); the verdict follows :mod:`engines.vad.verdict`.

**Asynchronous inference** (long videos; ``async_input="s3://bucket/prefix"``, an endpoint deployed
with ``AsyncInferenceConfig``, :func:`engines.vad.serve.deploy.deploy` ``async_output=``): each request
JSON (the same body, split only above the 1 GB asynchronous payload limit) is uploaded to S3,
``sagemaker-runtime.invoke_endpoint_async(EndpointName, InputLocation)`` queues it, and the client
polls the returned ``OutputLocation`` and ``FailureLocation`` with backoff (``poll_s`` growing ×1.5 up
to ``max_poll_s``) until ``async_timeout_s``; the object at the output location is the container's
response, parsed as above. A failure file, a timeout and a missing bucket are each one sentence.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any, ClassVar

import numpy as np

from engines.base import DETECTOR, Artifacts, Box, CallRecord, CostLocation, Detection, Engine, GenerationOptions
from engines.errors import EngineError
from engines.types import Clip, Verdict

MAX_BODY = 6 * 1024 * 1024
ASYNC_MAX_BODY = 1024 * 1024 * 1024  # SageMaker asynchronous inference: payloads up to 1 GB
SAFETY = 0.9  # keep each body under 90 % of the limit (JSON overhead, headers)
RETRYABLE = ("ThrottlingException", "ServiceUnavailable", "InternalFailure", "ModelNotReadyException")


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise EngineError("A frame could not be encoded as JPEG for the endpoint.")
    return buf.tobytes()


def chunk_frames(encoded: list[str], limit: int = int(MAX_BODY * SAFETY)) -> list[tuple[int, int]]:
    """``[(start, end)]`` index ranges (end exclusive) whose JSON bodies stay under ``limit`` bytes;
    consecutive ranges share one frame so the pairs (i, i+1) are each scored once."""
    out = []
    i, n = 0, len(encoded)
    while i < n - 1:
        size = 40  # {"images": [], "clip": true, "maps": true}
        j = i
        while j < n and size + len(encoded[j]) + 4 <= limit:
            size += len(encoded[j]) + 4
            j += 1
        if j - i < 2:
            raise EngineError(f"Two frames do not fit in one {limit / 1e6:.1f} MB request; lower max_side.")
        out.append((i, j))
        i = j - 1
    return out


class SageMakerVadEngine(Engine):
    name: ClassVar[str] = "sagemaker"
    title: ClassVar[str] = "AI-VAD 异常检测 (SageMaker 端点)"
    kinds: ClassVar[frozenset[str]] = frozenset({DETECTOR})
    remote: ClassVar[bool] = True
    anomaly: ClassVar[bool] = True
    default_sampling: ClassVar[dict[str, Any]] = {"num_frames": None, "fps": 2, "max_side": 640}
    estimate_basis: ClassVar[str] = "SageMaker 端点（GPU），按每帧对约 1 秒估计，未实测"

    def __init__(self, model: str | None = None, **config: Any):
        super().__init__(model=model, **config)
        self.endpoint = config.get("endpoint") or os.environ.get("GHOSTPROBE_SAGEMAKER_ENDPOINT") or model
        self.region = config.get("region") or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        self.endpoint_url = config.get("endpoint_url")  # a loopback container in tests
        self.instance_type = config.get("instance_type") or os.environ.get("GHOSTPROBE_SAGEMAKER_INSTANCE",
                                                                           "ml.g4dn.xlarge")
        self.threshold = float(config.get("threshold", 1.0))
        self.s3_prefix = config.get("s3_prefix")
        self.max_body = int(config.get("max_body", MAX_BODY))
        self.max_retries = int(config.get("max_retries", 4))
        self.backoff_s = float(config.get("backoff_s", 1.0))
        self.client = config.get("client")
        self.s3 = config.get("s3_client")
        self.async_input = config.get("async_input") or os.environ.get("GHOSTPROBE_SAGEMAKER_ASYNC_INPUT")
        if self.async_input and not str(self.async_input).startswith("s3://"):
            raise EngineError(f"async_input must be an s3:// prefix for the request files, not {self.async_input!r}.")
        self.async_timeout_s = float(config.get("async_timeout_s", 3600.0))
        self.poll_s = float(config.get("poll_s", 2.0))
        self.max_poll_s = float(config.get("max_poll_s", 30.0))
        self.invocation_timeout_s = config.get("invocation_timeout_s")
        self.cancel_event = None
        self.progress_done: tuple[int, int] | None = None

    def availability(self) -> tuple[bool, str]:
        if not self.endpoint:
            return False, "No SageMaker endpoint: set GHOSTPROBE_SAGEMAKER_ENDPOINT or pass --endpoint NAME."
        try:
            import boto3  # noqa: F401
        except ImportError:
            return False, "The SageMaker engine needs boto3: pip install -e '.[cloud]'."
        return True, (f"ready: SageMaker endpoint {self.endpoint}" + (f" ({self.region})" if self.region else "")
                      + (" (asynchronous, requests via S3)" if self.async_input else ""))

    def model_id(self) -> str | None:
        return self.endpoint

    def describe(self) -> dict[str, Any]:
        return {"model": f"sagemaker:{self.endpoint}", "endpoint": f"sagemaker://{self.region or 'default'}/"
                f"{self.endpoint}", "settings": {"threshold": self.threshold, "transport": "s3" if self.s3_prefix
                                                 else "inline"}}

    def cost_location(self) -> CostLocation:
        return CostLocation(f"aws:{self.instance_type}")

    def estimate_s(self, duration_s: float, sampling: dict[str, Any] | None = None) -> float:
        fps = float((sampling or self.default_sampling).get("fps") or 2)
        return max(1.0, duration_s * fps * 1.0)

    def _runtime(self):
        if self.client is None:
            import boto3

            kw: dict[str, Any] = {"region_name": self.region}
            if self.endpoint_url:
                kw["endpoint_url"] = self.endpoint_url
            # a session of its own: boto3's default session caches credentials from its first use
            self.client = boto3.session.Session().client("sagemaker-runtime", **kw)
        return self.client

    def invoke(self, body: dict[str, Any]) -> dict[str, Any]:
        """One real-time invocation with retries; returns the decoded JSON response."""
        data = json.dumps(body).encode("utf-8")
        if len(data) > MAX_BODY:
            raise EngineError(f"A request of {len(data) / 1e6:.1f} MB is over SageMaker's 6 MB limit.")

        def call():
            resp = self._runtime().invoke_endpoint(EndpointName=self.endpoint, ContentType="application/json",
                                                   Accept="application/json", Body=data)
            return resp["Body"].read()

        return self._json(self._with_retries(call), f"The endpoint {self.endpoint}")

    def _json(self, raw: bytes, who: str) -> dict[str, Any]:
        try:
            out = json.loads(raw)
        except ValueError:
            raise EngineError(f"{who} answered something that is not JSON.") from None
        if not isinstance(out, dict) or not all(k in out for k in ("pred_boxes", "box_scores", "pred_scores")):
            raise EngineError(f"{who} answered JSON without pred_boxes, box_scores and pred_scores.")
        return out

    def _with_retries(self, fn):
        """``fn()`` with retries on throttling and 5xx; AWS errors become one sentence."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                return fn()
            except NoCredentialsError:
                raise EngineError("AWS credentials are missing: set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                                  "AWS_SECRET_ACCESS_KEY.") from None
            except NoRegionError:
                raise EngineError("No AWS region: set AWS_DEFAULT_REGION or pass region.") from None
            except ClientError as e:
                err = e.response.get("Error", {})
                code, msg = err.get("Code", ""), err.get("Message", "")
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
                if code == "ValidationError" and "not found" in msg.lower():
                    raise EngineError(f"The SageMaker endpoint {self.endpoint} does not exist in "
                                      f"{self.region or 'this region'}.") from None
                if code in RETRYABLE or status in (429, 500, 502, 503, 504):
                    last = code or str(status)
                    time.sleep(self.backoff_s * (2 ** attempt))
                    continue
                detail = msg
                orig = e.response.get("OriginalMessage") or ""
                if orig:
                    try:
                        detail = json.loads(orig).get("error", orig)
                    except ValueError:
                        detail = orig
                raise EngineError(f"The endpoint {self.endpoint} refused the request: {detail or code}.") from None
            except BotoCoreError as e:
                last = type(e).__name__
                time.sleep(self.backoff_s * (2 ** attempt))
        if "Throttl" in last:
            raise EngineError(f"The endpoint {self.endpoint} is throttling requests; retried {self.max_retries} "
                              f"times. Try later or add instances.")
        raise EngineError(f"The endpoint {self.endpoint} did not answer after {self.max_retries} retries ({last}).")

    # -- asynchronous inference --------------------------------------------------------------------
    def _s3(self):
        if self.s3 is None:
            import boto3

            self.s3 = boto3.session.Session().client("s3", region_name=self.region)
        return self.s3

    def invoke_async(self, body: dict[str, Any], key_stem: str) -> dict[str, Any]:
        """Upload the request to S3, ``invoke_endpoint_async``, poll the output/failure locations."""
        import uuid

        from botocore.exceptions import ClientError, NoCredentialsError

        data = json.dumps(body).encode("utf-8")
        if len(data) > ASYNC_MAX_BODY:
            raise EngineError(f"A request of {len(data) / 1e9:.2f} GB is over the 1 GB asynchronous-inference limit.")
        bucket, _, prefix = str(self.async_input)[len("s3://"):].partition("/")
        key = f"{prefix.rstrip('/')}/{key_stem}-{uuid.uuid4().hex[:8]}.json".lstrip("/")
        try:
            self._s3().put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json")
        except NoCredentialsError:
            raise EngineError("AWS credentials are missing: set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                              "AWS_SECRET_ACCESS_KEY.") from None
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code == "NoSuchBucket":
                raise EngineError(f"The S3 bucket {bucket} for asynchronous requests does not exist.") from None
            raise EngineError(f"Uploading the request to s3://{bucket}/{key} failed: {code or e}.") from None
        location = f"s3://{bucket}/{key}"
        kw: dict[str, Any] = {"EndpointName": self.endpoint, "InputLocation": location,
                              "ContentType": "application/json", "Accept": "application/json"}
        if self.invocation_timeout_s:
            kw["InvocationTimeoutSeconds"] = int(self.invocation_timeout_s)
        resp = self._with_retries(lambda: self._runtime().invoke_endpoint_async(**kw))
        out_loc, fail_loc = resp.get("OutputLocation"), resp.get("FailureLocation")
        if not out_loc:
            raise EngineError(f"The endpoint {self.endpoint} returned no OutputLocation: is it an asynchronous "
                              f"endpoint (deployed with --async-output)?")
        self.last_async = {"input": location, "output": out_loc, "failure": fail_loc,
                           "inference_id": resp.get("InferenceId")}
        return self._poll(out_loc, fail_loc)

    def _get(self, uri: str | None) -> bytes | None:
        """The object at an s3:// URI, or None while it does not exist."""
        from botocore.exceptions import ClientError

        if not uri:
            return None
        bucket, _, key = uri[len("s3://"):].partition("/")
        try:
            return self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as e:
            err = e.response.get("Error", {})
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if err.get("Code") in ("NoSuchKey", "404", "NoSuchBucket") or status == 404:
                return None
            raise EngineError(f"Reading {uri} failed: {err.get('Code') or e}.") from None

    def _poll(self, out_loc: str, fail_loc: str | None) -> dict[str, Any]:
        deadline = time.monotonic() + self.async_timeout_s
        wait = self.poll_s
        while True:
            raw = self._get(out_loc)
            if raw is not None:
                return self._json(raw, f"The asynchronous result at {out_loc}")
            failed = self._get(fail_loc)
            if failed is not None:
                text = failed.decode("utf-8", "replace").strip()
                try:
                    doc = json.loads(text)
                    text = str(doc.get("error") or doc.get("message") or text) if isinstance(doc, dict) else text
                except ValueError:
                    pass
                text = " ".join(text.split())[:300].rstrip(".")
                raise EngineError(f"The asynchronous inference on endpoint {self.endpoint} failed: "
                                  f"{text or 'no reason given'}.")
            if self.cancel_event is not None and self.cancel_event.is_set():
                raise EngineError("已取消：SageMaker 检测在完成前被停止。")
            left = deadline - time.monotonic()
            if left <= 0:
                raise EngineError(f"The endpoint {self.endpoint} wrote no asynchronous result within "
                                  f"{self.async_timeout_s:.0f} s (expected at {out_loc}); it may still be running.")
            time.sleep(max(0.0, min(wait, left)))
            wait = min(self.max_poll_s, wait * 1.5)

    @staticmethod
    def request_body(refs: list[str], a: int, b: int) -> dict[str, Any]:
        """The JSON body for frames ``a..b`` (the same for real-time and asynchronous requests)."""
        return {"images": refs[a:b], "clip": True, "maps": True}

    def _refs(self, frames: np.ndarray, clip: Clip) -> list[str]:
        jpgs = [encode_jpeg(f) for f in frames]
        if not self.s3_prefix:
            return [base64.b64encode(j).decode("ascii") for j in jpgs]
        s3 = self._s3()
        bucket, _, prefix = self.s3_prefix[len("s3://"):].partition("/")
        refs = []
        for i, j in enumerate(jpgs):
            key = f"{prefix.rstrip('/')}/{clip.sha256[:16]}/{i:05d}.jpg".lstrip("/")
            s3.put_object(Bucket=bucket, Key=key, Body=j, ContentType="image/jpeg")
            refs.append(f"s3://{bucket}/{key}")
        return refs

    def detect(self, clip: Clip, options: GenerationOptions | None = None) -> Detection:
        from engines.vad.verdict import RULE, verdict_from_scores

        t0 = time.perf_counter()
        call = CallRecord(engine=self.name, model=f"sagemaker:{self.endpoint}", device="remote")
        try:
            ok, why = self.availability()
            if not ok:
                raise EngineError(why)
            if clip.num_frames < 2:
                raise EngineError("AI-VAD needs at least two frames (velocity is measured between frames).")
            refs = self._refs(clip.frames, clip)
            limit = ASYNC_MAX_BODY if self.async_input else MAX_BODY
            chunks = chunk_frames(refs, int(min(self.max_body, limit) * SAFETY))
            fh, fw = clip.frames.shape[1:3]
            track, boxes, maps, times = [], [], [], []
            warning = None
            for ci, (a, b) in enumerate(chunks):
                if self.cancel_event is not None and self.cancel_event.is_set():
                    raise EngineError("已取消：SageMaker 检测在完成前被停止。")
                body = self.request_body(refs, a, b)
                out = (self.invoke_async(body, f"{clip.sha256[:16]}-{ci:03d}") if self.async_input
                       else self.invoke(body))
                warning = warning or out.get("warning")
                for k, (pb, bs, ps) in enumerate(zip(out["pred_boxes"], out["box_scores"], out["pred_scores"])):
                    j = a + k + 1  # the pair's last frame
                    t = round(float(clip.timestamps_s[j]), 4)
                    track.append((t, float(ps)))
                    times.append(t)
                    labels = (out.get("labels") or [[]] * len(out["pred_boxes"]))[k] or [""] * len(pb)
                    for bx, s, lab in zip(pb, bs, labels):
                        boxes.append(Box(frame=j, t=t, x1=float(bx[0]), y1=float(bx[1]), x2=float(bx[2]),
                                         y2=float(bx[3]), score=float(s), label=lab))
                    m = (out.get("maps") or [None] * len(out["pred_boxes"]))[k]
                    if m is not None:
                        maps.append(np.clip(np.asarray(m, np.float32) / (2.0 * self.threshold), 0, 1))
                self.progress_done = (ci + 1, len(chunks))
            random_w = bool(warning)
            verdict = verdict_from_scores(track, boxes, fw, fh, self.threshold, engine=self.name,
                                          random_weights=random_w, calibrated=False)
            extra_async = {"mode": "async", **(getattr(self, "last_async", None) or {})} if self.async_input else {}
            arts = Artifacts(tracks={"anomaly": track}, thresholds={"anomaly": self.threshold}, boxes=boxes,
                             maps=np.stack(maps) if maps and len(maps) == len(track) else None,
                             map_times=times if maps and len(maps) == len(track) else [],
                             extra={"rule": RULE, "frame_size": [int(fw), int(fh)], "requests": len(chunks),
                                    "frame_indices": list(range(1, 1 + len(track))),
                                    "random_weights": random_w, "calibrated": False, **extra_async})
        except EngineError as e:
            verdict, arts = Verdict.error(str(e)), Artifacts()
        call.latency_s = call.generate_s = time.perf_counter() - t0
        self.last_call = call
        return Detection(verdict=verdict, call=call, artifacts=arts)
