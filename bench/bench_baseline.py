"""Speed of the weights-free baseline on full-size dashcam video: one JSON line per figure.

    python bench/bench_baseline.py [--repeats 3] [--clip PATH] [--all]

Figures (median of ``--repeats`` runs on this machine, measured now; ``load_avg`` tells how busy
the shared CPU was):

- ``baseline_end_to_end``: ``engines.video.load_clip`` with the engine's default sampling (10 fps,
  480 px, the backend the video module picks) + ``BaselineEngine.detect``: seconds of compute per
  second of video (``s_per_video_s``, wall clock) and real-time factor (``realtime_x`` = video
  seconds per wall second); ``cpu_s_per_video_s`` is the CPU time of this process (all threads),
  which on a busy shared machine is the fairer measure of the work. This is what a user waits for.
- ``baseline_end_to_end_opencv``: the same with the OpenCV decoding backend forced.
- ``baseline_decode_only`` (per backend) and ``baseline_detector_only``: the split.
- ``baseline_end_to_end_all_dada`` (``--all``): one pass over every DADA clip, total.

Source: the first DADA clip (1584x660, 30 fps MPEG-4) when ../shared/data/dada-dev exists, else a
generated 1584x660 30 fps MPEG-4 AVI (engines/synth.py); every line says which in ``source``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DADA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "dada-dev"


def emit(**kw) -> None:
    print(json.dumps(kw, ensure_ascii=False), flush=True)


_CPU: list[float] = []


def _median_time(fn, repeats: int):
    """Median wall time of ``fn``; the matching median CPU time of this process (all threads) is
    left in _CPU[-1]: on a shared machine wall time includes waiting for other people's work."""
    times, cpus, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    _CPU.append(statistics.median(cpus))
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clip")
    ap.add_argument("--all", action="store_true", help="also one pass over every DADA clip")
    args = ap.parse_args(argv)

    import cv2

    from engines.base import GenerationOptions
    from engines.registry import get_engine
    from engines.video import load_clip, probe

    tmp = tempfile.TemporaryDirectory()
    if args.clip:
        path, source = Path(args.clip), f"file:{Path(args.clip).name}"
    elif sorted(DADA_DIR.glob("*.avi")):
        path = sorted(DADA_DIR.glob("*.avi"))[0]
        source = f"dada:{path.name}"
    else:
        from engines.synth import render_clip

        path = Path(tmp.name) / "generated_1584x660.avi"
        render_clip(path, "emerge_pedestrian", seed=0, fps=30, size=(1584, 660), duration_s=8.0, codec="mpeg4")
        source = "generated:1584x660 30 fps MPEG-4 AVI (DADA folder absent)"

    eng = get_engine("baseline")
    sampling = dict(eng.default_sampling)
    meta = probe(path)
    video_s = meta.duration_s
    common = {"source": source, "video_s": round(video_s, 3), "size": f"{meta.width}x{meta.height}",
              "fps": meta.fps, "sampling": sampling, "revision": eng.revision(), "cpu_count": os.cpu_count(),
              "cv2_threads": cv2.getNumThreads(), "machine": platform.machine(), "repeats": args.repeats}

    def line(figure: str, seconds: float, **extra) -> None:
        cpu = _CPU[-1]
        emit(figure=figure, seconds=round(seconds, 4), s_per_video_s=round(seconds / video_s, 4),
             realtime_x=round(video_s / seconds, 2), cpu_s=round(cpu, 4), cpu_s_per_video_s=round(cpu / video_s, 4),
             load_avg=round(os.getloadavg()[0], 2), **extra, **common)

    opts = GenerationOptions()

    def end_to_end(backend=None):
        clip = load_clip(path, backend=backend, **sampling)
        return eng.detect(clip, [], opts), clip

    load_clip(path, **sampling)  # warm the probe memo and the page cache: decoding, not disk, is timed
    sec, (res, clip) = _median_time(lambda: end_to_end(None), args.repeats)
    line("baseline_end_to_end", sec, backend=clip.sampling.get("backend"), frames=clip.num_frames,
         verdict=res.verdict.ghost_probing)
    sec, (res, clip_cv) = _median_time(lambda: end_to_end("opencv"), args.repeats)
    line("baseline_end_to_end_opencv", sec, backend="opencv", frames=clip_cv.num_frames)
    for backend in (None, "opencv"):
        sec, c = _median_time(lambda: load_clip(path, backend=backend, **sampling), args.repeats)
        line("baseline_decode_only", sec, backend=c.sampling.get("backend"))
    sec, _ = _median_time(lambda: eng.detect(clip, [], opts), args.repeats)
    line("baseline_detector_only", sec, frames=clip.num_frames,
         frame_size=f"{clip.frames.shape[2]}x{clip.frames.shape[1]}")

    if args.all and DADA_DIR.is_dir():
        total_video = total = 0.0
        clips = sorted(DADA_DIR.glob("*.avi"))
        for p in clips:
            m = probe(p)
            t = time.perf_counter()
            eng.detect(load_clip(p, **sampling), [], opts)
            total += time.perf_counter() - t
            total_video += m.duration_s
        emit(figure="baseline_end_to_end_all_dada", clips=len(clips), video_s=round(total_video, 2),
             seconds=round(total, 3), s_per_video_s=round(total / total_video, 4),
             realtime_x=round(total_video / total, 2), load_avg=round(os.getloadavg()[0], 2),
             sampling=sampling, revision=eng.revision())
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
