"""The weights-free baseline: detector on generated clips, edge cases, the engine, real DADA clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engines import synth
from engines.base import GenerationOptions
from engines.baseline.config import BaselineConfig
from engines.baseline.detector import detect_frames
from engines.registry import get_engine
from engines.types import Clip, VideoMeta
from engines.video import load_clip

DADA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dada-dev"
SAMPLING = {"num_frames": None, "fps": 10, "max_side": 480, "color": "gray", "lowres": True}
RGB_SAMPLING = {"num_frames": None, "fps": 10, "max_side": 480}  # pipeline 1's sampling: still accepted


def _demo(tmp_path_factory) -> Path:
    d = tmp_path_factory.getbasetemp() / "synth_demo_s0"  # same folder as test_synth.py's
    if not (d / "labels.csv").exists():
        synth.render_demo_clips(d, seed=0)
    return d


def _labels(d: Path) -> list[dict]:
    import csv

    return list(csv.DictReader((d / "labels.csv").open(encoding="utf-8")))


def _clip_of(frames: np.ndarray, fps: float = 10.0) -> Clip:
    n = len(frames)
    h, w = (frames.shape[1], frames.shape[2]) if n else (0, 0)
    meta = VideoMeta(path="mem", frames=n, fps=fps, duration_s=n / fps, width=w, height=h, codec="raw",
                     sha256="0" * 64, size_bytes=0)
    return Clip(frames=frames, timestamps_s=[i / fps for i in range(n)], indices=list(range(n)), fps=fps,
                duration_s=n / fps, source="mem", sha256="0" * 64, meta=meta, sampling={"fps": fps})


@pytest.fixture(scope="module")
def engine():
    return get_engine("baseline")


def test_demo_set_positives_detected_negatives_not(tmp_path_factory, engine):
    d = _demo(tmp_path_factory)
    for row in _labels(d):
        clip = load_clip(d / row["video_id"], **engine.default_sampling)
        r = engine.detect(clip, GenerationOptions())
        v = r.verdict
        assert v.status == "ok", row["video_id"]
        assert v.ghost_probing is (row["ghost_probing"] == "1"), (row["video_id"], v.reason)
        if v.ghost_probing:
            assert abs(v.onset_s - float(row["onset_s"])) <= 0.5, (row["video_id"], v.onset_s, row["onset_s"])
            assert v.danger_level in ("high", "medium") and 0.5 <= v.confidence <= 1.0
        else:
            assert v.onset_s is None and v.danger_level == "low" and 0.5 <= v.confidence <= 1.0


@pytest.mark.parametrize("scenario,seed", [("emerge_cyclist", 1), ("emerge_child", 2), ("cut_in", 1),
                                           ("far_crossing", 2)])
def test_other_seeds(tmp_path, scenario, seed):
    dur = {s: d for s, d, _ in synth.DEMO_SET}[scenario]
    info = synth.render_clip(tmp_path / f"{scenario}.mp4", scenario, seed=seed, duration_s=dur)
    clip = load_clip(tmp_path / f"{scenario}.mp4", **SAMPLING)
    v, track, _ = detect_frames(clip.frames, clip.timestamps_s)
    assert v.ghost_probing is info["ghost_probing"], v.reason
    if info["ghost_probing"]:
        assert abs(v.onset_s - info["onset_s"]) <= 0.5
    assert track and all(0.0 <= s <= 1.0 for _, s in track)


MEASURED_EDGE_CASES = {"static_scene", "short_clip", "black_frames"}  # motion measured: a real "no"
UNMEASURABLE_EDGE_CASES = {"single_frame", "tiny_frames", "heavy_noise"}  # nothing measured: "error"


def test_edge_case_files_answer_no_or_error_never_crash(tmp_path, engine):
    """Generated degenerate files: where motion was measured the answer is "no"; where nothing
    could be measured it is an error saying so (issue 9 item 16), never a confident "no"."""
    paths = synth.render_edge_cases(tmp_path)
    assert set(paths) == MEASURED_EDGE_CASES | UNMEASURABLE_EDGE_CASES
    for name, p in paths.items():
        clip = load_clip(p, **engine.default_sampling)
        r = engine.detect(clip)
        v = r.verdict
        if name in MEASURED_EDGE_CASES:
            assert v.status == "ok" and v.ghost_probing is False, (name, v.reason)
            assert v.reason and v.confidence is not None and r.track
        else:
            assert v.status == "error" and v.ghost_probing is None and v.confidence is None, (name, v.reason)
            assert "无法给出判断" in v.reason and "不是“否”" in v.reason, (name, v.reason)
            assert r.track is None and r.threshold is None  # no score track from nothing


def _write_h264(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    import av

    h, w = frames.shape[1:3]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            for pk in s.encode(vf):
                out.mux(pk)
        for pk in s.encode():
            out.mux(pk)
    return path


@pytest.mark.parametrize("shape", [(1, 120, 200), (20, 2, 2), (20, 16, 4096)], ids=["1-frame", "2x2", "4096x16"])
def test_clips_where_nothing_can_be_measured_are_errors_not_no(tmp_path, engine, shape):
    """Issue 9 item 16: a 1-frame, a 2x2 and a 4096x16 clip, decoded from real files."""
    n, h, w = shape
    rng = np.random.default_rng(3)
    frames = rng.integers(60, 200, (n, h, w, 3), dtype=np.uint8)
    p = _write_h264(tmp_path / f"clip_{w}x{h}_{n}.mp4", frames)
    clip = load_clip(p, **engine.default_sampling)
    r = engine.detect(clip)
    assert r.verdict.status == "error" and r.verdict.ghost_probing is None, r.verdict
    assert r.verdict.confidence is None and r.verdict.danger_level is None
    why = "片段不足两帧" if n == 1 else "画面太小"
    assert why in r.verdict.reason and "没有可测量的运动" in r.verdict.reason
    assert r.artifacts.tracks == {} and r.artifacts.thresholds == {}


@pytest.mark.parametrize("frames,status", [
    (np.zeros((0, 32, 32, 3), np.uint8), "error"),  # no frames
    (np.zeros((1, 120, 200, 3), np.uint8), "error"),  # one frame
    (np.zeros((6, 8, 12, 3), np.uint8), "error"),  # tiny
    (np.full((12, 90, 160, 3), 255, np.uint8), "ok"),  # white: motion measured, nothing moves
    (np.random.default_rng(0).integers(0, 256, (15, 134, 320, 3), dtype=np.uint8), "error"),  # pure noise
    (np.zeros((8, 60, 80), np.uint8), "ok"),  # grey frames without a channel axis
], ids=["empty", "one-frame", "tiny", "white", "noise", "grey-2d"])
def test_degenerate_arrays(engine, frames, status):
    r = engine.detect(_clip_of(frames), GenerationOptions())
    assert r.verdict.status == status, r.verdict.reason
    assert r.verdict.ghost_probing is (False if status == "ok" else None)


def test_engine_contract(tmp_path_factory, engine):
    assert engine.name == "baseline" and engine.availability() == (True, "ready: weights-free motion detector on CPU")
    assert engine.default_sampling == SAMPLING
    assert not engine.chat_capable and not engine.takes_prompt
    d = _demo(tmp_path_factory)
    clip = load_clip(d / "synth_emerge_pedestrian_s0.mp4", **engine.default_sampling)
    assert clip.frames.ndim == 3 and clip.frames.shape[2] == 480 and clip.sampling["color"] == "gray"
    r = engine.detect(clip, GenerationOptions())
    assert r.call.engine == "baseline" and r.call.model == "baseline-flow-v1" and r.call.device == "cpu"
    assert r.call.revision == BaselineConfig().revision() and r.call.latency_s > 0
    assert r.verdict.object_type in (None, "pedestrian", "cyclist", "motorcycle", "vehicle", "animal", "other")
    assert "秒" in r.verdict.reason
    ev = json.loads(r.verdict.raw)
    assert ev["engine"] == "baseline-flow-v1" and ev["winner"]["onset_s"] == r.verdict.onset_s
    assert set(r.artifacts.tracks) == {"score"} and r.threshold == BaselineConfig().score_threshold
    ts = [t for t, _ in r.track]
    assert ts == sorted(ts) and max(s for _, s in r.track) >= BaselineConfig().score_threshold
    # the same clip sampled the old way (RGB at 480 px) gives the same answer
    r_rgb = engine.detect(load_clip(d / "synth_emerge_pedestrian_s0.mp4", **RGB_SAMPLING))
    assert r_rgb.verdict.ghost_probing is True and abs(r_rgb.verdict.onset_s - r.verdict.onset_s) <= 0.5
    # another configuration is another revision; a typo is one clear sentence
    assert get_engine("baseline", score_threshold=0.5).revision() != engine.revision()
    assert get_engine("baseline", pipeline=1).revision() != engine.revision()
    from engines.errors import EngineError

    with pytest.raises(EngineError, match="Unknown baseline parameter"):
        get_engine("baseline", treshold=0.5)


def test_detector_modules_follow_the_pipeline():
    """flow → egomotion → blobs → tracking → scoring, with detector.py the orchestrator."""
    import importlib

    for mod, names in {"flow": ["flow_pass", "select_frames", "to_gray"],
                       "egomotion": ["fit_rotation", "fit_foe", "fit_ego", "residual", "attached_parts"],
                       "blobs": ["near_cut_row", "direction_planes", "Persistence", "find_blobs"],
                       "tracking": ["Tracker", "seen_before"],
                       "scoring": ["score_features", "make_verdict", "confidence_of", "nothing_measured"]}.items():
        m = importlib.import_module(f"engines.baseline.{mod}")
        missing = [n for n in names if not hasattr(m, n)]
        assert not missing, (mod, missing)


def test_fit_rotation_recovers_a_known_rotation():
    """Flow made of a known rotation plus radial expansion from a known FOE: the fit finds the rotation."""
    from engines.baseline.egomotion import _rot_basis, fit_rotation

    rng = np.random.default_rng(5)
    x, y = rng.uniform(-0.6, 0.6, 800), rng.uniform(-0.3, 0.3, 800)
    w_true, e = np.array([0.004, -0.01, 0.002]), (0.05, -0.02)
    au, av = _rot_basis(x, y)
    depth = rng.uniform(0.02, 0.2, 800)
    u = au @ w_true + (x - e[0]) * depth
    v = av @ w_true + (y - e[1]) * depth
    w, wt = fit_rotation(x, y, u, v, e)
    assert np.allclose(w, w_true, atol=5e-4), w
    assert wt.min() > 0.9  # every sample fits: none down-weighted


@pytest.mark.parametrize("video_id", ["images_5_046.avi", "images_6_059.avi"])
def test_real_dada_clips_get_a_verdict(video_id):
    path = DADA / video_id
    if not path.exists():
        pytest.skip("../shared/data/dada-dev is absent (real DADA clips are not part of the repository)")
    eng = get_engine("baseline")
    clip = load_clip(path, **eng.default_sampling)
    assert clip.sampling["backend"] == "pyav" and clip.frames.shape[1:] == (200, 480)
    r = eng.detect(clip, GenerationOptions())
    assert r.verdict.status == "ok" and isinstance(r.verdict.ghost_probing, bool)
    assert 0.5 <= r.verdict.confidence <= 1.0 and r.verdict.reason
    assert len(r.track) > 20


def test_residual_matches_the_plain_formula_and_threads_change_nothing(tmp_path_factory):
    """The residual's in-place arithmetic gives exactly the plain expression's float32 values, and the
    detector answers the same, bit for bit, on one OpenCV thread (an eval worker's share) as on all."""
    import cv2

    from engines.baseline.egomotion import geometry, residual
    from engines.baseline.flow import make_grid

    cfg = BaselineConfig()
    g = make_grid(134, 320, cfg)
    rng = np.random.default_rng(3)
    for e in ((0.02, -0.05), (0.9, 0.9)):  # the FOE inside the picture, and far outside it
        geo = geometry(g, e)
        flow = rng.normal(0, 2, (134, 320, 2)).astype(np.float32)
        w = np.array([0.002, -0.001, 0.0005])
        ur, vr, mag, res = residual(flow, w, False, g, geo, e, g.valid, cfg, {})
        F = g.F
        w0, w1, w2 = float(F * w[0]), float(F * w[1]), float(F * w[2])
        ur0 = flow[..., 0] - (w0 * geo.xy - w1 * geo.x2 + w2 * g.yn)
        vr0 = flow[..., 1] - (w0 * geo.y2 - w1 * geo.xy - w2 * g.xn)
        mag0 = cv2.magnitude(ur0, vr0)
        rad = (ur0 * geo.dx + vr0 * geo.dy) / geo.rr
        perp = np.abs(ur0 * geo.dy - vr0 * geo.dx) / geo.rr
        res0 = geo.near * (perp + np.maximum(0.0, 0.0 - rad)) + (1 - geo.near) * mag0
        assert np.array_equal(ur, ur0) and np.array_equal(vr, vr0), e
        # cv2.magnitude may round the first and last few elements of a buffer differently depending on
        # its memory alignment (its SIMD loop); those lie in the ignored border, so compare inside it
        for got, want in ((mag, mag0), (res, res0)):
            assert got.dtype == want.dtype and np.array_equal(got[g.valid], want[g.valid]), e
    d = _demo(tmp_path_factory)
    row = next(r for r in _labels(d) if r["ghost_probing"] == "1")
    clip = load_clip(d / row["video_id"], **SAMPLING)
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(max(2, before))
        v_all, t_all, f_all = detect_frames(clip.frames, clip.timestamps_s)
        cv2.setNumThreads(1)
        v_one, t_one, f_one = detect_frames(clip.frames, clip.timestamps_s)
    finally:
        cv2.setNumThreads(before)
    assert v_one == v_all and t_one == t_all
    assert json.dumps(f_one, sort_keys=True) == json.dumps(f_all, sort_keys=True)


# -- regression: the figures the README documents (issue 8) ---------------------------------------
# Floors, not exact values: a change may improve them (then update the README), never lower them.
HELDOUT_SEEDS = (6, 7, 8, 9)  # never used for fitting (engines/baseline/config.py)
HELDOUT_FLOOR = {"tp": 12, "positives": 12, "tn": 15, "negatives": 16, "onset_within_1s": 12}
DADA_FLOOR = {"tp": 5, "positives": 6, "tn": 1, "negatives": 6}


def _confusion(rows: list[tuple[bool, bool | None]]) -> dict[str, int]:
    return {"tp": sum(1 for y, p in rows if y and p is True), "positives": sum(1 for y, _ in rows if y),
            "tn": sum(1 for y, p in rows if not y and p is False), "negatives": sum(1 for y, _ in rows if not y)}


@pytest.mark.slow
def test_heldout_generated_seeds_hold_the_documented_accuracy(tmp_path, engine):
    rows, onset_ok, errors = [], 0, []
    for seed in HELDOUT_SEEDS:
        for scenario, dur, _onset in synth.DEMO_SET:
            p = tmp_path / f"{scenario}_s{seed}.mp4"
            info = synth.render_clip(p, scenario, seed=seed, duration_s=dur)
            v = engine.detect(load_clip(p, **engine.default_sampling)).verdict
            if v.status != "ok":
                errors.append((p.name, v.reason))
            rows.append((bool(info["ghost_probing"]), v.ghost_probing))
            if info["ghost_probing"] and v.ghost_probing and abs(v.onset_s - info["onset_s"]) <= 1.0:
                onset_ok += 1
    got = {**_confusion(rows), "onset_within_1s": onset_ok}
    assert not errors, errors  # every generated clip is measurable
    assert got["positives"] == HELDOUT_FLOOR["positives"] and got["negatives"] == HELDOUT_FLOOR["negatives"]
    for k in ("tp", "tn", "onset_within_1s"):
        assert got[k] >= HELDOUT_FLOOR[k], (k, got)


@pytest.mark.slow
def test_dada_dev_figures_hold_the_documented_floor(engine):
    labels = DADA / "labels.csv"
    if not labels.exists():
        pytest.skip("../shared/data/dada-dev is absent (real DADA clips are not part of the repository)")
    import csv

    rows = []
    for r in csv.DictReader(labels.open(encoding="utf-8")):
        y = "ghost probing" in (r.get("ground_truth_label") or "").lower()
        v = engine.detect(load_clip(DADA / r["video_id"], **engine.default_sampling)).verdict
        assert v.status == "ok", (r["video_id"], v.reason)
        rows.append((y, v.ghost_probing))
    got = _confusion(rows)
    assert (got["positives"], got["negatives"]) == (DADA_FLOOR["positives"], DADA_FLOOR["negatives"])
    assert got["tp"] >= DADA_FLOOR["tp"] and got["tn"] >= DADA_FLOOR["tn"], got
