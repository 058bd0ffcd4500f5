"""AI-VAD's CPU cost per frame pair, per feature stream and in total: one JSON line per figure.

    python bench/bench_vad.py            # quick: one tiny size (96x128), 2 boxes — about 1-2 min here
    python bench/bench_vad.py --full     # the issue's two sizes (144x256, 288x512), 8 boxes — tens of minutes
    python bench/bench_vad.py [--repeats 3] [--sizes HxW,HxW] [--threads 2] [--boxes N]

The default run is sized for ``make bench`` (which runs every bench_*.py within its own budget): the
figures at 96x128 are real AI-VAD costs at that size (RAFT still runs at its 128 px minimum), not the
costs at the issue's sizes — those need ``--full``. Every line says which size it is.

Per size and repetition, interleaved (reference, AI-VAD streams, reference, ...):

- **reference** — the weights-free motion-map engine on the same pair (``motion_s_per_pair``: its whole
  clip cost divided by its pairs, on a 10-frame clip of that size), timed in the same run;
- **AI-VAD** (anomalib's AiVadModel, random backbones of the real shape: costs are the real ones,
  scores are meaningless) — ``flow`` (RAFT), ``regions`` (Mask R-CNN v2), ``velocity``, ``pose``
  (keypoint R-CNN), ``deep`` (CLIP ViT-B/16 over at most ``--boxes`` boxes, and per box), ``total``
  (the sum of the five: one pair with all three streams; the density estimators' KNN/GMM lookups
  over fitted banks are not included — they are milliseconds beside these).
  RAFT and the R-CNNs run at the input size (``internal_resize="input"``, the engine's default).

Each figure: ``min`` and ``median`` seconds over ``--repeats`` (>= 3). Target (the Heatmap tab's
promise on CPU): a 10 s clip at 1 pair per second within 10 minutes, i.e. ``total`` <= 60 s per pair
at 144x256 — ``passed`` says whether the median meets it (null at other sizes, e.g. the quick run's); ``x_motion`` is total / reference.
Frames are generated in memory; nothing is written to disk. ``load_avg`` says how busy the machine was.
``--budget-s`` (default 95 s for the quick run, none for ``--full``), counted from the start of the
process (imports and the model build included): a repetition that would end past it is not started —
on a busy machine the quick run may then report fewer than ``--repeats`` repetitions (each line says
how many and ``cut_by_budget``) — and further sizes are skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TARGET_S_PER_PAIR = 60.0
QUICK = {"sizes": "96x128", "boxes": 2, "budget_s": 95.0}
FULL = {"sizes": "144x256,288x512", "boxes": 8, "budget_s": None}


def emit(**kw) -> None:
    print(json.dumps({"bench": "vad", **kw}, ensure_ascii=False), flush=True)


def _frames(h: int, w: int, n: int):
    import numpy as np

    rng = np.random.default_rng(0)
    tex = (rng.random((h, w * 2, 3)) * 255).astype(np.uint8)
    out = []
    for i in range(n):
        f = np.roll(tex, -2 * i, axis=1)[:, :w].copy()
        f[h // 3:h // 3 + h // 4, 10 + 12 * i:10 + 12 * i + w // 8] = (220, 40, 40)
        out.append(f)
    return np.stack(out)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="the issue's two sizes, 144x256 and 288x512, 8 boxes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", help=f"HxW,HxW (default {QUICK['sizes']}; --full: {FULL['sizes']})")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--boxes", type=int, help=f"boxes for the deep stream (default {QUICK['boxes']}; --full: "
                                                f"{FULL['boxes']})")
    ap.add_argument("--budget-s", type=float, help="skip further sizes once this many seconds are used")
    a = ap.parse_args()
    if a.repeats < 3:
        ap.error("--repeats must be at least 3")
    preset = FULL if a.full else QUICK
    a.sizes = a.sizes or preset["sizes"]
    a.boxes = a.boxes or preset["boxes"]
    a.budget_s = a.budget_s if a.budget_s is not None else preset["budget_s"]
    started = STARTED
    import torch

    from engines.vad import aivad as A
    from engines.vad.motion import MotionMapEngine

    torch.set_num_threads(a.threads)
    common = {"threads": a.threads, "cpu": platform.processor() or platform.machine(), "os_cpus": os.cpu_count(),
              "weights": "random (costs real, scores meaningless)", "torch": torch.__version__,
              "preset": "full" if a.full else "quick"}
    t0 = time.perf_counter()
    model = A.build_model(dict(A.MODEL_DEFAULTS), "random", 0)
    emit(figure="aivad_build_s", value=round(time.perf_counter() - t0, 2), unit="s", **common)
    fe = model.feature_extractor
    motion = MotionMapEngine(threshold=0.5)  # the reference; independent of any stored calibration
    sizes = a.sizes.split(",")
    for si, size in enumerate(sizes):
        used = time.perf_counter() - started
        if si and a.budget_s is not None and used >= a.budget_s:
            emit(figure="skipped_sizes", value=sizes[si:], reason=f"{used:.0f} s used of the {a.budget_s:.0f} s "
                 f"budget", **common)
            break
        h, w = (int(v) for v in size.lower().split("x"))
        A._set_internal_resize(model, h, w)
        clip = _frames(h, w, 10)
        t_size = time.perf_counter() - started
        first, last = A._to_tensor(clip[:1]), A._to_tensor(clip[1:2])
        times: dict[str, list[float]] = {k: [] for k in ("motion", "flow", "regions", "velocity", "pose", "deep",
                                                         "deep_per_box", "total")}
        n_boxes = []
        cut = False
        for rep in range(a.repeats):
            used = time.perf_counter() - started
            per_rep = (used - t_size) / rep if rep else None
            if per_rep is not None and a.budget_s is not None and used + per_rep > a.budget_s:
                cut = True
                break
            times["motion"].append(_timed(lambda: motion.analyse(clip, [i * 0.1 for i in range(10)])) / 9)
            with torch.no_grad():
                box: dict = {}
                times["flow"].append(_timed(lambda: box.__setitem__("flow", model.flow_extractor(first, last))))
                times["regions"].append(_timed(lambda: box.__setitem__("reg", model.region_extractor(first, last))))
                reg = box["reg"][0]
                if reg["boxes"].shape[0] == 0:  # random detector found nothing: use fixed boxes for the streams
                    reg = {"boxes": torch.tensor([[10.0, 10.0, w / 3, h / 2], [w / 2, h / 3, w - 5.0, h - 5.0]])}
                bx = reg["boxes"][: a.boxes]
                n_boxes.append(int(bx.shape[0]))
                idx = torch.cat([torch.zeros(len(bx), 1), bx], dim=1)
                times["velocity"].append(_timed(lambda: fe.velocity_extractor(box["flow"], idx)))
                times["pose"].append(_timed(lambda: fe.pose_extractor(first, [bx])))
                d = _timed(lambda: fe.deep_extractor(first, idx, 1))
                times["deep"].append(d)
                times["deep_per_box"].append(d / max(1, len(bx)))
            times["total"].append(times["flow"][-1] + times["regions"][-1] + times["velocity"][-1] +
                                  times["pose"][-1] + times["deep"][-1])
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        for k, v in times.items():
            line = {"figure": f"aivad_{k}_s_per_pair" if k not in ("motion", "deep_per_box") else
                    ("motion_s_per_pair" if k == "motion" else "aivad_deep_s_per_box"),
                    "size": f"{h}x{w}", "min": round(min(v), 3), "median": round(statistics.median(v), 3),
                    "unit": "s", "repeats": len(v), "cut_by_budget": cut, "boxes_median": statistics.median(n_boxes),
                    "load_avg": load, **common}
            if k == "total":
                med = statistics.median(v)
                line.update(target=f"<= {TARGET_S_PER_PAIR:.0f} s per pair at 144x256 (--full)",
                            passed=bool(med <= TARGET_S_PER_PAIR) if f"{h}x{w}" == "144x256" else None,
                            x_motion=round(med / max(1e-9, statistics.median(times["motion"])), 1))
            emit(**line)
    emit(figure="bench_wall_s", value=round(time.perf_counter() - started, 1), unit="s",
         load_avg=os.getloadavg()[0] if hasattr(os, "getloadavg") else None, **common)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
