"""What every part of the video package shares: how a path is named in a message, frame folders,
cache folders with per-key locks and atomic writes, and the one place FFmpeg/OpenCV logging is
quietened. Nothing here decodes video."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # quiet FFmpeg inside OpenCV (read when cv2 opens a file)
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402

from engines.errors import VideoError  # noqa: E402

class SamplingError(VideoError, ValueError):
    """A sampling option out of range (frames, rate, size, memory budget): one sentence saying the
    limit. Also a ValueError, as these were before they could come from a person's flags."""


VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png"}
DEFAULT_FOLDER_FPS = 30.0  # DADA-2000 frame folders are 30 fps

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



# -- a small thread-safe LRU (hash, probe and file-check memos) ---------------------------------


class LRU:
    """A bounded least-recently-used map, safe to share between threads.

    Used for the memos keyed by a file's (real path, size, mtime_ns): a changed file has a new key,
    so it is never answered from an old entry; old entries age out instead of piling up.
    """

    def __init__(self, maxsize: int = 1024):
        self.maxsize = int(maxsize)
        self._d: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            try:
                self._d.move_to_end(key)
            except KeyError:
                return default
            return self._d[key]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.maxsize:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._d)

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._d
