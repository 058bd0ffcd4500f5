"""SHA-256 of a video file or frame folder, memoised by what changes when the content may change.

The memo key is (real path, size, mtime_ns) of the file, or of every image of a frame folder, so
the hash answered is always the current file's: a file replaced by other bytes (even of the same
size) gets a new mtime and is hashed again. The memo is a thread-safe bounded LRU.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from engines.errors import VideoError
from engines.video.common import LRU, _as_path, _check_exists, _folder_images_or_error, _label

_HASH_CHUNK = 1 << 20
_CACHE_MAX = 1024
_hash_cache = LRU(_CACHE_MAX)


def _signature(p: Path, images: list[Path] | None = None) -> tuple[Any, ...]:
    """What changes when the content may have changed: real path, size and mtime_ns of every part."""
    if images is None:
        st = p.stat()
        return (os.path.realpath(p), st.st_size, st.st_mtime_ns)
    stats = []
    for i in images:
        st = i.stat()
        stats.append((i.name, st.st_size, st.st_mtime_ns))
    return (os.path.realpath(p), tuple(stats))


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
    path does not. Memoised per (real path, size, mtime_ns) in a bounded LRU shared by threads.
    """
    p = _as_path(path)
    _check_exists(p)
    images = _folder_images_or_error(p) if p.is_dir() else None
    try:
        key = _signature(p, images)
        hit = _hash_cache.get(key)
        if hit:
            return hit
        digest = _hash_images(images) if images is not None else _hash_file_bytes(p)
    except PermissionError:
        raise VideoError(f'Cannot read "{_label(p)}": permission denied.') from None
    except OSError:
        raise VideoError(f'Cannot read "{_label(p)}": the file could not be read to the end.') from None
    _hash_cache.put(key, digest)
    return digest
