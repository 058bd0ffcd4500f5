"""Honest accuracy of the weights-free baseline: one JSON line per figure.

    python bench/eval_baseline_dada.py [--fit-generated] [--seeds-fit 0-5] [--seeds-test 6-9]

Label sets and figures (each line names its label set, video count and 95 % intervals):

- ``generated_fit`` / ``generated_heldout``: clips rendered by engines/synth.py (7 scenarios per
  seed: 3 positives, 4 negatives incl. a cut-in). The threshold and the logistic slope are fitted
  on the fit seeds only; the held-out seeds were never looked at while fitting.
- ``dada_generated_params``: the 12 real DADA-2000 clips (../shared/data/dada-dev, labels.csv;
  "ghost probing" rows are positives, "cut-in" and "none" negatives) with the parameters fixed
  from generated clips only (the config defaults). This is the figure to quote.
- ``dada_in_sample``: threshold and ``new_age_s`` tuned on all 12 DADA clips (optimistic).
- ``dada_loo``: leave-one-out: for each clip the same two parameters are tuned on the other 11
  and the clip is predicted with them (the held-out figure for DADA tuning).
- ``peer_gpt4o_run8``: the peer system's answers (peer_gpt4o_run8_dev.json, ``key_actions``:
  "ghost probing" vs "no ghost probing") on the same 12 clips: the reference.
- ``dada_clip``: one line per DADA clip (score, verdict, onset) under the generated parameters.

- ``pipeline_comparison`` (and ``pipeline_comparison_clip`` per DADA clip): the engine's sampling
  now (pipeline 2: grey at 480 px, PyAV luma, ``lowres``) against before (pipeline 1: RGB at 480 px
  decoded by OpenCV, resized again in the detector), same detector parameters, on the DADA clips
  and on the held-out generated seeds: verdicts, onsets, and whether any verdict got worse.
  ``--mpeg4-generated`` adds the held-out seeds rendered like DADA (1584x660 30 fps MPEG-4 AVI),
  the only generated clips where ``lowres`` changes the decoded pixels (slow: ~15 s per clip).

``--fit-generated`` also prints the fitted ``score_threshold``/``calib_a`` to put in
engines/baseline/config.py. Features (the optical-flow part) are cached per clip keyed by file
hash, sampling and extraction parameters, so re-scoring for leave-one-out never recomputes flow.
The cache and the generated clips live in a temporary folder removed at exit, unless ``--out DIR``
names a folder to keep them in (``--out data`` keeps them under ``$GHOSTPROBE_DATA_DIR``, default
``<repo>/data``, in ``cache/baseline``). The DADA folder is ``$GHOSTPROBE_DADA_DIR`` or
``../shared/data/dada-dev``; without it the DADA figures are skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import random
import re
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DADA_DIR = Path(os.environ.get("GHOSTPROBE_DADA_DIR", str(REPO.parent / "shared" / "data" / "dada-dev")))
CACHE = Path(tempfile.gettempdir()) / "ghostprobe-eval-baseline"  # replaced in main(): temp or --out

from engines.baseline.config import DEFAULT_CONFIG, BaselineConfig  # noqa: E402
from engines.baseline.detector import FEATURES_VERSION, extract_features, make_verdict, score_features  # noqa: E402
from engines.baseline.engine import BaselineEngine  # noqa: E402

SAMPLING = dict(BaselineEngine.default_sampling)
PIPELINE1_SAMPLING = {"num_frames": None, "fps": 10, "max_side": 480, "backend": "opencv"}
NEW_AGE_GRID = (0.8, 1.2, 1.8, 2.5, 3.5)


def emit(**kw) -> None:
    print(json.dumps(kw, ensure_ascii=False), flush=True)


# -- statistics --------------------------------------------------------------------------------
def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    if n == 0:
        return None
    p = k / n
    den = 1 + z * z / n
    c = (p + z * z / (2 * n)) / den
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [round(max(0.0, c - h), 3), round(min(1.0, c + h), 3)]


def metrics(y: list[bool], pred: list[bool], onset_true: list[float | None] | None = None,
            onset_pred: list[float | None] | None = None, seed: int = 0) -> dict:
    pos = [i for i, t in enumerate(y) if t]
    neg = [i for i, t in enumerate(y) if not t]
    tp = sum(1 for i in pos if pred[i])
    tn = sum(1 for i in neg if not pred[i])
    rec = tp / len(pos) if pos else None
    spec = tn / len(neg) if neg else None
    bal = (rec + spec) / 2 if rec is not None and spec is not None else None
    # stratified bootstrap for the balanced accuracy
    ci_bal = None
    if pos and neg:
        rng = random.Random(seed)
        vals = []
        for _ in range(2000):
            bp = [pos[rng.randrange(len(pos))] for _ in pos]
            bn = [neg[rng.randrange(len(neg))] for _ in neg]
            vals.append((sum(pred[i] for i in bp) / len(bp) + sum(not pred[i] for i in bn) / len(bn)) / 2)
        vals.sort()
        ci_bal = [round(vals[int(0.025 * len(vals))], 3), round(vals[int(0.975 * len(vals)) - 1], 3)]
    out = {
        "n": len(y), "positives": len(pos), "negatives": len(neg), "tp": tp, "fp": len(neg) - tn,
        "tn": tn, "fn": len(pos) - tp,
        "balanced_accuracy": None if bal is None else round(bal, 3), "balanced_accuracy_ci95": ci_bal,
        "recall": None if rec is None else round(rec, 3), "recall_ci95": wilson(tp, len(pos)),
        "specificity": None if spec is None else round(spec, 3), "specificity_ci95": wilson(tn, len(neg)),
        "accuracy": round((tp + tn) / len(y), 3) if y else None, "accuracy_ci95": wilson(tp + tn, len(y)),
    }
    if onset_true is not None and onset_pred is not None:
        errs = [abs(onset_pred[i] - onset_true[i]) for i in pos
                if pred[i] and onset_true[i] is not None and onset_pred[i] is not None]
        errs.sort()
        out["onset_n"] = len(errs)
        out["onset_median_abs_err_s"] = round(errs[len(errs) // 2] if len(errs) % 2 else
                                              (errs[len(errs) // 2 - 1] + errs[len(errs) // 2]) / 2, 3) if errs else None
        out["onset_within_1s"] = round(sum(e <= 1.0 for e in errs) / len(errs), 3) if errs else None
    return out


# -- features with a disk cache ----------------------------------------------------------------
def _file_key(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:20]


def features_for(path: Path, cfg: BaselineConfig, sampling: dict | None = None) -> dict:
    from engines.video import load_clip

    sampling = SAMPLING if sampling is None else sampling
    key = f"{_file_key(path)}-{cfg.extraction_key()}-v{FEATURES_VERSION}-" + \
        hashlib.sha256(json.dumps(sampling, sort_keys=True).encode()).hexdigest()[:8]
    cache = CACHE / f"{key}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    clip = load_clip(path, **sampling)
    feat = extract_features(clip.frames, list(clip.timestamps_s), cfg)
    CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(feat))
    return feat


def score_all(feats: list[dict], cfg: BaselineConfig) -> list[tuple[float, float | None, bool]]:
    """(raw score, predicted onset, yes) per clip under ``cfg``."""
    out = []
    for f in feats:
        sr = score_features(f, cfg)
        v = make_verdict(f, sr, cfg)
        out.append((sr.raw, v.onset_s, v.ghost_probing is True))  # an error is not a "yes"
    return out


# -- tuning ------------------------------------------------------------------------------------
def best_threshold(scores: list[float], y: list[bool], prefer: float) -> float:
    """Threshold maximising balanced accuracy; ties → the one closest to ``prefer``."""
    s = sorted(set(scores))
    cands = [s[0] - 1e-3] + [(a + b) / 2 for a, b in zip(s, s[1:])] + [s[-1] + 1e-3]
    npos = max(1, sum(y))
    nneg = max(1, len(y) - sum(y))

    def bal(t: float) -> float:
        tp = sum(1 for v, lab in zip(scores, y) if lab and v >= t)
        tn = sum(1 for v, lab in zip(scores, y) if not lab and v < t)
        return tp / npos + tn / nneg

    return max(cands, key=lambda t: (round(bal(t), 9), -abs(t - prefer)))


def tune(feats: list[dict], y: list[bool], base: BaselineConfig) -> BaselineConfig:
    """Tune score_threshold and new_age_s (the only two DADA-tuned parameters)."""
    best = None
    for age in NEW_AGE_GRID:
        cfg = dataclasses.replace(base, new_age_s=age)
        raws = [r for r, _, _ in score_all(feats, cfg)]
        thr = best_threshold(raws, y, base.score_threshold)
        tp = sum(1 for v, lab in zip(raws, y) if lab and v >= thr)
        tn = sum(1 for v, lab in zip(raws, y) if not lab and v < thr)
        bal = tp / max(1, sum(y)) + tn / max(1, len(y) - sum(y))
        key = (round(bal, 9), -abs(age - base.new_age_s))
        if best is None or key > best[0]:
            best = (key, dataclasses.replace(cfg, score_threshold=thr))
    return best[1]


def fit_calibration(raws: list[float], y: list[bool], base: BaselineConfig) -> tuple[float, float]:
    """(threshold, slope) from generated clips: balanced-accuracy threshold (ties → midpoint
    of the widest gap), then a logistic slope on (raw - threshold) with L2 regularisation."""
    pos = sorted(v for v, lab in zip(raws, y) if lab)
    neg = sorted(v for v, lab in zip(raws, y) if not lab)
    if pos and neg and pos[0] > neg[-1]:
        thr = (pos[0] + neg[-1]) / 2  # separable: the middle of the gap
    else:
        thr = best_threshold(raws, y, base.score_threshold)
    try:
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        x = (np.asarray(raws) - thr).reshape(-1, 1)
        lr = LogisticRegression(C=1.0, fit_intercept=False).fit(x, np.asarray(y, int))
        a = float(lr.coef_[0][0])
    except Exception:
        a = base.calib_a
    return round(thr, 4), round(max(1.0, a), 3)


# -- data --------------------------------------------------------------------------------------
def parse_seeds(s: str) -> list[int]:
    out: list[int] = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def generated_items(seeds: list[int], dada_like: bool = False) -> list[dict]:
    """The generated set (640x360 15 fps H.264), or with ``dada_like`` 1584x660 30 fps MPEG-4 AVI."""
    from engines.synth import DEMO_SET, render_clip

    d = CACHE / ("generated_dada_like" if dada_like else "generated")
    d.mkdir(parents=True, exist_ok=True)
    items = []
    kw = dict(fps=30, size=(1584, 660), codec="mpeg4") if dada_like else {}
    for seed in seeds:
        for scen, dur, onset in DEMO_SET:
            p = d / f"{scen}_s{seed}{'.avi' if dada_like else '.mp4'}"
            meta = d / f"{scen}_s{seed}.json"
            if not (meta.exists() and p.exists()):
                info = render_clip(p, scen, seed=seed, duration_s=dur, onset_s=onset if seed == 0 else None, **kw)
                meta.write_text(json.dumps(info))
            info = json.loads(meta.read_text())
            items.append({"video_id": p.name, "path": p, "ghost_probing": bool(info["ghost_probing"]),
                          "onset_s": info["onset_s"]})
    return items


def dada_items() -> list[dict]:
    items = []
    with (DADA_DIR / "labels.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            lab = (r.get("ground_truth_label") or "").strip().lower()
            gp = "ghost probing" in lab
            m = re.match(r"\s*([\d.]+)\s*s\s*:", lab)
            items.append({"video_id": r["video_id"], "path": DADA_DIR / r["video_id"], "ghost_probing": gp,
                          "onset_s": float(m.group(1)) if (gp and m) else None, "label": lab})
    return items


def peer_predictions() -> dict[str, bool | None]:
    data = json.loads((DADA_DIR / "peer_gpt4o_run8_dev.json").read_text(encoding="utf-8"))
    out: dict[str, bool | None] = {}
    for r in data.get("detailed_results", []):
        ka = str(r.get("key_actions", "")).strip().lower()
        # the negative answer contains the positive phrase: test for the negation first
        if re.search(r"\b(no|not|without)\s+ghost[\s_-]*probing", ka):
            out[r["video_id"]] = False
        elif re.search(r"ghost[\s_-]*probing", ka):
            out[r["video_id"]] = True
        else:
            out[r["video_id"]] = None  # unparseable: never silently a "no"
    return out


# -- main --------------------------------------------------------------------------------------
def compare(name: str, label_set: str, items: list[dict], cfg: BaselineConfig, after: list, common: dict,
            per_clip: bool = False) -> None:
    """Pipeline 1 (before) vs 2 (now) on the same clips and detector parameters."""
    before = score_all([features_for(it["path"], cfg, PIPELINE1_SAMPLING) for it in items], cfg)
    y = [it["ghost_probing"] for it in items]
    on_true = [it["onset_s"] for it in items]
    changed, worse, better = [], [], []
    for it, b, a in zip(items, before, after):
        if b[2] != a[2]:
            changed.append(it["video_id"])
            (better if a[2] == it["ghost_probing"] else worse).append(it["video_id"])
        if per_clip:
            emit(figure=f"{name}_clip", video_id=it["video_id"], ghost_probing_true=it["ghost_probing"],
                 onset_true=it["onset_s"], before={"score": round(b[0], 4), "predicted": b[2], "onset": b[1]},
                 after={"score": round(a[0], 4), "predicted": a[2], "onset": a[1]}, **common)
    emit(figure=name, label_set=label_set, before_sampling=PIPELINE1_SAMPLING, after_sampling=SAMPLING,
         before=metrics(y, [p for _, _, p in before], on_true, [o for _, o, _ in before]),
         after=metrics(y, [p for _, _, p in after], on_true, [o for _, o, _ in after]),
         verdicts_changed=changed, got_worse=worse, got_better=better,
         passed=not worse, target="no verdict worse than before", **common)


def main(argv: list[str] | None = None) -> int:
    global CACHE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fit-generated", action="store_true", help="print fitted threshold/slope for config.py")
    ap.add_argument("--seeds-fit", default="0-5")
    ap.add_argument("--seeds-test", default="6-9")
    ap.add_argument("--out", help="keep the feature cache and generated clips here ('data': under $GHOSTPROBE_DATA_DIR)")
    ap.add_argument("--no-compare", action="store_true", help="leave out the before/after pipeline comparison")
    ap.add_argument("--mpeg4-generated", action="store_true",
                    help="also compare on the held-out seeds rendered like DADA (1584x660 30 fps MPEG-4; slow)")
    args = ap.parse_args(argv)
    tmp = None
    if args.out == "data":
        CACHE = Path(os.environ.get("GHOSTPROBE_DATA_DIR") or (REPO / "data")).expanduser() / "cache" / "baseline"
    elif args.out:
        CACHE = Path(args.out).expanduser()
    else:
        tmp = tempfile.mkdtemp(prefix="eval_baseline_")
        CACHE = Path(tmp)
    try:
        return _main(args)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _main(args) -> int:
    base = DEFAULT_CONFIG
    common = {"engine": "baseline", "revision": base.revision(), "sampling": SAMPLING}
    t0 = time.perf_counter()

    # generated: fit on the fit seeds, report fit and held-out seeds
    fit_items = generated_items(parse_seeds(args.seeds_fit))
    fit_feats = [features_for(it["path"], base) for it in fit_items]
    y_fit = [it["ghost_probing"] for it in fit_items]
    raws_fit = [r for r, _, _ in score_all(fit_feats, base)]
    thr, slope = fit_calibration(raws_fit, y_fit, base)
    if args.fit_generated:
        emit(figure="generated_calibration_fit", label_set=f"generated seeds {args.seeds_fit}",
             n=len(y_fit), score_threshold=thr, calib_a=slope,
             config_score_threshold=base.score_threshold, config_calib_a=base.calib_a, **common)
    for name, seeds in (("generated_fit", args.seeds_fit), ("generated_heldout", args.seeds_test)):
        items = fit_items if name == "generated_fit" else generated_items(parse_seeds(seeds))
        feats = fit_feats if name == "generated_fit" else [features_for(it["path"], base) for it in items]
        res = score_all(feats, base)
        label_set = f"generated (engines/synth.py) seeds {seeds}, 7 scenarios each"
        emit(figure=name, label_set=label_set,
             params="config defaults (threshold and slope fitted on generated seeds "
                    f"{args.seeds_fit})", threshold=base.score_threshold,
             **metrics([it["ghost_probing"] for it in items], [p for _, _, p in res],
                       [it["onset_s"] for it in items], [o for _, o, _ in res]), **common)
        if name == "generated_heldout" and not args.no_compare:
            compare("pipeline_comparison_generated_heldout", label_set, items, base, res, common)
    if args.mpeg4_generated and not args.no_compare:
        items = generated_items(parse_seeds(args.seeds_test), dada_like=True)
        res = score_all([features_for(it["path"], base) for it in items], base)
        compare("pipeline_comparison_generated_dada_like",
                f"generated seeds {args.seeds_test} rendered 1584x660 30 fps MPEG-4 AVI (like DADA)", items, base,
                res, common, per_clip=True)

    if not (DADA_DIR / "labels.csv").exists():
        emit(figure="dada", skipped=f"{DADA_DIR} is absent: DADA figures not computed", **common)
        return 0
    items = dada_items()
    feats = [features_for(it["path"], base) for it in items]
    y = [it["ghost_probing"] for it in items]
    on_true = [it["onset_s"] for it in items]
    label_set = "dada-dev labels.csv (human; 'ghost probing' positive, 'cut-in'/'none' negative)"

    res = score_all(feats, base)
    emit(figure="dada_generated_params", label_set=label_set,
         params="fixed from generated clips only (config defaults)", threshold=base.score_threshold,
         new_age_s=base.new_age_s,
         **metrics(y, [p for _, _, p in res], on_true, [o for _, o, _ in res]), **common)
    for it, (raw, on, p) in zip(items, res):
        emit(figure="dada_clip", video_id=it["video_id"], label=it["label"], ghost_probing_true=it["ghost_probing"],
             score=round(raw, 4), predicted=p, onset_true=it["onset_s"], onset_pred=on, **common)
    if not args.no_compare:
        compare("pipeline_comparison_dada", label_set, items, base, res, common, per_clip=True)

    tuned = tune(feats, y, base)
    res_in = score_all(feats, tuned)
    emit(figure="dada_in_sample", label_set=label_set,
         params="score_threshold and new_age_s tuned on all 12 clips (optimistic)",
         threshold=round(tuned.score_threshold, 4), new_age_s=tuned.new_age_s,
         **metrics(y, [p for _, _, p in res_in], on_true, [o for _, o, _ in res_in]), **common)

    loo_pred, loo_on, chosen = [], [], []
    for i in range(len(items)):
        rest = [j for j in range(len(items)) if j != i]
        cfg_i = tune([feats[j] for j in rest], [y[j] for j in rest], base)
        raw, on, p = score_all([feats[i]], cfg_i)[0]
        loo_pred.append(p)
        loo_on.append(on)
        chosen.append([round(cfg_i.score_threshold, 3), cfg_i.new_age_s])
    emit(figure="dada_loo", label_set=label_set,
         params="leave-one-out: score_threshold and new_age_s tuned on the other 11 clips",
         chosen_per_fold=chosen, **metrics(y, loo_pred, on_true, loo_on), **common)

    peer = peer_predictions()
    ppred = [peer.get(it["video_id"]) for it in items]
    unparsed = sum(1 for p in ppred if p is None)
    emit(figure="peer_gpt4o_run8", label_set=label_set, source="peer_gpt4o_run8_dev.json key_actions",
         unparsed=unparsed, note="unparsed answers count as wrong, never as 'no'",
         **metrics(y, [(p if p is not None else (not t)) for p, t in zip(ppred, y)]),
         engine_peer="GPT-4o (Azure), few-shot prompt, temperature 0")
    emit(figure="eval_wall_s", seconds=round(time.perf_counter() - t0, 2), **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
