"""Engine "videollama2": VideoLLaMA2 / Video-LLaMA v1 through the standalone GPU worker over HTTP.

The official VideoLLaMA2 and Video-LLaMA code pins old transformers (4.40 / 4.28) and needs CUDA, so
it cannot share our environment. The user runs ``engines/llm/worker/server.py`` in the model's own
environment (see ``engines/llm/worker/README.md``); this engine sends it our sampled frames as base64
JPEGs with their timestamps and the chat messages, using httpx.

Configuration: ``url=`` or ``GHOSTPROBE_VIDEOLLAMA2_URL`` (e.g. ``http://gpu-box:8008``).
``availability()`` only checks that a URL is configured (no network call); ``probe()`` GETs
``/health`` for the UI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from engines.base import CallRecord, Engine, GenerationOptions, Message
from engines.errors import EngineError
from engines.registry import register
from engines.types import Clip

NOT_CONFIGURED = ("No worker configured: set GHOSTPROBE_VIDEOLLAMA2_URL to the address of "
                  "engines/llm/worker/server.py (e.g. http://gpu-box:8008).")


def _env(name: str, default: str | None = None) -> str | None:
    v = os.environ.get(name)
    return v if v not in (None, "") else default


@register
class VideoLLaMA2Engine(Engine):
    name = "videollama2"
    title = "VideoLLaMA2 / Video-LLaMA (GPU worker over HTTP)"
    remote = True
    default_sampling = {"num_frames": 16, "fps": None, "max_side": 448}

    def __init__(self, model: str | None = None, **config: Any):
        super().__init__(model=model, **config)
        url = config.get("url") or _env("GHOSTPROBE_VIDEOLLAMA2_URL") or ""
        self.url = url.rstrip("/") or None
        self.jpeg_quality = int(config.get("jpeg_quality", 90))
        self._health: dict[str, Any] | None = None

    def availability(self) -> tuple[bool, str]:
        if not self.url:
            return False, NOT_CONFIGURED
        if not self.url.startswith(("http://", "https://")):
            return False, f"GHOSTPROBE_VIDEOLLAMA2_URL must start with http:// or https://, not '{self.url}'."
        return True, f"configured, not yet contacted: worker at {self.url}."

    def _require(self) -> str:
        ok, reason = self.availability()
        if not ok:
            raise EngineError(reason)
        return str(self.url)

    def probe(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """GET /health. Returns {"ok", "reason", "health"}; never raises."""
        ok, reason = self.availability()
        if not ok:
            return {"ok": False, "reason": reason, "health": None}
        import httpx

        try:
            r = httpx.get(f"{self.url}/health", timeout=timeout_s)
            data = r.json()
        except httpx.TimeoutException:
            return {"ok": False, "reason": f"The worker at {self.url} did not answer /health within {timeout_s:g} s.", "health": None}
        except httpx.HTTPError:
            return {"ok": False, "reason": f"Cannot connect to the worker at {self.url}: is server.py running?", "health": None}
        except ValueError:
            return {"ok": False, "reason": f"{self.url}/health did not answer JSON: is this a GhostProbe worker?", "health": None}
        if r.status_code != 200 or not isinstance(data, dict) or not data.get("ok"):
            return {"ok": False, "reason": f"The worker at {self.url} is not healthy (HTTP {r.status_code}).", "health": data}
        self._health = data
        stand_in = " — STAND-IN echo adapter, not a model" if data.get("stand_in") else ""
        return {"ok": True, "health": data,
                "reason": f"worker up: adapter {data.get('adapter')}, model {data.get('model')}, device {data.get('device')}{stand_in}."}

    def model_id(self) -> str | None:
        return self.model or (self._health or {}).get("model")

    def _error(self, r) -> EngineError:
        try:
            msg = r.json().get("error")
        except Exception:  # noqa: BLE001
            msg = None
        if msg:
            msg = " ".join(str(msg).split())[:300].rstrip(".")
            return EngineError(f"The worker at {self.url} answered HTTP {r.status_code}: {msg}.")
        return EngineError(f"The worker at {self.url} answered HTTP {r.status_code} without a JSON error: is this a GhostProbe worker?")

    def stream_chat(self, clip: Clip | None, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        import httpx

        from engines.llm.media import frames_to_jpeg_b64

        url = self._require()
        if clip is None or clip.num_frames == 0:
            raise EngineError("The VideoLLaMA2 worker needs a video: the clip has no frames.")
        self.last_call = None
        t0 = time.perf_counter()
        body = {
            "frames": frames_to_jpeg_b64(clip.frames, self.jpeg_quality),
            "timestamps": [float(t) for t in clip.timestamps_s],
            "messages": [{"role": m.get("role", "user"), "content": str(m.get("content", ""))} for m in messages],
            "max_new_tokens": int(options.max_new_tokens),
            "temperature": float(options.temperature),
        }
        preprocess_s = time.perf_counter() - t0
        t_req = time.perf_counter()
        timeout = float(options.timeout_s or 300.0)
        try:
            r = httpx.post(f"{url}/v1/chat", json=body, timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)))
        except httpx.TimeoutException:
            raise EngineError(f"The worker at {url} did not answer within {timeout:g} s; raise the timeout or "
                              "use fewer frames.") from None
        except httpx.HTTPError:
            raise EngineError(f"Cannot connect to the VideoLLaMA2 worker at {url}: is server.py running?") from None
        if r.status_code != 200:
            raise self._error(r)
        try:
            data = r.json()
        except ValueError:
            raise EngineError(f"The worker at {url} answered something that is not JSON.") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise EngineError(f"The worker at {url} answered JSON without a 'text' field.")
        text = data["text"]
        if text:
            yield text
        round_trip = time.perf_counter() - t_req
        self.last_call = CallRecord(
            engine=self.name, model=self.model or data.get("model"), revision=None,
            latency_s=time.perf_counter() - t0, preprocess_s=preprocess_s,
            generate_s=data.get("latency_s") if isinstance(data.get("latency_s"), (int, float)) else round_trip,
            prompt_tokens=data.get("prompt_tokens"), completion_tokens=data.get("completion_tokens"),
            device=f"worker {url}: {data.get('device')}",
            extra={"adapter": data.get("adapter"), "stand_in": bool(data.get("stand_in")),
                   "round_trip_s": round(round_trip, 4), "frames": clip.num_frames,
                   "request_bytes": len(r.request.content) if r.request is not None else None},
        )
