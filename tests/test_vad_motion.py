"""The weights-free motion-map engine, the verdict rule, heatmap rendering and the vad tables.

Real parts: generated dashcam clips decoded by engines.video, the real baseline flow, PyAV's H.264
encoder and decoder, a DuckDB file in a temp dir."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engines.base import Artifacts, Box, CallRecord, Detection
from engines.vad.verdict import RULE, EgoPath, normalised, verdict_from_scores


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from engines.synth import render_clip
    from engines.video import load_clip

    d = tmp_path_factory.mktemp("vadclips")
    out = {}
    for sc, onset in (("emerge_pedestrian", 2.0), ("empty_road", None)):
        info = render_clip(d / f"{sc}.mp4", sc, seed=0, duration_s=4.0, onset_s=onset)
        out[sc] = (info, load_clip(info["path"], num_frames=None, fps=10, max_side=480))
    return out


@pytest.fixture(scope="module")
def detections(clips):
    from engines.vad.motion import MotionMapEngine

    return {k: MotionMapEngine().detect(clip) for k, (_info, clip) in clips.items()}


# -- the verdict rule -----------------------------------------------------------------------------------

def test_rule_peak_inside_the_ego_path_decides_and_gives_onset_and_confidence():
    w, h = 640, 360
    track = [(0.0, 0.1), (0.5, 0.9), (1.0, 0.95)]
    inside = Box(frame=1, t=0.5, x1=300, y1=200, x2=340, y2=350, score=0.9, label="person")
    outside = Box(frame=2, t=1.0, x1=0, y1=200, x2=40, y2=350, score=0.95, label="person")  # far left
    v = verdict_from_scores(track, [inside, outside], w, h, threshold=0.5)
    assert v.status == "ok" and v.ghost_probing is True
    assert v.onset_s == 0.5  # the in-path peak, not the higher box outside the path
    assert v.confidence == pytest.approx(0.9 / 1.4, abs=1e-4)
    assert v.object_type == "pedestrian"
    ev = json.loads(v.raw)
    assert ev["rule"] == RULE and ev["score"] == 0.9 and ev["scored_by"] == "boxes"
    # only the box outside the path: the in-path score is 0, a "no" with confidence 1 - p
    v2 = verdict_from_scores(track, [outside], w, h, threshold=0.5)
    assert v2.ghost_probing is False and v2.onset_s is None and v2.confidence == 1.0


def test_rule_without_boxes_uses_frame_scores_and_an_empty_clip_is_an_error_not_a_no():
    v = verdict_from_scores([(0.0, 0.2), (0.4, 0.3)], [], 100, 100, threshold=0.5)
    assert v.status == "ok" and v.ghost_probing is False
    assert v.confidence == pytest.approx(1 - 0.3 / 0.8, abs=1e-4)
    e = verdict_from_scores([], [], 100, 100, threshold=0.5)
    assert e.status == "error" and e.ghost_probing is None and e.confidence is None
    nan = verdict_from_scores([(0.0, float("nan"))], [], 100, 100, threshold=0.5)
    assert nan.status == "error"
    rw = verdict_from_scores([(0.0, 2.0)], [], 100, 100, threshold=1.0, random_weights=True)
    assert "random weights: scores are meaningless" in rw.reason


def test_ego_path_and_normalisation():
    p = EgoPath(center_x=0.5, horizon_y=0.4, half_width_bottom=0.3, margin=0.0)
    assert p.contains(0.5, 0.99) and p.contains(0.75, 0.99) and not p.contains(0.85, 0.99)
    assert not p.contains(0.5, 0.3)  # above the horizon
    assert normalised(0.5, 0.5) == 0.5 and normalised(0.0, 0.5) == 0.0 and normalised(-1, 0.5) == 0.0
    assert normalised(10.0, 0.5) > normalised(1.0, 0.5) > 0.5


# -- the motion-map engine ----------------------------------------------------------------------------

def test_motion_engine_artifacts_have_the_documented_shapes(clips, detections):
    info, clip = clips["emerge_pedestrian"]
    d = detections["emerge_pedestrian"]
    a = d.artifacts
    assert d.verdict.status == "ok" and d.call.device == "cpu"
    assert list(a.tracks) == ["anomaly"] and a.thresholds == {"anomaly": 0.5}
    T, mh, mw = a.maps.shape
    assert a.maps.dtype == np.float32 and mw == 64 and T == len(a.map_times) == len(a.tracks["anomaly"])
    fh, fw = clip.frames.shape[1:3]
    assert abs(mh / mw - fh / fw) < 0.05  # the map has the frame's aspect: it covers the whole frame
    assert float(a.maps.min()) >= 0.0 and float(a.maps.max()) <= 1.0
    assert float(a.maps[0].max()) == 0.0  # the first frame has no motion yet
    assert a.boxes, "an emerging pedestrian moves independently of the ego car"
    for b in a.boxes:
        assert 0 <= b.x1 < b.x2 <= fw + 0.5 and 0 <= b.y1 < b.y2 <= fh + 0.5
        assert 0 <= b.frame < clip.num_frames and clip.timestamps_s[b.frame] == pytest.approx(b.t, abs=1e-3)
        assert 0.0 <= b.score <= 1.0
    # the per-frame score is the best box on that frame
    by_t: dict[float, float] = {}
    for b in a.boxes:
        by_t[round(b.t, 4)] = max(by_t.get(round(b.t, 4), 0.0), b.score)
    for t, s in a.tracks["anomaly"]:
        assert s == pytest.approx(by_t.get(round(t, 4), 0.0), abs=1e-5)
    ev = json.loads(d.verdict.raw)
    assert ev["rule"] == RULE and ev["threshold"] == 0.5
    if d.verdict.ghost_probing:
        assert d.verdict.onset_s == pytest.approx(ev["t_peak"], abs=0.01)


def test_motion_engine_empty_road_maps_less_motion_than_an_emerging_pedestrian(detections):
    pos = detections["emerge_pedestrian"].artifacts
    neg = detections["empty_road"].artifacts
    assert detections["empty_road"].verdict.status == "ok"
    assert max(s for _, s in neg.tracks["anomaly"]) < max(s for _, s in pos.tracks["anomaly"])


def test_motion_engine_bad_input_and_parameters():
    from engines.errors import EngineError
    from engines.types import Clip, VideoMeta
    from engines.vad.motion import MotionMapEngine

    meta = VideoMeta(path="x", frames=1, fps=10, duration_s=0.1, width=64, height=48, codec="h264", sha256="0",
                     size_bytes=1)
    one = Clip(frames=np.zeros((1, 48, 64, 3), np.uint8), timestamps_s=[0.0], indices=[0], fps=10, duration_s=0.1,
               source="x", sha256="0", meta=meta)
    d = MotionMapEngine().detect(one)
    assert d.verdict.status == "error" and d.verdict.ghost_probing is None
    with pytest.raises(EngineError, match="Unknown motion-map parameter"):
        MotionMapEngine(nope=1)
    with pytest.raises(EngineError, match="map_width"):
        MotionMapEngine(map_width=2)
    a, b = MotionMapEngine().identity(), MotionMapEngine(threshold=0.7).identity()
    assert a.kind == "detector" and a.digest() != b.digest() and a.settings["threshold"] == 0.5


def test_motion_engine_is_registered():
    from engines.registry import entry_points, get_engine

    assert entry_points()["motion"] == "engines.vad.motion:MotionMapEngine"
    assert get_engine("motion").name == "motion"


# -- heatmaps -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(64, 48), (641, 359), (1584, 660), (300, 400)])
def test_heatmap_covers_exactly_its_frame_at_every_size(size):
    from engines.vad.heatmap import overlay

    w, h = size
    m = np.zeros((9, 16), np.float32)
    m[6, 12] = 1.0  # one hot cell: rows 6/9 .. 7/9, columns 12/16 .. 13/16 of the frame
    frame = np.full((h, w, 3), 128, np.uint8)
    out = overlay(frame, m)
    assert out.shape == frame.shape
    diff = np.abs(out.astype(int) - frame).sum(axis=2)
    ys, xs = np.unravel_index(int(np.argmax(diff)), diff.shape)
    assert 6 / 9 * h - 1 <= ys <= 7 / 9 * h + 1 and 12 / 16 * w - 1 <= xs <= 13 / 16 * w + 1
    assert diff[: int(h * 0.4), :].max() == 0 and diff[:, : int(w * 0.5)].max() == 0  # cold stays untouched


def test_heatmap_video_is_h264_yuv420p_at_the_frames_own_times(tmp_path, clips, detections):
    import av

    from engines.vad.heatmap import gallery, write_heatmap_video
    from engines.video import probe

    _info, clip = clips["emerge_pedestrian"]
    a = detections["emerge_pedestrian"].artifacts
    dst = write_heatmap_video(clip.frames, clip.timestamps_s, a.maps, a.map_times, a.boxes, tmp_path / "h.mp4",
                              threshold=0.5)
    meta = probe(dst)
    assert meta.codec == "h264" and meta.width == clip.frames.shape[2] - clip.frames.shape[2] % 2
    with av.open(str(dst)) as c:
        s = c.streams.video[0]
        assert s.codec_context.pix_fmt == "yuv420p"
        times = [float(f.pts * f.time_base) for f in c.decode(s)]
    assert len(times) == clip.num_frames
    assert np.allclose(times, clip.timestamps_s, atol=0.002)
    g = gallery(clip.frames, clip.timestamps_s, a.tracks["anomaly"], a.maps, a.map_times, a.boxes, 0.5, k=4)
    assert 1 <= len(g) <= 4 and g[0][0].shape == clip.frames[0].shape
    scores = [float(c.split("得分 ")[1].split()[0]) for _, c in g]
    assert scores == sorted(scores, reverse=True)


def test_random_weights_banner_on_every_frame(tmp_path):
    from engines.vad.heatmap import RANDOM_WEIGHTS_BANNER, gallery

    frames = np.zeros((3, 40, 60, 3), np.uint8)
    g = gallery(frames, [0.0, 0.5, 1.0], [(0.0, 1.0), (0.5, 2.0), (1.0, 3.0)], None, [], [], random_weights=True)
    assert all(RANDOM_WEIGHTS_BANNER in cap for _, cap in g)
    assert all(img[:16].max() > 0 for img, _ in g)  # the banner is drawn into the picture


# -- storage --------------------------------------------------------------------------------------------

def test_vad_tables_round_trip_and_reuse_by_cache_key(store, clips, detections):
    from engines.vad.motion import MotionMapEngine
    from reports import responses, vad

    assert "m010_vad" in [m["name"] for m in store.migrations()]
    _info, clip = clips["emerge_pedestrian"]
    d = detections["emerge_pedestrian"]
    ident = MotionMapEngine().identity(sampling=clip.sampling)
    key = ident.cache_key(clip.sha256)
    assert vad.find(store, key) is None
    rid = vad.record(store, d, identity=ident, sha256=clip.sha256, video_id="v.mp4", sampling=clip.sampling,
                     decode_s=0.25, timestamps=clip.timestamps_s)
    assert vad.find(store, key) == rid
    logged = responses.get(store, rid)  # the response log row, written in the same transaction
    assert logged["engine"] == "motion" and logged["cache_key"] == key and logged["engine_kind"] == "detector"
    assert logged["ghost_probing"] == d.verdict.ghost_probing and logged["decode_s"] == 0.25
    assert vad.find(store, MotionMapEngine(threshold=0.7).identity(sampling=clip.sampling).cache_key(clip.sha256)) \
        is None
    n_frames = store.scalar("SELECT count(*) FROM vad_frames WHERE response_id = ?", [rid])
    n_boxes = store.scalar("SELECT count(*) FROM vad_boxes WHERE response_id = ?", [rid])
    assert n_frames == len(d.artifacts.tracks["anomaly"]) and n_boxes == len(d.artifacts.boxes)
    back = vad.load(store, rid)
    assert back.verdict == d.verdict and back.engine == "motion" and back.video_id == "v.mp4"
    assert np.allclose(np.asarray(back.track), np.asarray(d.artifacts.tracks["anomaly"]))
    assert sorted((b.frame, b.score) for b in back.artifacts.boxes) == sorted((b.frame, b.score)
                                                                              for b in d.artifacts.boxes)
    assert back.artifacts.maps.shape == d.artifacts.maps.shape
    assert np.abs(back.artifacts.maps - d.artifacts.maps).max() <= 0.5 / 255 + 1e-6  # uint8 quantised
    for f in store.query("SELECT frame, t FROM vad_frames WHERE response_id = ? ORDER BY frame", [rid]):
        assert clip.timestamps_s[f["frame"]] == pytest.approx(f["t"], abs=1e-3)
    # saving again under the same id replaces, never duplicates
    vad.save(store, rid, d, cache_key=key, timestamps=clip.timestamps_s)
    assert store.scalar("SELECT count(*) FROM vad_frames WHERE response_id = ?", [rid]) == n_frames


def test_an_error_is_stored_but_never_reused(store):
    from engines.types import Verdict
    from reports import vad

    d = Detection(verdict=Verdict.error("nothing measured"), call=CallRecord(engine="motion"), artifacts=Artifacts())
    vad.save(store, 41, d, cache_key="k")
    back = vad.load(store, 41)
    assert back.verdict.status == "error" and back.track == [] and back.artifacts.maps is None
    assert vad.find(store, "k") is None


def test_the_prediction_core_stores_vad_rows_through_save_artifacts(store, clips):
    """An eval prediction with the motion engine through webapp/predict.py lands in vad_frames/vad_boxes."""
    from engines.vad.motion import MotionMapEngine
    from reports import vad
    from webapp.predict import Predictor

    info, clip = clips["emerge_pedestrian"]
    eng = MotionMapEngine()
    pred = Predictor(store, eng, sampling=dict(eng.default_sampling))
    ans = pred.predict(info["path"], "emerge.mp4", kind="eval")
    assert ans.verdict.status == "ok"
    rid = ans.response_id
    n = store.scalar("SELECT count(*) FROM vad_frames WHERE response_id = ?", [rid])
    assert n == len(ans.artifacts.tracks["anomaly"]) and n >= 20
    frames = store.query("SELECT frame, t FROM vad_frames WHERE response_id = ? ORDER BY frame", [rid])
    ts = clip.timestamps_s
    assert all(abs(ts[f["frame"]] - f["t"]) < 1e-3 for f in frames)  # the engine's own frame indices
    back = vad.load(store, rid)
    assert back.video_id == "emerge.mp4" and back.verdict.ghost_probing == ans.verdict.ghost_probing
    assert vad.find(store, back.cache_key) == rid  # the Heatmap tab reuses what an eval run computed
