"""Worker adapters: one module per model family, each exposing ``Adapter`` (see ``echo.py``).

An adapter is built once with ``Adapter(model=..., device=..., options={...})`` and then answers
``chat(frames, timestamps, messages, max_new_tokens, temperature) -> dict`` where ``frames`` are JPEG
bytes in time order, ``timestamps`` their times in seconds, and ``messages`` a list of
``{"role": "system"|"user"|"assistant", "content": str}`` whose first user turn is about the video.
The dict holds ``text`` and, when known, ``prompt_tokens`` / ``completion_tokens``.
"""
