"""Video intake: hash, inspect, decode, sample, make browser-playable copies, thumbnails.

Sources are video files (DADA-2000 clips are MPEG-4 Part 2 in AVI) or DADA-style frame folders
(``<category>/<clip>/images/0001.jpg …``; the clip folder or the ``images`` folder itself).

Modules (this package re-exports the public names, and the private ones tests and benches use):

- :mod:`~engines.video.common`: names in messages, frame folders, cache folders and locks, the LRU.
- :mod:`~engines.video.hashing`: :func:`sha256_file`, memoised by (real path, size, mtime_ns).
- :mod:`~engines.video.inspection`: :func:`probe` — the PyAV check every file passes first
  (container opens, has a video stream, is not a still image, every promised frame is present,
  the first frame decodes), then the first backend that opens it.
- :mod:`~engines.video.decoders`: decord, OpenCV, PyAV (grey from the luma plane, FFmpeg
  ``lowres``), frame-folder images; fallback from one to the next part-way.
- :mod:`~engines.video.sampling`: :func:`sample_indices`, :func:`load_clip`, :func:`iter_frames`,
  with every option and the memory budget checked before decoding.
- :mod:`~engines.video.playable`: :func:`make_playable` (H.264 copies for the browser).
- :mod:`~engines.video.thumbnails`: :func:`thumbnail`, :func:`save_thumbnail`.

Backends: the fastest measured first (bench/bench_video.py): OpenCV (``DEFAULT_BACKEND``; sparse
``num_frames`` sampling seeks to keyframes per gap), PyAV for MPEG-4 Part 2 (``PREFERRED_BY_CODEC``)
and for rate sampling in grey or with ``lowres`` (the baseline's sampling), decord by configuration
(``$GHOSTPROBE_VIDEO_BACKEND=decord`` or ``backend="decord"``). Frame indices mean the same frame
in every backend: the i-th frame in presentation order (tests check this pixel-exactly on
generated and DADA clips).

Every error a person can cause (missing path, empty/corrupt/truncated/non-video file, a still image
renamed to a video, a folder without images, a time window outside the clip, a sampling option out
of range, a clip over the memory budget) raises :class:`~engines.errors.VideoError` with one
sentence that names the file or the limit.

Heavy imports (decord, av) happen inside functions; importing this package is cheap.
"""

from __future__ import annotations

from engines.video.common import (
    DEFAULT_FOLDER_FPS,
    IMAGE_EXTENSIONS,
    LRU,
    VIDEO_EXTENSIONS,
    SamplingError,
    frame_folder_images,
    is_frame_folder,
)
from engines.video.decoders import (
    BACKEND_ENV,
    BACKENDS,
    COLORS,
    DECODE_THREADS_ENV,
    DEFAULT_BACKEND,
    INDEXED_CONTAINERS,
    OPENCV_SEEK_COST,
    PREFERRED_BY_CODEC,
    Out,
    _open_decord,
    _pyav_frames,
    _to_numpy,
    decode_threads,
    default_backend,
    limit_threads,
    lowres_level,
)
from engines.video.hashing import _hash_cache, sha256_file
from engines.video.inspection import _info_cache, _meta_cache, probe
from engines.video.playable import make_playable
from engines.video.sampling import (
    DEFAULT_MAX_CLIP_MB,
    MAX_CLIP_MB_ENV,
    MAX_NUM_FRAMES,
    MIN_MAX_SIDE,
    iter_frames,
    load_clip,
    max_clip_bytes,
    sample_indices,
)
from engines.video.thumbnails import save_thumbnail, thumbnail

__all__ = [
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "DEFAULT_FOLDER_FPS",
    "BACKEND_ENV",
    "BACKENDS",
    "COLORS",
    "DEFAULT_BACKEND",
    "PREFERRED_BY_CODEC",
    "default_backend",
    "MAX_NUM_FRAMES",
    "MIN_MAX_SIDE",
    "MAX_CLIP_MB_ENV",
    "DEFAULT_MAX_CLIP_MB",
    "SamplingError",
    "LRU",
    "Out",
    "sha256_file",
    "is_frame_folder",
    "frame_folder_images",
    "probe",
    "sample_indices",
    "load_clip",
    "iter_frames",
    "max_clip_bytes",
    "lowres_level",
    "limit_threads",
    "decode_threads",
    "DECODE_THREADS_ENV",
    "make_playable",
    "thumbnail",
    "save_thumbnail",
]
