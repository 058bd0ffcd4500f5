"""Video intake: probe, hash, sample and stream frames, make browser-playable copies, thumbnails.

Sources are video files (DADA-2000 clips are MPEG-4 Part 2 in AVI) or DADA-style frame folders
(``<category>/<clip>/images/0001.jpg …``; the clip folder or the ``images`` folder itself).

Decoding: every file is first checked with PyAV (container opens, has a video stream, every frame
the header promises is present, the first frame decodes), because decord can abort the whole
process on some garbage. Then :func:`load_clip` and :func:`thumbnail` read it with decord
(``get_batch``, which seeks to keyframes for sparse indices), and OpenCV takes over when decord
cannot open a file or fails while decoding. :func:`iter_frames` streams with OpenCV first
(``grab()`` through frames it does not need, ``retrieve()`` only those it yields: decord converts
every decoded frame to RGB, which measured 2-3x slower for streaming a DADA clip at 10 fps).
``$GHOSTPROBE_VIDEO_BACKEND`` (``decord``/``opencv``) puts one backend first everywhere; the
``backend=`` argument forces one. Frame indices mean the same frame in every backend: the i-th
frame in presentation order (tests check this pixel-exactly on generated and DADA clips).

Every error a person can cause (missing path, empty/corrupt/truncated/non-video file, a folder
without images, a time window outside the clip) raises :class:`~engines.errors.VideoError` with
one sentence that names the file. Programming errors (``num_frames=0``) raise ``ValueError``.

Heavy imports (decord, av) happen inside functions; importing this module is cheap.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import math
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # quiet FFmpeg inside OpenCV (read when cv2 opens a file)
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from engines.errors import VideoError  # noqa: E402
from engines.types import Clip, VideoMeta  # noqa: E402

__all__ = [
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "DEFAULT_FOLDER_FPS",
    "sha256_file",
    "is_frame_folder",
    "frame_folder_images",
    "probe",
    "sample_indices",
    "load_clip",
    "iter_frames",
    "make_playable",
    "thumbnail",
    "save_thumbnail",
]

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png"}
DEFAULT_FOLDER_FPS = 30.0  # DADA-2000 frame folders are 30 fps

# OpenCV sparse reading. grab() decodes the next frame (no colour conversion); set(POS_FRAMES)
# seeks to the keyframe before the target and decodes forward, and costs about as much as
# decoding this many extra frames (measured on DADA clips: 16 of 240 frames with a keyframe every
# 12 frames took 0.31 s with grab() against 0.54 s with seeks; 4 of 240 took 0.11 s seeking
# against 0.38 s grabbing). We seek only when a keyframe lies between the current position and
# the target and seek_cost + (target - keyframe) < (target - position); keyframe positions come
# from the PyAV check, which reads every packet anyway.
OPENCV_SEEK_COST = 20
_CHUNK = 16  # at most this many frames per decord get_batch ...
_CHUNK_BYTES = 64 << 20  # ... and at most this many bytes of full-size RGB frames in one batch
BACKEND_ENV = "GHOSTPROBE_VIDEO_BACKEND"  # "decord" or "opencv": which one to try first
_HASH_CHUNK = 1 << 20
BACKENDS = ("decord", "opencv", "pyav")
INDEXED_CONTAINERS = ("avi", "mov", "mp4", "matroska", "webm")

_quiet_done = False


def _quiet() -> None:
    """Silence OpenCV's and decord's loggers (once). PyAV logs nothing unless asked to."""
    global _quiet_done
    if _quiet_done:
        return
    _quiet_done = True
    with contextlib.suppress(Exception):
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


# -- names and paths --------------------------------------------------------------------------


def _label(p: Path) -> str:
    """How a path is named in a message: the file name (``<clip>/images`` for an images folder)."""
    name = p.name or str(p)
    if p.name.lower() == "images" and p.parent.name:
        name = f"{p.parent.name}/{p.name}"
    return re.sub(r"[\r\n\t]+", " ", name)


def _as_path(path: str | os.PathLike[str]) -> Path:
    if path is None or str(path) == "":
        raise VideoError("No video was given.")
    return Path(path).expanduser()


def _natural_key(p: Path) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name))


def frame_folder_images(path: str | os.PathLike[str]) -> list[Path]:
    """The image files of a frame folder in frame order (natural sort), or [] if there are none.

    ``path`` may be a clip folder holding ``images/`` or a folder holding the images directly.
    """
    p = Path(path)
    if not p.is_dir():
        return []
    folder = p / "images" if (p / "images").is_dir() else p
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    images = [e for e in entries if e.suffix.lower() in IMAGE_EXTENSIONS and not e.name.startswith(".") and e.is_file()]
    return sorted(images, key=_natural_key)


def is_frame_folder(path: str | os.PathLike[str]) -> bool:
    """True for a DADA-style frame folder: a clip folder with ``images/``, or the image folder itself."""
    return bool(frame_folder_images(path))


def _check_exists(p: Path) -> None:
    try:
        p.stat()
    except FileNotFoundError:
        raise VideoError(f'Cannot find "{_label(p)}": no such file or folder.') from None
    except PermissionError:
        raise VideoError(f'Cannot read "{_label(p)}": permission denied.') from None
    except OSError:
        raise VideoError(f'Cannot read "{_label(p)}".') from None


def _folder_images_or_error(p: Path) -> list[Path]:
    images = frame_folder_images(p)
    if not images:
        raise VideoError(
            f'The folder "{_label(p)}" is not a frame folder: it holds no .jpg/.jpeg/.png images '
            "(directly or in an images/ subfolder)."
        )
    return images


# -- hashing ----------------------------------------------------------------------------------

_cache_lock = threading.Lock()
_hash_cache: dict[tuple[Any, ...], str] = {}
_meta_cache: dict[tuple[Any, ...], tuple[VideoMeta, "_FileInfo | None"]] = {}
_info_cache: dict[tuple[Any, ...], "_FileInfo"] = {}
_CACHE_MAX = 1024


def _cache_put(cache: dict, key: tuple[Any, ...], value: Any) -> None:
    with _cache_lock:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = value


def _signature(p: Path, images: list[Path] | None = None) -> tuple[Any, ...]:
    """What changes when the content may have changed: path, size and mtime of every part."""
    if images is None:
        st = p.stat()
        return (str(p.resolve()), st.st_size, st.st_mtime_ns)
    stats = []
    for i in images:
        st = i.stat()
        stats.append((i.name, st.st_size, st.st_mtime_ns))
    return (str(p.resolve()), tuple(stats))


def _hash_file_bytes(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _hash_images(images: list[Path]) -> str:
    h = hashlib.sha256()
    for img in images:
        name = img.name.encode("utf-8", "surrogateescape")
        h.update(len(name).to_bytes(8, "big"))
        h.update(name)
        h.update(img.stat().st_size.to_bytes(8, "big"))
        with open(img, "rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks.

    For a frame folder: SHA-256 over its image files in frame order (natural sort by name), each
    contributing ``len(name) as 8-byte big-endian, name (UTF-8), len(bytes) as 8-byte big-endian,
    bytes``. Renaming, reordering, adding or editing a frame changes the hash; the folder's own
    path does not. Results are memoised per (path, size, mtime).
    """
    p = _as_path(path)
    _check_exists(p)
    images = _folder_images_or_error(p) if p.is_dir() else None
    try:
        key = ("sha", *_signature(p, images))
        with _cache_lock:
            hit = _hash_cache.get(key)
        if hit:
            return hit
        digest = _hash_images(images) if images is not None else _hash_file_bytes(p)
    except PermissionError:
        raise VideoError(f'Cannot read "{_label(p)}": permission denied.') from None
    except OSError:
        raise VideoError(f'Cannot read "{_label(p)}": the file could not be read to the end.') from None
    _cache_put(_hash_cache, key, digest)
    return digest


# -- validating a file with PyAV --------------------------------------------------------------


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


def _resize(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink so the longer side is ``max_side`` (keeps aspect, cv2.INTER_AREA); never enlarges."""
    if not max_side:
        return frame
    h, w = frame.shape[:2]
    longest = max(h, w)
    if longest <= max_side:
        return frame
    scale = max_side / longest
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    return cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)


def _resized_shape(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _read_image(img: Path, size: tuple[int, int] | None, folder: Path) -> np.ndarray:
    bgr = cv2.imread(str(img), cv2.IMREAD_COLOR)
    if bgr is None:
        raise VideoError(f'The frame "{img.name}" in "{_label(folder)}" is not a readable image.')
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if size is not None and (rgb.shape[1], rgb.shape[0]) != size:
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)  # odd frame out: match the first
    return rgb


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


def _iter_unique(
    meta: VideoMeta, info: _FileInfo | None, p: Path, wanted: list[int], max_side: int | None, backend: str
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, resized RGB frame) for ascending unique indices with the chosen backend."""
    if backend == "images":
        images = _folder_images_or_error(p)
        size = (meta.width, meta.height)
        for j in wanted:
            yield j, _resize(_read_image(images[j], size, p), max_side)
    elif backend == "decord":
        vr = _open_decord(p)
        if vr is None:
            raise _DecodeFailed(wanted[0] if wanted else 0)
        for part, batch in _decord_chunks(vr, wanted, meta.width * meta.height * 3):
            for j, rgb in zip(part, batch):
                yield j, _resize(rgb, max_side)
    elif backend == "opencv":
        cap = _open_cv(p)
        if cap is None:
            raise _DecodeFailed(wanted[0] if wanted else 0)
        indexed = info is None or info.indexed
        try:
            for j, bgr in _cv_frames(
                cap, wanted, info.keyframes if info else (), None if indexed else 10**12
            ):
                yield j, cv2.cvtColor(_resize(bgr, max_side), cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
    else:
        for j, rgb in _pyav_frames(p, wanted):
            yield j, _resize(rgb, max_side)


def _pyav_frames(p: Path, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, RGB frame) by decoding every frame in order with PyAV (the last resort:
    slowest, but it reads whatever passed the PyAV check)."""
    import av

    if not wanted:
        return
    targets = iter(wanted)
    nxt = next(targets)
    i = 0
    with av.open(str(p), metadata_errors="ignore") as c:
        stream = c.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        try:
            for fr in c.decode(stream):
                if i == nxt:
                    yield i, fr.to_ndarray(format="rgb24")
                    nxt = next(targets, None)
                    if nxt is None:
                        return
                i += 1
        except av.error.FFmpegError:
            raise _DecodeFailed(i) from None
    raise _DecodeFailed(nxt)


def _order(backend: str | None, prefer: str, info: _FileInfo | None = None) -> list[str]:
    """Backends to try, in order: the one forced; else ``$GHOSTPROBE_VIDEO_BACKEND`` or ``prefer``
    first, then the other, then PyAV. decord is left out for containers without a frame index."""
    _check_backend(backend)
    if backend in BACKENDS:
        if backend == "decord" and info is not None and not info.indexed:
            return []  # asked for decord where it returns wrong frames: refuse (see _FileInfo.indexed)
        return [backend]
    env = os.environ.get(BACKEND_ENV, "").strip().lower()
    first = env if env in ("decord", "opencv") else prefer
    order = [first, "opencv" if first == "decord" else "decord", "pyav"]
    if info is not None and not info.indexed:
        order.remove("decord")
    return order


def _iter_with_fallback(
    meta: VideoMeta,
    info: _FileInfo | None,
    p: Path,
    wanted: list[int],
    max_side: int | None,
    order: list[str],
) -> Iterator[tuple[int, np.ndarray, str]]:
    """Yield (index, RGB frame, backend) with the first backend of ``order``; if it fails part-way,
    the next one carries on from the first frame not yet delivered."""
    if meta.kind == "frames":
        order = ["images"]
    elif meta.backend == "pyav":
        order = ["pyav"]  # probe found that neither decord nor OpenCV can open the file
    elif meta.backend == "opencv" and "decord" in order and os.environ.get(BACKEND_ENV, "").strip().lower() != "opencv":
        order = [b for b in order if b != "decord"]  # probe tried decord first and it could not open the file
    done = 0
    failed_at = wanted[0] if wanted else 0
    for backend in order:
        try:
            for j, rgb in _iter_unique(meta, info, p, wanted[done:], max_side, backend):
                done += 1
                yield j, rgb, backend
            return
        except _DecodeFailed as e:
            failed_at = e.at
    raise VideoError(f'"{_label(p)}" is corrupt: frame {failed_at} of {meta.frames} cannot be decoded.')


# -- probe --------------------------------------------------------------------------------------


def _check_backend(backend: str | None) -> None:
    if backend not in (None, "auto", *BACKENDS):
        raise ValueError(f"backend must be None, 'auto', 'decord', 'opencv' or 'pyav', not {backend!r}")


def _file_info(p: Path, fps: float | None) -> _FileInfo:
    """:func:`_inspect_file`, memoised per (path, size, mtime)."""
    key = ("info", *_signature(p), fps)
    with _cache_lock:
        hit = _info_cache.get(key)
    if hit is None:
        hit = _inspect_file(p, fps)
        _cache_put(_info_cache, key, hit)
    return hit


def _probe(p: Path, fps: float | None, backend: str | None) -> tuple[VideoMeta, _FileInfo | None]:
    _check_backend(backend)
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, not {fps!r}")
    _check_exists(p)
    if p.is_dir():
        images = _folder_images_or_error(p)
        key = ("meta", *_signature(p, images), fps)
        with _cache_lock:
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
        _cache_put(_meta_cache, key, (meta, None))
        return replace(meta), None

    info = _file_info(p, fps)
    order = _order(backend, "decord", info)
    key = ("meta", *_signature(p), fps, tuple(order))
    with _cache_lock:
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
    _cache_put(_meta_cache, key, (meta, info))
    return replace(meta), info


def probe(path: str | os.PathLike[str], fps: float | None = None, *, backend: str | None = None) -> VideoMeta:
    """Describe a video file or frame folder without decoding it all.

    Files: validated with PyAV (see module doc); ``backend`` is the decoder :func:`load_clip` will
    use (decord unless it cannot open the file, ``$GHOSTPROBE_VIDEO_BACKEND`` or ``backend=`` say
    otherwise); frames is the number of frames present (bounded by decord's count when decord is
    used); fps from the container, ``fps`` only when the container has no rate.
    Frame folders: ``fps`` given or 30, codec "jpeg"/"png", size from the first image.
    ``duration_s`` is frames / fps. Memoised per (path, size, mtime).
    """
    return _probe(_as_path(path), fps, backend)[0]


# -- sampling -----------------------------------------------------------------------------------


def _window(meta: VideoMeta, p: Path, start_s: float | None, end_s: float | None) -> tuple[int, int]:
    n, rate = meta.frames, meta.fps
    if start_s is None and end_s is None:
        return 0, n
    s = 0.0 if start_s is None else float(start_s)
    e = meta.duration_s if end_s is None else float(end_s)
    if not (math.isfinite(s) and math.isfinite(e)):
        raise VideoError(f'The time window of "{_label(p)}" must be given in finite seconds.')
    a = max(0, math.ceil(max(0.0, s) * rate - 1e-6))
    if a >= n:
        raise VideoError(
            f'The time window starting at {s:g} s is past the end of "{_label(p)}", '
            f"which lasts {meta.duration_s:.2f} s."
        )
    if e <= s:
        raise VideoError(
            f'The time window {s:g}–{e:g} s of "{_label(p)}" is empty: the end must come after the start.'
        )
    b = min(n, math.ceil(e * rate - 1e-6))
    return a, max(b, a + 1)


def sample_indices(
    total: int,
    native_fps: float,
    num_frames: int | None = 16,
    fps: float | None = None,
    start: int = 0,
    stop: int | None = None,
) -> list[int]:
    """Frame indices to sample from frames ``start..stop-1`` of a ``total``-frame video.

    ``fps`` (a rate) wins over ``num_frames``: every ``native_fps / fps``-th frame from ``start``,
    or every frame when the rate is at least the native one. ``num_frames``: the centre of each of
    ``num_frames`` equal segments, ``start + floor((i + 0.5) * n / num_frames)``; exactly
    ``num_frames`` indices, repeating frames when the window is shorter than that.
    """
    stop = total if stop is None else min(stop, total)
    n = stop - start
    if n <= 0:
        return []
    if fps is not None:
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"fps must be a positive number, not {fps!r}")
        if fps >= native_fps:
            return list(range(start, stop))
        step = native_fps / fps
        count = math.ceil(n / step - 1e-9)
        return [start + min(n - 1, int(math.floor(k * step + 1e-9))) for k in range(count)]
    if num_frames is None:
        raise ValueError("give num_frames or fps")
    if int(num_frames) <= 0:
        raise ValueError(f"num_frames must be positive, not {num_frames!r}")
    k = int(num_frames)
    return [start + min(n - 1, int(math.floor((i + 0.5) * n / k))) for i in range(k)]


def _check_max_side(max_side: int | None) -> int | None:
    if max_side is None:
        return None
    if int(max_side) <= 0:
        raise ValueError(f"max_side must be positive, not {max_side!r}")
    return int(max_side)


def load_clip(
    path: str | os.PathLike[str],
    num_frames: int | None = 16,
    fps: float | None = None,
    max_side: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    *,
    backend: str | None = None,
    source_fps: float | None = None,
) -> Clip:
    """Sample frames of a video file or frame folder into a :class:`Clip` (RGB uint8 [T,H,W,3]).

    ``fps`` (a sampling rate) wins over ``num_frames`` (uniform, centre of each segment; exactly
    that many frames, repeating when the clip is shorter). ``start_s``/``end_s`` restrict sampling to
    frames whose time ``index / fps`` lies in ``[start_s, end_s)``. ``max_side`` shrinks frames so the
    longer side is at most that (aspect kept, INTER_AREA). ``backend``: None/"auto" (decord, then
    OpenCV, for ``num_frames``; OpenCV first for rate sampling, which decodes densely and which
    OpenCV's sequential grab does 2-4x faster than decord: bench/bench_video.py), "decord" or "opencv". ``source_fps``: the rate of a frame folder (default 30).
    ``timestamps_s`` are ``index / native fps``; ``sampling`` records num_frames/fps/max_side/backend
    (and start_s/end_s when given).
    """
    p = _as_path(path)
    max_side = _check_max_side(max_side)
    if fps is None and num_frames is None:
        raise ValueError("give num_frames or fps")
    meta, info = _probe(p, source_fps, backend)
    a, b = _window(meta, p, start_s, end_s)
    indices = sample_indices(meta.frames, meta.fps, None if fps is not None else num_frames, fps, a, b)
    wanted = sorted(set(indices))
    out_w, out_h = _resized_shape(meta.width, meta.height, max_side)
    by_index: dict[int, int] = {}
    frames = np.empty((len(wanted), out_h, out_w, 3), np.uint8)
    backends_used: list[str] = []
    prefer = "opencv" if fps is not None else "decord"
    frames_iter = _iter_with_fallback(meta, info, p, wanted, max_side, _order(backend, prefer, info))
    for k, (j, rgb, b_used) in enumerate(frames_iter):
        if b_used not in backends_used:
            backends_used.append(b_used)
        if rgb.shape[:2] != (out_h, out_w):  # a decoder that disagrees with the header on size
            rgb = cv2.resize(rgb, (out_w, out_h), interpolation=cv2.INTER_AREA)
        frames[k] = rgb
        by_index[j] = k
    if len(by_index) != len(wanted):
        raise VideoError(f'"{_label(p)}" is corrupt: some of its frames cannot be decoded.')
    used = "+".join(backends_used) or meta.backend  # "decord+opencv" when OpenCV took over part-way
    if len(wanted) != len(indices) or wanted != indices:
        frames = frames[[by_index[j] for j in indices]]
    sampling: dict[str, Any] = {
        "num_frames": None if fps is not None else int(num_frames),  # type: ignore[arg-type]
        "fps": None if fps is None else float(fps),
        "max_side": max_side,
        "backend": used,
    }
    if start_s is not None:
        sampling["start_s"] = float(start_s)
    if end_s is not None:
        sampling["end_s"] = float(end_s)
    if used != meta.backend:
        meta = replace(meta, backend=used)
    return Clip(
        frames=frames,
        timestamps_s=[j / meta.fps for j in indices],
        indices=list(indices),
        fps=meta.fps,
        duration_s=meta.duration_s,
        source=str(p),
        sha256=meta.sha256,
        meta=meta,
        sampling=sampling,
    )


def iter_frames(
    path: str | os.PathLike[str],
    fps: float | None = None,
    max_side: int | None = None,
    *,
    backend: str | None = None,
    source_fps: float | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Stream ``(index, t_s, rgb)`` through the whole video at ``fps`` (None: every frame).

    OpenCV first (sequential grab/retrieve), decord as fallback, unless ``backend`` or
    ``$GHOSTPROBE_VIDEO_BACKEND`` say otherwise. Holds one frame (OpenCV) or one batch of at most
    16 frames / 64 MB (decord) at a time, so it suits long videos. Indices and frames match
    :func:`load_clip`'s. A generator: the file is checked on the first ``next()``; errors are
    :class:`VideoError`.
    """
    p = _as_path(path)
    max_side = _check_max_side(max_side)
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, not {fps!r}")
    meta, info = _probe(p, source_fps, backend)
    indices = sample_indices(meta.frames, meta.fps, None, fps if fps is not None else meta.fps)
    for j, rgb, _used in _iter_with_fallback(meta, info, p, indices, max_side, _order(backend, "opencv", info)):
        yield j, j / meta.fps, rgb


# -- per-key locks and atomic writes ------------------------------------------------------------

_locks_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}


@contextlib.contextmanager
def _key_lock(key: str, lock_dir: Path) -> Iterator[None]:
    """One writer per cache key: a thread lock in this process, plus flock across processes."""
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        try:
            import fcntl
        except ImportError:  # not POSIX: the thread lock and the atomic rename still hold
            yield
            return
        lock_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_dir / f".{key}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.stem}.{os.getpid()}.{threading.get_ident()}.tmp{final.suffix}")


def _cache_dir(cache_dir: str | os.PathLike[str], sub: str) -> Path:
    d = Path(cache_dir).expanduser() / sub
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        raise VideoError(f'Cannot write to the cache folder "{_label(d)}".') from None
    return d


# -- browser-playable copies --------------------------------------------------------------------

_PLAYABLE = {
    "mp4": ({".mp4", ".m4v"}, {"h264", "vp9", "av1"}),
    "webm": ({".webm"}, {"vp8", "vp9", "av1"}),
}


def _is_browser_playable(p: Path, info: _FileInfo) -> bool:
    if info.pix_fmt != "yuv420p":
        return False
    fmt = "mp4" if "mp4" in info.container else "webm" if "webm" in info.container else ""
    if not fmt:
        return False
    exts, codecs = _PLAYABLE[fmt]
    return p.suffix.lower() in exts and info.codec in codecs


def _rgb_frames_for_transcode(p: Path, meta: VideoMeta) -> Iterator[Any]:
    """Every frame of the source: av.VideoFrame for files (decoded by PyAV), RGB arrays for folders."""
    if meta.kind == "frames":
        images = _folder_images_or_error(p)
        size = (meta.width, meta.height)
        for img in images:
            yield _read_image(img, size, p)
        return
    import av

    with av.open(str(p), metadata_errors="ignore") as c:
        stream = c.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        try:
            for pk in c.demux(stream):
                try:
                    yield from pk.decode()
                except av.error.InvalidDataError:
                    continue  # a damaged frame: skip it, as a player would
        except av.error.FFmpegError:
            raise VideoError(f'"{_label(p)}" is corrupt: reading its video data failed part-way.') from None


def _encode_h264(frames: Iterable[Any], width: int, height: int, fps: float, dst: Path, p: Path) -> int:
    import av

    w, h = width - width % 2, height - height % 2
    if w < 2 or h < 2:
        raise VideoError(f'"{_label(p)}" is too small to convert for the browser ({width}x{height}).')
    rate = Fraction(fps).limit_denominator(1001)
    n = 0
    with av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        s = out.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "23", "preset": "veryfast"}
        tb = Fraction(1, 1) / rate
        for fr in frames:
            if isinstance(fr, np.ndarray):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(fr[:h, :w]), format="rgb24")
            elif (fr.width, fr.height) != (w, h):
                rgb = np.ascontiguousarray(fr.to_ndarray(format="rgb24")[:h, :w])  # odd size: drop a row/column
                vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            else:
                vf = fr.reformat(format="yuv420p")
            vf.pts = n
            vf.time_base = tb
            for pk in s.encode(vf):
                out.mux(pk)
            n += 1
        for pk in s.encode():
            out.mux(pk)
    return n


def make_playable(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str]) -> Path:
    """A path a browser can play: the original when it is already H.264/VP9/AV1 yuv420p in
    MP4 (or VP8/VP9/AV1 in WebM); otherwise an H.264 copy made once with PyAV (libx264, yuv420p,
    even dimensions, crf 23, preset veryfast, +faststart) at ``cache_dir/playable/<sha256>.mp4``.

    The copy is written under a temporary name and renamed into place, under a per-key lock
    (threads) and flock (processes), so concurrent calls for one video encode it once and never
    leave a half-written file. Audio is not carried over. Frame folders are encoded too.
    """
    p = _as_path(path)
    meta, info = _probe(p, None, None)
    if info is not None and _is_browser_playable(p, info):
        return p
    folder = _cache_dir(cache_dir, "playable")
    final = folder / f"{meta.sha256}.mp4"
    if final.is_file() and final.stat().st_size > 0:
        return final
    with _key_lock(meta.sha256, folder):
        if final.is_file() and final.stat().st_size > 0:
            return final
        tmp = _tmp_name(final)
        try:
            n = _encode_h264(_rgb_frames_for_transcode(p, meta), meta.width, meta.height, meta.fps, tmp, p)
            if n == 0:
                raise VideoError(f'"{_label(p)}" is corrupt: none of its frames can be decoded.')
            os.replace(tmp, final)
        except VideoError:
            tmp.unlink(missing_ok=True)
            raise
        except Exception as e:  # an encoder or disk failure: one sentence, no FFmpeg text
            tmp.unlink(missing_ok=True)
            if isinstance(e, OSError) and not _is_av_error(e):
                raise VideoError(f'Cannot write the browser copy of "{_label(p)}" to the cache folder.') from None
            raise VideoError(f'"{_label(p)}" could not be converted to H.264 for the browser.') from None
    return final


def _is_av_error(e: BaseException) -> bool:
    try:
        import av

        return isinstance(e, av.error.FFmpegError)
    except Exception:
        return False


# -- thumbnails ---------------------------------------------------------------------------------


def thumbnail(
    path: str | os.PathLike[str], max_side: int = 320, *, backend: str | None = None, source_fps: float | None = None
) -> np.ndarray:
    """An RGB uint8 frame about a third into the clip, its longer side at most ``max_side``."""
    p = _as_path(path)
    max_side = _check_max_side(max_side)  # type: ignore[assignment]
    meta, info = _probe(p, source_fps, backend)
    j = min(meta.frames - 1, meta.frames // 3)
    for _j, rgb, _used in _iter_with_fallback(meta, info, p, [j], max_side, _order(backend, "decord", info)):
        return rgb
    raise VideoError(f'"{_label(p)}" is corrupt: frame {j} cannot be decoded.')


def save_thumbnail(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str], max_side: int = 320) -> Path:
    """:func:`thumbnail` as a JPEG cached at ``cache_dir/thumbs/<sha256>.jpg``.

    Another ``max_side`` than 320 is cached beside it as ``<sha256>_<max_side>.jpg``.
    """
    p = _as_path(path)
    sha = sha256_file(p)
    folder = _cache_dir(cache_dir, "thumbs")
    final = folder / (f"{sha}.jpg" if max_side == 320 else f"{sha}_{int(max_side)}.jpg")
    if final.is_file() and final.stat().st_size > 0:
        return final
    rgb = thumbnail(p, max_side)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise VideoError(f'Cannot encode a thumbnail for "{_label(p)}".')
    with _key_lock(f"thumb-{final.stem}", folder):
        if final.is_file() and final.stat().st_size > 0:
            return final
        tmp = _tmp_name(final)
        try:
            tmp.write_bytes(buf.tobytes())
            os.replace(tmp, final)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise VideoError(f'Cannot write the thumbnail of "{_label(p)}" to the cache folder.') from None
    return final
