"""The video library: files under the configured roots plus the uploads folder, indexed in the store.

- Only files under a root are ever served: paths are resolved (symlinks followed) and must stay
  inside a root; ``..`` and symlinks that point outside are refused.
- Uploads are stored under their content hash, so a re-upload is recognised, not duplicated.
- Every clip plays in a browser: ``playable()`` transcodes once (MPEG-4 Part 2 AVI, OpenCV mp4v)
  to H.264 MP4 cached by content hash.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines import video as vid
from engines.errors import VideoError
from reports import labels as lab
from reports.store import Store
from webapp.config import Config

log = logging.getLogger(__name__)


class LibraryError(VideoError):
    """A library request that cannot be honoured (path outside the roots, upload too large …)."""


@dataclass
class ScanResult:
    added: list[str]
    updated: list[str]
    removed: list[str]
    failed: dict[str, str]  # path -> one-sentence reason


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


class Library:
    def __init__(self, config: Config, store: Store):
        self.config = config
        self.store = store
        self._scan_lock = threading.Lock()
        self._demo_lock = threading.Lock()
        self._demo = DemoStatus()
        for d in (*config.library_roots, config.uploads_dir, config.cache_dir):
            d.mkdir(parents=True, exist_ok=True)

    # -- safety ----------------------------------------------------------------------------------
    @property
    def roots(self) -> list[Path]:
        return [r.resolve() for r in self.config.all_roots]

    def safe_path(self, path: str | Path) -> Path:
        """Resolve a path (following symlinks) and refuse anything outside the library roots."""
        p = Path(path)
        if not p.is_absolute():
            # Relative paths are relative to the first root, never to the process' working directory.
            p = self.roots[0] / p
        real = Path(os.path.realpath(p))
        if not any(_inside(real, root) for root in self.roots):
            raise LibraryError(f"{path} is outside the library folders, so it cannot be opened.")
        if not real.exists():
            raise LibraryError(f"{path} does not exist in the library.")
        return real

    # -- index -----------------------------------------------------------------------------------
    def _candidates(self) -> list[tuple[Path, str]]:
        found: list[tuple[Path, str]] = []
        for root in self.config.library_roots:
            root = root.resolve()
            if not root.exists():
                continue
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                d = Path(dirpath)
                dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
                if d.name == "images" and vid.is_frame_folder(d):
                    found.append((d.parent, "library"))
                    dirnames[:] = []
                    continue
                for name in sorted(filenames):
                    p = d / name
                    if p.suffix.lower() in vid.VIDEO_EXTENSIONS and not name.startswith("."):
                        found.append((p, "demo" if d == self.config.demo_dir.resolve() else "library"))
        up = self.config.uploads_dir.resolve()
        if up.exists():
            for p in sorted(up.iterdir()):
                if p.suffix.lower() in vid.VIDEO_EXTENSIONS:
                    found.append((p, "upload"))
        out = []
        for p, origin in found:
            real = Path(os.path.realpath(p))
            if any(_inside(real, r) for r in self.roots):  # symlinks pointing out of the roots are skipped
                out.append((real, origin))
        return out

    def scan(self) -> ScanResult:
        """Index new or changed files under the roots; drop rows whose file is gone."""
        with self._scan_lock:
            known = {r["path"]: r for r in self.store.query("SELECT video_id, path, size_bytes, origin FROM videos")}
            seen_paths: set[str] = set()
            added, updated, failed = [], [], {}
            for path, origin in self._candidates():
                key = str(path)
                seen_paths.add(key)
                size = _size(path)
                row = known.get(key)
                if row and row["size_bytes"] == size:
                    continue
                try:
                    meta = vid.probe(path)
                except VideoError as e:
                    failed[key] = str(e)
                    continue
                if origin == "upload":
                    # Uploads keep the id they were given at upload time.
                    video_id = row["video_id"] if row else path.name
                else:
                    video_id = row["video_id"] if row else self._free_id(_default_id(path), meta.sha256)
                self._upsert(video_id, meta, key, origin)
                (updated if row else added).append(video_id)
            # Gone from disk, or no longer under a configured root (GHOSTPROBE_LIBRARY changed): not in the
            # library any more. Runs and labels keep their own copies of the ids, so nothing else is lost.
            removed = [r["video_id"] for p, r in known.items()
                       if p not in seen_paths and (not Path(p).exists()
                                                   or not any(_inside(Path(p), root) for root in self.roots))]
            if removed:
                with self.store.write() as cur:
                    cur.executemany("DELETE FROM videos WHERE video_id = ?", [[v] for v in removed])
            return ScanResult(added, updated, removed, failed)

    def _free_id(self, name: str, sha: str) -> str:
        row = self.store.query("SELECT sha256 FROM videos WHERE video_id = ?", [name])
        if not row or row[0]["sha256"] == sha:
            return name
        stem, suffix = os.path.splitext(name)
        return f"{stem}-{sha[:8]}{suffix}"

    def _upsert(self, video_id: str, meta: Any, path: str, origin: str) -> None:
        with self.store.write() as cur:
            cur.execute("DELETE FROM videos WHERE video_id = ?", [video_id])
            cur.execute(
                """INSERT INTO videos (video_id, sha256, path, origin, size_bytes, frames, fps, duration_s, width, height, codec)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [video_id, meta.sha256, path, origin, meta.size_bytes, meta.frames, meta.fps, meta.duration_s,
                 meta.width, meta.height, meta.codec])

    # -- uploads ---------------------------------------------------------------------------------
    def add_upload(self, src: str | Path, original_name: str | None = None) -> tuple[dict[str, Any], bool]:
        """Store an uploaded file under its content hash. Returns (video row, is_new).

        The file is checked (size limit, really a video) before anything is written.
        """
        src = Path(src)
        name = Path(original_name or src.name).name
        if not src.exists():
            raise LibraryError(f"The upload {name} did not arrive; please try again.")
        size = src.stat().st_size
        if size > self.config.max_upload_bytes:
            raise LibraryError(
                f"{name} is {size / 1e6:.0f} MB, over the upload limit of {self.config.max_upload_mb:g} MB "
                "(set GHOSTPROBE_MAX_UPLOAD_MB to change it).")
        suffix = Path(name).suffix.lower()
        if suffix not in vid.VIDEO_EXTENSIONS:
            raise LibraryError(f"{name} is not a video file this library accepts ({', '.join(sorted(vid.VIDEO_EXTENSIONS))}).")
        meta = vid.probe(src)  # raises VideoError with one sentence for corrupt/empty/not-a-video
        existing = self.store.query("SELECT * FROM videos WHERE sha256 = ? ORDER BY added_at LIMIT 1", [meta.sha256])
        if existing and Path(existing[0]["path"]).exists():
            return existing[0], False
        dest = self.config.uploads_dir / f"{meta.sha256}{suffix}"
        if not dest.exists():
            tmp = dest.with_suffix(dest.suffix + ".part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        video_id = self._free_id(name, meta.sha256)
        meta.path = str(dest)
        self._upsert(video_id, meta, str(dest.resolve()), "upload")
        return self.get(video_id), True

    # -- reading ---------------------------------------------------------------------------------
    def get(self, video_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM videos WHERE video_id = ?", [video_id])
        if not rows:
            raise LibraryError(f"Video {video_id} is not in the library.")
        return rows[0]

    def path(self, video_id: str) -> Path:
        """The file of a library video, re-checked against the roots every time."""
        return self.safe_path(self.get(video_id)["path"])

    def playable(self, video_id: str) -> Path:
        return vid.make_playable(self.path(video_id), self.config.cache_dir)

    def thumbnail(self, video_id: str) -> Path:
        return vid.save_thumbnail(self.path(video_id), self.config.cache_dir)

    def videos(self, label_set: str | None = None, label_filter: str = "all", text: str = "") -> list[dict[str, Any]]:
        """Library rows with the label of ``label_set`` (if any) attached as ``label``.

        label_filter: all | ghost_probing | not_ghost_probing | cut_in | unlabelled
        """
        rows = self.store.query("SELECT * FROM videos ORDER BY origin = 'demo' DESC, video_id")
        labels: dict[str, dict[str, Any]] = {}
        if label_set:
            labels = {lab.video_key(r["video_id"]): r for r in lab.list_labels(self.store, label_set)}
        out = []
        needle = text.strip().lower()
        for r in rows:
            label = labels.get(lab.video_key(r["video_id"]))
            r = {**r, "label": label}
            if needle and needle not in r["video_id"].lower():
                continue
            if label_filter == "ghost_probing" and not (label and label["ghost_probing"]):
                continue
            if label_filter == "not_ghost_probing" and not (label and not label["ghost_probing"]):
                continue
            if label_filter == "cut_in" and not (label and label["kind"] == "cut_in"):
                continue
            if label_filter == "unlabelled" and label is not None:
                continue
            out.append(r)
        return out

    # -- first start -----------------------------------------------------------------------------
    def needs_demo_clips(self) -> bool:
        """True when the default library folder (the first root) holds no video yet."""
        first = self.config.library_roots[0].resolve()
        return not any(_inside(p, first) for p, _ in self._candidates())

    def ensure_demo_clips(self) -> list[str]:
        """When the default library folder (the first root) holds no video, render the synthetic demo clips
        and import their labels as the label set ``demo``.

        The clips are rendered into a hidden folder beside ``demo/`` and moved in one by one when complete, so
        a scan running meanwhile (the server answers while this runs) never indexes a half-written file.
        """
        if not self.needs_demo_clips():
            return []
        from engines.synth import render_demo_clips

        demo = self.config.demo_dir
        tmp = demo.parent / f".demo-rendering-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            render_demo_clips(tmp)
            demo.mkdir(parents=True, exist_ok=True)
            names = sorted(p.name for p in tmp.iterdir())
            for name in sorted(names, key=lambda n: n == "labels.csv"):  # labels.csv last
                os.replace(tmp / name, demo / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.scan()
        labels_csv = demo / "labels.csv"
        if labels_csv.exists() and not lab.list_sets(self.store, "demo"):
            lab.import_label_csv(self.store, labels_csv, "demo")
        return [p.name for p in sorted(demo.iterdir()) if p.suffix.lower() in vid.VIDEO_EXTENSIONS]

    def start_demo_clips(self, after: threading.Event | None = None) -> DemoStatus:
        """First start without holding the page: render the demo clips in a background thread when the library
        is empty (see :meth:`ensure_demo_clips`); ``demo_status`` says how far it got. With ``after``, the
        status is "preparing" at once but the rendering waits until that event is set (the server sets it
        once it answers HTTP, so the rendering does not compete with the start-up for the CPU)."""
        with self._demo_lock:
            if self._demo.state == "preparing":
                return self._demo
            if not self.needs_demo_clips():
                self._demo = DemoStatus("not_needed")
                log.info("demo clips: not needed (the library already holds videos)")
                return self._demo
            self._demo = DemoStatus("preparing", started=time.monotonic())
            log.info("demo clips: preparing in the background into %s", self.config.demo_dir)
            threading.Thread(target=self._render_demo, args=(after,), name="demo-clips", daemon=True).start()
            return self._demo

    def _render_demo(self, after: threading.Event | None = None) -> None:
        if after is not None:
            after.wait()
            log.info("demo clips: rendering (the server answers)")
        t0 = time.monotonic()
        try:
            made = self.ensure_demo_clips()
        except Exception as e:  # reported in the UI as one sentence; the app keeps running
            log.exception("demo clips: failed")
            status = DemoStatus("failed", error=f"{type(e).__name__}: {e}")
        else:
            status = DemoStatus("ready", clips=len(made), seconds=time.monotonic() - t0)
            log.info("demo clips: ready (%d clips in %.1f s)", len(made), status.seconds)
        with self._demo_lock:
            self._demo = status

    @property
    def demo_status(self) -> DemoStatus:
        return self._demo


@dataclass
class DemoStatus:
    """Where the first-start demo clips stand: idle | not_needed | preparing | ready | failed."""

    state: str = "idle"
    clips: int = 0
    seconds: float | None = None
    error: str | None = None
    started: float | None = None

    @property
    def preparing(self) -> bool:
        return self.state == "preparing"

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "clips": self.clips, "seconds": self.seconds, "error": self.error}


def _default_id(p: Path) -> str:
    """A file's name; for a DADA frame folder ``<category>/<clip>/images`` the DADA name ``images_<cat>_<clip>``."""
    if p.is_file():
        return p.name
    cat, clip = p.parent.name, p.name
    return f"images_{int(cat)}_{clip}" if cat.isdigit() and clip.isdigit() else f"{cat}_{clip}"


def _size(p: Path) -> int:
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size
