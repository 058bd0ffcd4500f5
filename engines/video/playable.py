"""Browser-playable copies: the original when a browser plays it, else an H.264 MP4 made once.

Copies live at ``<cache_dir>/playable/<sha256>.mp4``, written under a temporary name and renamed
into place under a per-key lock, so concurrent calls encode once and never leave half a file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engines.errors import VideoError
from engines.types import VideoMeta
from engines.video.common import _as_path, _cache_dir, _folder_images_or_error, _key_lock, _label, _tmp_name
from engines.video.decoders import _read_image
from engines.video.inspection import _probe

if TYPE_CHECKING:
    from engines.video.inspection import _FileInfo


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

