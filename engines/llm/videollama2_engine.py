"""Engine "videollama2": VideoLLaMA2 / Video-LLaMA v1 through the standalone GPU worker over HTTP.

The official VideoLLaMA2 and Video-LLaMA code pins old transformers (4.40 / 4.28) and needs CUDA, so
it cannot share our environment. The user runs ``engines/llm/worker/server.py`` in the model's own
environment (see ``engines/llm/worker/README.md``); this engine sends it our sampled frames as base64
JPEGs with their timestamps and the chat messages, using httpx.

Configuration: ``url=`` or ``GHOSTPROBE_VIDEOLLAMA2_URL`` (e.g. ``http://gpu-box:8008``).
``availability()`` only checks that a URL is configured (no network call); ``probe()`` GETs
``/health`` for the UI.

Identity (``describe()``, resolved before the first call from ``/health``, asked once per engine
instance within ``timeout_s``, default 10 s): ``endpoint`` (the worker URL without credentials),
``model`` / ``revision`` / ``dtype`` / ``attention`` as the worker reports them (``revision``, ``dtype``
and ``attention`` stay None until the worker reports them), ``video_mode`` ``"frames"`` (base64 JPEG
frames with timestamps), and in ``settings`` the adapter, whether it is the stand-in, the JPEG quality
and whatever the worker says about its frame count or quantisation. After a call ``last_call.model``
is the model the worker's answer names. Cost location: ``self-hosted:<worker host>`` (your own box:
no price until someone sets one). Every sentence passes through :func:`engines.llm.scrub`, and the
HTTP client's log lines (httpx logs request URLs) through its filter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from urllib.parse import urlsplit

from engines.base import CallRecord, CostLocation, Engine, GenerationOptions, Message
from engines.errors import EngineError
from engines.llm import install_log_filter, remember_secret
from engines.llm import scrub as redact
from engines.redact import endpoint, host
from engines.types import Clip

VIDEO_MODE = "frames"
HEALTH_TIMEOUT_S = 10.0
# /health fields that change answers, beside adapter/model: kept in the identity's settings when present
_HEALTH_SETTINGS = ("num_frames", "quantization", "load_4bit", "load_8bit", "conv_mode")
NOT_CONFIGURED = ("No worker configured: set GHOSTPROBE_VIDEOLLAMA2_URL to the address of "
                  "engines/llm/worker/server.py (e.g. http://gpu-box:8008).")


from engines.settings import env as _env  # noqa: E402  (the one settings object)



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
        self.timeout_s = float(config.get("timeout_s") or HEALTH_TIMEOUT_S)  # for /health in describe()
        self._health: dict[str, Any] | None = None
        if self.url:
            remember_secret(urlsplit(self.url).password)
        install_log_filter(__name__)

    @property
    def endpoint(self) -> str | None:
        """The worker URL as shown and stored: no user-info, no query."""
        return endpoint(self.url)

    def availability(self) -> tuple[bool, str]:
        if not self.url:
            return False, NOT_CONFIGURED
        if not self.url.startswith(("http://", "https://")):
            return False, redact(f"GHOSTPROBE_VIDEOLLAMA2_URL must start with http:// or https://, not '{self.url}'.")
        return True, f"configured, not yet contacted: worker at {self.endpoint}."

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

        ep = self.endpoint
        try:
            r = httpx.get(f"{self._base()}/health", timeout=timeout_s)
            data = r.json()
        except httpx.TimeoutException:
            return {"ok": False, "reason": f"The worker at {ep} did not answer /health within {timeout_s:g} s.", "health": None}
        except httpx.HTTPError:
            return {"ok": False, "reason": f"Cannot connect to the VideoLLaMA2 worker at {ep}: is server.py running?", "health": None}
        except ValueError:
            return {"ok": False, "reason": f"{ep}/health did not answer JSON: is this a GhostProbe worker?", "health": None}
        if r.status_code != 200 or not isinstance(data, dict) or not data.get("ok"):
            return {"ok": False, "reason": f"The worker at {ep} is not healthy (HTTP {r.status_code}).", "health": data}
        self._health = data
        stand_in = " — STAND-IN echo adapter, not a model" if data.get("stand_in") else ""
        return {"ok": True, "health": data, "reason": redact(
            f"worker up: adapter {data.get('adapter')}, model {data.get('model')}, device {data.get('device')}{stand_in}.")}

    def _base(self) -> str:
        """The URL requests go to (credentials kept for the transport, never shown)."""
        return str(self.url)

    def model_id(self) -> str | None:
        return self.model or (self._health or {}).get("model")

    # -- identity and cost -------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What the worker serves, from /health (asked once per instance). Raises EngineError with one
        sentence when the worker is not configured, unreachable or unhealthy."""
        self._require()
        if self._health is None:
            p = self.probe(self.timeout_s)
            if not p["ok"]:
                raise EngineError(p["reason"])
        h = dict(self._health or {})
        settings: dict[str, Any] = {"adapter": h.get("adapter"), "stand_in": bool(h.get("stand_in")),
                                    "jpeg_quality": self.jpeg_quality}
        settings.update({k: h[k] for k in _HEALTH_SETTINGS if h.get(k) is not None})
        return {"model": h.get("model") or self.model, "revision": h.get("revision"), "endpoint": self.endpoint,
                "video_mode": VIDEO_MODE, "dtype": h.get("dtype"),
                "attention": h.get("attention") or h.get("attn_implementation"), "settings": settings}

    def cost_location(self) -> CostLocation:
        """``self-hosted:<worker host>``: the worker runs on your own machine, priced only if you say so."""
        name = urlsplit(self.url).hostname if self.url else None
        if not name:
            return CostLocation("self-hosted", defaulted=True)
        return CostLocation(f"self-hosted:{name.lower()}")

    def _error(self, r) -> EngineError:
        try:
            msg = r.json().get("error")
        except Exception:  # noqa: BLE001
            msg = None
        if msg:
            msg = " ".join(str(msg).split())[:300].rstrip(".")
            return EngineError(redact(f"The worker at {self.endpoint} answered HTTP {r.status_code}: {msg}."))
        return EngineError(f"The worker at {self.endpoint} answered HTTP {r.status_code} without a JSON error: "
                           "is this a GhostProbe worker?")

    def stream_chat(self, clip: Clip | None, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        import httpx

        from engines.llm.media import frames_to_jpeg_b64

        url = self._require()
        ep = self.endpoint
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
            "stream": True,  # NDJSON {"delta"} lines as the model writes; an older worker answers one JSON
        }
        preprocess_s = time.perf_counter() - t0
        t_req = time.perf_counter()
        timeout = float(options.timeout_s or 300.0)
        data: Any = None
        try:
            with httpx.stream("POST", f"{url}/v1/chat", json=body,
                              timeout=httpx.Timeout(timeout, connect=min(10.0, timeout))) as r:
                if r.status_code != 200:
                    r.read()
                    raise self._error(r)
                if "ndjson" not in r.headers.get("content-type", ""):
                    r.read()
                    try:
                        data = r.json()
                    except ValueError:
                        raise EngineError(f"The worker at {ep} answered something that is not JSON.") from None
                    if isinstance(data, dict) and isinstance(data.get("text"), str) and data["text"]:
                        yield data["text"]
                else:
                    for line in r.iter_lines():
                        if not line.strip():
                            continue
                        try:
                            item = json.loads(line)
                        except ValueError:
                            raise EngineError(f"The worker at {ep} streamed a line that is not JSON.") from None
                        if isinstance(item, dict) and isinstance(item.get("delta"), str):
                            if item["delta"]:
                                yield item["delta"]
                        elif isinstance(item, dict) and item.get("error"):
                            msg = " ".join(str(item["error"]).split())[:300].rstrip(".")
                            raise EngineError(redact(f"The worker at {ep} failed while answering "
                                                     f"(HTTP {item.get('status', 500)}): {msg}."))
                        else:
                            data = item
        except httpx.TimeoutException:
            raise EngineError(f"The worker at {ep} did not answer within {timeout:g} s; raise the timeout or "
                              "use fewer frames.") from None
        except httpx.HTTPError:
            raise EngineError(f"Cannot connect to the VideoLLaMA2 worker at {ep}: is server.py running?") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise EngineError(f"The worker at {ep} answered JSON without a 'text' field.")
        round_trip = time.perf_counter() - t_req
        self.last_call = CallRecord(
            engine=self.name, model=data.get("model"), revision=data.get("revision"),
            latency_s=time.perf_counter() - t0, preprocess_s=preprocess_s,
            generate_s=data.get("latency_s") if isinstance(data.get("latency_s"), (int, float)) else round_trip,
            prompt_tokens=data.get("prompt_tokens"), completion_tokens=data.get("completion_tokens"),
            device=redact(f"worker {host(url)}: {data.get('device')}"),
            extra={"adapter": data.get("adapter"), "stand_in": bool(data.get("stand_in")),
                   "round_trip_s": round(round_trip, 4), "frames": clip.num_frames,
                   "request_bytes": len(r.request.content) if r.request is not None else None},
        )
