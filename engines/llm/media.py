"""Frames → bytes for remote engines: JPEG (base64) per frame, or one small MP4 (PyAV).

Shared by the OpenAI-compatible engine and the VideoLLaMA2 worker client. Heavy imports are local.
"""

from __future__ import annotations

import base64
import io
from fractions import Fraction

import numpy as np

MP4_CRF = 23  # libx264 quality of the MP4 sent to servers that take video


def mp4_codec() -> str:
    """The encoder :func:`frames_to_mp4` uses here: libx264 when PyAV has it, else MPEG-4 part 2."""
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def jpeg_bytes(frame: np.ndarray, quality: int = 85) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def frames_to_jpeg_b64(frames: np.ndarray, quality: int = 85) -> list[str]:
    """uint8 [T,H,W,3] RGB → one base64 JPEG string per frame."""
    return [base64.b64encode(jpeg_bytes(f, quality)).decode("ascii") for f in frames]


def frames_to_mp4(frames: np.ndarray, fps: float) -> bytes:
    """Encode sampled frames as an H.264 MP4 (yuv420p) at ``fps`` (the *sampled* rate, so that the
    video lasts as long as the clip). Odd sizes are cropped by one pixel: yuv420p needs even sides."""
    import av

    t, h, w = frames.shape[:3]
    h2, w2 = h - h % 2, w - w % 2
    rate = Fraction(max(1, round(max(fps, 0.1) * 1000)), 1000)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        codec = mp4_codec()
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(MP4_CRF), "preset": "veryfast"}
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i, :h2, :w2]), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def sampled_fps(num_frames: int, duration_s: float | None, fallback: float = 1.0) -> float:
    if duration_s and duration_s > 0 and num_frames > 0:
        return num_frames / duration_s
    return fallback
