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

Identity (``describe()``, resolved before the first call): ``endpoint`` (the base URL without user-info,
query or fragment: :func:`engines.redact.endpoint`), ``model`` (the configured one, else the first model
the server's ``GET /models`` lists — asked once per engine instance within ``timeout_s``, default 30 s),
``video_mode`` and the media encoding in ``settings``. After each call ``last_call.model`` holds what the
response itself reported (the ``model`` field of the streamed chunks), ``extra["model_requested"]`` what
was asked for, so the core can check one against the other. A server's ``system_fingerprint`` goes to
``extra["system_fingerprint"]``, not ``revision``: it names a backend configuration, changes without
notice, and would make every answer a cache miss.

Cost location (``cost_location()``): ``openai:<model>`` for api.openai.com, ``azure-openai:<model>`` for
``*.openai.azure.com`` (both token-priced rows of ``reports/data/prices.csv``), ``self-hosted:<host>`` for a
server on a loopback, private or single-label host (your own box: no token price, so the cost report says
"unknown" until someone sets an hourly price for that row), else ``<host>:<model>``.

No credentials in anything this engine says: every error sentence, log line (ours, and those of the
``openai`` and ``httpx`` / ``httpx2`` loggers, which print request URLs) and ``CallRecord`` passes through
:func:`engines.llm.scrub`: :func:`engines.redact.redact`, plus the API key, the password of a
``user:pass@`` base URL and the values of its query parameters (``?token=…`` is sent as a query
parameter on every request, never shown).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from engines.base import CallRecord, CostLocation, Engine, GenerationOptions, Message
from engines.errors import EngineError
from engines.llm import install_log_filter, remember_secret, scrub
from engines.redact import endpoint, host
from engines.types import Clip

log = logging.getLogger(__name__)

VIDEO_MODES = ("images", "video_url")
RETRY_STATUSES = (429, 500, 502, 503, 504)
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
JPEG_QUALITY = 85
DESCRIBE_TIMEOUT_S = 30.0
# Hosts whose servers are your own machines: no token price (cost location ``self-hosted:<host>``).
_PRIVATE_SUFFIXES = (".local", ".localhost", ".internal", ".lan", ".home.arpa", ".localdomain")

def split_base_url(url: str) -> tuple[str, dict[str, str]]:
    """A base URL without its query (sent as ``default_query`` instead: the SDK appends paths to the
    base URL, which would land after a query) and the query parameters."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", "")), query


def is_private_host(name: str | None) -> bool:
    """Loopback, private or link-local addresses, ``localhost`` and single-label / local-domain names."""
    h = (name or "").strip("[]").lower()
    if not h:
        return False
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return h == "localhost" or "." not in h or h.endswith(_PRIVATE_SUFFIXES)
    return ip.is_private or ip.is_loopback or ip.is_link_local


from engines.settings import env as _env  # noqa: E402  (the one settings object)


def build_content(clip: Clip | None, text: str, video_mode: str, jpeg_quality: int = JPEG_QUALITY) -> list[dict[str, Any]]:
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
        self.timeout_s = float(config.get("timeout_s") or DESCRIBE_TIMEOUT_S)  # for GET /models
        self._served_model: str | None = None
        self._models_lock = threading.Lock()
        self._base, self._query = split_base_url(self.url)
        remember_secret(self._api_key, urlsplit(self.url).password, *self._query.values())
        install_log_filter(__name__)

    # -- configuration ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.base_url or OPENAI_DEFAULT_URL

    @property
    def endpoint(self) -> str:
        """The base URL as shown and stored: no user-info, no query (:func:`engines.redact.endpoint`)."""
        return endpoint(self.url) or ""

    def _host(self) -> str:
        """``scheme://host[:port]`` without credentials, for sentences."""
        parts = urlsplit(self.endpoint)
        return f"{parts.scheme}://{parts.netloc}" if parts.netloc else self.endpoint

    def availability(self) -> tuple[bool, str]:
        if importlib.util.find_spec("openai") is None:
            return False, "The openai engine needs the openai package: pip install 'ghostprobe-studio[llm]'."
        if self.video_mode not in VIDEO_MODES:
            return False, scrub(f"GHOSTPROBE_OPENAI_VIDEO_MODE must be images or video_url, not '{self.video_mode}'.")
        if not self.base_url and not self._api_key:
            return False, ("Not configured: set GHOSTPROBE_OPENAI_BASE_URL (e.g. a vLLM server) "
                           "or GHOSTPROBE_OPENAI_API_KEY.")
        if not self.base_url and not self.model:
            return False, "Set GHOSTPROBE_OPENAI_MODEL (e.g. gpt-4o) to use api.openai.com."
        model = self.model or "the first model the server lists"
        return True, scrub(f"configured, not yet contacted: {self.endpoint}, model {model}, video as {self.video_mode}.")

    def model_id(self) -> str | None:
        return self.model or self._served_model

    # -- identity and cost ------------------------------------------------------------------------
    def media_settings(self) -> dict[str, Any]:
        """How the video is encoded for the server (it changes what the model sees)."""
        if self.video_mode == "video_url":
            from engines.llm.media import MP4_CRF, mp4_codec

            return {"video_codec": mp4_codec(), "crf": MP4_CRF}
        return {"jpeg_quality": JPEG_QUALITY}

    def describe(self) -> dict[str, Any]:
        """endpoint, model (asked from ``GET /models`` once when not configured), video_mode, settings.
        Raises EngineError with one sentence when unconfigured or when the server cannot be asked."""
        ok, reason = self.availability()
        if not ok:
            raise EngineError(reason)
        return {"model": self.resolve_model(), "revision": None, "endpoint": self.endpoint,
                "video_mode": self.video_mode, "settings": self.media_settings()}

    def cost_location(self) -> CostLocation:
        name = (urlsplit(self.url).hostname or "").lower()
        model = self.model_id()
        if name == "api.openai.com":
            loc = f"openai:{model}" if model else "openai"
        elif name.endswith(".openai.azure.com"):
            loc = f"azure-openai:{model}" if model else "azure-openai"
        elif is_private_host(name):
            loc = f"self-hosted:{name or host(self.url)}"  # your own box: no token price
        else:
            loc = f"{name}:{model}" if model else name
        return CostLocation(loc)

    # -- errors -----------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return scrub(text)

    def _status_message(self, e: Any) -> str:
        body = getattr(e, "body", None)
        msg = ""
        if isinstance(body, dict):
            err = body.get("error", body)
            msg = err.get("message", "") if isinstance(err, dict) else str(err)
        msg = msg or getattr(e, "message", "") or ""
        msg = " ".join(str(msg).split())[:200].rstrip(".")
        return scrub(msg)

    def _error(self, e: Exception, attempts: int, timeout_s: float, listing: bool = False) -> EngineError:
        """One sentence for a failed call (``listing``: the ``GET /models`` asked by describe())."""
        import openai

        host_ = self._host()
        model = self.model_id() or "?"
        if isinstance(e, openai.APITimeoutError):
            if listing:
                msg = (f"The server at {host_} did not list its models within {timeout_s:g} s; check it, or set "
                       "GHOSTPROBE_OPENAI_MODEL so it need not be asked.")
            else:
                msg = (f"The server at {host_} did not answer within {timeout_s:g} s; it may be overloaded "
                       "or the video too long, so raise the timeout or use fewer frames.")
        elif isinstance(e, openai.APIConnectionError):
            ask = " to ask which model it serves" if listing else ""
            msg = (f"Cannot connect to the OpenAI-compatible server at {host_}{ask}: is it running and is "
                   "GHOSTPROBE_OPENAI_BASE_URL right?")
        elif isinstance(e, openai.APIStatusError):
            code = e.status_code
            if code == 401:
                msg = f"The server at {host_} rejected the API key (HTTP 401): check GHOSTPROBE_OPENAI_API_KEY."
            elif code == 403:
                msg = (f"The server at {host_} refused access (HTTP 403): the API key has no access "
                       + ("to its model list." if listing else f"to model {model}."))
            elif listing:
                msg = (f"The server at {host_} answered HTTP {code} when asked for its models (GET "
                       f"{self.endpoint}/models): set GHOSTPROBE_OPENAI_MODEL or check that the base URL ends in /v1.")
            elif code == 404:
                msg = (f"Model '{model}' was not found at {self.endpoint} (HTTP 404): check "
                       "GHOSTPROBE_OPENAI_MODEL and that the base URL ends in /v1.")
            elif code == 429:
                msg = (f"The server at {host_} kept answering 429 (rate limited) after {attempts} "
                       "attempts; try again later.")
            elif code >= 500:
                msg = f"The server at {host_} failed with HTTP {code} after {attempts} attempts."
            else:
                detail = self._status_message(e)
                msg = f"The server at {host_} rejected the request (HTTP {code})" + (f": {detail}." if detail else ".")
        else:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            msg = f"The call to {host_} failed: {first.rstrip('.')}."
        return EngineError(scrub(msg))

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

        return openai.OpenAI(api_key=self._api_key or "EMPTY", base_url=self._base,
                             default_query=self._query or None,
                             timeout=openai.Timeout(timeout_s, connect=min(10.0, timeout_s)), max_retries=0)

    def resolve_model(self) -> str:
        """The configured model, else the first one the server lists (asked once per instance)."""
        if self.model:
            return self.model
        with self._models_lock:
            if self._served_model:
                return self._served_model
            try:
                models = [m.id for m in self.client(self.timeout_s).models.list()]
            except Exception as e:  # noqa: BLE001
                raise self._error(e, 1, self.timeout_s, listing=True) from None
            if not models:
                raise EngineError(scrub(f"The server at {self._host()} lists no model; set GHOSTPROBE_OPENAI_MODEL."))
            self._served_model = str(models[0])
            log.info("%s serves %s (first of %d listed)", self.endpoint, self._served_model, len(models))
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
        model = self.resolve_model()

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
        reported: list[str] = []  # the ``model`` field of the chunks, in order of first appearance
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
                        said = getattr(chunk, "model", None)
                        if said and said not in reported:
                            reported.append(str(said))
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
                    delay = self._retry_delay(e, attempts - 1)
                    log.warning("%s", scrub(f"{self._host()} answered HTTP {e.status_code} before any text; "
                                            f"retry {attempts} of {self.max_retries} in {delay:.2f} s"))
                    time.sleep(delay)
                    continue
                raise self._error(e, attempts, timeout_s) from None
            except openai.OpenAIError as e:
                raise self._error(e, attempts, timeout_s) from None
        generate_s = time.perf_counter() - t_gen
        extra: dict[str, Any] = {"attempts": attempts, "ttft_s": ttft, "video_mode": self.video_mode,
                                 "pieces": pieces, "frames": clip.num_frames if clip is not None else 0,
                                 "model_requested": model}
        if fingerprint:  # the backend configuration, not a weights revision: it must not split the cache key
            extra["system_fingerprint"] = fingerprint
        if len(reported) > 1:
            extra["models_reported"] = reported
        self.last_call = CallRecord(
            engine=self.name, model=reported[0] if reported else None, revision=None,
            latency_s=time.perf_counter() - t0, preprocess_s=preprocess_s, generate_s=generate_s,
            prompt_tokens=getattr(usage, "prompt_tokens", None), completion_tokens=getattr(usage, "completion_tokens", None),
            device=f"remote {host(self.url)}", extra=extra,
        )
