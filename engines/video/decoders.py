"""The frame decoders: decord, OpenCV (FFmpeg), PyAV, and image files of frame folders.

Every backend yields ``(index, frame)`` for ascending unique frame indices (the i-th frame in
presentation order, the same frame in every backend) already shaped as asked by an
:class:`Out`: its exact output size (INTER_AREA) and colour (``"rgb"`` uint8 [H,W,3] or
``"gray"`` uint8 [H,W]). :func:`_iter_with_fallback` tries the backends of an order and, when one
fails part-way, the next carries on from the first frame not yet delivered.

- decord: ``get_batch`` in chunks (seeks to keyframes for sparse indices); RGB only.
- OpenCV: ``grab()`` through frames it does not need, ``retrieve()`` only those it yields, and a
  seek (set POS_FRAMES) where a keyframe lies in between and the seek is cheaper (see
  ``OPENCV_SEEK_COST``). Grey output converts the BGR frame after resizing.
- PyAV: decodes every frame in order. Grey output reads the luma plane directly (no colour
  conversion; limited-range luma is expanded to full range, which is what an RGB→grey conversion
  of the decoded picture gives), and ``Out.lowres`` asks the decoder for a picture reduced by
  2^k (FFmpeg ``lowres``) when the output is at most that size — MPEG-4 Part 2 (DADA), MPEG-1/2,
  MJPEG and H.263 support it; other codecs (H.264, VP9, AV1) ignore it and decode in full.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from engines.errors import VideoError
from engines.types import VideoMeta
from engines.video.common import _folder_images_or_error, _label, _quiet

if TYPE_CHECKING:
    from engines.video.inspection import _FileInfo

# OpenCV sparse reading. grab() decodes the next frame (no colour conversion); set(POS_FRAMES)
# seeks to the keyframe before the target and decodes forward, and costs about as much as
# decoding this many extra frames (measured on DADA clips: 16 of 240 frames with a keyframe every
# 12 frames took 0.31 s with grab() against 0.54 s with seeks; 4 of 240 took 0.11 s seeking
# against 0.38 s grabbing). We seek only when a keyframe lies between the current position and
# the target and seek_cost + (target - keyframe) < (target - position); keyframe positions come
# from the PyAV check, which reads every packet anyway. Read at call time (tests patch it).
OPENCV_SEEK_COST = 20
_CHUNK = 16  # at most this many frames per decord get_batch ...
_CHUNK_BYTES = 64 << 20  # ... and at most this many bytes of full-size RGB frames in one batch
BACKEND_ENV = "GHOSTPROBE_VIDEO_BACKEND"  # "decord", "opencv" or "pyav": which one to try first
BACKENDS = ("decord", "opencv", "pyav")
INDEXED_CONTAINERS = ("avi", "mov", "mp4", "matroska", "webm")
COLORS = ("rgb", "gray")
# The backend tried first when none is asked for (by probe, by load_clip, by thumbnails): the
# fastest measured sampling 16 frames (bench/bench_video.py, interleaved, 3 repetitions): OpenCV
# (it seeks to keyframes per gap) for H.264 and the rest; PyAV for MPEG-4 Part 2 (the DADA clips,
# where the keyframe gaps are too short to seek and PyAV's frame-threaded decode won). decord is
# always available by configuration ($GHOSTPROBE_VIDEO_BACKEND=decord or backend="decord").
DEFAULT_BACKEND = "opencv"
PREFERRED_BY_CODEC = {"mpeg4": "pyav"}


def default_backend(info: "_FileInfo | None" = None) -> str:
    """The backend tried first for a file with this inspection result (see PREFERRED_BY_CODEC)."""
    return PREFERRED_BY_CODEC.get(info.codec, DEFAULT_BACKEND) if info is not None else DEFAULT_BACKEND
MAX_LOWRES = 3  # FFmpeg's largest lowres for the codecs that have it
# Codecs whose FFmpeg decoder implements lowres (max_lowres > 0); the others decode in full anyway.
LOWRES_CODECS = frozenset({"mpeg4", "h263", "h263p", "mpeg1video", "mpeg2video", "mjpeg", "msmpeg4v1",
                           "msmpeg4v2", "msmpeg4v3", "wmv1", "wmv2", "h261", "flv1"})
# Threads one PyAV decoder may use: 0 (unset) lets FFmpeg pick (frame and slice threads, one per
# core). A process that shares the cores with others doing the same (eval's worker processes, one
# per core) decodes on one thread: FFmpeg's frame threads cost ~35 % more CPU on a DADA clip for
# the same frames (bench/bench_baseline.py), CPU the other worker needed.
DECODE_THREADS_ENV = "GHOSTPROBE_DECODE_THREADS"


def decode_threads() -> int:
    """``$GHOSTPROBE_DECODE_THREADS`` as a thread count (0: FFmpeg's choice)."""
    raw = os.environ.get(DECODE_THREADS_ENV, "").strip()
    try:
        return max(0, int(raw)) if raw else 0
    except ValueError:
        return 0


def limit_threads(n: int) -> None:
    """Let this process's decoders (PyAV) and OpenCV (DIS flow, resizing) use at most ``n`` threads.

    For a worker process that shares the machine with one worker per core: every thread more than
    the process's share of the cores only adds CPU (OpenCV's DIS on 2 threads takes ~1.8x the CPU
    of 1 thread for about the same wall time when the other core is busy). Results are identical
    for any thread count (DIS, INTER_AREA and the decoders are deterministic)."""
    n = max(1, int(n))
    os.environ[DECODE_THREADS_ENV] = str(n)
    cv2.setNumThreads(n)


@dataclass(frozen=True)
class Out:
    """What a backend must deliver: frames of exactly ``size`` (width, height), in ``color``;
    ``lowres``: the decoder may reduce the picture by 2^k first when that is still >= ``size``."""

    size: tuple[int, int]
    color: str = "rgb"
    lowres: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        w, h = self.size
        return (h, w) if self.color == "gray" else (h, w, 3)


def lowres_level(width: int, height: int, size: tuple[int, int], codec: str = "mpeg4") -> int:
    """The largest k <= 3 with ceil(width / 2^k) >= out width and ceil(height / 2^k) >= out height,
    for a codec that supports it (0 otherwise)."""
    if codec not in LOWRES_CODECS:
        return 0
    k = 0
    while k < MAX_LOWRES and -(-width // (2 ** (k + 1))) >= size[0] and -(-height // (2 ** (k + 1))) >= size[1]:
        k += 1
    return k


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to exactly ``size`` (width, height) with INTER_AREA, unless it already is that size."""
    if (frame.shape[1], frame.shape[0]) == tuple(size):
        return frame
    return cv2.resize(frame, tuple(size), interpolation=cv2.INTER_AREA)


def _resized_shape(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) with the longer side at most ``max_side`` (aspect kept; never enlarges)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resize(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink so the longer side is ``max_side`` (keeps aspect, cv2.INTER_AREA); never enlarges."""
    h, w = frame.shape[:2]
    return _fit(frame, _resized_shape(w, h, max_side))


# -- backends ---------------------------------------------------------------------------------


def _decord():
    import decord

    with contextlib.suppress(Exception):
        decord.logging.set_level(decord.logging.QUIET)
    return decord


def _open_decord(p: Path):
    """A decord VideoReader, or None when decord is missing or cannot open the file."""
    try:
        decord = _decord()
    except Exception:  # ImportError, or a broken native library
        return None
    try:
        return decord.VideoReader(str(p), ctx=decord.cpu(0), num_threads=0)  # 0: FFmpeg picks
    except Exception:
        return None


def _to_numpy(batch: Any) -> np.ndarray:
    """decord NDArray (or whatever bridge someone set) to a numpy array."""
    if hasattr(batch, "asnumpy"):
        return batch.asnumpy()
    if hasattr(batch, "numpy"):
        return batch.numpy()
    return np.asarray(batch)


def _open_cv(p: Path) -> cv2.VideoCapture | None:
    """An opened OpenCV capture (FFmpeg backend), or None when OpenCV cannot open the file."""
    _quiet()
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        return None
    return cap


def _read_image(img: Path, size: tuple[int, int] | None, folder: Path, color: str = "rgb") -> np.ndarray:
    """One image of a frame folder, in ``color``, resized to ``size`` when it differs."""
    flag = cv2.IMREAD_GRAYSCALE if color == "gray" else cv2.IMREAD_COLOR
    raw = cv2.imread(str(img), flag)
    if raw is None:
        raise VideoError(f'The frame "{img.name}" in "{_label(folder)}" is not a readable image.')
    out = raw if color == "gray" else cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    if size is not None:
        out = _fit(out, size)  # odd frame out: match the first
    return out


def _decord_chunks(vr: Any, indices: list[int], frame_bytes: int) -> Iterator[tuple[list[int], np.ndarray]]:
    step = max(1, min(_CHUNK, _CHUNK_BYTES // max(1, frame_bytes)))
    for s in range(0, len(indices), step):
        part = indices[s : s + step]
        try:
            batch = _to_numpy(vr.get_batch(part))
        except Exception:
            raise _DecodeFailed(part[0]) from None
        yield part, batch


class _DecodeFailed(Exception):
    """A backend failed while decoding; the caller may fall back to another backend."""

    def __init__(self, at: int):
        super().__init__(at)
        self.at = at


def _should_seek(pos: int, j: int, keyframes: tuple[int, ...], seek_cost: int) -> bool:
    """Whether set(CAP_PROP_POS_FRAMES) beats grab()-ing from ``pos`` to ``j`` (see OPENCV_SEEK_COST)."""
    if j <= pos:
        return False
    if not keyframes:
        return j - pos > seek_cost + 30  # unknown structure: assume a keyframe every second or so
    k = keyframes[bisect.bisect_right(keyframes, j) - 1] if keyframes[0] <= j else 0
    if k <= pos:
        return False  # no keyframe in between: a seek would decode the same frames again
    return seek_cost + (j - k) < (j - pos)


def _cv_frames(
    cap: cv2.VideoCapture, wanted: list[int], keyframes: tuple[int, ...] = (), seek_cost: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, BGR frame) for ascending unique ``wanted`` indices from an OpenCV capture."""
    cost = OPENCV_SEEK_COST if seek_cost is None else seek_cost
    pos = 0  # index of the frame the next grab() returns
    for j in wanted:
        if _should_seek(pos, j, keyframes, cost):
            cap.set(cv2.CAP_PROP_POS_FRAMES, j)
            pos = j
        while pos < j:
            if not cap.grab():
                raise _DecodeFailed(pos)
            pos += 1
        if not cap.grab():
            raise _DecodeFailed(j)
        ok, bgr = cap.retrieve()
        pos += 1
        if not ok or bgr is None:
            raise _DecodeFailed(j)
        yield j, bgr


# Limited-range (16..235) luma to full range (0..255): what RGB→grey of the decoded picture gives.
_LIMITED_TO_FULL = np.clip(np.round((np.arange(256) - 16) * (255.0 / 219.0)), 0, 255).astype(np.uint8)
_LUMA_FORMATS = ("yuv420p", "yuv422p", "yuv444p", "yuv410p", "yuv411p", "yuv440p", "nv12", "nv21",
                 "yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p", "yuvj411p", "gray")


def _pyav_gray(fr: Any, size: tuple[int, int]) -> np.ndarray:
    """The luma plane of a decoded PyAV frame, resized to ``size``, in full range."""
    name = fr.format.name
    if name not in _LUMA_FORMATS:
        return cv2.cvtColor(_fit(fr.to_ndarray(format="rgb24"), size), cv2.COLOR_RGB2GRAY)
    plane = fr.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(fr.height, plane.line_size)[:, : fr.width]
    g = cv2.resize(y, tuple(size), interpolation=cv2.INTER_AREA) if (fr.width, fr.height) != tuple(size) \
        else np.array(y)
    full = name.startswith("yuvj") or name == "gray" or getattr(fr, "color_range", 0) == 2  # 2: AVCOL_RANGE_JPEG
    return g if full else cv2.LUT(g, _LIMITED_TO_FULL)


def _pyav_frames(
    p: Path, wanted: list[int], out: Out | None = None, codec: str = "", size: tuple[int, int] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, frame) by decoding every frame in order with PyAV; RGB at full size when
    ``out`` is None. ``size``: the coded size (for choosing the lowres level)."""
    import av

    if not wanted:
        return
    targets = iter(wanted)
    nxt = next(targets)
    i = 0
    with av.open(str(p), metadata_errors="ignore") as c:
        stream = c.streams.video[0]
        cc = stream.codec_context
        if out is not None and out.lowres and size is not None:
            k = lowres_level(size[0], size[1], out.size, codec or cc.name)
            if k:
                cc.options = {"lowres": str(k)}
        cc.thread_type = "AUTO"
        threads = decode_threads()
        if threads:
            cc.thread_count = threads
        try:
            for fr in c.decode(stream):
                if i == nxt:
                    if out is None:
                        yield i, fr.to_ndarray(format="rgb24")
                    elif out.color == "gray":
                        yield i, _pyav_gray(fr, out.size)
                    else:
                        yield i, _fit(fr.to_ndarray(format="rgb24"), out.size)
                    nxt = next(targets, None)
                    if nxt is None:
                        return
                i += 1
        except av.error.FFmpegError:
            raise _DecodeFailed(i) from None
    raise _DecodeFailed(nxt)


def _iter_unique(
    meta: VideoMeta, info: _FileInfo | None, p: Path, wanted: list[int], out: Out, backend: str
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, frame shaped as ``out``) for ascending unique indices with the chosen backend."""
    gray = out.color == "gray"
    if backend == "images":
        images = _folder_images_or_error(p)
        for j in wanted:
            yield j, _read_image(images[j], out.size, p, out.color)
    elif backend == "decord":
        vr = _open_decord(p)
        if vr is None:
            raise _DecodeFailed(wanted[0] if wanted else 0)
        for part, batch in _decord_chunks(vr, wanted, meta.width * meta.height * 3):
            for j, rgb in zip(part, batch):
                f = _fit(rgb, out.size)
                yield j, cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if gray else f
    elif backend == "opencv":
        cap = _open_cv(p)
        if cap is None:
            raise _DecodeFailed(wanted[0] if wanted else 0)
        indexed = info is None or info.indexed
        try:
            for j, bgr in _cv_frames(cap, wanted, info.keyframes if info else (), None if indexed else 10**12):
                yield j, cv2.cvtColor(_fit(bgr, out.size), cv2.COLOR_BGR2GRAY if gray else cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
    else:
        yield from _pyav_frames(p, wanted, out, meta.codec, (meta.width, meta.height))


def _check_backend(backend: str | None) -> None:
    if backend not in (None, "auto", *BACKENDS):
        raise ValueError(f"backend must be None, 'auto', 'decord', 'opencv' or 'pyav', not {backend!r}")


def _order(backend: str | None, prefer: str, info: _FileInfo | None = None) -> list[str]:
    """Backends to try, in order: the one forced; else ``$GHOSTPROBE_VIDEO_BACKEND`` or ``prefer``
    first, then the others (PyAV last unless it came first). decord is left out for containers without a
    frame index."""
    _check_backend(backend)
    if backend in BACKENDS:
        if backend == "decord" and info is not None and not info.indexed:
            return []  # asked for decord where it returns wrong frames: refuse (see _FileInfo.indexed)
        return [backend]
    env = os.environ.get(BACKEND_ENV, "").strip().lower()
    first = env if env in BACKENDS else prefer
    order = {"decord": ["decord", "opencv", "pyav"], "opencv": ["opencv", "decord", "pyav"],
             "pyav": ["pyav", "opencv", "decord"]}[first]
    if info is not None and not info.indexed:
        order.remove("decord")
    return order


def _probe_first(info: "_FileInfo | None" = None) -> str:
    env = os.environ.get(BACKEND_ENV, "").strip().lower()
    return env if env in BACKENDS else default_backend(info)


def _iter_with_fallback(
    meta: VideoMeta,
    info: _FileInfo | None,
    p: Path,
    wanted: list[int],
    out: Out,
    order: list[str],
) -> Iterator[tuple[int, np.ndarray, str]]:
    """Yield (index, frame, backend) with the first backend of ``order``; if it fails part-way,
    the next one carries on from the first frame not yet delivered."""
    if meta.kind == "frames":
        order = ["images"]
    elif meta.backend == "pyav" and _probe_first(info) != "pyav":
        order = ["pyav"]  # probe found that neither decord nor OpenCV can open the file
    elif meta.backend == "opencv" and "decord" in order and _probe_first(info) == "decord":
        order = [b for b in order if b != "decord"]  # probe tried decord first and it could not open the file
    done = 0
    failed_at = wanted[0] if wanted else 0
    for backend in order:
        try:
            for j, frame in _iter_unique(meta, info, p, wanted[done:], out, backend):
                done += 1
                yield j, frame, backend
            return
        except _DecodeFailed as e:
            failed_at = e.at
    raise VideoError(f'"{_label(p)}" is corrupt: frame {failed_at} of {meta.frames} cannot be decoded.')
