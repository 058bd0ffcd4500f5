"""Generate small test media: real encoded clips, DADA-style frame folders and broken files.

Every generated frame carries its own index as a row of black/white blocks along the top edge
(bit b of the index is block b, least significant first), so a test can read back *which* frame a
decoder returned with :func:`read_index`, whatever the codec did to the pixels. The bottom-left
corner is pure red (RGB 255, 0, 0) so channel order can be checked, and a white square moves left
to right so motion detectors see motion.

Writers:
- :func:`write_mp4v` — MPEG-4 Part 2 in MP4 through OpenCV's ``mp4v`` (what ``cv2.VideoWriter`` makes).
- :func:`write_avi_mpeg4` — MPEG-4 Part 2 in AVI through OpenCV (``FMP4``/``XVID``), like DADA-2000.
- :func:`write_avi_pyav` — MPEG-4 Part 2 in AVI through PyAV, with a chosen keyframe interval.
- :func:`write_h264_mp4` — H.264 in MP4 through PyAV/libx264 (``+faststart``), already browser-playable.
- :func:`write_vp9_webm` — VP9 in WebM through PyAV/libvpx.
- :func:`write_frame_folder` — ``<root>/<category>/<clip>/images/0001.jpg …`` like DADA-2000's frames.

Broken files: :func:`write_empty`, :func:`write_text_renamed`, :func:`write_random_bytes`,
:func:`write_zero_frame_avi`, :func:`write_zero_frame_mp4`, :func:`truncate_copy`,
:func:`garble_header_copy`, :func:`garble_middle_copy`, :func:`flip_packet_bytes_copy`.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

INDEX_BITS = 8  # frame indices 0..255 are readable back


def pattern_frame(i: int, width: int = 160, height: int = 90) -> np.ndarray:
    """RGB uint8 frame whose top row of blocks encodes ``i`` (mod 256)."""
    f = np.zeros((height, width, 3), np.uint8)
    f[:, :, 2] = 60  # dark blue background
    bw = width // INDEX_BITS
    bh = max(8, height // 5)
    for b in range(INDEX_BITS):
        if (i >> b) & 1:
            f[0:bh, b * bw : (b + 1) * bw] = 255
    # red corner for channel-order checks
    f[height - height // 4 :, 0 : width // 4] = (255, 0, 0)
    # a moving white square in the lower half
    side = max(4, height // 6)
    x = (i * 3) % max(1, width - side)
    y = height // 2
    f[y : y + side, x : x + side] = 255
    return f


def read_index(frame_rgb: np.ndarray) -> int:
    """Read back the index written by :func:`pattern_frame` (works on a resized frame too)."""
    h, w = frame_rgb.shape[:2]
    gray = frame_rgb.astype(np.float32).mean(axis=2)
    bh = max(8, round(h / 5)) if h >= 40 else max(2, h // 5)
    bw = w / INDEX_BITS
    value = 0
    for b in range(INDEX_BITS):
        x0 = int(b * bw + bw * 0.3)
        x1 = max(x0 + 1, int(b * bw + bw * 0.7))
        y0 = max(0, int(bh * 0.2))
        y1 = max(y0 + 1, int(bh * 0.7))
        if gray[y0:y1, x0:x1].mean() > 128:
            value |= 1 << b
    return value


def _frames(n: int, size: tuple[int, int]):
    w, h = size
    for i in range(n):
        yield pattern_frame(i, w, h)


def _cv_write(path: Path, fourcc: str, n_frames: int, fps: float, size: tuple[int, int]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not w.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} to {path}")
    for f in _frames(n_frames, size):
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()
    return path


def write_mp4v(path, n_frames: int = 60, fps: float = 30.0, size: tuple[int, int] = (160, 90)) -> Path:
    """MPEG-4 Part 2 ('mp4v') in an MP4 container, written by OpenCV. Browsers do not play it."""
    return _cv_write(Path(path), "mp4v", n_frames, fps, size)


def write_avi_mpeg4(
    path, n_frames: int = 60, fps: float = 30.0, size: tuple[int, int] = (160, 90), fourcc: str = "FMP4"
) -> Path:
    """MPEG-4 Part 2 in AVI written by OpenCV (``FMP4`` or ``XVID``): the DADA-2000 format."""
    return _cv_write(Path(path), fourcc, n_frames, fps, size)


def _pyav_write(
    path: Path,
    codec: str,
    n_frames: int,
    fps: float,
    size: tuple[int, int],
    *,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    fmt: str | None = None,
    gop: int | None = None,
) -> Path:
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height = size
        s.pix_fmt = pix_fmt
        if gop:
            s.codec_context.gop_size = gop
        if options:
            s.options = options
        for i, f in enumerate(_frames(n_frames, size)):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            for pk in s.encode(frame):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def write_avi_pyav(
    path, n_frames: int = 60, fps: float = 30.0, size: tuple[int, int] = (160, 90), gop: int = 12
) -> Path:
    """MPEG-4 Part 2 in AVI written by PyAV with keyframes every ``gop`` frames."""
    return _pyav_write(Path(path), "mpeg4", n_frames, fps, size, fmt="avi", gop=gop, options={"qscale": "3"})


def write_h264_mp4(
    path,
    n_frames: int = 60,
    fps: float = 30.0,
    size: tuple[int, int] = (160, 90),
    *,
    pix_fmt: str = "yuv420p",
    faststart: bool = True,
) -> Path:
    """H.264 (libx264) in MP4 with ``+faststart``: what a browser plays as is."""
    return _pyav_write(
        Path(path),
        "libx264",
        n_frames,
        fps,
        size,
        pix_fmt=pix_fmt,
        options={"crf": "23", "preset": "veryfast"},
        container_options={"movflags": "+faststart"} if faststart else None,
    )


def write_vp9_webm(path, n_frames: int = 30, fps: float = 30.0, size: tuple[int, int] = (160, 90)) -> Path:
    """VP9 in WebM (libvpx-vp9), also browser-playable."""
    return _pyav_write(
        Path(path),
        "libvpx-vp9",
        n_frames,
        fps,
        size,
        options={"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0"},
    )


def write_frame_folder(
    root,
    category: str = "1",
    clip: str = "001",
    n_frames: int = 30,
    size: tuple[int, int] = (160, 90),
    ext: str = ".jpg",
    start_number: int = 1,
) -> Path:
    """A DADA-style frame folder ``root/<category>/<clip>/images/0001.jpg …``; returns the clip folder."""
    clip_dir = Path(root) / category / clip
    images = clip_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    w, h = size
    for i in range(n_frames):
        f = pattern_frame(i, w, h)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext.lower() in (".jpg", ".jpeg") else []
        ok = cv2.imwrite(str(images / f"{i + start_number:04d}{ext}"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise RuntimeError(f"cannot write image to {images}")
    return clip_dir


# -- broken files ---------------------------------------------------------------------------


def write_empty(path) -> Path:
    """A 0-byte file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_text_renamed(path, text: str = "This is a shopping list, not a video.\n") -> Path:
    """A text file with a video extension (e.g. ``notes.avi``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text * 40, encoding="utf-8")
    return path


def write_random_bytes(path, n: int = 50_000, seed: int = 0) -> Path:
    """Random bytes with a video extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def write_zero_frame_avi(path, size: tuple[int, int] = (160, 90)) -> Path:
    """A valid AVI with a video stream header but no frames (an OpenCV writer released at once)."""
    return _cv_write(Path(path), "FMP4", 0, 30.0, size)


def write_zero_frame_mp4(path, size: tuple[int, int] = (160, 90)) -> Path:
    """An MP4 whose writer was closed before any frame: the container holds no video track."""
    return _cv_write(Path(path), "mp4v", 0, 30.0, size)


def truncate_copy(src, dst, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes (a download cut short)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def garble_header_copy(src, dst, start: int = 16, length: int = 384, seed: int = 1) -> Path:
    """Overwrite bytes near the start (container headers) with random bytes."""
    data = bytearray(Path(src).read_bytes())
    rng = np.random.default_rng(seed)
    data[start : start + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


def garble_middle_copy(src, dst, length: int = 2000, seed: int = 2) -> Path:
    """Overwrite a run of bytes a third into the file (packets and container structure)."""
    data = bytearray(Path(src).read_bytes())
    rng = np.random.default_rng(seed)
    mid = len(data) // 3
    data[mid : mid + length] = rng.integers(0, 256, min(length, len(data) - mid), dtype=np.uint8).tobytes()
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


def flip_packet_bytes_copy(src, dst, seed: int = 3, per_packet: int = 8) -> Path:
    """Keep the container intact but randomise bytes inside every video packet's payload.

    The file still demuxes with the right frame count; only the decoder sees garbage. This is the
    kind of input that gets past container checks and reaches the decoder.
    """
    import av

    data = bytearray(Path(src).read_bytes())
    rng = np.random.default_rng(seed)
    with av.open(str(src)) as c:
        for pk in c.demux(video=0):
            if pk.size and pk.pos is not None and pk.pos >= 0:
                lo = pk.pos + min(8, pk.size - 1)
                hi = pk.pos + pk.size
                if hi > lo:
                    for off in rng.integers(lo, hi, per_packet):
                        data[int(off)] = int(rng.integers(0, 256))
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


def write_mpeg_ps(path, n_frames: int = 60, fps: float = 30.0, size: tuple[int, int] = (160, 90)) -> Path:
    """MPEG-2 video in an MPEG program stream (.mpg): a container without a frame index."""
    return _pyav_write(Path(path), "mpeg2video", n_frames, fps, size, fmt="mpeg", gop=12)


def write_mpeg_ts(path, n_frames: int = 60, fps: float = 30.0, size: tuple[int, int] = (160, 90)) -> Path:
    """H.264 in MPEG-TS (.ts), keyframe every 10 frames: no frame index either."""
    return _pyav_write(
        Path(path), "libx264", n_frames, fps, size, fmt="mpegts", options={"preset": "veryfast", "g": "10"}
    )


def write_av1_mp4(path, n_frames: int = 20, fps: float = 30.0, size: tuple[int, int] = (160, 90)) -> Path:
    """AV1 (SVT-AV1) in MP4: decord cannot open it and this OpenCV build cannot decode it."""
    import os

    os.environ.setdefault("SVT_LOG", "1")  # errors only
    return _pyav_write(Path(path), "libsvtav1", n_frames, fps, size, options={"preset": "12"})
