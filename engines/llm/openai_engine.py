"""Engine "openai": any OpenAI-compatible chat-completions server through the ``openai`` SDK.

Works with vLLM, SGLang, LMDeploy and hosted models (GPT-4o, Qwen-VL on DashScope's compatible mode…).

Configuration (constructor arguments win over the environment):

- ``base_url`` / ``GHOSTPROBE_OPENAI_BASE_URL`` — e.g. ``http://gpu-box:8000/v1``; unset = api.openai.com.
- ``api_key`` / ``GHOSTPROBE_OPENAI_API_KEY``, else ``OPENAI_API_KEY``; a local server may need none
  (then ``"EMPTY"`` is sent).
- ``model`` / ``GHOSTPROBE_OPENAI_MODEL``; unset with a base URL = the first model the server lists.
- ``video_mode`` / ``GHOSTPROBE_OPENAI_VIDEO_MODE``: ``images`` (default: each frame a base64 JPEG
  ``image_url`` part, each preceded by its timestamp in text) or ``video_url`` (one MP4 data URI
  encoded from the sampled frames with PyAV, for servers that take video, like vLLM with Qwen-VL).
- ``max_retries`` / ``GHOSTPROBE_OPENAI_MAX_RETRIES`` (default 3) and ``backoff_s`` (default 0.5).

Retries are ours, not the SDK's (the client is built with ``max_retries=0``): a 429 or 5xx answered
before any text arrived is retried with exponential backoff (``backoff_s · 2^n``, capped at 8 s, or the
server's ``Retry-After`` when it is at most 10 s). Connection refused, timeouts, 401/403/404 and other
4xx are not retried: they become one-sentence :class:`EngineError` s that never contain the key.

``availability()`` makes no network call: it says "configured, not yet contacted".
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from engines.base import CallRecord, Engine, GenerationOptions, Message
from engines.errors import EngineError
from engines.registry import register
from engines.types import Clip

VIDEO_MODES = ("images", "video_url")
RETRY_STATUSES = (429, 500, 502, 503, 504)
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


def _env(name: str, default: str | None = None) -> str | None:
    v = os.environ.get(name)
    return v if v not in (None, "") else default


def build_content(clip: Clip | None, text: str, video_mode: str, jpeg_quality: int = 85) -> list[dict[str, Any]]:
    """The content parts of the first user turn: the video (as frames or one MP4) then the question."""
    from engines.llm.media import frames_to_jpeg_b64, frames_to_mp4, sampled_fps

    if clip is None:
        return [{"type": "text", "text": text}]
    n = clip.num_frames
    if video_mode == "video_url":
        mp4 = frames_to_mp4(clip.frames, sampled_fps(n, clip.duration_s))
        import base64

        uri = "data:video/mp4;base64," + base64.b64encode(mp4).decode("ascii")
        ts = ", ".join(f"{t:.2f}" for t in clip.timestamps_s)
        return [
            {"type": "video_url", "video_url": {"url": uri}},
            {"type": "text", "text": f"(视频由 {n} 帧组成，时间戳/秒: {ts}; {n} frames, timestamps in seconds)\n{text}"},
        ]
    parts: list[dict[str, Any]] = [{"type": "text", "text": (
        f"以下是从视频中按时间顺序抽取的 {n} 帧，视频时长 {clip.duration_s:.2f} 秒。"
        f"({n} frames in time order from a {clip.duration_s:.2f} s video; each is preceded by its timestamp.)")}]
    for t, b64 in zip(clip.timestamps_s, frames_to_jpeg_b64(clip.frames, jpeg_quality)):
        parts.append({"type": "text", "text": f"t={t:.2f}s"})
        parts.append({"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + b64}})
    parts.append({"type": "text", "text": text})
    return parts


def build_messages(clip: Clip | None, messages: list[Message], video_mode: str) -> list[dict[str, Any]]:
    """Our messages → chat-completions messages; the video goes into the first user turn only."""
    out: list[dict[str, Any]] = []
    placed = clip is None
    for m in messages:
        role, content = m.get("role", "user"), m.get("content", "")
        if not placed and role == "user":
            out.append({"role": "user", "content": build_content(clip, str(content), video_mode)})
            placed = True
        else:
            out.append({"role": role, "content": content})
    if not placed:
        out.append({"role": "user", "content": build_content(clip, "", video_mode)})
    return out


@register
class OpenAIEngine(Engine):
    name = "openai"
    title = "OpenAI-compatible server (vLLM, SGLang, LMDeploy, GPT-4o…)"
    remote = True
    default_sampling = {"num_frames": 16, "fps": None, "max_side": 448}

    def __init__(self, model: str | None = None, **config: Any):
        super().__init__(model=model or _env("GHOSTPROBE_OPENAI_MODEL"), **config)
        self.base_url = (config.get("base_url") or _env("GHOSTPROBE_OPENAI_BASE_URL") or "").rstrip("/") or None
        self._api_key = config.get("api_key") or _env("GHOSTPROBE_OPENAI_API_KEY") or _env("OPENAI_API_KEY")
        mode = (config.get("video_mode") or _env("GHOSTPROBE_OPENAI_VIDEO_MODE") or "images").strip().lower()
        self.video_mode = mode
        self.max_retries = int(config.get("max_retries", _env("GHOSTPROBE_OPENAI_MAX_RETRIES", "3")))
        self.backoff_s = float(config.get("backoff_s", 0.5))
        self._served_model: str | None = None

    # -- configuration ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.base_url or OPENAI_DEFAULT_URL

    def _host(self) -> str:
        p = urlparse(self.url)
        return f"{p.scheme}://{p.netloc}" if p.netloc else self.url

    def availability(self) -> tuple[bool, str]:
        if importlib.util.find_spec("openai") is None:
            return False, "The openai engine needs the openai package: pip install 'ghostprobe-studio[llm]'."
        if self.video_mode not in VIDEO_MODES:
            return False, f"GHOSTPROBE_OPENAI_VIDEO_MODE must be images or video_url, not '{self.video_mode}'."
        if not self.base_url and not self._api_key:
            return False, ("Not configured: set GHOSTPROBE_OPENAI_BASE_URL (e.g. a vLLM server) "
                           "or GHOSTPROBE_OPENAI_API_KEY.")
        if not self.base_url and not self.model:
            return False, "Set GHOSTPROBE_OPENAI_MODEL (e.g. gpt-4o) to use api.openai.com."
        model = self.model or "the first model the server lists"
        return True, f"configured, not yet contacted: {self.url}, model {model}, video as {self.video_mode}."

    def model_id(self) -> str | None:
        return self.model or self._served_model

    # -- errors -----------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return text

    def _status_message(self, e: Any) -> str:
        body = getattr(e, "body", None)
        msg = ""
        if isinstance(body, dict):
            err = body.get("error", body)
            msg = err.get("message", "") if isinstance(err, dict) else str(err)
        msg = msg or getattr(e, "message", "") or ""
        msg = " ".join(str(msg).split())[:200].rstrip(".")
        return self._scrub(msg)

    def _error(self, e: Exception, attempts: int, timeout_s: float) -> EngineError:
        import openai

        host = self._host()
        model = self.model_id() or "?"
        if isinstance(e, openai.APITimeoutError):
            return EngineError(f"The server at {host} did not answer within {timeout_s:g} s; it may be overloaded "
                               "or the video too long, so raise the timeout or use fewer frames.")
        if isinstance(e, openai.APIConnectionError):
            return EngineError(f"Cannot connect to the OpenAI-compatible server at {host}: is it running and is "
                               "GHOSTPROBE_OPENAI_BASE_URL right?")
        if isinstance(e, openai.APIStatusError):
            code = e.status_code
            if code == 401:
                return EngineError(f"The server at {host} rejected the API key (HTTP 401): check "
                                   "GHOSTPROBE_OPENAI_API_KEY.")
            if code == 403:
                return EngineError(f"The server at {host} refused access (HTTP 403): the API key has no access "
                                   f"to model {model}.")
            if code == 404:
                return EngineError(f"Model '{model}' was not found at {self.url} (HTTP 404): check "
                                   "GHOSTPROBE_OPENAI_MODEL and that the base URL ends in /v1.")
            if code == 429:
                return EngineError(f"The server at {host} kept answering 429 (rate limited) after {attempts} "
                                   "attempts; try again later.")
            if code >= 500:
                return EngineError(f"The server at {host} failed with HTTP {code} after {attempts} attempts.")
            detail = self._status_message(e)
            return EngineError(f"The server at {host} rejected the request (HTTP {code})"
                               + (f": {detail}." if detail else "."))
        return EngineError(self._scrub(f"The call to {host} failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}."))

    def _retry_delay(self, e: Any, n: int) -> float:
        headers = getattr(getattr(e, "response", None), "headers", None) or {}
        ra = headers.get("retry-after") if hasattr(headers, "get") else None
        try:
            if ra is not None and 0 <= float(ra) <= 10:
                return float(ra)
        except ValueError:
            pass
        return min(self.backoff_s * (2 ** n), 8.0)

    # -- calls ------------------------------------------------------------------------------------
    def client(self, timeout_s: float):
        import openai

        return openai.OpenAI(api_key=self._api_key or "EMPTY", base_url=self.url,
                             timeout=openai.Timeout(timeout_s, connect=min(10.0, timeout_s)), max_retries=0)

    def _resolve_model(self, client, timeout_s: float) -> str:
        if self.model:
            return self.model
        if self._served_model:
            return self._served_model
        try:
            models = [m.id for m in client.models.list()]
        except Exception as e:  # noqa: BLE001
            raise self._error(e, 1, timeout_s) from None
        if not models:
            raise EngineError(f"The server at {self._host()} serves no model; set GHOSTPROBE_OPENAI_MODEL.")
        self._served_model = models[0]
        return self._served_model

    def stream_chat(self, clip: Clip | None, messages: list[Message], options: GenerationOptions) -> Iterator[str]:
        import openai

        ok, reason = self.availability()
        if not ok:
            raise EngineError(reason)
        self.last_call = None
        timeout_s = float(options.timeout_s or 300.0)
        t0 = time.perf_counter()
        payload = build_messages(clip, messages, self.video_mode)
        preprocess_s = time.perf_counter() - t0
        client = self.client(timeout_s)
        model = self._resolve_model(client, timeout_s)

        kwargs: dict[str, Any] = dict(model=model, messages=payload, stream=True,
                                      stream_options={"include_usage": True},
                                      max_tokens=int(options.max_new_tokens),
                                      temperature=float(options.temperature))
        if options.temperature > 0:
            kwargs["top_p"] = float(options.top_p)
        if options.seed is not None:
            kwargs["seed"] = int(options.seed)

        usage = None
        fingerprint = None
        ttft = None
        pieces = 0
        attempts = 0
        t_gen = time.perf_counter()
        while True:
            attempts += 1
            try:
                stream = client.chat.completions.create(**kwargs)
                try:
                    for chunk in stream:
                        fingerprint = getattr(chunk, "system_fingerprint", None) or fingerprint
                        if getattr(chunk, "usage", None):
                            usage = chunk.usage
                        for choice in chunk.choices or []:
                            text = getattr(choice.delta, "content", None)
                            if text:
                                if ttft is None:
                                    ttft = time.perf_counter() - t_gen
                                pieces += 1
                                yield text
                finally:
                    stream.close()
                break
            except openai.BadRequestError as e:
                detail = str(getattr(e, "body", "") or e)
                if "stream_options" in kwargs and "stream_options" in detail and pieces == 0:
                    kwargs.pop("stream_options")  # an older server without usage in streams
                    attempts -= 1
                    continue
                if "max_tokens" in kwargs and "max_completion_tokens" in detail and pieces == 0:
                    kwargs["max_completion_tokens"] = kwargs.pop("max_tokens")  # newer OpenAI models
                    attempts -= 1
                    continue
                raise self._error(e, attempts, timeout_s) from None
            except openai.APIStatusError as e:
                if e.status_code in RETRY_STATUSES and pieces == 0 and attempts <= self.max_retries:
                    time.sleep(self._retry_delay(e, attempts - 1))
                    continue
                raise self._error(e, attempts, timeout_s) from None
            except openai.OpenAIError as e:
                raise self._error(e, attempts, timeout_s) from None
        generate_s = time.perf_counter() - t_gen
        self.last_call = CallRecord(
            engine=self.name, model=model, revision=fingerprint,
            latency_s=time.perf_counter() - t0, preprocess_s=preprocess_s, generate_s=generate_s,
            prompt_tokens=getattr(usage, "prompt_tokens", None), completion_tokens=getattr(usage, "completion_tokens", None),
            device=f"remote {self._host()}",
            extra={"attempts": attempts, "ttft_s": ttft, "video_mode": self.video_mode, "pieces": pieces,
                   "frames": clip.num_frames if clip is not None else 0},
        )
