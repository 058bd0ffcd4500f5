"""Thumbnails: one RGB frame about a third into the clip, and its JPEG cached by the clip's hash."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from engines.errors import VideoError
from engines.video.common import _as_path, _cache_dir, _key_lock, _label, _tmp_name
from engines.video.decoders import Out, _iter_with_fallback, _order, _resized_shape, default_backend
from engines.video.hashing import sha256_file
from engines.video.inspection import _probe
from engines.video.sampling import _check_max_side

def thumbnail(
    path: str | os.PathLike[str], max_side: int = 320, *, backend: str | None = None, source_fps: float | None = None
) -> np.ndarray:
    """An RGB uint8 frame about a third into the clip, its longer side at most ``max_side``."""
    p = _as_path(path)
    max_side = _check_max_side(max_side)  # type: ignore[assignment]
    meta, info = _probe(p, source_fps, backend)
    j = min(meta.frames - 1, meta.frames // 3)
    out = Out(_resized_shape(meta.width, meta.height, max_side))
    for _j, rgb, _used in _iter_with_fallback(meta, info, p, [j], out, _order(backend, default_backend(info), info)):
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

