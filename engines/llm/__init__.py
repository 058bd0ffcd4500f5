"""Video-LLM engines behind the one Engine protocol (``engines.base``), listed as ``ghostprobe.engines`` entry points.

- ``transformers_engine`` — engine "transformers": a local model that ``AutoModelForImageTextToText``
  loads (VideoLLaMA3, Qwen2.5-VL / Qwen3-VL, LLaVA-OneVision, LLaVA-NeXT-Video). Env:
  ``GHOSTPROBE_HF_MODEL``, ``GHOSTPROBE_ALLOW_DOWNLOAD``, ``GHOSTPROBE_HF_DTYPE``, ``GHOSTPROBE_HF_ATTN``,
  ``GHOSTPROBE_HF_DEVICE``, ``GHOSTPROBE_HF_REVISION``, ``GHOSTPROBE_ZEROGPU_DURATION``.
- ``openai_engine`` — engine "openai": any OpenAI-compatible chat-completions server (vLLM, SGLang,
  LMDeploy, GPT-4o…). Env: ``GHOSTPROBE_OPENAI_BASE_URL``, ``GHOSTPROBE_OPENAI_API_KEY`` (else
  ``OPENAI_API_KEY``), ``GHOSTPROBE_OPENAI_MODEL``, ``GHOSTPROBE_OPENAI_VIDEO_MODE`` (images|video_url),
  ``GHOSTPROBE_OPENAI_MAX_RETRIES``.
- ``videollama2_engine`` — engine "videollama2": VideoLLaMA2 / Video-LLaMA through the standalone GPU
  worker in ``worker/`` (its own environment; see ``worker/README.md``). Env: ``GHOSTPROBE_VIDEOLLAMA2_URL``.
- ``media`` — frames to base64 JPEG / MP4 for the remote engines.

Each engine's ``describe()`` says what changes its answers before the first call (served model,
weights revision, redacted endpoint, video mode, dtype, attention) and ``cost_location()`` where it
runs; see each module's docstring.

No credentials in anything these engines say: :func:`scrub` is :func:`engines.redact.redact` plus the
secrets the engines were given as arguments (:func:`remember_secret`: API keys, URL passwords, query
tokens), and :func:`install_log_filter` rewrites the records of the HTTP client loggers (``httpx`` and
``httpx2`` log full request URLs, user-info and query included, at INFO) and of the engines' own loggers.

Nothing here imports torch, transformers or openai at module level, and nothing downloads weights.
"""

from __future__ import annotations

import logging
import threading

from engines.redact import MASK, redact

# Secrets this process's engines were given (API keys passed as arguments, base-URL passwords and query
# values): masked in every message and log line, beside what engines.redact finds in the environment.
_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_FILTERED: set[str] = set()
HTTP_LOGGERS = ("httpx", "httpx2", "openai", "openai._base_client")


def remember_secret(*values: object) -> None:
    """Mask these values (at least 4 characters) wherever :func:`scrub` runs from now on."""
    with _LOCK:
        _SECRETS.update(str(v) for v in values if v is not None and len(str(v)) >= 4)


def scrub(text: object) -> str:
    """``text`` without credentials: :func:`engines.redact.redact` plus the remembered secrets."""
    s = redact(text)
    for v in sorted(_SECRETS, key=len, reverse=True):
        if v in s:
            s = s.replace(v, MASK)
    return s


class RedactFilter(logging.Filter):
    """Rewrites a log record's message through :func:`scrub`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001  a broken record is not ours to fix
            return True
        clean = scrub(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


def install_log_filter(*loggers: str) -> None:
    """Put a :class:`RedactFilter` on the HTTP client loggers and on ``loggers`` (once each)."""
    with _LOCK:
        for name in (*HTTP_LOGGERS, *loggers):
            if name not in _FILTERED:
                logging.getLogger(name).addFilter(RedactFilter())
                _FILTERED.add(name)
