"""Real-time factor of the weights-free baseline through ``ghostprobe eval``: one JSON line per figure.

    python bench/bench_baseline.py [--full] [--repeats 3] [--workers N] [--reference REV] [--generated-seeds 6-7]

What is timed: the real command, ``ghostprobe eval --engine baseline --labels L --videos DIR --json``
(``--workers`` when given; else eval's default, one worker process per core), in a fresh
``GHOSTPROBE_DATA_DIR`` per run (a copy of a database with only the labels imported: no cached
answer, no memoised hash), for

- **candidate**: this working tree;
- **reference**: the previous revision of the engine, ``--reference REV`` (default
  ``REFERENCE_REV``), extracted with ``git archive`` into the temporary folder and run the same way
  with the same virtualenv.

Runs are interleaved (candidate, reference, reference, candidate, ...), ``--repeats`` >= 3 each,
after one untimed warm-up of each (page cache, byte-code). Figures (every line names its target
and ``passed``; ``min``/``median`` over the repetitions; ``load_avg`` is the 1-minute load before
and after, the machine is shared):

- ``baseline_eval_realtime_x``: video seconds / wall seconds of the whole command (process start
  to exit: imports, database, planning, worker processes, every clip, metrics), target >= 15;
  also ``eval_realtime_x`` on eval's own ``wall_s`` (first video scheduled to last answer
  logged), ``cpu_s`` (the command and its worker processes, user + system: the fair figure on a
  busy machine), the reference's figures and ``speedup`` = reference wall / candidate wall per
  repetition.
- ``baseline_verdicts_vs_reference``: per clip, the candidate's and the reference's verdict and
  onset on the timed clips; target: the same verdicts (onsets are reported, not judged: they are
  judged on generated clips below).
- ``baseline_generated_accuracy``: both through the same ``eval`` on the generated held-out seeds
  (engines/synth.py, 7 scenarios per seed, rendered as tests/test_baseline.py does; seeds 6-7 by
  default, 6-9 — the README's held-out set — with ``--full``): confusion, onsets within 0.5 s and
  1 s of the truth; target: the candidate unchanged or better than the reference on each count.

Source: the 12 DADA-2000 dev clips when ``$GHOSTPROBE_DADA_DIR`` (default
``../shared/data/dada-dev``) exists, else 4 generated clips of the same size, rate and codec
(1584x660, 30 fps MPEG-4 AVI); ``source`` says which. Without git or the reference revision the
reference figures are left out and the line says why. Everything (clips, databases, the
reference tree) lives in one temporary folder, removed at exit.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DADA_DIR = Path(os.environ.get("GHOSTPROBE_DADA_DIR", str(REPO.parent / "shared" / "data" / "dada-dev")))
TARGET_X = 15.0
# The engine before issue 10's end-to-end speed work (revision cfg-73a314d4c80e: grey 480 px, lowres,
# OpenCV and FFmpeg threads left to their defaults in every worker). Move it when the engine changes.
REFERENCE_REV = "6736dd7"
CLI = "import sys; from webapp.cli import main; sys.exit(main())"


def emit(**kw) -> None:
    print(json.dumps(kw, ensure_ascii=False), flush=True)


def _stats(xs: list[float]) -> dict | None:
    if not xs:
        return None
    return {"min": round(min(xs), 3), "median": round(statistics.median(xs), 3), "max": round(max(xs), 3)}


def _seeds(s: str) -> list[int]:
    out: list[int] = []
    for part in s.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


# -- the two trees -------------------------------------------------------------------------------
def _reference_tree(rev: str, dest: Path) -> tuple[Path | None, str]:
    """``git archive rev`` unpacked into ``dest``: (tree, description) or (None, why not)."""
    try:
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                             capture_output=True, text=True, check=True).stdout.strip()
        tar = dest.with_suffix(".tar")
        with tar.open("wb") as fh:
            subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", sha], stdout=fh, check=True,
                           stderr=subprocess.DEVNULL)
        dest.mkdir(parents=True)
        with tarfile.open(tar) as tf:
            tf.extractall(dest, filter="data")
        tar.unlink()
        return dest, f"git {sha[:12]}"
    except (OSError, subprocess.CalledProcessError) as e:
        return None, f"reference revision {rev!r} not available ({type(e).__name__}); reference figures left out"


def _ghostprobe(tree: Path, data: Path, args: list[str]) -> dict:
    """Run ``ghostprobe ARGS`` from ``tree`` with its own data folder; wall and CPU (with children)."""
    env = {**os.environ, "GHOSTPROBE_DATA_DIR": str(data), "PYTHONPATH": str(tree)}
    env.pop("GHOSTPROBE_DB", None)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CLI, *args], cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        tail = " | ".join(r.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"ghostprobe {' '.join(args[:3])} in {tree} exited {r.returncode}: {tail}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"wall": wall, "cpu": cpu, "stdout": r.stdout}


class Side:
    """One tree (candidate or reference) with a database template holding the label sets."""

    def __init__(self, name: str, tree: Path, tmp: Path, label_files: dict[str, Path]):
        self.name, self.tree, self.tmp = name, tree, tmp
        self.template = tmp / f"{name}_template"
        self.template.mkdir()
        for set_name, f in label_files.items():
            _ghostprobe(tree, self.template, ["labels", "import", "--set", set_name, str(f)])
        self.n = 0

    def eval(self, label_set: str, videos: Path, workers: int | None) -> dict:
        self.n += 1
        data = self.tmp / f"{self.name}_run{self.n}"
        data.mkdir()
        for f in self.template.iterdir():
            if f.is_file():
                shutil.copy2(f, data / f.name)
        args = ["eval", "--engine", "baseline", "--labels", label_set, "--videos", str(videos), "--json"]
        if workers:
            args += ["--workers", str(workers)]
        r = _ghostprobe(self.tree, data, args)
        out = json.loads(r["stdout"])
        summary = out["summary"]
        import duckdb

        con = duckdb.connect(str(data / "ghostprobe.duckdb"), read_only=True)
        try:
            rows = con.execute("SELECT video_id, status, ghost_probing, onset_s, confidence FROM responses "
                               "WHERE run_id = ? ORDER BY video_id", [out["run_id"]]).fetchall()
        finally:
            con.close()
        shutil.rmtree(data, ignore_errors=True)
        verdicts = {v: {"status": s, "ghost_probing": g, "onset_s": None if o is None else round(o, 2),
                        "confidence": None if c is None else round(c, 4)} for v, s, g, o, c in rows}
        return {"wall": r["wall"], "cpu": r["cpu"], "eval_wall": float(summary["wall_s"]),
                "workers": summary.get("workers"), "revision": summary["identity"].get("revision"),
                "verdicts": verdicts}


# -- clips -------------------------------------------------------------------------------------
def _timed_source(tmp: Path) -> tuple[Path, Path, str]:
    """(videos folder, labels file, description) for the timed runs."""
    if (DADA_DIR / "labels.csv").exists() and sorted(DADA_DIR.glob("*.avi")):
        n = len(sorted(DADA_DIR.glob("*.avi")))
        return DADA_DIR, DADA_DIR / "labels.csv", f"dada-dev ({n} clips, {DADA_DIR})"
    from engines.synth import render_clip, write_labels_csv

    d = tmp / "generated_dada_size"
    d.mkdir()
    rows = []
    for i, scen in enumerate(("emerge_pedestrian", "empty_road", "cut_in", "far_crossing")):
        p = d / f"generated_{i}.avi"
        info = render_clip(p, scen, seed=i, fps=30, size=(1584, 660), duration_s=5.0, codec="mpeg4")
        rows.append({**info, "video_id": p.name})
    return d, write_labels_csv(rows, d / "labels.csv"), \
        "generated: 4 clips 1584x660 30 fps MPEG-4 AVI (the DADA folder is absent)"


def _generated_heldout(tmp: Path, seeds: list[int]) -> tuple[Path, Path, dict[str, dict]]:
    """The held-out generated clips exactly as tests/test_baseline.py renders them, with their labels."""
    from engines.synth import DEMO_SET, render_clip, write_labels_csv

    d = tmp / "generated_heldout"
    d.mkdir()
    rows, truth = [], {}
    for seed in seeds:
        for scen, dur, _onset in DEMO_SET:
            p = d / f"{scen}_s{seed}.mp4"
            info = render_clip(p, scen, seed=seed, duration_s=dur)
            rows.append({**info, "video_id": p.name})
            truth[p.name] = {"ghost_probing": bool(info["ghost_probing"]), "onset_s": info["onset_s"]}
    return d, write_labels_csv(rows, d / "labels.csv"), truth


def _accuracy(verdicts: dict[str, dict], truth: dict[str, dict]) -> dict:
    tp = tn = errors = on05 = on1 = 0
    for vid, t in truth.items():
        v = verdicts.get(vid) or {}
        if v.get("status") != "ok":
            errors += 1
            continue
        if t["ghost_probing"] and v["ghost_probing"] is True:
            tp += 1
            if v["onset_s"] is not None and t["onset_s"] is not None:
                err = abs(v["onset_s"] - t["onset_s"])
                on05 += err <= 0.5
                on1 += err <= 1.0
        elif not t["ghost_probing"] and v["ghost_probing"] is False:
            tn += 1
    pos = sum(1 for t in truth.values() if t["ghost_probing"])
    return {"tp": tp, "positives": pos, "tn": tn, "negatives": len(truth) - pos, "errors": errors,
            "onset_within_0_5s": on05, "onset_within_1s": on1}


def _truth_from_csv(path: Path) -> dict[str, dict]:
    out = {}
    with path.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            lab = (r.get("ground_truth_label") or "").lower()
            if "ground_truth_label" in r:
                m = re.match(r"\s*([\d.]+)\s*s\s*:", lab)
                out[r["video_id"]] = {"ghost_probing": "ghost probing" in lab,
                                      "onset_s": float(m.group(1)) if m and "ghost probing" in lab else None}
            else:
                out[r["video_id"]] = {"ghost_probing": r.get("ghost_probing") == "1",
                                      "onset_s": float(r["onset_s"]) if r.get("onset_s") else None}
    return out


# -- main --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="eval --workers (default: eval's own, one per core)")
    ap.add_argument("--reference", default=REFERENCE_REV, help="git revision to compare with ('none': leave out)")
    ap.add_argument("--generated-seeds", default=None,
                    help="held-out generated seeds for the accuracy (default 6-7, 6-9 with --full; '': skip)")
    ap.add_argument("--full", action="store_true", help="the accuracy on all held-out seeds 6-9 (slower)")
    args = ap.parse_args(argv)
    if args.generated_seeds is None:
        args.generated_seeds = "6-9" if args.full else "6-7"
    args.repeats = max(3, args.repeats)

    from engines.registry import get_engine
    from engines.video import probe

    with tempfile.TemporaryDirectory(prefix="bench_baseline_") as tmpd:
        tmp = Path(tmpd)
        videos, labels, source = _timed_source(tmp)
        video_s = sum(probe(p).duration_s for p in sorted(videos.glob("*.avi")))  # also warms the page cache
        seeds = _seeds(args.generated_seeds)
        gen = _generated_heldout(tmp, seeds) if seeds else None
        label_files = {"timed": labels, **({"generated": gen[1]} if gen else {})}

        sides = [Side("candidate", REPO, tmp, label_files)]
        ref_note = "left out (--reference none)"
        if args.reference.lower() != "none":
            tree, ref_note = _reference_tree(args.reference, tmp / "reference_tree")
            if tree is not None:
                sides.append(Side("reference", tree, tmp, label_files))
        load0 = round(os.getloadavg()[0], 2)
        for s in sides:  # warm-up: page cache, byte-code of the reference tree
            s.eval("timed", videos, args.workers)
        runs: dict[str, list[dict]] = {s.name: [] for s in sides}
        for rep in range(args.repeats):
            for s in (sides if rep % 2 == 0 else sides[::-1]):
                runs[s.name].append(s.eval("timed", videos, args.workers))
        load1 = round(os.getloadavg()[0], 2)
        cand, ref = runs["candidate"], runs.get("reference")
        common = {"source": source, "video_s": round(video_s, 2), "repeats": args.repeats,
                  "workers": cand[0]["workers"], "candidate_revision": cand[0]["revision"],
                  "reference": ref_note, "reference_revision": ref[0]["revision"] if ref else None,
                  "sampling": get_engine("baseline").default_sampling, "cpu_count": os.cpu_count(),
                  "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                  "load_avg": [load0, load1]}

        rt = [video_s / r["wall"] for r in cand]
        fig = {"figure": "baseline_eval_realtime_x",
               "target": f">= {TARGET_X:g}x real time: video s / wall s of the whole `ghostprobe eval` (median)",
               "passed": statistics.median(rt) >= TARGET_X, "realtime_x": _stats(rt),
               "eval_realtime_x": _stats([video_s / r["eval_wall"] for r in cand]),
               "wall_s": _stats([r["wall"] for r in cand]), "cpu_s": _stats([r["cpu"] for r in cand]),
               "cpu_realtime_x": _stats([video_s / r["cpu"] for r in cand])}
        if ref:
            fig.update(reference_realtime_x=_stats([video_s / r["wall"] for r in ref]),
                       reference_eval_realtime_x=_stats([video_s / r["eval_wall"] for r in ref]),
                       reference_cpu_s=_stats([r["cpu"] for r in ref]),
                       speedup=_stats([r["wall"] / c["wall"] for c, r in zip(cand, ref)]),
                       cpu_speedup=_stats([r["cpu"] / c["cpu"] for c, r in zip(cand, ref)]))
        emit(**fig, **common)

        # the verdicts are deterministic: every repetition must agree with the first
        stable = all(r["verdicts"] == cand[0]["verdicts"] for r in cand)
        if ref:
            per_clip, changed = [], []
            for vid, c in cand[0]["verdicts"].items():
                r = ref[0]["verdicts"].get(vid)
                per_clip.append({"video_id": vid, "candidate": c, "reference": r})
                if r is None or (c["status"], c["ghost_probing"]) != (r["status"], r["ghost_probing"]):
                    changed.append(vid)
            onset_moved = [p["video_id"] for p in per_clip if p["reference"] and
                           p["candidate"]["onset_s"] != p["reference"]["onset_s"]]
            emit(figure="baseline_verdicts_vs_reference", target="the same verdict on every timed clip",
                 passed=not changed and stable and len(per_clip) == len(ref[0]["verdicts"]),
                 verdicts_changed=changed, onsets_changed=onset_moved, repeat_stable=stable, clips=per_clip,
                 truth=_truth_from_csv(labels), **common)
        else:
            emit(figure="baseline_verdicts_vs_reference", target="the same verdict on every timed clip",
                 passed=None, skipped=ref_note, repeat_stable=stable, **common)

        if gen:
            acc = {s.name: _accuracy(s.eval("generated", gen[0], args.workers)["verdicts"], gen[2]) for s in sides}
            c = acc["candidate"]
            r = acc.get("reference")
            keys = ("tp", "tn", "onset_within_0_5s", "onset_within_1s")
            emit(figure="baseline_generated_accuracy",
                 target="candidate >= reference on tp, tn and onsets within 0.5 s / 1 s; no errors",
                 passed=(c["errors"] == 0 and (r is None or all(c[k] >= r[k] for k in keys))),
                 label_set=f"generated held-out seeds {args.generated_seeds} (engines/synth.py, 7 scenarios each)",
                 candidate_accuracy=c, reference_accuracy=r, **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
