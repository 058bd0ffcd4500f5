"""Real-time factor of the weights-free baseline, end to end: one JSON line per figure.

    python bench/bench_baseline.py [--repeats 3] [--clips N] [--workers 2] [--clip PATH ...]

What is timed, per repetition, interleaved (candidate, reference, candidate, reference ...):

- **candidate** — what ``ghostprobe detect``/``eval`` do per video in one process: ``load_clip(path,
  **BaselineEngine.default_sampling)`` (grey at 480 px, PyAV luma with ``lowres`` where the codec
  allows it) + ``BaselineEngine.detect``, over every clip;
- **reference** — pipeline 1 (the engine's sampling before this change): RGB at 480 px decoded with
  OpenCV, grey and resized again inside the detector; same detector, same clips, same process.

Figures (``min``/``median`` over ``--repeats`` >= 3; every line names its target and ``passed``):

- ``baseline_realtime_x``: video seconds per wall second of the candidate, target >= 15
  (issue 10); ``cpu_realtime_x`` is the same with this process's CPU time (all threads), the fairer
  figure on a shared machine — ``load_avg`` says how busy it was.
- ``baseline_speedup_vs_pipeline1``: reference time / candidate time per repetition (target > 1).
- ``baseline_split``: the candidate's decode and detect seconds (median), to show where time goes.
- ``baseline_realtime_x_workers`` (``--workers`` > 1): the same clips over a process pool, as
  ``eval --workers`` runs them; target >= 15.

Source: the 12 DADA-2000 dev clips (1584x660, 30 fps MPEG-4 Part 2 in AVI) when
``../shared/data/dada-dev`` exists, else generated clips of the same size, rate and codec
(engines/synth.py, in a temporary folder that is removed); every line says which in ``source``.
Nothing is written outside that temporary folder.
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
DADA_DIR = Path(os.environ.get("GHOSTPROBE_DADA_DIR", str(REPO.parent / "shared" / "data" / "dada-dev")))
TARGET_X = 15.0
REFERENCE_SAMPLING = {"num_frames": None, "fps": 10, "max_side": 480, "backend": "opencv"}


def emit(**kw) -> None:
    print(json.dumps(kw, ensure_ascii=False), flush=True)


def _clips(args, tmp: Path) -> tuple[list[Path], str]:
    if args.clip:
        return [Path(c) for c in args.clip], "files:" + ",".join(Path(c).name for c in args.clip)
    dada = sorted(DADA_DIR.glob("*.avi")) if DADA_DIR.is_dir() else []
    if dada:
        return dada[: args.clips], f"dada-dev ({len(dada[: args.clips])} clips)"
    from engines.synth import render_clip

    out = []
    scen = ("emerge_pedestrian", "empty_road", "cut_in", "far_crossing")
    for i in range(min(args.clips, 4)):
        p = tmp / f"generated_{i}.avi"
        render_clip(p, scen[i % len(scen)], seed=i, fps=30, size=(1584, 660), duration_s=5.0, codec="mpeg4")
        out.append(p)
    return out, f"generated: {len(out)} clips 1584x660 30 fps MPEG-4 AVI (DADA folder absent)"


def _run(paths: list[Path], sampling: dict, eng) -> dict:
    from engines.video import load_clip

    t0, c0 = time.perf_counter(), time.process_time()
    dec = det = 0.0
    verdicts = []
    for p in paths:
        t = time.perf_counter()
        clip = load_clip(p, **sampling)
        t1 = time.perf_counter()
        r = eng.detect(clip)
        det += time.perf_counter() - t1
        dec += t1 - t
        verdicts.append(r.verdict.ghost_probing)
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "decode": dec, "detect": det,
            "verdicts": verdicts}


def _one(path: str) -> tuple[float, bool | None]:
    from engines.registry import get_engine
    from engines.video import load_clip

    eng = get_engine("baseline")
    r = eng.detect(load_clip(path, **eng.default_sampling))
    return r.call.latency_s, r.verdict.ghost_probing


def _stats(xs: list[float]) -> dict:
    return {"min": round(min(xs), 3), "median": round(statistics.median(xs), 3), "max": round(max(xs), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clips", type=int, default=12, help="at most this many DADA clips")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--clip", action="append", help="time these files instead")
    args = ap.parse_args(argv)
    args.repeats = max(3, args.repeats)

    import cv2

    from engines.registry import get_engine
    from engines.video import probe

    with tempfile.TemporaryDirectory(prefix="bench_baseline_") as tmpd:
        paths, source = _clips(args, Path(tmpd))
        eng = get_engine("baseline")
        cand = dict(eng.default_sampling)
        video_s = sum(probe(p).duration_s for p in paths)  # also warms the probe memo and page cache
        common = {"source": source, "video_s": round(video_s, 2), "repeats": args.repeats,
                  "candidate_sampling": cand, "reference_sampling": REFERENCE_SAMPLING, "revision": eng.revision(),
                  "cpu_count": os.cpu_count(), "cv2_threads": cv2.getNumThreads(), "machine": platform.machine(),
                  "processor": platform.processor() or platform.machine()}
        _run(paths[:1], cand, eng)  # warm imports and code paths
        cands, refs = [], []
        for _ in range(args.repeats):
            cands.append(_run(paths, cand, eng))
            refs.append(_run(paths, REFERENCE_SAMPLING, eng))
        load = round(os.getloadavg()[0], 2)
        rt = [video_s / r["wall"] for r in cands]
        cpu_rt = [video_s / r["cpu"] for r in cands]
        emit(figure="baseline_realtime_x", target=f">= {TARGET_X:g}x real time (median, wall)",
             passed=statistics.median(rt) >= TARGET_X, realtime_x=_stats(rt), cpu_realtime_x=_stats(cpu_rt),
             reference_realtime_x=_stats([video_s / r["wall"] for r in refs]),
             reference_cpu_realtime_x=_stats([video_s / r["cpu"] for r in refs]), load_avg=load, **common)
        speed = [r["wall"] / c["wall"] for c, r in zip(cands, refs)]
        emit(figure="baseline_speedup_vs_pipeline1", target="> 1 (candidate faster than the reference, median)",
             passed=statistics.median(speed) > 1.0, speedup=_stats(speed),
             cpu_speedup=_stats([r["cpu"] / c["cpu"] for c, r in zip(cands, refs)]),
             same_verdicts=cands[0]["verdicts"] == refs[0]["verdicts"], load_avg=load, **common)
        emit(figure="baseline_split", target="informational", passed=None,
             decode_s=round(statistics.median([c["decode"] for c in cands]), 3),
             detect_s=round(statistics.median([c["detect"] for c in cands]), 3),
             reference_decode_s=round(statistics.median([r["decode"] for r in refs]), 3),
             reference_detect_s=round(statistics.median([r["detect"] for r in refs]), 3), load_avg=load, **common)
        if args.workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            walls = []
            with ProcessPoolExecutor(args.workers) as pool:
                list(pool.map(_one, [str(p) for p in paths[: args.workers]]))  # start and warm the workers
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    list(pool.map(_one, [str(p) for p in paths]))
                    walls.append(time.perf_counter() - t)
            rtw = [video_s / w for w in walls]
            emit(figure="baseline_realtime_x_workers", workers=args.workers,
                 target=f">= {TARGET_X:g}x real time (median, wall, process pool as eval --workers)",
                 passed=statistics.median(rtw) >= TARGET_X, realtime_x=_stats(rtw),
                 load_avg=round(os.getloadavg()[0], 2), **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
