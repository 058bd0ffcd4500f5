"""AI-VAD on anomalib, offline: random backbones of the real shape, fitted on generated normal frames,
the three-file artifact written and reloaded with identical scores, boxes and per-box scores from the
model's own components (forward hooks). Tiny on purpose (96x128 frames, one pair per video, velocity
stream only, one thread): structure is asserted, never what a random detector "finds"."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("anomalib")
pytestmark = [pytest.mark.slow]

H, W = 96, 128


def _frames(seed: int, n: int, speed: int, square: int = 0) -> np.ndarray:
    """A textured scene drifting ``speed`` px per frame; ``square`` px object moving fast across it."""
    rng = np.random.default_rng(seed)
    tex = (rng.random((H, W * 2, 3)) * 255).astype(np.uint8)
    out = []
    for i in range(n):
        f = np.roll(tex, -i * speed, axis=1)[:, :W].copy()
        if square:
            x = 10 + i * 30
            f[40:40 + square, x:x + square] = (255, 0, 0)
        out.append(f)
    return np.stack(out)


CFG = {"use_pose_features": False, "use_deep_features": False, "box_score_thresh": 0.3, "n_components_velocity": 1,
       "weights": "random", "seed": 0, "max_boxes": 8}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    import torch

    from engines.vad import aivad as A

    torch.set_num_threads(1)
    normal = [("normal_a", _frames(1, 2, 1)), ("normal_b", _frames(2, 2, 2)),
              ("dupes", np.stack([_frames(3, 1, 0)[0]] * 3))]  # repeated frames: skipped, not fitted
    model, report = A.fit(normal, CFG)
    out = tmp_path_factory.mktemp("aivad") / "artifact"
    A.save_artifact(model, {**A.MODEL_DEFAULTS, **A.RUN_DEFAULTS, **CFG}, out)
    return model, report, out


def test_fit_skips_identical_pairs_and_writes_the_three_files(fitted):
    from engines.vad import aivad as A

    _model, report, out = fitted
    assert report["skipped_identical_pairs"] == 2
    assert [v["pairs"] for v in report["videos"]] == [1, 1, 0]
    assert report["regions"] >= 1
    assert sorted(p.name for p in out.iterdir()) == sorted([A.CONFIG_FILE, A.BANKS_FILE, A.WEIGHTS_FILE])
    assert (out / A.BANKS_FILE).stat().st_size < 1_000_000  # the banks are small; random backbones are a seed
    import yaml

    cfg = yaml.safe_load((out / A.CONFIG_FILE).read_text())
    for k in A.MODEL_DEFAULTS:  # every AiVadModel parameter is written (AiVad/AiVadModel disagree on defaults)
        assert k in cfg
    assert cfg["enable_foreground_detections"] is False and cfg["weights"] == "random"


def test_reloaded_artifact_scores_identically_and_hooks_give_boxes_and_box_scores(fitted):
    from engines.vad import aivad as A

    model, _report, out = fitted
    test = _frames(7, 2, 1, square=24)
    r1 = A.score_pairs(model, test[:1], test[1:], CFG, keep_masks=True)[0]
    model2, cfg2 = A.load_artifact(out)
    assert cfg2["weights"] == "random" and cfg2["use_deep_features"] is False
    r2 = A.score_pairs(model2, test[:1], test[1:], cfg2)[0]
    assert np.isfinite(r1.pred_score) and r1.pred_score == pytest.approx(r2.pred_score, rel=1e-5, abs=1e-6)
    assert np.allclose(r1.box_scores, r2.box_scores, atol=1e-6)
    # structure: one score per box, boxes inside the frame; the frame score is the best box (velocity only)
    m = len(r1.boxes)
    assert r1.box_scores.shape == (m,) and r1.det_scores.shape == (m,) and len(r1.labels) == m
    assert r1.anomaly_map.shape == (H, W)
    if m:
        assert (r1.boxes[:, 0] >= 0).all() and (r1.boxes[:, 2] <= W).all() and (r1.boxes[:, 3] <= H).all()
        assert r1.pred_score == pytest.approx(float(r1.box_scores.max()), abs=1e-5)
        # anomalib's anomaly_map rebuilt from the hooked masks and per-box scores
        rebuilt = (r1.masks * r1.box_scores[:, None, None]).max(axis=0)
        assert np.allclose(rebuilt, r1.anomaly_map, atol=1e-6)


def test_engine_detection_is_marked_random_and_config_mismatch_is_one_sentence(fitted, tmp_path):
    import shutil

    import yaml

    from engines.errors import EngineError
    from engines.types import Clip, VideoMeta
    from engines.vad import aivad as A

    _model, _report, out = fitted
    frames = _frames(9, 3, 1, square=20)
    meta = VideoMeta(path="x", frames=3, fps=2, duration_s=1.5, width=W, height=H, codec="h264", sha256="0" * 64,
                     size_bytes=1)
    clip = Clip(frames=frames, timestamps_s=[0.0, 0.5, 1.0], indices=[0, 1, 2], fps=2, duration_s=1.5, source="x",
                sha256="0" * 64, meta=meta)
    eng = A.AiVadEngine(artifacts=str(out), max_boxes=8)
    assert eng.availability()[0]
    d = eng.detect(clip)
    assert d.verdict.status == "ok", d.verdict.reason
    assert "random weights: scores are meaningless" in d.verdict.reason
    a = d.artifacts
    assert a.extra["random_weights"] is True and len(a.tracks["anomaly"]) == 2 and a.maps.shape[0] == 2
    assert a.maps.min() >= 0 and a.maps.max() <= 1
    assert all(b.frame in (1, 2) for b in a.boxes)
    ident = eng.identity()
    assert ident.revision.startswith("art-") and ident.settings["use_deep_features"] is False
    # the config says deep features, the banks have none: a sentence, not a traceback
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    cfg = yaml.safe_load((bad / A.CONFIG_FILE).read_text())
    cfg["use_deep_features"] = True
    (bad / A.CONFIG_FILE).write_text(yaml.safe_dump(cfg))
    with pytest.raises(EngineError, match="no fitted memory bank"):
        A.load_artifact(bad)
    (bad / A.BANKS_FILE).unlink()
    assert "ai_vad_banks.joblib" in A.AiVadEngine(artifacts=str(bad)).availability()[1]


def test_fit_needs_two_videos():
    from engines.errors import EngineError
    from engines.vad import aivad as A

    with pytest.raises(EngineError, match="at least 2 normal videos"):
        A.fit([("only", _frames(1, 3, 1)), ("dupes", np.stack([_frames(3, 1, 0)[0]] * 2))], CFG)


def test_serving_container_with_the_fitted_artifact_on_loopback(fitted):
    """/ping and /invocations of the real container with AI-VAD loaded from the three files."""
    import base64
    import threading

    import cv2
    import httpx

    from engines.vad.serve import server as S

    _model, _report, out = fitted
    srv, st = S.make_server(S.AiVadScorer(out), "127.0.0.1", 0, load_async=False)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        assert httpx.get(url + "/ping").status_code == 200
        test = _frames(7, 2, 1, square=24)
        png = cv2.imencode(".png", test[1][..., ::-1])[1].tobytes()
        for ctype in ("image/x-image", "application/x-image"):
            r = httpx.post(url + "/invocations", content=png, headers={"Content-Type": ctype}, timeout=300)
            assert r.status_code == 200, r.text
            o = r.json()
            assert len(o["pred_scores"]) == 1 and len(o["pred_boxes"]) == len(o["box_scores"])
            assert "velocity needs two frames" in o["note"] and o["warning"] == "random weights: scores are meaningless"
        imgs = [base64.b64encode(cv2.imencode(".png", f[..., ::-1])[1].tobytes()).decode() for f in test]
        r = httpx.post(url + "/invocations", json={"images": imgs, "clip": True, "maps": True}, timeout=300)
        assert r.status_code == 200, r.text
        o = r.json()
        assert o["pairs"] == [[0, 1]] and len(o["pred_scores"]) == 1 and len(o["maps"][0][0]) == 32
        r = httpx.post(url + "/invocations", content=b"not an image", headers={"Content-Type": "image/x-image"})
        assert r.status_code == 400 and "not an image" in r.json()["error"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_calibrate_writes_threshold_and_provenance_and_refuses_fitting_clips(fitted, tmp_path, capsys, env_dirs):
    """``vad calibrate --engine aivad`` through the CLI on generated normal clips (one tiny pair each):
    the threshold is the quantile of the in-path scores it reports, written into ai_vad_config.yaml with
    its provenance; the identity changes; the verdict says so; a fitting clip (by SHA-256) is refused."""
    import json
    import shutil

    import yaml

    from engines.synth import render_clip
    from engines.types import Clip, VideoMeta
    from engines.vad import aivad as A
    from engines.video import sha256_file
    from webapp.cli import main

    _model, _report, out = fitted
    art = tmp_path / "art"
    shutil.copytree(out, art)
    normal = tmp_path / "normal"
    normal.mkdir()
    for name, sc, seed in (("a.mp4", "empty_road", 5), ("b.mp4", "cut_in", 6)):
        render_clip(normal / name, sc, seed=seed, duration_s=1.0, size=(256, 144))
    fit_clip = tmp_path / "fit.mp4"
    render_clip(fit_clip, "parked_only", seed=7, duration_s=1.0, size=(256, 144))
    cfg = yaml.safe_load((art / A.CONFIG_FILE).read_text())
    cfg["fitted_on"], cfg["fitted_sha256"] = ["fit.mp4"], [sha256_file(fit_clip)]
    (art / A.CONFIG_FILE).write_text(yaml.safe_dump(cfg))
    before = A.AiVadEngine(artifacts=str(art)).identity()

    argv = ["vad", "calibrate", "--engine", "aivad", "--artifacts", str(art), "--max-side", "128",
            "--max-pairs", "1", "--quantile", "0.9", "--json"]
    # a clip the banks were fitted on: refused before anything runs
    overlap = tmp_path / "overlap"
    overlap.mkdir()
    shutil.copy(normal / "a.mp4", overlap / "a.mp4")
    shutil.copy(fit_clip, overlap / "renamed.mp4")
    assert main(argv + ["--normal", str(overlap)]) == 2
    err = capsys.readouterr().err
    assert "fitted on (renamed.mp4)" in err and len(err.strip().splitlines()) == 1
    assert yaml.safe_load((art / A.CONFIG_FILE).read_text())["calibrated"] is False

    assert main(argv + ["--normal", str(normal)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_clips"] == 2 and [c["name"] for c in doc["clips"]] == ["a.mp4", "b.mp4"]
    assert doc["n_frames"] == len(doc["scores"]) == sum(c["frames"] for c in doc["clips"]) == 2  # one pair each
    assert [c["peak"] for c in doc["clips"]] == pytest.approx(doc["scores"])
    assert doc["threshold"] == pytest.approx(float(np.quantile(doc["scores"], 0.9)), abs=1e-5)
    assert doc["engine"]["revision"] == before.revision and doc["engine"]["random_weights"] is True
    assert doc["warnings"] == []
    cfg = yaml.safe_load((art / A.CONFIG_FILE).read_text())
    assert cfg["threshold"] == doc["threshold"] and cfg["calibrated"] is True
    prov = cfg["calibration"]
    assert prov["quantile"] == 0.9 and prov["n_clips"] == 2 and prov["previous_threshold"] == 1.0
    assert [c["sha256"] for c in prov["clips"]] == [sha256_file(normal / "a.mp4"), sha256_file(normal / "b.mp4")]
    assert prov["sampling"]["max_side"] == 128 and "scores" not in prov and prov["date"]
    A.load_artifact(art)  # the provenance does not disturb loading

    eng = A.AiVadEngine(artifacts=str(art), max_boxes=8)
    after = eng.identity()
    assert after.revision != before.revision and after.settings["threshold"] == doc["threshold"]
    assert after.cache_key("0" * 64) != before.cache_key("0" * 64)
    frames = _frames(9, 2, 1, square=20)
    meta = VideoMeta(path="x", frames=2, fps=2, duration_s=1.0, width=W, height=H, codec="h264", sha256="0" * 64,
                     size_bytes=1)
    clip = Clip(frames=frames, timestamps_s=[0.0, 0.5], indices=[0, 1], fps=2, duration_s=1.0, source="x",
                sha256="0" * 64, meta=meta)
    d = eng.detect(clip)
    assert d.verdict.status == "ok", d.verdict.reason
    assert "threshold calibrated on 2 normal clips at q=0.9" in d.verdict.reason
    assert "未在正常片段上校准" not in d.verdict.reason
    assert json.loads(d.verdict.raw)["calibration"]["n_clips"] == 2
    assert d.artifacts.thresholds["anomaly"] == pytest.approx(doc["threshold"])
    # another threshold than the calibrated one is uncalibrated again
    d2 = A.AiVadEngine(artifacts=str(art), max_boxes=8, threshold=123.0).detect(clip)
    assert "threshold uncalibrated" in d2.verdict.reason and "calibrated on" not in d2.verdict.reason
