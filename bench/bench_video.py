"""Video intake benchmark: one JSON line per figure.

    python bench/bench_video.py [--repeats 3] [--clip PATH] [--skip-transcode]

Figures (each the median of ``--repeats`` runs, measured in this run on this machine):

- ``full_decode_dada``: decode every frame to RGB (decord ``get_batch`` in chunks; OpenCV
  ``read()`` loop; PyAV ``decode`` + ``to_ndarray``): the baseline a sparse sampler must beat.
- ``sample16_dada``: ``load_clip(num_frames=16)`` with decord, OpenCV and PyAV (the last-resort
  backend; probe memo warm, so this is decoding and assembling), with ``ratio_vs_full_decode``
  against the same backend's full decode.
- ``sample16_dada`` / ``sample4_dada`` with ``backend`` ``opencv_seek`` / ``opencv_grab``:
  OpenCV forced to seek (set POS_FRAMES) or to grab() through every frame, to show why
  ``engines.video`` picks between them per gap.
- ``iter_frames_10fps_dada``: streaming at 10 fps through the whole clip.
- ``probe_cold_dada``: first ``probe`` of a file (SHA-256 + PyAV check + decord open).
- ``make_playable_dada``: the one-time H.264 transcode for the browser (one run; cache cleared).

Without ``../shared/data/dada-dev`` a generated 1584x660 MPEG-4 AVI (240 frames, keyframe every
12 frames, like the DADA clips) stands in, and every line says so in ``source``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DADA_DIR = REPO.parent / "shared" / "data" / "dada-dev"


def _pick_source(clip: str | None, tmp: Path) -> tuple[Path, str]:
    if clip:
        return Path(clip), f"file:{Path(clip).name}"
    clips = sorted(DADA_DIR.glob("*.avi")) if DADA_DIR.is_dir() else []
    if clips:
        return clips[0], f"dada:{clips[0].name}"
    sys.path.insert(0, str(REPO / "tests"))
    import media  # tests/media.py

    p = media.write_avi_pyav(tmp / "generated_1584x660.avi", n_frames=240, fps=30.0, size=(1584, 660), gop=12)
    return p, "generated:1584x660 MPEG-4 AVI, 240 frames, keyframe every 12 (DADA folder absent)"


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _full_decode_decord(path: Path) -> int:
    from engines import video as V

    vr = V._open_decord(path)
    n = len(vr)
    count = 0
    for s in range(0, n, 16):
        batch = V._to_numpy(vr.get_batch(list(range(s, min(n, s + 16)))))
        count += batch.shape[0]
    return count


def _full_decode_opencv(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    count = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        count += 1
    cap.release()
    return count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clip", help="benchmark this file instead of a DADA clip")
    ap.add_argument("--skip-transcode", action="store_true", help="leave out make_playable")
    args = ap.parse_args(argv)

    from engines import video as V

    tmp = Path(tempfile.mkdtemp(prefix="bench_video_"))
    try:
        path, source = _pick_source(args.clip, tmp)
        meta = V.probe(path)
        common = {
            "source": source,
            "frames_total": meta.frames,
            "size": f"{meta.width}x{meta.height}",
            "codec": meta.codec,
            "repeats": args.repeats,
            "cpus": os.cpu_count(),
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2),  # other work on the machine skews timings
            "machine": platform.machine(),
        }

        def emit(**fig):
            print(json.dumps({**fig, **common}), flush=True)

        full = {
            "decord": _median_time(lambda: _full_decode_decord(path), args.repeats),
            "opencv": _median_time(lambda: _full_decode_opencv(path), args.repeats),
            "pyav": _median_time(lambda: sum(1 for _ in V._pyav_frames(path, list(range(meta.frames)))), args.repeats),
        }
        for backend, sec in full.items():
            emit(bench="full_decode_dada", backend=backend, seconds=round(sec, 4), ratio_vs_full_decode=1.0)

        for backend in ("decord", "opencv", "pyav"):
            sec = _median_time(lambda b=backend: V.load_clip(path, num_frames=16, backend=b), args.repeats)
            emit(
                bench="sample16_dada",
                backend=backend,
                seconds=round(sec, 4),
                ratio_vs_full_decode=round(sec / full[backend], 3),
                baseline=f"full_decode_dada/{backend}",
            )

        saved = V.OPENCV_SEEK_COST
        try:
            for k in (16, 4):
                for name, cost in (("opencv_seek", -(10**9)), ("opencv_grab", 10**9)):
                    V.OPENCV_SEEK_COST = cost
                    sec = _median_time(lambda k=k: V.load_clip(path, num_frames=k, backend="opencv"), args.repeats)
                    emit(
                        bench=f"sample{k}_dada",
                        backend=name,
                        seconds=round(sec, 4),
                        ratio_vs_full_decode=round(sec / full["opencv"], 3),
                        baseline="full_decode_dada/opencv",
                    )
                V.OPENCV_SEEK_COST = saved
                sec = _median_time(lambda k=k: V.load_clip(path, num_frames=k, backend="opencv"), args.repeats)
                emit(
                    bench=f"sample{k}_dada",
                    backend="opencv_auto",
                    seconds=round(sec, 4),
                    ratio_vs_full_decode=round(sec / full["opencv"], 3),
                    baseline="full_decode_dada/opencv",
                    seek_cost=saved,
                )
        finally:
            V.OPENCV_SEEK_COST = saved

        for backend in ("decord", "opencv"):
            sec = _median_time(lambda b=backend: sum(1 for _ in V.iter_frames(path, fps=10, backend=b)), args.repeats)
            emit(
                bench="iter_frames_10fps_dada",
                backend=backend,
                seconds=round(sec, 4),
                ratio_vs_full_decode=round(sec / full[backend], 3),
                baseline=f"full_decode_dada/{backend}",
            )

        def cold_probe():
            V._hash_cache.clear()
            V._meta_cache.clear()
            V._info_cache.clear()
            V.probe(path)

        emit(bench="probe_cold_dada", backend="pyav+decord", seconds=round(_median_time(cold_probe, args.repeats), 4))

        if not args.skip_transcode:
            cache = tmp / "cache"
            t = time.perf_counter()
            out = V.make_playable(path, cache)
            sec = time.perf_counter() - t
            emit(
                bench="make_playable_dada",
                backend="pyav/libx264 veryfast crf23",
                seconds=round(sec, 4),
                repeats_used=1,
                output_bytes=out.stat().st_size if out != path else None,
                realtime_factor=round(meta.duration_s / sec, 2),
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
