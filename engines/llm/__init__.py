"""Video-LLM engines behind the one Engine protocol (``engines.base``); each registers on import.

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

Nothing here imports torch, transformers or openai at module level, and nothing downloads weights.
"""
