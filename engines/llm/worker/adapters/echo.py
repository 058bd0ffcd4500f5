"""STAND-IN adapter — not a model. It never looks at pixels and never "detects" anything.

It answers deterministically with a description of what the worker received (frame count, frame
sizes read from the JPEG headers, timestamps, number of messages, last question), so tests and a
person setting up a worker can check the wiring (client → HTTP → worker → adapter → back) without a
GPU or model weights. Its answers are labelled "STAND-IN ECHO" and contain no verdict.

Standard library only.
"""

from __future__ import annotations

import struct
from typing import Any

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame header, or None if it cannot be read."""
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 2 if marker != 0xFF else 1
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF_MARKERS and i + 9 <= len(data):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


class Adapter:
    name = "echo"
    stand_in = True
    streams = True  # sends its answer word by word, to exercise the streaming protocol

    def __init__(self, model: str | None = None, device: str | None = None, options: dict[str, Any] | None = None):
        self.model = model or "echo"
        self.device = "none (stand-in)"
        self.options = options or {}

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.name, "model": self.model, "device": self.device, "stand_in": True}

    def chat(self, frames: list[bytes], timestamps: list[float], messages: list[dict[str, str]],
             max_new_tokens: int = 512, temperature: float = 0.0, on_text=None) -> dict[str, Any]:
        sizes = [jpeg_size(f) for f in frames]
        distinct = sorted({f"{s[0]}x{s[1]}" for s in sizes if s}) or ["unreadable"]
        last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        span = f"{timestamps[0]:.2f}s..{timestamps[-1]:.2f}s" if timestamps else "none"
        text = (f"STAND-IN ECHO (not a model): received {len(frames)} frames, "
                f"sizes {', '.join(distinct)}, timestamps {span}, {len(messages)} messages, "
                f"max_new_tokens {max_new_tokens}, temperature {temperature:g}; "
                f"last question: {last_user}")
        if on_text is not None:
            words = text.split(" ")
            for i, w in enumerate(words):
                on_text(w if i == len(words) - 1 else w + " ")
        return {"text": text, "prompt_tokens": None, "completion_tokens": None,
                "received": {"frames": len(frames), "sizes": [list(s) if s else None for s in sizes],
                             "timestamps": list(timestamps), "messages": len(messages)}}
