"""Video intake benchmark: samplers against the fastest raw decoder, one JSON line per figure.

    python bench/bench_video.py [--full] [--repeats 3] [--clip PATH] [--skip-transcode] [--skip-h264]

Per source, every variant below is timed once per repetition, interleaved (raw A, raw B, ...,
sampler A, sampler B, ...; then again), >= 3 repetitions, min and median:

- **raw decoders** (the reference): the least code each library needs for the same frames —
  decord ``get_batch(indices)``; OpenCV ``set(POS_FRAMES)`` + ``read()`` per frame
  (``opencv_seek``) and ``grab()`` through / ``retrieve()`` the wanted ones (``opencv_grab``);
  PyAV decoding in order, ``to_ndarray`` for the wanted ones. The fastest median is the reference.
- **samplers**: ``engines.video.load_clip(path, num_frames=16)`` with the default backend
  (``auto``) and each backend forced.

Figures:

- ``raw_decode16``: each raw decoder (seconds, min/median).
- ``sample16``: each sampler, with ``ratio_vs_fastest_raw`` (median / fastest raw median); target
  <= 1.5 (issue 10) for the default (``auto``), ``passed`` says whether it holds. Forced backends
  report the same ratio (target informational) so the default can be checked to be the fastest.
- ``sample_rate10_gray``: the baseline's sampling (10 fps, grey, 480 px, lowres) against PyAV
  decoding every frame to its luma plane at full size (the raw reference for rate sampling).
- ``probe_cold``: a first ``probe`` (SHA-256 + PyAV check + opening the first backend).
- ``make_playable`` (``--full`` only; it takes seconds and judges nothing): the one-time H.264 transcode for
  the browser (one run; informational).

Sources: the first DADA clip (1584x660 MPEG-4 Part 2 in AVI) when ``../shared/data/dada-dev``
exists, else a generated MPEG-4 AVI of that size (240 frames, keyframe every 12 like the DADA
clips); plus a generated H.264 MP4 of that size (``--skip-h264`` leaves it out) — the default may
differ per container/codec. Generated files live in a temporary folder that is removed.
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
DADA_DIR = Path(os.environ.get("GHOSTPROBE_DADA_DIR", str(REPO.parent / "shared" / "data" / "dada-dev")))
TARGET_RATIO = 1.5


def _sources(args, tmp: Path) -> list[tuple[Path, str]]:
    if args.clip:
        return [(Path(args.clip), f"file:{Path(args.clip).name}")]
    sys.path.insert(0, str(REPO / "tests"))
    import media  # tests/media.py

    out = []
    clips = sorted(DADA_DIR.glob("*.avi")) if DADA_DIR.is_dir() else []
    if clips:
        out.append((clips[0], f"dada:{clips[0].name}"))
    else:
        p = media.write_avi_pyav(tmp / "generated_1584x660.avi", n_frames=240, fps=30.0, size=(1584, 660), gop=12)
        out.append((p, "generated:1584x660 MPEG-4 AVI, 240 frames, keyframe every 12 (DADA folder absent)"))
    if not args.skip_h264:
        p = media.write_h264_mp4(tmp / "generated_1584x660_h264.mp4", 240, 30.0, (1584, 660))
        out.append((p, "generated:1584x660 H.264 MP4, 240 frames"))
    return out


# -- raw decoders: the same frames with the least code each library needs ----------------------


def raw_decord(path: Path, idx: list[int]) -> int:
    import decord

    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=0)
    return len(vr.get_batch(idx).asnumpy())


def raw_opencv_seek(path: Path, idx: list[int]) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n = 0
    for j in idx:
        cap.set(cv2.CAP_PROP_POS_FRAMES, j)
        ok, bgr = cap.read()
        n += bool(ok and cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) is not None)
    cap.release()
    return n


def raw_opencv_grab(path: Path, idx: list[int]) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    want, n, i = set(idx), 0, 0
    last = max(idx)
    while i <= last and cap.grab():
        if i in want:
            ok, bgr = cap.retrieve()
            n += bool(ok and cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) is not None)
        i += 1
    cap.release()
    return n


def raw_pyav(path: Path, idx: list[int]) -> int:
    import av

    want, n, last = set(idx), 0, max(idx)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_type = "AUTO"
        for i, fr in enumerate(c.decode(s)):
            if i in want:
                fr.to_ndarray(format="rgb24")
                n += 1
            if i >= last:
                break
    return n


def raw_pyav_luma_all(path: Path) -> int:
    import av
    import numpy as np

    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_type = "AUTO"
        for i, fr in enumerate(c.decode(s)):
            if i % 3 == 0:
                np.frombuffer(fr.planes[0], np.uint8)
            n += 1
    return n


RAW = {"decord": raw_decord, "opencv_seek": raw_opencv_seek, "opencv_grab": raw_opencv_grab, "pyav": raw_pyav}


def _stats(xs: list[float]) -> dict:
    return {"min": round(min(xs), 4), "median": round(statistics.median(xs), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clip", help="benchmark this file instead of a DADA clip")
    ap.add_argument("--full", action="store_true", help="also time make_playable (informational)")
    ap.add_argument("--skip-transcode", action="store_true", help="leave out make_playable even with --full")
    ap.add_argument("--skip-h264", action="store_true", help="leave out the generated H.264 source")
    args = ap.parse_args(argv)
    args.repeats = max(3, args.repeats)

    from engines import video as V

    tmp = Path(tempfile.mkdtemp(prefix="bench_video_"))
    try:
        for path, source in _sources(args, tmp):
            meta = V.probe(path)
            idx = V.sample_indices(meta.frames, meta.fps, 16)
            common = {"source": source, "codec": meta.codec, "frames_total": meta.frames,
                      "size": f"{meta.width}x{meta.height}", "repeats": args.repeats, "cpus": os.cpu_count(),
                      "machine": platform.machine(), "default_backend": V.DEFAULT_BACKEND,
                      "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}

            def emit(bench: str, **fig):
                fig.setdefault("target", None)
                fig.setdefault("passed", None)
                print(json.dumps({"bench": "video", "figure": bench, **fig, **common}), flush=True)

            samplers = {"auto": None, "opencv": "opencv", "pyav": "pyav", "decord": "decord"}
            times: dict[str, list[float]] = {f"raw:{k}": [] for k in RAW} | {f"load_clip:{k}": [] for k in samplers}
            base = dict(num_frames=None, fps=10, max_side=480, color="gray", lowres=True)
            rate = {"raw:pyav_luma_all": [], "load_clip:baseline": []}
            used: dict[str, str] = {}
            for _ in range(args.repeats):
                for k, fn in RAW.items():
                    t = time.perf_counter()
                    got = fn(path, sorted(set(idx)))
                    times[f"raw:{k}"].append(time.perf_counter() - t)
                    assert got == len(set(idx)), (k, got)
                for k, b in samplers.items():
                    t = time.perf_counter()
                    clip = V.load_clip(path, num_frames=16, backend=b)
                    times[f"load_clip:{k}"].append(time.perf_counter() - t)
                    used[k] = clip.sampling["backend"]
                t = time.perf_counter()
                raw_pyav_luma_all(path)
                rate["raw:pyav_luma_all"].append(time.perf_counter() - t)
                t = time.perf_counter()
                used["baseline"] = V.load_clip(path, **base).sampling["backend"]
                rate["load_clip:baseline"].append(time.perf_counter() - t)

            fastest = min(RAW, key=lambda k: statistics.median(times[f"raw:{k}"]))
            ref = statistics.median(times[f"raw:{fastest}"])
            for k in RAW:
                emit(bench="raw_decode16", decoder=k, seconds=_stats(times[f"raw:{k}"]), fastest=k == fastest,
                     note="reference for sample16 (the fastest median is the reference)")
            best_sampler = min(("opencv", "pyav", "decord"), key=lambda k: statistics.median(times[f"load_clip:{k}"]))
            for k in samplers:
                ratio = statistics.median(times[f"load_clip:{k}"]) / ref
                emit(bench="sample16", backend=k, backend_used=used[k], seconds=_stats(times[f"load_clip:{k}"]),
                     ratio_vs_fastest_raw=round(ratio, 3), reference=f"raw_decode16/{fastest}",
                     target=f"<= {TARGET_RATIO}x the fastest raw decoder" if k == "auto" else None,
                     passed=(ratio <= TARGET_RATIO) if k == "auto" else None,
                     fastest_forced_backend=best_sampler if k == "auto" else None)
            r_ref = statistics.median(rate["raw:pyav_luma_all"])
            r_ratio = statistics.median(rate["load_clip:baseline"]) / r_ref
            emit(bench="sample_rate10_gray", backend_used=used["baseline"], sampling=base,
                 seconds=_stats(rate["load_clip:baseline"]), reference_seconds=_stats(rate["raw:pyav_luma_all"]),
                 reference="PyAV decoding every frame at full size, luma plane of every third",
                 ratio_vs_reference=round(r_ratio, 3), target=f"<= {TARGET_RATIO}x", passed=r_ratio <= TARGET_RATIO,
                 video_s=round(meta.duration_s, 3),
                 realtime_x=round(meta.duration_s / statistics.median(rate["load_clip:baseline"]), 2))

            def cold_probe():
                V._hash_cache.clear()
                V._meta_cache.clear()
                V._info_cache.clear()
                V.probe(path)

            cold = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                cold_probe()
                cold.append(time.perf_counter() - t)
            emit(bench="probe_cold", seconds=_stats(cold), target=None, passed=None, note="informational")

            if args.full and not args.skip_transcode and path.suffix == ".avi":
                t = time.perf_counter()
                out = V.make_playable(path, tmp / "cache")
                sec = time.perf_counter() - t
                emit(bench="make_playable", backend="pyav/libx264 veryfast crf23", seconds=round(sec, 4),
                     repeats_used=1, target=None, passed=None, note="informational",
                     output_bytes=out.stat().st_size if out != path else None,
                     realtime_factor=round(meta.duration_s / sec, 2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
