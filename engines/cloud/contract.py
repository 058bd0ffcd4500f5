"""The one JSON contract of a video LLM behind an endpoint (Azure ML online endpoint or SageMaker).

Request — ``POST /score`` (Azure ML's inference server) or ``POST /invocations`` (SageMaker), JSON::

    {"contract": "ghostprobe-video-chat/1",
     "video": {"frames": ["<base64 JPEG>", ...],        # the sampled frames, in time order
               "timestamps_s": [0.0, 0.5, ...], "duration_s": 10.0, "fps": 30.0}
            | {"uri": "https://… | s3://… | a path on the server", "sampling": {"num_frames": 16, "max_side": 448}}
            | null,                                     # text only
     "messages": [{"role": "system"|"user"|"assistant", "content": "…"}],   # the video goes with the first user turn
     "options": {"max_new_tokens": 512, "temperature": 0.0, "top_p": 1.0, "seed": null},
     "detect": true}                                    # also read the text as a verdict

Response (HTTP 200)::

    {"contract": "ghostprobe-video-chat/1", "text": "…",
     "verdict": {"ghost_probing", "confidence", "danger_level", "object_type", "onset_s", "reason", "status"} | null,
     "model": "…", "revision": "…" | null, "device": "cuda:0 (…)",
     "timings": {"decode_s", "preprocess_s", "generate_s", "latency_s"},
     "tokens": {"prompt": n | null, "completion": n | null}}

Errors: HTTP 400 (a bad request: not JSON, no messages, bad frames, a URI the server cannot read)
or 500 (the model failed), body ``{"error": "<one sentence>"}``. ``verdict.status`` is ``unparsed``
when the text holds no answer — never a "no".
"""

from __future__ import annotations

import base64
import binascii
import io
import time
from typing import Any

import numpy as np

from engines.errors import GhostProbeError

CONTRACT = "ghostprobe-video-chat/1"
MAX_FRAMES = 256


class ContractError(GhostProbeError):
    """A request that breaks the contract: HTTP 400 with this one sentence.

    One of the user errors (:class:`engines.errors.GhostProbeError`): the CLI prints it and exits 2, the
    dashboard shows it as one sentence (Chinese patterns in ``webapp.messages.TRANSLATIONS``)."""


def encode_request(clip: Any, messages: list[dict[str, str]], options: Any, *, detect: bool = True,
                   jpeg_quality: int = 85) -> dict[str, Any]:
    from engines.llm.media import frames_to_jpeg_b64

    opts = options.to_dict() if hasattr(options, "to_dict") else dict(options or {})
    opts.pop("timeout_s", None)
    video = None
    if clip is not None:
        video = {"frames": frames_to_jpeg_b64(clip.frames, jpeg_quality),
                 "timestamps_s": [float(t) for t in clip.timestamps_s], "duration_s": float(clip.duration_s),
                 "fps": float(clip.fps)}
    return {"contract": CONTRACT, "video": video, "messages": list(messages), "options": opts, "detect": detect}


def _clip_from_frames(video: dict[str, Any]):
    from PIL import Image

    from engines.types import Clip, VideoMeta

    frames = video.get("frames")
    if not isinstance(frames, list) or not frames:
        raise ContractError("video.frames must be a non-empty list of base64 JPEG or PNG images.")
    if len(frames) > MAX_FRAMES:
        raise ContractError(f"video.frames holds {len(frames)} frames; at most {MAX_FRAMES} are accepted.")
    arrays = []
    for i, b64 in enumerate(frames):
        try:
            img = Image.open(io.BytesIO(base64.b64decode(b64, validate=True))).convert("RGB")
        except (binascii.Error, ValueError, OSError, TypeError):
            raise ContractError(f"video.frames[{i}] is not a base64 JPEG or PNG image.") from None
        arrays.append(np.asarray(img, dtype=np.uint8))
    if len({a.shape for a in arrays}) != 1:
        raise ContractError("video.frames must all have the same size.")
    ts = video.get("timestamps_s") or [float(i) for i in range(len(arrays))]
    if len(ts) != len(arrays):
        raise ContractError("video.timestamps_s must have one time per frame.")
    dur = float(video.get("duration_s") or (ts[-1] if ts else 0.0))
    fps = float(video.get("fps") or 0.0)
    h, w = arrays[0].shape[:2]
    meta = VideoMeta(path="request", frames=len(arrays), fps=fps, duration_s=dur, width=w, height=h, codec="jpeg",
                     sha256="", size_bytes=0, kind="frames", backend="request")
    return Clip(frames=np.stack(arrays), timestamps_s=[float(t) for t in ts], indices=list(range(len(arrays))),
                fps=fps, duration_s=dur, source="request", sha256="", meta=meta,
                sampling={"num_frames": len(arrays)})


def _clip_from_uri(video: dict[str, Any]):
    from engines.video import load_clip

    uri = str(video.get("uri") or "")
    sampling = dict(video.get("sampling") or {})
    if uri.startswith("s3://"):
        import tempfile

        import boto3

        bucket, _, key = uri[5:].partition("/")
        tmp = tempfile.NamedTemporaryFile(suffix="-" + key.rsplit("/", 1)[-1], delete=False)
        boto3.client("s3").download_fileobj(bucket, key, tmp)
        tmp.close()
        uri = tmp.name
    elif uri.startswith(("http://", "https://")):
        import tempfile

        import httpx

        tmp = tempfile.NamedTemporaryFile(suffix="-" + uri.rsplit("/", 1)[-1].split("?")[0], delete=False)
        with httpx.stream("GET", uri, timeout=60, follow_redirects=True) as r:
            if r.status_code != 200:
                raise ContractError(f"video.uri answered HTTP {r.status_code}.")
            for chunk in r.iter_bytes():
                tmp.write(chunk)
        tmp.close()
        uri = tmp.name
    try:
        return load_clip(uri, **sampling)
    except Exception as e:  # noqa: BLE001 - a video the server cannot read is the caller's problem
        raise ContractError(f"video.uri could not be read as a video ({str(e).splitlines()[0][:160]}).") from None


def parse_request(payload: Any) -> tuple[Any, list[dict[str, str]], Any, bool]:
    """(clip or None, messages, GenerationOptions, detect) from a request body (bytes, str or dict)."""
    import json

    from engines.base import GenerationOptions

    if isinstance(payload, (bytes, bytearray)):
        payload = payload.decode("utf-8", errors="replace")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError as e:
            raise ContractError(f"The request is not JSON ({e.msg}).") from None
    if not isinstance(payload, dict):
        raise ContractError("The request must be a JSON object.")
    if payload.get("contract", CONTRACT) != CONTRACT:
        raise ContractError(f"This endpoint speaks {CONTRACT}, not {payload.get('contract')}.")
    msgs = payload.get("messages")
    if not isinstance(msgs, list) or not msgs or not all(
            isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
            for m in msgs):
        raise ContractError("messages must be a non-empty list of {role: system|user|assistant, content: text}.")
    known = set(GenerationOptions.__dataclass_fields__)
    opts_in = payload.get("options") or {}
    if not isinstance(opts_in, dict) or set(opts_in) - known:
        raise ContractError(f"options takes only {', '.join(sorted(known))}.")
    try:
        opts = GenerationOptions(**opts_in)
    except TypeError as e:
        raise ContractError(f"Bad options ({e}).") from None
    video = payload.get("video")
    clip = None
    if video is not None:
        if not isinstance(video, dict):
            raise ContractError("video must be {frames, timestamps_s, …}, {uri, sampling} or null.")
        clip = _clip_from_uri(video) if video.get("uri") else _clip_from_frames(video)
    return clip, [{"role": m["role"], "content": m["content"]} for m in msgs], opts, bool(payload.get("detect", True))


def answer(engine: Any, payload: Any) -> dict[str, Any]:
    """Run one request through a chat engine; ContractError for a bad request."""
    from engines.verdict import parse

    t0 = time.perf_counter()
    clip, messages, opts, detect = parse_request(payload)
    decode_s = time.perf_counter() - t0
    text, call = engine.chat(clip, messages, opts)
    verdict = None
    if detect:
        v = parse(text)
        verdict = {k: getattr(v, k) for k in ("ghost_probing", "confidence", "danger_level", "object_type",
                                             "onset_s", "reason", "status")}
    return {"contract": CONTRACT, "text": text, "verdict": verdict, "model": call.model or engine.model_id(),
            "revision": call.revision, "device": call.device,
            "timings": {"decode_s": decode_s, "preprocess_s": call.preprocess_s, "generate_s": call.generate_s,
                        "latency_s": time.perf_counter() - t0},
            "tokens": {"prompt": call.prompt_tokens, "completion": call.completion_tokens}}
