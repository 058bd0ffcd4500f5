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
SAMPLING = {"num_frames": None, "fps": 10, "max_side": 480}


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
        r = engine.detect(clip, [], GenerationOptions())
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


def test_edge_case_files_give_a_no_without_crashing(tmp_path):
    paths = synth.render_edge_cases(tmp_path)
    for name, p in paths.items():
        clip = load_clip(p, **SAMPLING)
        v, track, _ = detect_frames(clip.frames, clip.timestamps_s)
        assert v.status == "ok" and v.ghost_probing is False, (name, v.reason)
        assert v.reason and v.confidence is not None


@pytest.mark.parametrize("frames", [
    np.zeros((0, 32, 32, 3), np.uint8),  # no frames
    np.zeros((1, 120, 200, 3), np.uint8),  # one frame
    np.zeros((6, 8, 12, 3), np.uint8),  # tiny
    np.full((12, 90, 160, 3), 255, np.uint8),  # white
    np.random.default_rng(0).integers(0, 256, (15, 134, 320, 3), dtype=np.uint8),  # pure noise
    np.zeros((8, 60, 80), np.uint8),  # grey frames without a channel axis
])
def test_degenerate_arrays(engine, frames):
    r = engine.detect(_clip_of(frames), [], GenerationOptions())
    assert r.verdict.status == "ok" and r.verdict.ghost_probing is False


def test_engine_contract(tmp_path_factory, engine):
    assert engine.name == "baseline" and engine.availability() == (True, "ready: weights-free motion detector on CPU")
    assert engine.default_sampling == SAMPLING
    d = _demo(tmp_path_factory)
    clip = load_clip(d / "synth_emerge_pedestrian_s0.mp4", **engine.default_sampling)
    r = engine.detect(clip, [{"role": "user", "content": "有没有鬼探头？"}], GenerationOptions())
    assert r.call.engine == "baseline" and r.call.model == "baseline-flow-v1" and r.call.device == "cpu"
    assert r.call.revision == BaselineConfig().revision() and r.call.latency_s > 0
    assert r.verdict.object_type in (None, "pedestrian", "cyclist", "motorcycle", "vehicle", "animal", "other")
    assert "秒" in r.verdict.reason
    ev = json.loads(r.verdict.raw)
    assert ev["engine"] == "baseline-flow-v1" and ev["winner"]["onset_s"] == r.verdict.onset_s
    ts = [t for t, _ in r.track]
    assert ts == sorted(ts) and max(s for _, s in r.track) >= BaselineConfig().score_threshold
    # another configuration is another revision; a typo is one clear sentence
    assert get_engine("baseline", score_threshold=0.5).revision() != engine.revision()
    from engines.errors import EngineError

    with pytest.raises(EngineError, match="Unknown baseline parameter"):
        get_engine("baseline", treshold=0.5)


def test_stream_chat_explains_and_summarises(tmp_path_factory, engine):
    d = _demo(tmp_path_factory)
    clip = load_clip(d / "synth_empty_road_s0.mp4", **engine.default_sampling)
    pieces = list(engine.stream_chat(clip, [{"role": "user", "content": "描述一下这个视频"}], GenerationOptions()))
    assert len(pieces) == 2
    assert "检测鬼探头" in pieces[0]
    assert pieces[1].startswith("检测结果：未发现鬼探头")
    assert engine.last_call is not None and engine.last_call.engine == "baseline"


@pytest.mark.parametrize("video_id", ["images_5_046.avi", "images_6_059.avi"])
def test_real_dada_clips_get_a_verdict(video_id):
    path = DADA / video_id
    if not path.exists():
        pytest.skip("../shared/data/dada-dev is absent (real DADA clips are not part of the repository)")
    eng = get_engine("baseline")
    r = eng.detect(load_clip(path, **eng.default_sampling), [], GenerationOptions())
    assert r.verdict.status == "ok" and r.verdict.ghost_probing in (True, False)
    assert 0.0 <= r.verdict.confidence <= 1.0 and r.verdict.reason
    assert len(r.track) > 20
