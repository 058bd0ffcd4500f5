"""``ghostprobe vad calibrate`` for the motion map, through the real CLI on generated normal clips (the
synthetic negatives): the threshold is the stated quantile of the in-path scores the verdict rule
thresholds (recomputed here from independent engine runs), its provenance is written, later runs use
it, say so and are not served from results cached under the old threshold. Bad input: exit 2, one
sentence. AI-VAD's calibration (into ai_vad_config.yaml, SHA-256 overlap with the fitting clips
refused) is in tests/test_vad_aivad.py (slow: anomalib)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from webapp.cli import main


@pytest.fixture(scope="module")
def normal_dir(tmp_path_factory):
    from engines.synth import render_clip

    d = tmp_path_factory.mktemp("normal")
    for name, sc, seed in (("a_cut_in", "cut_in", 3), ("b_cut_in", "cut_in", 4), ("c_far", "far_crossing", 3),
                           ("empty_road", "empty_road", 3)):
        render_clip(d / f"{name}.mp4", sc, seed=seed, duration_s=2.0, size=(320, 180))
    return d


@pytest.fixture(scope="module")
def emerge(tmp_path_factory):
    from engines.synth import render_clip

    d = tmp_path_factory.mktemp("emerge")
    return render_clip(d / "emerge.mp4", "emerge_pedestrian", seed=1, duration_s=3.0, onset_s=1.2,
                       size=(320, 180))["path"]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_quantile_arithmetic():
    from engines.errors import EngineError
    from engines.vad import calibrate as C

    assert C.quantile_threshold([0, 1, 2, 3, 4], 0.9) == pytest.approx(3.6)  # linear: 0.9 * 4 = 3.6
    assert C.quantile_threshold([5.0, float("nan"), 1.0], 0.5) == pytest.approx(3.0)  # non-finite dropped
    with pytest.raises(EngineError, match="No finite"):
        C.quantile_threshold([float("nan")], 0.9)
    for q in (0, 1, 1.5, -0.1):
        with pytest.raises(EngineError, match="between 0 and 1"):
            C.check_quantile(q)


def test_motion_calibration_sets_the_quantile_and_runs_use_it(tmp_path, capsys, env_dirs, normal_dir, emerge):
    from engines.registry import get_engine
    from engines.vad.calibrate import in_path_frame_scores
    from webapp.detection import load_clip_timed
    from webapp.vad import sampling_for

    db = tmp_path / "g.duckdb"
    code, out, err = _run(capsys, "--db", db, "vad", "run", emerge, "--engine", "motion", "--out", tmp_path / "o",
                          "--json")
    assert code == 0, err
    before = json.loads(out)
    assert before["threshold"] == 0.5 and "calibrated on" not in before["verdict"]["reason"]

    code, out, err = _run(capsys, "--db", db, "vad", "calibrate", "--engine", "motion", "--normal", normal_dir,
                          "--quantile", "0.9", "--json")
    assert code == 0, err
    doc = json.loads(out)
    # the scores the quantile was taken of are the in-path frame scores of independent runs of the engine
    eng = get_engine("motion", threshold=0.5)
    sampling = sampling_for(type(eng))
    expect, peaks = [], {}
    for p in sorted(normal_dir.iterdir()):
        s = in_path_frame_scores(eng.detect(load_clip_timed(p, sampling)[0]))
        expect.extend(s)
        peaks[p.name] = max(s)
    assert doc["scores"] == pytest.approx(expect, abs=1e-5)
    assert doc["threshold"] == pytest.approx(float(np.quantile(expect, 0.9)), abs=1e-5)
    assert doc["n_clips"] == 4 and doc["n_frames"] == len(expect) and doc["level"] == "frame"
    assert [c["name"] for c in doc["clips"]] == sorted(peaks)
    assert all(c["peak"] == pytest.approx(peaks[c["name"]], abs=1e-5) and len(c["sha256"]) == 64
               for c in doc["clips"])
    assert doc["engine"]["engine"] == "motion" and doc["sampling"] == sampling
    written = env_dirs["data"] / "vad" / "motion_calibration.json"
    assert doc["written"] == str(written)
    stored = json.loads(written.read_text())
    assert stored["threshold"] == doc["threshold"] and "scores" not in stored and stored["quantile"] == 0.9

    # the next run uses it, says so, and is a new result (the identity changed with the threshold)
    code, out, err = _run(capsys, "--db", db, "vad", "run", emerge, "--engine", "motion", "--out", tmp_path / "o",
                          "--json")
    assert code == 0, err
    after = json.loads(out)
    assert after["cached"] is False and after["response_id"] != before["response_id"]
    assert after["threshold"] == pytest.approx(doc["threshold"])
    assert "threshold calibrated on 4 normal clips at q=0.9" in after["verdict"]["reason"]
    assert get_engine("motion").identity().revision != get_engine("motion", threshold=0.5).identity().revision
    # an explicit threshold wins and is uncalibrated
    code, out, _ = _run(capsys, "--db", db, "vad", "run", emerge, "--engine", "motion", "--threshold", "0.5",
                        "--out", tmp_path / "o", "--json")
    again = json.loads(out)
    assert again["cached"] is True and again["response_id"] == before["response_id"]

    # per-clip peaks, into a folder of its own given with --artifacts (and read back by vad run --artifacts)
    code, out, err = _run(capsys, "vad", "calibrate", "--engine", "motion", "--normal", normal_dir, "--level", "peak",
                          "--quantile", "0.5", "--artifacts", tmp_path / "cal", "--json")
    assert code == 0, err
    pk = json.loads(out)
    assert pk["scores"] == pytest.approx(list(peaks.values()), abs=1e-5)  # one peak per clip, in name order
    assert pk["threshold"] == pytest.approx(float(np.median(list(peaks.values()))), abs=1e-5)
    assert (tmp_path / "cal" / "motion_calibration.json").is_file()
    code, out, err = _run(capsys, "--db", db, "vad", "run", emerge, "--engine", "motion", "--artifacts",
                          tmp_path / "cal", "--out", tmp_path / "o", "--json")
    assert code == 0, err
    assert json.loads(out)["threshold"] == pytest.approx(pk["threshold"])
    assert "at q=0.5 (per-clip peaks)" in json.loads(out)["verdict"]["reason"]


@pytest.mark.parametrize("case,words", [
    ("empty", "holds no videos"),
    ("missing", "does not exist"),
    ("text", "is not a video"),
    ("garbage_mp4", "is not a readable video"),
    ("duplicate", "is the same file as"),
    ("quantile", "between 0 and 1"),
    ("zeros", "a threshold of 0 would flag every clip"),
    ("aivad_no_artifacts", "--artifacts is required"),
])
def test_calibrate_bad_input_exits_2_with_one_sentence(tmp_path, capsys, env_dirs, normal_dir, case, words,
                                                       monkeypatch):
    monkeypatch.delenv("GHOSTPROBE_AIVAD_ARTIFACTS", raising=False)
    d = tmp_path / "n"
    d.mkdir()
    extra: list[str] = []
    engine = "motion"
    if case == "missing":
        d = tmp_path / "nope"
    elif case == "text":
        shutil.copy(normal_dir / "a_cut_in.mp4", d / "a.mp4")
        (d / "notes.txt").write_text("hello")
    elif case == "garbage_mp4":
        (d / "bad.mp4").write_bytes(b"this is not a video" * 100)
    elif case == "duplicate":
        shutil.copy(normal_dir / "a_cut_in.mp4", d / "a.mp4")
        shutil.copy(normal_dir / "a_cut_in.mp4", d / "b.mp4")
    elif case == "quantile":
        shutil.copy(normal_dir / "a_cut_in.mp4", d / "a.mp4")
        extra = ["--quantile", "1.5"]
    elif case == "zeros":  # an empty road: no independent motion, every in-path score is 0
        shutil.copy(normal_dir / "empty_road.mp4", d / "a.mp4")
    elif case == "aivad_no_artifacts":
        shutil.copy(normal_dir / "a_cut_in.mp4", d / "a.mp4")
        engine = "aivad"
    code, out, err = _run(capsys, "vad", "calibrate", "--engine", engine, "--normal", d, "--json", *extra)
    assert code == 2 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (env_dirs["data"] / "vad" / "motion_calibration.json").exists()


def test_damaged_motion_calibration_is_one_sentence(tmp_path, capsys, env_dirs, emerge):
    cal = tmp_path / "motion_calibration.json"
    cal.write_text("{not json")
    code, _out, err = _run(capsys, "--db", tmp_path / "g.duckdb", "vad", "run", emerge, "--engine", "motion",
                           "--artifacts", cal)
    assert code == 2 and "is damaged" in err and len(err.strip().splitlines()) == 1, err
