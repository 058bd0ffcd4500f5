"""Inspection: check that a path is a readable, complete video (or frame folder) and describe it.

Every file is first checked with PyAV (container opens, has a video stream, is not a still image,
every frame the header promises is present, the first frame decodes), because decord can abort
the whole process on some garbage. Then :func:`probe` finds the first backend of the default
order that opens it (``$GHOSTPROBE_VIDEO_BACKEND`` or ``backend=`` put one first). Results are
memoised per (real path, size, mtime_ns) in bounded LRUs.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engines.errors import VideoError
from engines.types import VideoMeta
from engines.video.common import (
    DEFAULT_FOLDER_FPS,
    LRU,
    SamplingError,
    _as_path,
    _check_exists,
    _folder_images_or_error,
    _label,
)
from engines.video.decoders import (
    INDEXED_CONTAINERS,
    _check_backend,
    default_backend,
    _open_cv,
    _open_decord,
    _order,
    _read_image,
)
from engines.video.hashing import _CACHE_MAX, _signature, sha256_file

_meta_cache = LRU(_CACHE_MAX)
_info_cache = LRU(_CACHE_MAX)

# Containers FFmpeg opens for a single picture: a still image renamed to .mp4 is not a video.
_STILL_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe", "gif_pipe",
                  "jpegls_pipe", "j2k_pipe", "qoi_pipe", "pgm_pipe", "ppm_pipe", "pam_pipe", "svg_pipe")
_STILL_CODECS = ("png", "bmp", "webp", "tiff", "jpegls", "jpeg2000", "qoi", "pgm", "ppm", "pam")


@dataclass(frozen=True)
class _FileInfo:
    frames: int  # video packets present (one per frame)
    fps: float
    width: int
    height: int
    codec: str
    pix_fmt: str
    container: str  # FFmpeg demuxer name, e.g. "avi" or "mov,mp4,m4a,3gp,3g2,mj2"
    keyframes: tuple[int, ...] = ()  # packet numbers of keyframes (decode order)

    @property
    def indexed(self) -> bool:
        """A container with a frame index, where decord's and OpenCV's seeks land on the right frame.

        MPEG-PS/TS have none: decord returned wrong frames for sparse indices there (measured),
        so such files are read sequentially (OpenCV grab() without seeking, or PyAV).
        """
        return any(k in self.container.split(",") for k in INDEXED_CONTAINERS)


def _rate_to_float(rate: Any) -> float:
    try:
        v = float(rate) if rate is not None else 0.0
    except (TypeError, ZeroDivisionError, ValueError):
        return 0.0
    return v if math.isfinite(v) and v > 0 else 0.0


def _looks_like_video(p: Path) -> bool:
    """Whether the first bytes carry a video container's signature (AVI, MP4/MOV, Matroska, FLV, MPEG-PS)."""
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return (
        (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free")
        or head[:4] == b"\x1aE\xdf\xa3"
        or head[:3] == b"FLV"
        or head[:4] == b"\x00\x00\x01\xba"
    )


def _is_still_image(p: Path, fmt: str, codec: str) -> bool:
    """A single picture (PNG, JPEG, BMP, WebP ...) whatever its file name says."""
    if any(f in _STILL_FORMATS for f in fmt.split(",")):
        return True
    if codec in _STILL_CODECS and not any(k in fmt.split(",") for k in INDEXED_CONTAINERS):
        return True
    if any(k in fmt.split(",") for k in INDEXED_CONTAINERS):
        return False  # a real container (MJPEG in AVI is a video)
    try:
        with open(p, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"GIF87a", b"GIF89a")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    )


def _inspect_file(p: Path, fps_hint: float | None = None) -> _FileInfo:
    """Open ``p`` with PyAV and make sure it is a readable, complete video, before decord sees it.

    Demuxes every packet of the video stream (reads the file, decodes nothing but the first frame):
    fewer packets than the header declares means a truncated or damaged file.
    """
    import av

    try:
        size = p.stat().st_size
    except OSError:
        raise VideoError(f'Cannot read "{_label(p)}".') from None
    if size == 0:
        raise VideoError(f'"{_label(p)}" is empty (0 bytes), so it is not a video.')
    name = _label(p)
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except PermissionError:
        raise VideoError(f'Cannot read "{name}": permission denied.') from None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        if _looks_like_video(p):
            raise VideoError(f'"{name}" looks like a video but cannot be opened: it is truncated or corrupt.') from None
        raise VideoError(
            f'"{name}" is not a video that can be read: its format is unknown or its header is damaged.'
        ) from None
    try:
        if not container.streams.video:
            raise VideoError(f'"{name}" contains no readable video stream, so there are no frames to read.')
        stream = container.streams.video[0]
        cc = stream.codec_context
        codec = ""
        if cc is not None:
            codec = getattr(cc.codec, "canonical_name", "") or cc.name or ""  # "av1", not "libdav1d"
        fmt = str(container.format.name)
        if _is_still_image(p, fmt, codec):
            raise VideoError(f'"{name}" is a still image, not a video.')
        if cc is None or not codec:
            raise VideoError(f'"{name}" uses a video codec that cannot be decoded here.')
        width, height = int(cc.width or 0), int(cc.height or 0)
        declared = int(stream.frames or 0)
        pix_fmt = str(cc.pix_fmt or "")
        fps = next(
            (v for v in map(_rate_to_float, (stream.average_rate, stream.guessed_rate, stream.base_rate)) if v), 0.0
        )
        cc.thread_count = 1
        packets = 0
        keyframes: list[int] = []
        decoded = None
        tried = 0
        try:
            for pk in container.demux(stream):
                if pk.size == 0 and pk.dts is None:
                    continue  # end-of-stream flush packet
                if pk.is_keyframe:
                    keyframes.append(packets)
                packets += 1
                if decoded is None and pk.size and tried < 300:
                    tried += 1
                    try:
                        for fr in cc.decode(pk):
                            decoded = fr
                            break
                    except av.error.FFmpegError:
                        pass
            if decoded is None and packets:
                with contextlib.suppress(av.error.FFmpegError):
                    for fr in cc.decode(None):
                        decoded = fr
                        break
        except av.error.FFmpegError:
            raise VideoError(f'"{name}" is corrupt: reading its video data failed part-way.') from None
        if packets == 0:
            raise VideoError(f'"{name}" contains no video frames.')
        if declared and packets < declared:
            raise VideoError(
                f'"{name}" is truncated or corrupt: its header promises {declared} frames '
                f"but only {packets} are present."
            )
        if decoded is None:
            raise VideoError(f'"{name}" is corrupt: none of its frames can be decoded.')
        width, height = width or decoded.width, height or decoded.height
        pix_fmt = pix_fmt or str(decoded.format.name)
        if width <= 0 or height <= 0:
            raise VideoError(f'"{name}" is corrupt: its frames have no size.')
        if not fps:
            dur = float(container.duration or 0) / 1e6
            fps = packets / dur if dur > 0 else (fps_hint or DEFAULT_FOLDER_FPS)
        return _FileInfo(
            frames=packets,
            fps=float(fps),
            width=width,
            height=height,
            codec=codec,
            pix_fmt=pix_fmt,
            container=str(container.format.name),
            keyframes=tuple(keyframes),
        )
    finally:
        container.close()



# -- probe --------------------------------------------------------------------------------------


def _file_info(p: Path, fps: float | None) -> _FileInfo:
    """:func:`_inspect_file`, memoised per (path, size, mtime)."""
    key = (*_signature(p), fps)
    hit = _info_cache.get(key)
    if hit is None:
        hit = _inspect_file(p, fps)
        _info_cache.put(key, hit)
    return hit


def _probe(p: Path, fps: float | None, backend: str | None) -> tuple[VideoMeta, _FileInfo | None]:
    _check_backend(backend)
    if fps is not None and not _positive(fps):
        raise SamplingError(f"The frame rate must be a positive number of frames per second, not {fps!r}.")
    _check_exists(p)
    if p.is_dir():
        images = _folder_images_or_error(p)
        key = (*_signature(p, images), fps)
        hit = _meta_cache.get(key)
        if hit:
            return replace(hit[0]), None
        first = _read_image(images[0], None, p)
        rate = float(fps or DEFAULT_FOLDER_FPS)
        meta = VideoMeta(
            path=str(p),
            frames=len(images),
            fps=rate,
            duration_s=len(images) / rate,
            width=int(first.shape[1]),
            height=int(first.shape[0]),
            codec="png" if images[0].suffix.lower() == ".png" else "jpeg",
            sha256=sha256_file(p),
            size_bytes=sum(i.stat().st_size for i in images),
            kind="frames",
            backend="images",
        )
        _meta_cache.put(key, (meta, None))
        return replace(meta), None

    info = _file_info(p, fps)
    order = _order(backend, default_backend(info), info)
    key = (*_signature(p), fps, tuple(order))
    hit = _meta_cache.get(key)
    if hit:
        return replace(hit[0]), hit[1]
    frames = info.frames
    used = ""
    for candidate in order:
        if candidate == "decord":
            vr = _open_decord(p)
            if vr is not None and len(vr) > 0:
                used = "decord"
                frames = min(frames, len(vr))  # decord's own count bounds the indices it accepts
            del vr
        elif candidate == "opencv":
            cap = _open_cv(p)
            if cap is not None:
                if cap.grab():  # opened is not enough: OpenCV's FFmpeg may lack the decoder (AV1)
                    used = "opencv"
                cap.release()
        else:
            used = "pyav"  # the PyAV check decoded a frame already
        if used:
            break
    if not used:
        if backend == "decord" and not info.indexed:
            raise VideoError(
                f'"{_label(p)}" cannot be read frame-accurately with decord: its container has no frame index.'
            )
        raise VideoError(f'"{_label(p)}" cannot be opened with {backend}.')
    meta = VideoMeta(
        path=str(p),
        frames=int(frames),
        fps=info.fps,
        duration_s=frames / info.fps,
        width=info.width,
        height=info.height,
        codec=info.codec,
        sha256=sha256_file(p),
        size_bytes=p.stat().st_size,
        kind="file",
        backend=used,
    )
    _meta_cache.put(key, (meta, info))
    return replace(meta), info


def probe(path: str | os.PathLike[str], fps: float | None = None, *, backend: str | None = None) -> VideoMeta:
    """Describe a video file or frame folder without decoding it all.

    Files: validated with PyAV (see module doc; a still image renamed to a video extension is
    refused); ``backend`` is the first decoder of the default order that opens the file
    (``default_backend``: OpenCV, PyAV for MPEG-4 Part 2; then the others, unless ``$GHOSTPROBE_VIDEO_BACKEND`` or ``backend=``
    say otherwise); frames is the number of frames present (bounded by decord's count when decord is
    used); fps from the container, ``fps`` only when the container has no rate.
    Frame folders: ``fps`` given or 30, codec "jpeg"/"png", size from the first image.
    ``duration_s`` is frames / fps. Memoised per (path, size, mtime).
    """
    return _probe(_as_path(path), fps, backend)[0]



def _positive(x: Any) -> bool:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return False
    return math.isfinite(v) and v > 0
