"""AI-VAD on a SageMaker endpoint (``sagemaker``): ``sagemaker-runtime.invoke_endpoint`` per chunk.

Frames go inline as base64 JPEG in ``application/json`` ``{"images": [...], "clip": true}`` requests,
split so every body stays under the 6 MB payload limit (consecutive chunks overlap by one frame, so
every pair is scored exactly once), or through S3 (``s3_prefix``: frames uploaded, URIs sent).
Throttling and 5xx answers are retried with exponential backoff. Missing credentials, a missing
endpoint and persistent throttling each become one sentence. The response is the container's
(:mod:`engines.vad.serve.server`); the verdict follows :mod:`engines.vad.verdict`.
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
        self.cancel_event = None
        self.progress_done: tuple[int, int] | None = None

    def availability(self) -> tuple[bool, str]:
        if not self.endpoint:
            return False, "No SageMaker endpoint: set GHOSTPROBE_SAGEMAKER_ENDPOINT or pass --endpoint NAME."
        try:
            import boto3  # noqa: F401
        except ImportError:
            return False, "The SageMaker engine needs boto3: pip install -e '.[cloud]'."
        return True, f"ready: SageMaker endpoint {self.endpoint}" + (f" ({self.region})" if self.region else "")

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
        """One invocation with retries; returns the decoded JSON response."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

        data = json.dumps(body).encode("utf-8")
        if len(data) > MAX_BODY:
            raise EngineError(f"A request of {len(data) / 1e6:.1f} MB is over SageMaker's 6 MB limit.")
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                resp = self._runtime().invoke_endpoint(EndpointName=self.endpoint, ContentType="application/json",
                                                       Accept="application/json", Body=data)
                raw = resp["Body"].read()
                try:
                    return json.loads(raw)
                except ValueError:
                    raise EngineError(f"The endpoint {self.endpoint} answered something that is not JSON.") from None
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

    def _refs(self, frames: np.ndarray, clip: Clip) -> list[str]:
        jpgs = [encode_jpeg(f) for f in frames]
        if not self.s3_prefix:
            return [base64.b64encode(j).decode("ascii") for j in jpgs]
        import boto3

        s3 = self.s3 or boto3.session.Session().client("s3", region_name=self.region)
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
            chunks = chunk_frames(refs, int(min(self.max_body, MAX_BODY) * SAFETY))
            fh, fw = clip.frames.shape[1:3]
            track, boxes, maps, times = [], [], [], []
            warning = None
            for ci, (a, b) in enumerate(chunks):
                if self.cancel_event is not None and self.cancel_event.is_set():
                    raise EngineError("已取消：SageMaker 检测在完成前被停止。")
                out = self.invoke({"images": refs[a:b], "clip": True, "maps": True})
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
            arts = Artifacts(tracks={"anomaly": track}, thresholds={"anomaly": self.threshold}, boxes=boxes,
                             maps=np.stack(maps) if maps and len(maps) == len(track) else None,
                             map_times=times if maps and len(maps) == len(track) else [],
                             extra={"rule": RULE, "frame_size": [int(fw), int(fh)], "requests": len(chunks),
                                    "frame_indices": list(range(1, 1 + len(track))),
                                    "random_weights": random_w, "calibrated": False})
        except EngineError as e:
            verdict, arts = Verdict.error(str(e)), Artifacts()
        call.latency_s = call.generate_s = time.perf_counter() - t0
        self.last_call = call
        return Detection(verdict=verdict, call=call, artifacts=arts)
